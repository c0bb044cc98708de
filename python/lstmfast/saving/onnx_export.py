"""Export a model to ONNX: `model.export("model.onnx", format="onnx")`, Keras 3's method.

Each layer becomes the ONNX operators that compute the same function; an LSTM becomes one ONNX
`LSTM` node (opset 17), so runtimes run it with their own fused kernel. The mapping:

Sequential and functional models: a functional model's Input layers become the graph's inputs
(by name), its outputs "output" or "output_0", "output_1", …

    LSTM          Transpose (B,T,D)→(T,B,D); LSTM; Y (T,1,B,H) → (B,T,H) or Y_h (1,B,H) → (B,H);
                  initial_state [h, c] → initial_h, initial_c; return_state → Y_h, Y_c
                  W = kernelᵀ, R = recurrent_kernelᵀ with the gate blocks reordered from Keras's
                  [i f c o] to ONNX's [i o f c]; B = [bias | 0] (Wb | Rb);
                  activations [f, g, h] = [recurrent_activation, activation, activation]
                  (Keras's hard_sigmoid is clip(x/6 + 1/2, 0, 1): HardSigmoid alpha 1/6, beta 1/2)
    Bidirectional one LSTM node, direction "bidirectional": its backward half reads the sequence
                  from the end and gives its outputs in time order, as Keras aligns them;
                  merge_mode concat / sum / ave / mul on the direction axis
    Dense         MatMul (+ Add) (+ activation), on 2-D and 3-D inputs alike
    Embedding     Gather of the embedding rows
    RepeatVector  Unsqueeze, then Tile n times along the new time axis
    Attention     Luong's dot score: MatMul(Q, Kᵀ) (× scale), Softmax, MatMul(·, V)
    Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum    Concat, Sum, Sub, Mul,
                  Mean, Max, Min
    Masking       keep = Not(Equal(x, mask_value)) reduced over the features; y = x where keep, else 0
    Dropout, SpatialDropout1D, GaussianNoise, GaussianDropout   nothing (identity at inference)

Masks (Embedding(mask_zero=True), Masking) reach an LSTM as ONNX's `sequence_lens`, the number of
real steps of each row, ReduceSum of the mask: that is Keras's computation when the padding is at
the end of each row (right-padded, as `pad_sequences(padding="post")` writes it), and the graph
assumes it. ONNX zero-fills the outputs of the padded steps; Keras repeats the last real output
there, unless `zero_output_for_mask` (which Bidirectional sets): an LSTM with
`return_sequences` then takes Y_h at those steps (Where(mask, Y, Y_h)). The final states are
those of each row's last real step in both. A row padded at the start would differ: Keras skips
its leading padding, ONNX reads it as steps.

The batch axis is dynamic ("batch"). Layout 0 (time first) with Transposes around the LSTM,
since ONNX Runtime's CPU LSTM refuses layout 1. What has no faithful ONNX form is refused with
the reason: masks reaching attention or merged from several inputs, `go_backwards` alone,
stateful layers, attention's causal mask and scores, layers not listed.
"""

import numpy as np

__all__ = ["export_onnx", "OPSET"]

OPSET = 17

# ONNX LSTM activation names and (alpha, beta) for Keras's activations.
_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", None),
    "tanh": ("Tanh", None),
    "relu": ("Relu", None),
    "hard_sigmoid": ("HardSigmoid", (1.0 / 6.0, 0.5)),
    "linear": ("Affine", (1.0, 0.0)),
}
_IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "InputLayer")


class ExportError(ValueError):
    """The model holds something ONNX cannot express as lstmfast computes it."""


class _Graph:
    """ONNX nodes and initializers under construction, with unique names."""

    def __init__(self, onnx, dtype):
        self.onnx, self.h = onnx, onnx.helper
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers, self._n = [], [], 0
        self.masks = {}  # (Masking layer, input name) -> its keep tensor, made once

    def name(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base, array, dtype=None):
        array = np.asarray(array, dtype=dtype or self.dtype)
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type, inputs, n_out=1, base=None, **attrs):
        outs = [self.name(base or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs


def _activation_name(activation, what, layer):
    from .. import activations

    name = activations.serialize(activation)
    if name not in _ACTIVATIONS and name != "softmax":
        raise ExportError(f"Layer {layer.name!r}: {what} {name!r} has no ONNX form here "
                          f"(supported: {', '.join(sorted(_ACTIVATIONS))}, softmax for Dense)")
    return name


def _apply_activation(g, x, name):
    if name == "linear":
        return x
    if name == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    return g.op(_ACTIVATIONS[name][0], [x])


# Gate blocks: ONNX's [i o f c] are Keras's blocks (0, 3, 1, 2) of [i f c o], and back.
KERAS_TO_ONNX_GATES = (0, 3, 1, 2)
ONNX_TO_KERAS_GATES = (0, 2, 3, 1)


def reorder_gates(m, h, order=KERAS_TO_ONNX_GATES):
    """The H-row gate blocks of a (4H, ·) matrix (or a 4H vector) taken in `order`."""
    return np.concatenate([m[k * h:(k + 1) * h] for k in order], axis=0)


def _lstm_weights(layer):
    h = layer.units
    W = reorder_gates(np.asarray(layer.kernel.value).T, h)              # (4H, D)
    R = reorder_gates(np.asarray(layer.recurrent_kernel.value).T, h)    # (4H, H)
    b = np.asarray(layer.bias.value) if layer.use_bias else np.zeros(4 * h, W.dtype)
    B = np.concatenate([reorder_gates(b, h), np.zeros(4 * h, W.dtype)])  # [Wb | Rb]
    return W, R, B


def _check_lstm(layer):
    if layer.stateful:
        raise ExportError(f"Layer {layer.name!r}: a stateful LSTM carries its state between calls; "
                          "export a model built with stateful=False and the same weights")


def _lstm(g, x, layers, merge_mode=None, states=(), mask=None):
    """One ONNX LSTM node for `layers` (one: forward; two: Bidirectional's forward and backward),
    started from `states` (Keras's initial_state: h, c per direction) or zeros, over the real steps
    of a right-padded `mask` (B, T) when given. Returns the output, followed by the final states
    (h, c per direction) where the layer returns them."""
    fwd = layers[0]
    for layer in layers:
        _check_lstm(layer)
    if len(layers) == 1 and fwd.go_backwards:
        raise ExportError(f"Layer {fwd.name!r}: go_backwards returns its outputs in reversed time order; "
                          "not exported (inside Bidirectional it is)")
    acts = []
    for layer in layers:
        ra = _activation_name(layer.recurrent_activation, "recurrent_activation", layer)
        a = _activation_name(layer.activation, "activation", layer)
        acts += [ra, a, a]
    names = [_ACTIVATIONS[a][0] for a in acts]
    # alpha and beta listed for the activations that take them only, in order (ONNX Runtime reads
    # them so: a full list would hand the backward direction's HardSigmoid a tanh's zeros)
    params = [_ACTIVATIONS[a][1] for a in acts if _ACTIVATIONS[a][1]]
    alphas, betas = [p[0] for p in params], [p[1] for p in params]
    weights = [_lstm_weights(layer) for layer in layers]
    W = g.const("W", np.stack([w[0] for w in weights]))
    R = g.const("R", np.stack([w[1] for w in weights]))
    B = g.const("B", np.stack([w[2] for w in weights]))
    xt = g.op("Transpose", [x], perm=[1, 0, 2])  # (T, B, D)
    attrs = dict(hidden_size=fwd.units, activations=names,
                 direction="bidirectional" if len(layers) == 2 else "forward")
    if params:
        attrs.update(activation_alpha=alphas, activation_beta=betas)
    inputs = [xt, W, R, B]
    lengths = ""
    if mask is not None:  # sequence_lens (B,) int32 = Σ_t mask[b, t]: the real steps of a right-padded row
        steps = g.op("Cast", [mask], to=g.onnx.TensorProto.INT32)
        lengths = g.op("ReduceSum", [steps, g.const("axes", np.array([1], np.int64), dtype=np.int64)], keepdims=0)
    if states:  # Keras's [h, c] (forward) [+ h, c (backward)], each (B, H) → initial_h, initial_c (dirs, B, H)
        zero = g.const("axes", np.array([0], np.int64), dtype=np.int64)
        hs = [g.op("Unsqueeze", [h, zero]) for h in states[0::2]]
        cs = [g.op("Unsqueeze", [c, zero]) for c in states[1::2]]
        h0 = hs[0] if len(hs) == 1 else g.op("Concat", hs, axis=0)
        c0 = cs[0] if len(cs) == 1 else g.op("Concat", cs, axis=0)
        inputs += [lengths, h0, c0]
    elif lengths:
        inputs += [lengths]
    y, y_h, y_c = g.op("LSTM", inputs, n_out=3, **attrs)
    final = []
    if fwd.return_state:  # h, c of each direction: (dirs, B, H) → (B, H) each
        for d in range(len(layers)):
            for t in (y_h, y_c):
                part = g.op("Gather", [t, g.const("index", np.array(d, np.int64), dtype=np.int64)], axis=0)
                final.append(part)
    if fwd.return_sequences:  # Y (T, dirs, B, H) → (B, T, dirs, H)
        out = g.op("Transpose", [y], perm=[2, 0, 1, 3])
        axis = 2
        if mask is not None and not fwd.zero_output_for_mask:
            # Keras repeats the last real output at the padded steps, ONNX gives zeros there:
            # Y[b, t] where mask[b, t], else Y_h[b] (the last real step's h)
            keep = g.op("Unsqueeze", [mask, g.const("axes", np.array([2, 3], np.int64), dtype=np.int64)])
            last = g.op("Unsqueeze", [g.op("Transpose", [y_h], perm=[1, 0, 2]),
                                      g.const("axes", np.array([1], np.int64), dtype=np.int64)])
            out = g.op("Where", [keep, out, last])
    else:                     # Y_h (dirs, B, H) → (B, dirs, H)
        out = g.op("Transpose", [y_h], perm=[1, 0, 2])
        axis = 1
    return [_merge_directions(g, out, axis, len(layers), merge_mode)] + final


def _merge_directions(g, out, axis, directions, merge_mode):
    if directions == 1 or merge_mode == "concat":
        shape = g.const("shape", np.array([0] * axis + [-1], np.int64), dtype=np.int64)
        return g.op("Reshape", [out, shape])  # directions side by side: [forward | backward]
    if merge_mode == "sum":  # (opset 17: ReduceSum takes its axes as an input, the others as an attribute)
        return g.op("ReduceSum", [out, g.const("axes", np.array([axis], np.int64), dtype=np.int64)], keepdims=0)
    if merge_mode == "ave":
        return g.op("ReduceMean", [out], axes=[axis], keepdims=0)
    if merge_mode == "mul":
        return g.op("ReduceProd", [out], axes=[axis], keepdims=0)
    raise ExportError(f"Bidirectional merge_mode={merge_mode!r} is not exported")


def _layer(g, layer, xs, masked, options):
    """The ONNX forms of `layer` called on the tensors named `xs` (the mask each carries in
    `masked`: an ONNX bool tensor, _MIXED or None; the call's keyword options in `options`): the
    names of its outputs."""
    kind = type(layer).__name__
    x = xs[0]
    if kind in _IDENTITY_LAYERS:
        return [x]
    mask = masked[0]
    if any(m is not None for m in masked) and kind == "Attention":
        raise ExportError(f"Layer {layer.name!r} receives a mask (Embedding(mask_zero=True) or Masking): "
                          "Keras hides masked values from attention; not exported")
    if mask is _MIXED and kind in ("LSTM", "Bidirectional"):
        raise ExportError(f"Layer {layer.name!r} receives a mask merged from several inputs: not exported "
                          "(one Embedding(mask_zero=True) or Masking per LSTM is)")
    if kind == "LSTM":
        return _lstm(g, x, [layer], states=xs[1:], mask=mask)
    if kind == "Bidirectional":
        for part in (layer.forward_layer, layer.backward_layer):
            if type(part).__name__ != "LSTM":
                raise ExportError(f"Layer {layer.name!r}: Bidirectional over {type(part).__name__} is not exported")
        if not layer.backward_layer.go_backwards:
            raise ExportError(f"Layer {layer.name!r}: its backward layer does not go backwards")
        return _lstm(g, x, [layer.forward_layer, layer.backward_layer], layer.merge_mode, states=xs[1:], mask=mask)
    if kind == "Dense":
        act = _activation_name(layer.activation, "activation", layer)
        y = g.op("MatMul", [x, g.const("kernel", layer.kernel.value)])
        if layer.use_bias:
            y = g.op("Add", [y, g.const("bias", layer.bias.value)])
        return [_apply_activation(g, y, act)]
    if kind == "Activation":
        return [_apply_activation(g, x, _activation_name(layer.activation, "activation", layer))]
    if kind == "Embedding":
        return [g.op("Gather", [g.const("embeddings", layer.embeddings.value), x], axis=0)]
    if kind == "Masking":  # y = x where keep[b, t] (any feature ≠ mask_value), else 0
        keep = g.op("Unsqueeze", [_masking_keep(g, layer, x), g.const("axes", np.array([2], np.int64), dtype=np.int64)])
        return [g.op("Where", [keep, x, g.const("zero", np.zeros((), g.dtype))])]
    if kind == "RepeatVector":
        y = g.op("Unsqueeze", [x, g.const("axes", np.array([1], np.int64), dtype=np.int64)])
        return [g.op("Tile", [y, g.const("repeats", np.array([1, layer.n, 1], np.int64), dtype=np.int64)])]
    if kind in _MERGE_OPS:
        return [g.op(_MERGE_OPS[kind], list(xs))]
    if kind == "Subtract":
        return [g.op("Sub", list(xs))]
    if kind == "Concatenate":
        return [g.op("Concat", list(xs), axis=int(layer.axis))]
    if kind == "Attention":
        return [_attention(g, layer, xs, options)]
    raise ExportError(f"Layer {layer.name!r} ({kind}) has no ONNX export yet; exported layers: LSTM, "
                      "Bidirectional(LSTM), Dense, Activation, Embedding, Masking, RepeatVector, Attention (dot), "
                      "Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum and the dropout and "
                      "noise layers")


_MERGE_OPS = {"Add": "Sum", "Multiply": "Mul", "Average": "Mean", "Maximum": "Max", "Minimum": "Min"}


def _attention(g, layer, xs, options):
    """Luong's dot attention: S = Q·Kᵀ (× scale), A = softmax(S) over the values, O = A·V."""
    if layer.score_mode != "dot":
        raise ExportError(f"Layer {layer.name!r}: Attention(score_mode={layer.score_mode!r}) is not exported")
    if options.get("use_causal_mask") or options.get("return_attention_scores"):
        raise ExportError(f"Layer {layer.name!r}: use_causal_mask and return_attention_scores are not exported")
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else v
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 2, 1])])
    if layer.scale is not None:
        scores = g.op("Mul", [scores, g.const("scale", layer.scale.value)])
    return g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])


# A mask merged from several inputs (Keras ORs them): not passed to an LSTM.
_MIXED = "<masks of several inputs>"


def _masking_keep(g, layer, x):
    """keep (B, T) bool: whether any feature of step t differs from Masking's mask_value (the
    layer's output and the mask it passes on read the same tensor)."""
    key = (id(layer), x)
    if key not in g.masks:
        g.masks[key] = _masking_keep_op(g, layer, x)
    return g.masks[key]


def _masking_keep_op(g, layer, x):
    differs = g.op("Not", [g.op("Equal", [x, g.const("mask_value", np.array(layer.mask_value, g.dtype))])])
    count = g.op("ReduceSum", [g.op("Cast", [differs], to=g.onnx.TensorProto.INT32),
                               g.const("axes", np.array([-1], np.int64), dtype=np.int64)], keepdims=0)
    return g.op("Greater", [count, g.const("zero", np.array(0, np.int32), dtype=np.int32)])


def _output_mask(g, layer, xs, masks, outputs):
    """The mask of each of a layer's outputs (an ONNX bool (B, T) tensor, _MIXED or None), as
    Keras's compute_mask gives it: made by Embedding(mask_zero=True) and Masking, kept by layers
    that act per step, kept by an LSTM's sequence output only."""
    kind = type(layer).__name__
    if kind == "Embedding":
        if not layer.mask_zero:
            return [None] * outputs
        zero = g.const("zero", np.array(0, np.int64), dtype=np.int64)
        ids = g.op("Cast", [xs[0]], to=g.onnx.TensorProto.INT64)  # the ids' own integer type, whichever
        return [g.op("Not", [g.op("Equal", [ids, zero])])] + [None] * (outputs - 1)
    if kind == "Masking":
        return [_masking_keep(g, layer, xs[0])]
    if kind in ("LSTM", "Bidirectional"):
        seq = layer.return_sequences if kind == "LSTM" else layer.forward_layer.return_sequences
        return [masks[0] if seq else None] + [None] * (outputs - 1)
    if kind in _MERGE_OPS or kind in ("Subtract", "Concatenate"):
        given = [m for m in masks if m is not None]
        if not given:
            return [None]
        return [given[0] if len(given) == len(masks) and all(m == given[0] for m in given) else _MIXED]
    if getattr(layer, "supports_masking", False):
        return [masks[0]] * outputs
    return [None] * outputs


def _input_info(onnx, name, shape, dtype, feeds_embedding):
    dtype = np.dtype(dtype)
    if feeds_embedding and dtype.kind not in "iu":
        dtype = np.dtype(np.int64)  # token ids
    dims = ["batch"] + [d if d is not None else f"{name}_dim{i}" for i, d in enumerate(shape[1:], 1)]
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(dtype), dims)


def _output_info(onnx, name, shape, dtype):
    dims = ["batch"] + [d if d is not None else f"{name}_dim{i}" for i, d in enumerate(shape[1:], 1)]
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims)


def _sequential(onnx, g, model):
    layers = model._layers
    given = getattr(model._input_layer, "_input_dtype", None)  # the Input's own dtype, if one was given
    first_is_embedding = bool(layers) and type(layers[0]).__name__ == "Embedding"
    inputs = [_input_info(onnx, "input", model._input_layer.batch_shape, given or g.dtype, first_is_embedding)]
    x, mask = "input", None
    for layer in layers:
        y = _layer(g, layer, [x], [mask], {})[0]
        mask = _output_mask(g, layer, [x], [mask], 1)[0]
        x = y
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["output"]))
    return inputs, [_output_info(onnx, "output", model.output_shape, g.dtype)]


def _functional(onnx, g, model):
    names, masked, inputs = {}, {}, []
    readers = {id(t): [n.layer for n in model._nodes if any(u is t for u in n.inputs)] for t in model.inputs}
    for t in model.inputs:
        name = t.name
        feeds = any(type(layer).__name__ == "Embedding" for layer in readers[id(t)])
        inputs.append(_input_info(onnx, name, t.shape, t.dtype or g.dtype, feeds))
        names[id(t)], masked[id(t)] = name, None
    for node in model._nodes:
        xs = [names[id(t)] for t in node.inputs]
        ms = [masked[id(t)] for t in node.inputs]
        outs = _layer(g, node.layer, xs, ms, node.options)
        if len(outs) != len(node.outputs):
            raise ExportError(f"Layer {node.layer.name!r}: {len(node.outputs)} outputs expected, "
                              f"{len(outs)} exported")
        for t, name, m in zip(node.outputs, outs, _output_mask(g, node.layer, xs, ms, len(outs))):
            names[id(t)] = name
            masked[id(t)] = m
    outputs = []
    for i, t in enumerate(model.outputs):
        name = f"output_{i}" if len(model.outputs) > 1 else "output"
        g.nodes.append(onnx.helper.make_node("Identity", [names[id(t)]], [name]))
        outputs.append(_output_info(onnx, name, t.shape, g.dtype))
    return inputs, outputs


def export_onnx(model, filepath, opset=OPSET):
    """Write `model` (Sequential or functional) to `filepath` as an ONNX model; returns the path.
    Inputs are named as the model's Input layers ("input" for a Sequential model), outputs
    "output" (or "output_0", "output_1", … for several)."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package: pip install onnx") from e
    if not model.built:
        raise ExportError("The model is not built: give it an Input or call it on data before exporting")
    dtype = np.dtype(model.dtype)
    if dtype not in (np.float32, np.float64):
        raise ExportError(f"ONNX export writes float32 or float64 models, not {dtype}")
    g = _Graph(onnx, dtype)
    sequential = any(c.__name__ == "Sequential" for c in type(model).__mro__)  # (models not imported: layering)
    inputs, outputs = _sequential(onnx, g, model) if sequential else _functional(onnx, g, model)
    graph = onnx.helper.make_graph(g.nodes, model.name or "lstmfast_model", inputs, outputs, g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", int(opset))],
                                   producer_name="lstmfast")
    onnx.checker.check_model(proto, full_check=True)
    from .. import _files

    data = proto.SerializeToString()
    _files.atomic_write(filepath, lambda f: f.write(data))
    return filepath
