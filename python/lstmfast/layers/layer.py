"""The base `Layer` and its `Variable`s, and the contract every layer keeps with the models.

A layer owns numpy weights, computes a forward pass on numpy arrays and, after a forward pass run
with `training=True`, the matching backward pass:

    y = layer.forward(x, mask, training)     # keeps what the backward pass needs
    dx = layer.backward(dy)                  # writes dL/dw into each weight's `grad` buffer

Models chain these; users call layers directly (`layer(x)`) for inference, or on `Input` tensors
to build a functional model (the call is then recorded as a `lstmfast.graph.Node`). Shapes follow
Keras: a leading batch axis, `None` for unknown sizes. Each `Variable` holds its array in
`.value`; a compiled model re-points every trainable `.value` (and `.grad`) at a slice of one flat
buffer (`lstmfast.parameters`) so the optimizer updates all parameters in one fused call.

The layer contract (what a model calls; every method has a default here, override what differs):

    build(input_shape)              create the weights (add_weight); Keras's
    compute_output_shape(shape)     the output shape (a tuple of shapes for several outputs)
    compute_mask(x, mask)           the mask of the output, or None
    forward(x, mask, training)      the output; with training=True keep what backward needs
    backward(dy)                    ∂L/∂x, after writing ∂L/∂w into each weight's `grad`
    get_config() / from_config()    Keras's config dict
    input_axes                      the axes of the input, e.g. ("batch", "features"), when the
                                    layer needs one rank (None: any rank); checked when it is built
    output_has_mask(input_has_mask) whether the output carries a mask, known when a model is built
    receive(x)                      the input as forward takes it (see RepeatedSequence); models
                                    call layer.forward(layer.receive(x), ...)
    needs_input_gradient            set by a model: False when nothing before this layer has
                                    weights, so backward may return None instead of ∂L/∂x
    sublayers()                     layers this one runs inside (Bidirectional, TimeDistributed)
    hold_weights(held)              predict()/evaluate() promise that the weights stay as they
                                    are between hold_weights(True) and hold_weights(False)
    weights_moved()                 a model has moved the weights into its flat buffer
    graph_inputs(inputs, kwargs)    the tensors a symbolic call reads (an LSTM: x, h0, c0; a
                                    merge layer: its list)
    graph_forward(xs, masks, train) forward over the arrays of those tensors -> tuple of outputs
    graph_compute_mask(xs, masks),  compute_mask / output_has_mask over those tensors
    graph_output_has_mask(flags)
    graph_options(kwargs)           per-call options a node keeps (Attention's
                                    return_attention_scores, use_causal_mask)
    graph_backward(d_outputs)       backward from the gradients of each output (None: not used)
                                    -> the gradient of each input tensor (None: not needed)
"""

import re
import warnings

import numpy as np

from .. import constraints as constraints_module
from .. import graph
from .. import initializers as initializers_module
from .. import regularizers as regularizers_module
from .._threads import physical_memory
from ..config import floatx, standardize_dtype

_NAME_COUNTS = {}


def _auto_name(prefix):
    """Keras-style unique names: "dense", "dense_1", "dense_2", ..."""
    n = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = n + 1
    return prefix if n == 0 else f"{prefix}_{n}"


def _snake_case(name):
    """Keras's default layer names: GlobalAveragePooling1D -> global_average_pooling1d."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _check_positive_int(value, arg, layer_name):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"Argument `{arg}` of {layer_name} must be a positive integer. Received: {arg}={value!r}"
        )
    return int(value)


def _check_data_format(value):
    """Keras's `data_format` argument: None (channels_last), 'channels_last' or 'channels_first'."""
    value = "channels_last" if value is None else str(value).lower()
    if value not in ("channels_last", "channels_first"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={value!r}"
        )
    return value


def _gib(n):
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def _check_weight_size(layer, name, shape, dtype):
    """A MemoryError naming the layer, the weight, its shape and size when the weight (and the
    float64 draw of its initial values) cannot fit in this machine's memory."""
    count = 1
    for d in shape:
        count *= int(d)
    need = count * (np.dtype(dtype).itemsize + 8)  # the weight and its float64 initial draw
    have = physical_memory()
    if need > have:
        raise MemoryError(
            f"Layer {layer.name!r} ({type(layer).__name__}): the weight {name!r} of shape {tuple(shape)} "
            f"would need {_gib(count * np.dtype(dtype).itemsize)} ({_gib(need)} while it is initialised); "
            f"this machine has {_gib(have)} of memory."
        )


def _check_rate(value, arg):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"Argument `{arg}` must be a float in [0, 1]. Received: {arg}={value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"Argument `{arg}` must be a float in [0, 1]. Received: {arg}={value!r}")
    return float(value)


def _fmt_shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class RepeatedSequence(np.ndarray):
    """What RepeatVector returns: y[:, t, :] = v for every t, as a read-only (B, n, D) view of
    v (time stride 0, no copy) that also carries v itself (`.vector`, (B, D)). A layer whose
    `receive` keeps it (an LSTM) projects v once instead of n times and returns Σ_t ∂L/∂x_t as
    a `TimeSummedGradient`; every other layer receives a plain contiguous copy."""

    @classmethod
    def of(cls, vector, n):
        y = np.broadcast_to(vector[:, None, :], (vector.shape[0], n, vector.shape[1])).view(cls)
        y.vector = vector
        return y

    def __array_finalize__(self, obj):
        self.vector = None  # a view or a result derived from it is a plain sequence


class TimeSummedGradient:
    """The gradient of a time-constant input, Σ_t ∂L/∂x_t (B, D), as an LSTM fed a
    RepeatedSequence returns it; only RepeatVector's backward takes it. Gradients that meet on
    the same sequence add up: Σ_t (∂L/∂x_t + ∂L/∂x'_t)."""

    __slots__ = ("summed",)
    __array_ufunc__ = None  # array + TimeSummedGradient comes here (__radd__), not to numpy

    def __init__(self, summed):
        self.summed = summed

    def __add__(self, other):
        other = other.summed if isinstance(other, TimeSummedGradient) else other.sum(axis=1)
        return TimeSummedGradient(self.summed + other)

    __radd__ = __add__


class Variable:
    """A named weight: `value` is its numpy array, `grad` the buffer its gradient is written to;
    an optional `regularizer` (its penalty joins the loss) and `constraint` (applied after each
    optimizer step)."""

    __slots__ = ("value", "grad", "name", "path", "trainable", "regularizer", "constraint")

    def __init__(self, value, name, path, trainable=True, regularizer=None, constraint=None):
        self.value = value
        self.grad = None
        self.name = name
        self.path = path
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self):
        """A copy of the current value."""
        return self.value.copy()

    def assign(self, value):
        """Copy `value` into this weight in place; shapes must agree."""
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(
                f"Cannot assign a value of shape {value.shape} to weight {self.path!r} of shape "
                f"{self.value.shape}."
            )
        self.value[...] = value

    def _ensure_grad(self):
        if self.grad is None:
            self.grad = np.zeros_like(self.value)
        return self.grad

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.value.shape}, dtype={self.value.dtype}>"


class Layer:
    """Base class of lstmfast layers (Keras's constructor keywords: name, trainable, dtype,
    input_shape / input_dim)."""

    def __init__(self, *, name=None, trainable=True, dtype=None, **kwargs):
        input_dim = kwargs.pop("input_dim", None)
        input_shape = kwargs.pop("input_shape", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        batch_size = kwargs.pop("batch_size", None)
        kwargs.pop("autocast", None)
        # R(y) / batch size of this layer's output joins the loss (Keras 3)
        self.activity_regularizer = regularizers_module.get(kwargs.pop("activity_regularizer", None))
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name or _auto_name(_snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        if isinstance(dtype, dict):  # Keras 3 serialises a DTypePolicy
            dtype = (dtype.get("config") or {}).get("name", None)
        self._dtype_arg = None if dtype is None else standardize_dtype(dtype)
        self.built = False
        self.supports_masking = False
        self._variables = []
        self.needs_input_gradient = True
        self._batch_input_shape = None
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None or input_dim is not None:
            shape = (input_dim,) if input_dim is not None else tuple(input_shape)
            self._batch_input_shape = (batch_size,) + tuple(None if d is None else int(d) for d in shape)
        self._build_input_shape = None
        self._output_shape = None
        self._inbound_nodes = []  # the graph.Nodes of its calls on KerasTensors

    # ----- dtype -----
    @property
    def dtype(self):
        """The dtype name of this layer's weights and computations."""
        return self._dtype_arg or floatx()

    @property
    def compute_dtype(self):
        return self.dtype

    # ----- weights -----
    def add_weight(self, shape, initializer="glorot_uniform", name=None, trainable=True, dtype=None,
                   regularizer=None, constraint=None):
        """Create, initialise and track a weight; returns its `Variable`."""
        dtype = standardize_dtype(dtype or self.dtype)
        _check_weight_size(self, name, shape, dtype)
        init = initializers_module.get(initializer)
        value = np.array(init(tuple(shape), dtype=dtype), dtype=dtype, order="C")  # 0-d stays 0-d
        if value.shape != tuple(shape):
            raise ValueError(
                f"Initializer of weight {name!r} returned shape {value.shape}, expected {tuple(shape)}."
            )
        var = Variable(value, name or f"variable_{len(self._variables)}", f"{self.name}/{name}", trainable,
                       regularizers_module.get(regularizer), constraints_module.get(constraint))
        self._variables.append(var)
        return var

    def sublayers(self):
        """The layers this layer runs inside it (their weights are part of its own)."""
        return []

    def hold_weights(self, held):
        """predict() and evaluate() call this with True before their first batch and with
        False after their last: in between the weights do not change, so a layer may keep
        work that depends on them (an LSTM keeps its weights packed) until the False call."""
        for sub in self.sublayers():
            sub.hold_weights(held)

    def weights_moved(self):
        """A model has just re-pointed this layer's variables (and their gradients) at its flat
        buffer: drop anything that refers to the old arrays."""
        for sub in self.sublayers():
            sub.weights_moved()

    @property
    def weights(self):
        """All weights, trainable first then non-trainable (Keras's order)."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def variables(self):
        return self.weights

    def _all_variables(self):
        out = list(self._variables)
        for sub in self.sublayers():
            out.extend(sub._all_variables())
        return out

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        out = [v for v in self._variables if v.trainable]
        for sub in self.sublayers():
            out.extend(sub.trainable_weights)
        return out

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self._all_variables()
        out = [v for v in self._variables if not v.trainable]
        for sub in self.sublayers():
            out.extend(sub.non_trainable_weights)
        return out

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self):
        """Copies of the weights as numpy arrays, in `weights` order."""
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights):
        """Set the weights from a list of arrays in `weights` order (shapes must match)."""
        params = self.weights
        weights = list(weights)
        if len(params) != len(weights):
            raise ValueError(
                f"Layer {self.name!r} expected {len(params)} weights, but received {len(weights)} "
                f"input weights."
            )
        for var, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != var.value.shape:
                raise ValueError(
                    f"Layer {self.name!r} weight shape {var.value.shape} is not compatible with "
                    f"provided weight shape {w.shape} (weight {var.path!r})."
                )
        for var, w in zip(params, weights):
            var.value[...] = w

    def count_params(self):
        """Number of scalars in all weights (the layer must be built)."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer {self.name!r}, but the layer isn't built. "
                "You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(v.value.size for v in self.weights))

    # ----- shapes -----
    def build(self, input_shape):
        self._build_input_shape = tuple(input_shape)
        self.built = True

    # The axes of the input a layer takes, e.g. ("batch", "features"), when it needs one rank:
    # checked whenever it meets an input shape (None: any rank).
    input_axes = None

    def _maybe_build(self, input_shape):
        axes = self.input_axes
        if axes is not None and len(input_shape) != len(axes):
            raise ValueError(
                f"{type(self).__name__} {self.name!r} expects {len(axes)}-D input ({', '.join(axes)}). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if not self.built:
            self.build(tuple(input_shape))
            self.built = True
        if self._output_shape is None:
            self._build_input_shape = tuple(input_shape)
            self._output_shape = self.compute_output_shape(tuple(input_shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        return mask if self.supports_masking else None

    def output_has_mask(self, input_has_mask):
        """Whether the output carries a mask, decided when a model is built from the layer's
        settings: the input's mask passes a layer that supports masking. Layers that make or
        end masks override it (Embedding, Masking, an LSTM returning its last output only)."""
        return input_has_mask and self.supports_masking

    def _only_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has never been called and thus has no defined {what}.")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(f"Layer {self.name!r} has multiple inbound nodes, hence the notion of \"layer "
                                 f"{what}\" is ill-defined. Use `get_{what}_at(node_index)` instead.")
        return self._inbound_nodes[0]

    @property
    def input(self):
        """The tensor(s) the layer was called on (Keras's `layer.input`; one call only)."""
        node = self._only_node("input")
        if isinstance(node.call[0], graph.Positional):  # layer(query, value, ...): its positional tensors
            return list(node.call[0])
        return node.inputs[0] if len(node.inputs) == 1 or not isinstance(node.call[0], (list, tuple)) \
            else list(node.inputs)

    @property
    def output(self):
        """The tensor(s) the layer returned (Keras's `layer.output`; one call only)."""
        outputs = self._only_node("output").outputs
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def get_input_at(self, node_index):
        node = self._inbound_nodes[node_index]
        return node.inputs[0] if len(node.inputs) == 1 else list(node.inputs)

    def get_output_at(self, node_index):
        outputs = self._inbound_nodes[node_index].outputs
        return outputs[0] if len(outputs) == 1 else list(outputs)

    @property
    def input_shape(self):
        if self._build_input_shape is None:
            raise AttributeError(f"Layer {self.name!r} has no defined input shape yet.")
        return self._build_input_shape

    @property
    def output_shape(self):
        if self._output_shape is None:
            raise AttributeError(f"Layer {self.name!r} has no defined output shape yet (not built).")
        return self._output_shape

    def _check_input_shape(self, shape):
        """Raise ValueError if `shape` (with batch axis) disagrees with the built input shape."""
        expected = self._build_input_shape
        if expected is None:
            return
        if len(shape) != len(expected) or any(
            e is not None and e != s for e, s in zip(expected[1:], shape[1:])
        ):
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected '
                f"shape={_fmt_shape(expected)}, found shape={_fmt_shape(tuple(shape))}"
            )

    # ----- computation -----
    def receive(self, x):
        """The input as `forward` takes it: a RepeatedSequence becomes a plain contiguous array
        here; a layer that reads its vector overrides this (LSTM)."""
        return np.ascontiguousarray(x) if type(x) is RepeatedSequence else x

    def forward(self, x, mask=None, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError(f"Layer {type(self).__name__} cannot be trained.")

    def _cast_input(self, x):
        x = np.asarray(x)
        if x.dtype != self.dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=self.dtype)
        return x

    def __call__(self, inputs, training=False, mask=None, **kwargs):
        """Run the layer on a numpy array (inference by default) and return a numpy array; on
        `Input` tensors, record the call for a functional model and return its output tensor(s)."""
        if graph.is_symbolic(inputs):
            if mask is not None:
                kwargs["mask"] = mask
            return self._symbolic_call(inputs, kwargs)
        x = self._cast_input(inputs)
        self._maybe_build(x.shape)
        self._check_input_shape(x.shape)
        if mask is not None:
            mask = np.ascontiguousarray(mask, dtype=bool)
        if kwargs:
            return self.forward(x, mask, bool(training), **kwargs)
        return self.forward(x, mask, bool(training))

    # ----- in a functional graph -----
    def _symbolic_call(self, inputs, kwargs, call=None):
        call = call or (inputs, dict(kwargs))  # as made, for saving the graph
        kwargs = dict(kwargs)
        options = self.graph_options(kwargs)
        inbound = self.graph_inputs(inputs, kwargs)
        shape = self._graph_input_shape(inbound)
        self._maybe_build(shape)
        self._check_input_shape(shape)
        out_shape = self.compute_output_shape(shape, **options)
        if out_shape and isinstance(out_shape[0], tuple) and not self.graph_multi_output:
            raise TypeError(
                f"Layer {self.name!r} ({type(self).__name__}) returns several tensors; in a functional "
                "model only the states of an LSTM or Bidirectional (return_state) are supported."
            )
        return graph.Node(self, inbound, options, call=call).make_outputs(out_shape, self.dtype)

    def graph_options(self, kwargs):
        """The options of one call (taken out of `kwargs`) that its node keeps and hands to
        graph_forward, graph_compute_mask and compute_output_shape (Attention's
        return_attention_scores); none here."""
        return {}

    # Whether graph_backward takes a gradient for each of several outputs (an LSTM's states).
    graph_multi_output = False

    def graph_inputs(self, inputs, kwargs):
        """The tensors a call `layer(inputs, **kwargs)` on KerasTensors reads: one tensor here."""
        if not isinstance(inputs, graph.KerasTensor):
            raise TypeError(
                f"Layer {self.name!r} was called on {type(inputs).__name__}: it takes one tensor; to merge "
                "several tensors, use a merge layer (Concatenate, Add, Multiply, Dot, ...)."
            )
        if kwargs.pop("initial_state", None) is not None:
            raise TypeError(f"`initial_state` is an LSTM argument; layer {self.name!r} is a "
                            f"{type(self).__name__}.")
        if kwargs:
            raise TypeError(f"Unsupported arguments in a symbolic call of layer {self.name!r}: {sorted(kwargs)}")
        return [inputs]

    def _graph_input_shape(self, inbound):
        """The input shape that build and compute_output_shape see for a symbolic call."""
        return tuple(inbound[0].shape)

    def graph_forward(self, inputs, masks, training):
        """forward() on the arrays of the tensors graph_inputs named (`masks`: each one's mask);
        a tuple of outputs."""
        y = self.forward(self.receive(inputs[0]), masks[0], training)
        return y if isinstance(y, tuple) else (y,)

    def graph_compute_mask(self, inputs, masks, **options):
        """compute_mask() in a graph: the mask of each output (a list for several)."""
        return self.compute_mask(inputs[0], masks[0]) if self.supports_masking else None

    def graph_output_has_mask(self, input_has_masks):
        """output_has_mask() in a graph, from whether each input tensor carries a mask."""
        return self.output_has_mask(input_has_masks[0])

    def graph_backward(self, d_outputs):
        """backward() from the gradient of each output; the gradient of each input tensor."""
        return [self.backward(d_outputs[0])]

    # ----- config -----
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        if self._build_input_shape is None:
            return None
        return {"input_shape": list(self._build_input_shape)}

    def build_from_config(self, config):
        if config and config.get("input_shape") is not None:
            self._maybe_build(tuple(config["input_shape"]))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _warn_mask_dropped(layer):
    warnings.warn(
        f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input with a mask "
        "attached to it. However, this layer does not support masking and will therefore destroy "
        "the mask information. Downstream layers will not see the mask.",
        stacklevel=3,
    )
