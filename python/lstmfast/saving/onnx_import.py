"""Import an ONNX LSTM model as an lstmfast functional model: `load_model("model.onnx")`.

Reads the graphs that `torch.onnx.export` writes for `nn.LSTM` (one or more layers, one or two
directions, `batch_first=True`, followed by `nn.Linear`/`nn.Embedding`/activations) and that
lstmfast's own exporter writes (`saving.onnx_export`). Each ONNX tensor is followed symbolically:
a lstmfast tensor of Keras's layout — (batch, time, features) or (batch, features) — and the order
in which the ONNX tensor holds its axes, so that the Transposes, Squeezes and Reshapes around an
ONNX `LSTM` node (time first, a direction axis) become nothing, and each ONNX `LSTM` becomes one
`LSTM` (or `Bidirectional(LSTM)`) with its weights converted back:

    kernel = Wᵀ, recurrent_kernel = Rᵀ with the gate blocks from ONNX's [i o f c] to Keras's
    [i f c o]; bias = Wb + Rb (ONNX adds both); initial states that are zeros (the
    Shape → ConstantOfShape → Slice chain torch writes) are dropped, graph inputs become
    `initial_state`.

Graph inputs of rank 3 are taken as batch first. What cannot be mapped (another layout, LSTM
`clip` or `input_forget`, peepholes, sequence lengths, an op outside the list below) is refused
with the node and the reason. Ops: LSTM, Transpose, Squeeze, Unsqueeze, Reshape (merging the
direction axis), Gather (embedding rows, or one direction's state), MatMul, Add, Gemm, Sigmoid,
Tanh, Relu, Softmax, Identity, Unsqueeze + Tile (RepeatVector), and the shape arithmetic of zero
initial states.
"""

import os

import numpy as np

from .onnx_export import ONNX_TO_KERAS_GATES, reorder_gates

__all__ = ["load_onnx", "OnnxImportError"]

MAX_BYTES = 2 << 30  # an ONNX file larger than this is refused before it is read


class OnnxImportError(ValueError):
    """The ONNX graph holds something lstmfast cannot map."""


class _Sym:
    """An ONNX tensor computed by lstmfast layers: `kt` in Keras's layout, `axes` the order of
    the ONNX tensor's axes in terms of B (batch), T (time), F (features), D (direction), H (units
    of one direction)."""

    def __init__(self, kt, axes, dirs=1):
        self.kt, self.axes, self.dirs = kt, list(axes), dirs


class _Zeros:
    """All-zero values of a shape known only at run time (torch's default initial states)."""


class _Shape:
    """Integers computed from a tensor's shape (only good for building _Zeros)."""


class _Product:
    """x·W (+ b), waiting to see whether a bias is added: then one Dense layer."""

    def __init__(self, x, w, bias=None):
        self.x, self.w, self.bias = x, w, bias

    def dense(self, L):
        layer = L.Dense(self.w.shape[1], use_bias=self.bias is not None)
        y = layer(self.x.kt)
        layer.set_weights([self.w] + ([self.bias] if self.bias is not None else []))
        return _Sym(y, self.x.axes)


_ACTS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "HardSigmoid": "hard_sigmoid"}


def load_onnx(filepath, compile=False):
    """The lstmfast functional model that computes what the ONNX model at `filepath` computes."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ImportError("Importing ONNX models needs the onnx package: pip install onnx") from e
    from .. import layers as L
    from .registry import model_class

    size = os.path.getsize(filepath)
    if size > MAX_BYTES:
        raise OnnxImportError(f"{filepath}: {size} bytes; ONNX models over {MAX_BYTES} bytes are refused")
    try:
        proto = onnx.load(os.fspath(filepath))
        onnx.checker.check_model(proto)
    except Exception as e:  # a broken file: say which and why
        raise OnnxImportError(f"{filepath} is not a valid ONNX model: {e}") from None
    graph = proto.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    def bad(node, why):
        return OnnxImportError(f"{filepath}: node {node.name or node.op_type} ({node.op_type}): {why}")

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def const(name, node):
        v = values.get(name)
        if not isinstance(v, np.ndarray):
            raise bad(node, f"input {name!r} must be a constant")
        return v

    inputs = []
    for vi in graph.input:
        if vi.name in values:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if len(dims) not in (2, 3):
            raise OnnxImportError(f"{filepath}: input {vi.name!r} has rank {len(dims)}; expected (batch, time, "
                               "features), (batch, features) or token ids (batch, time)")
        kt = L.Input(tuple(dims[1:]), dtype=str(dtype) if dtype.kind in "iu" else None, name=vi.name)
        axes = ["B", "T", "F"] if len(dims) == 3 else (["B", "T"] if dtype.kind in "iu" else ["B", "F"])
        values[vi.name] = _Sym(kt, axes)
        inputs.append(kt)

    def sym(name, node):
        v = values.get(name)
        if isinstance(v, _Product):  # x·W (+ b) read by another op: a Dense layer
            v = values[name] = v.dense(L)
        if not isinstance(v, _Sym):
            raise bad(node, f"input {name!r} is not a tensor this importer follows")
        return v

    for node in graph.node:
        op, ins, outs = node.op_type, list(node.input), list(node.output)
        args = [values.get(i) for i in ins]
        if op == "Constant":
            values[outs[0]] = numpy_helper.to_array(attr(node, "value"))
        elif op == "Shape" or (op in ("Unsqueeze", "Concat", "Gather", "Cast", "Slice")
                               and any(isinstance(a, _Shape) for a in args)
                               and not any(isinstance(a, _Sym) for a in args)):
            values[outs[0]] = _Shape()
        elif op == "Unsqueeze" and isinstance(args[0], _Sym) and args[0].axes == ["B", "F"] \
                and list(const(ins[1], node)) == [1]:
            values[outs[0]] = _Sym(args[0].kt, ["B", "R", "F"])  # a time axis of one step, to be tiled
        elif op == "Tile" and isinstance(args[0], _Sym) and args[0].axes == ["B", "R", "F"]:
            reps = const(ins[1], node)
            if len(reps) != 3 or reps[0] != 1 or reps[2] != 1:
                raise bad(node, "only repeats (1, n, 1) of a vector along time are followed")
            values[outs[0]] = _Sym(L.RepeatVector(int(reps[1]))(args[0].kt), ["B", "T", "F"])
        elif op == "ConstantOfShape":
            v = attr(node, "value")
            if v is not None and np.any(numpy_helper.to_array(v)):
                raise bad(node, "only zero-filled tensors are followed")
            values[outs[0]] = _Zeros()
        elif op in ("Slice", "Expand") and isinstance(args[0], _Zeros):
            values[outs[0]] = _Zeros()
        elif op == "Identity":
            values[outs[0]] = args[0]
        elif op == "Transpose":
            s = sym(ins[0], node)
            perm = attr(node, "perm") or list(range(len(s.axes)))[::-1]
            values[outs[0]] = _Sym(s.kt, [s.axes[p] for p in perm], s.dirs)
        elif op == "Squeeze":
            s = sym(ins[0], node)
            axes = [int(a) % len(s.axes) for a in (const(ins[1], node) if len(ins) > 1 else attr(node, "axes"))]
            if any(s.axes[a] != "D" or s.dirs != 1 for a in axes):
                raise bad(node, "only the direction axis of a one-direction LSTM is squeezed")
            values[outs[0]] = _Sym(s.kt, ["F" if a == "H" else a for i, a in enumerate(s.axes) if i not in axes])
        elif op == "Reshape":
            s = sym(ins[0], node)
            target = const(ins[1], node)
            k = s.axes.index("D") if "D" in s.axes else -1
            if k < 0 or k + 1 >= len(s.axes) or s.axes[k + 1] != "H" or len(target) != len(s.axes) - 1:
                raise bad(node, "only a reshape merging an LSTM's direction and unit axes is followed")
            values[outs[0]] = _Sym(s.kt, s.axes[:k] + ["F"] + s.axes[k + 2:])
        elif op == "LSTM":
            x = sym(ins[0], node)
            if x.axes != ["T", "B", "F"]:
                raise bad(node, f"its input must be (time, batch, features); it is ({', '.join(x.axes)})")
            if attr(node, "layout", 0) != 0 or attr(node, "clip") is not None or attr(node, "input_forget", 0):
                raise bad(node, "layout 1, clip and input_forget have no lstmfast form")
            if len(ins) > 4 and ins[4]:
                raise bad(node, "sequence_lens (ONNX zero-fills padded steps; Keras masks carry the last "
                                "output) is not imported")
            if len(ins) > 7 and ins[7]:
                raise bad(node, "peephole weights have no lstmfast form")
            direction = attr(node, "direction", b"forward")
            direction = direction.decode() if isinstance(direction, bytes) else direction
            if direction == "reverse":
                raise bad(node, "a reverse-only LSTM is not imported")
            dirs = 2 if direction == "bidirectional" else 1
            h = int(attr(node, "hidden_size"))
            acts = [a.decode() if isinstance(a, bytes) else a for a in (attr(node, "activations") or [])] or \
                ["Sigmoid", "Tanh", "Tanh"] * dirs
            if acts[1] != acts[2] or acts[:3] != acts[3:6] and dirs == 2 or any(a not in _ACTS for a in acts):
                raise bad(node, f"activations {acts} have no lstmfast LSTM form")
            if acts[0] == "HardSigmoid":
                alpha, beta = (attr(node, "activation_alpha") or [0.2])[0], (attr(node, "activation_beta") or [0.5])[0]
                if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
                    raise bad(node, f"HardSigmoid(alpha={alpha}, beta={beta}) is not Keras's hard_sigmoid "
                                    "(alpha 1/6, beta 1/2)")
            W, R = const(ins[1], node), const(ins[2], node)
            B = const(ins[3], node) if len(ins) > 3 and ins[3] else np.zeros((dirs, 8 * h), W.dtype)
            weights = []
            for d in range(dirs):
                weights.append([reorder_gates(W[d], h, ONNX_TO_KERAS_GATES).T,
                                reorder_gates(R[d], h, ONNX_TO_KERAS_GATES).T,
                                reorder_gates(B[d, :4 * h] + B[d, 4 * h:], h, ONNX_TO_KERAS_GATES)])  # b = Wb + Rb
            for i in (5, 6):
                v = values.get(ins[i]) if len(ins) > i and ins[i] else None
                if v is not None and not isinstance(v, _Zeros):
                    raise bad(node, "initial states other than zeros are not imported yet")
            kw = dict(return_sequences=True, return_state=True, activation=_ACTS[acts[1]],
                      recurrent_activation=_ACTS[acts[0]])
            if dirs == 1:
                layer = L.LSTM(h, **kw)
                seq, hh, cc = layer(x.kt)
                layer.set_weights(weights[0])
                hs, cs = hh, cc
            else:
                layer = L.Bidirectional(L.LSTM(h, **kw))
                seq, fh, fc, bh, bc = layer(x.kt)
                layer.set_weights(weights[0] + weights[1])
                hs, cs = L.Concatenate()([fh, bh]), L.Concatenate()([fc, bc])
            values[outs[0]] = _Sym(seq, ["T", "D", "B", "H"], dirs)
            if len(outs) > 1 and outs[1]:
                values[outs[1]] = _Sym(hs, ["D", "B", "H"], dirs)
            if len(outs) > 2 and outs[2]:
                values[outs[2]] = _Sym(cs, ["D", "B", "H"], dirs)
        elif op in ("MatMul", "Gemm"):
            s = sym(ins[0], node)
            w = const(ins[1], node)
            if op == "Gemm":
                if attr(node, "transA", 0) or attr(node, "alpha", 1.0) != 1.0 or attr(node, "beta", 1.0) != 1.0:
                    raise bad(node, "only Gemm(A, B, C) with transB is followed")
                w = w.T if attr(node, "transB", 0) else w
            if s.axes not in (["B", "T", "F"], ["B", "F"]) or w.ndim != 2:
                raise bad(node, "only (batch, [time,] features) · (features, units) is followed")
            bias = const(ins[2], node) if op == "Gemm" and len(ins) > 2 and ins[2] else None
            values[outs[0]] = _Product(s, w, bias)
        elif op == "Add":
            a, b = args
            p, c = (a, b) if isinstance(a, _Product) else (b, a)
            if not isinstance(p, _Product) or not isinstance(c, np.ndarray) or p.bias is not None \
                    or c.size != p.w.shape[1]:
                raise bad(node, "only a bias added to a MatMul's product is followed")
            values[outs[0]] = _Product(p.x, p.w, c.reshape(-1))
        elif op in ("Sigmoid", "Tanh", "Relu", "Softmax"):
            s = sym(ins[0], node)  # (a pending product becomes its Dense layer first)
            if op == "Softmax" and attr(node, "axis", -1) % len(s.axes) != len(s.axes) - 1:
                raise bad(node, "only a softmax over the last axis is followed")
            values[outs[0]] = _Sym(L.Activation(op.lower())(s.kt), s.axes)
        elif op == "Gather" and isinstance(args[0], np.ndarray) and isinstance(args[1], _Sym):
            if attr(node, "axis", 0) != 0 or args[0].ndim != 2:
                raise bad(node, "only rows of an embedding table are gathered")
            layer = L.Embedding(*args[0].shape)
            y = layer(args[1].kt)
            layer.set_weights([args[0]])
            values[outs[0]] = _Sym(y, args[1].axes + ["F"])
        else:
            raise bad(node, "no lstmfast form for this op in this place")

    outputs = []
    for vi in graph.output:
        s = values.get(vi.name)
        if isinstance(s, _Product):
            s = s.dense(L)
        if not isinstance(s, _Sym) or s.axes not in (["B", "T", "F"], ["B", "F"]):
            raise OnnxImportError(f"{filepath}: output {vi.name!r} is not a (batch, [time,] features) tensor "
                               "of the layers imported")
        outputs.append(s.kt)
    model = model_class("Functional")(inputs if len(inputs) > 1 else inputs[0],
                                      outputs if len(outputs) > 1 else outputs[0], name=graph.name or "onnx_model")
    return model
