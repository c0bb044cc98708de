"""Keras's functional API: `Model(inputs, outputs)` over layers called on symbolic tensors.

    encoder_inputs = Input(shape=(None, n_in))
    _, state_h, state_c = LSTM(256, return_state=True)(encoder_inputs)
    decoder_inputs = Input(shape=(None, n_out))
    decoder_outputs = LSTM(256, return_sequences=True)(decoder_inputs, initial_state=[state_h, state_c])
    model = Model([encoder_inputs, decoder_inputs], Dense(n_out, activation="softmax")(decoder_outputs))

Calling a layer on a `KerasTensor` builds the layer for that shape and records a node (the
layer, its input tensor, the initial-state tensors of an LSTM); `Model` orders the nodes that
the outputs depend on. A forward pass runs the nodes in that order; the backward pass runs them
in reverse, adding up the gradients of a tensor that several nodes read:
    ∂L/∂t = Σ over the nodes n reading t of ∂L/∂(n's input t)
and an LSTM given an initial state passes ∂L/∂h₀ and ∂L/∂c₀ back to the tensors it came from.

Supported: graphs of the layers in `lstmfast.layers`, each taking one tensor (plus an LSTM's
`initial_state`), several inputs, several outputs for `predict`, one output for training, the
same layer in several models (the inference models of a seq2seq). Not supported: layers that
merge tensors (Concatenate, Add, …), one layer called twice in the same model, saving the
architecture (`save_weights` / `load_weights` work; rebuild the model in code).
"""

from __future__ import annotations

from .layers.input_layer import KerasTensor
from .layers.layer import _auto_name, _warn_mask_dropped
from .layers.lstm import LSTM
from .layers.reshaping import RepeatVector
from .models import Sequential, _prepare_array, _unwrap_single

__all__ = ["Model"]


class _Node:
    """One layer call: layer(inputs[0], initial_state=inputs[1:]) -> outputs."""

    __slots__ = ("layer", "inputs", "outputs")

    def __init__(self, layer, inputs):
        self.layer, self.inputs, self.outputs = layer, tuple(inputs), ()


def symbolic_call(layer, inputs, kwargs):
    """What `layer(inputs, **kwargs)` returns when inputs is a KerasTensor: the output tensor(s)."""
    if not isinstance(inputs, KerasTensor):
        raise TypeError(
            f"Layer {layer.name!r} was called on {type(inputs).__name__}: lstmfast layers take one tensor. "
            "Layers that merge several tensors (Concatenate, Add, ...) are not provided."
        )
    states = kwargs.pop("initial_state", None)
    if kwargs:
        raise TypeError(f"Unsupported arguments in a symbolic call of layer {layer.name!r}: {sorted(kwargs)}")
    inbound = [inputs]
    if states is not None:
        if not isinstance(layer, LSTM):
            raise TypeError(f"`initial_state` is an LSTM argument; layer {layer.name!r} is a {type(layer).__name__}.")
        if not isinstance(states, (list, tuple)) or len(states) != 2 or not all(isinstance(s, KerasTensor) for s in states):
            raise ValueError(
                f"LSTM {layer.name!r} expects `initial_state` = [h0, c0], two tensors. Received: {states!r}"
            )
        for s, name in zip(states, ("h0", "c0")):
            if len(s.shape) != 2 or s.shape[1] != layer.units:
                raise ValueError(
                    f"LSTM {layer.name!r}: initial state {name} must have shape (batch, {layer.units}). "
                    f"Received: {s.shape}"
                )
        inbound.extend(states)
    shape = tuple(inputs.shape)
    layer._maybe_build(shape)
    layer._check_input_shape(shape)
    out_shape = layer.compute_output_shape(shape)
    node = _Node(layer, inbound)
    if out_shape and isinstance(out_shape[0], tuple):  # several outputs (an LSTM's return_state)
        if not isinstance(layer, LSTM):
            raise TypeError(
                f"Layer {layer.name!r} ({type(layer).__name__}) returns several tensors; in a functional "
                "model only an LSTM's return_state is supported."
            )
        node.outputs = tuple(KerasTensor(shape=s, dtype=layer.dtype, node=node, index=i) for i, s in enumerate(out_shape))
        return list(node.outputs)
    node.outputs = (KerasTensor(shape=out_shape, dtype=layer.dtype, node=node, index=0),)
    return node.outputs[0]


class _Inputs(tuple):
    """The arrays of a multi-input model, sliced together along the batch axis."""

    @property
    def shape(self):
        return (self[0].shape[0],)

    def __getitem__(self, index):
        if isinstance(index, int):
            return tuple.__getitem__(self, index)
        return _Inputs(a[index] for a in self)


def _as_list(value, what):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(t, KerasTensor) for t in items):
        raise TypeError(f"`{what}` must be a tensor or a list of tensors (from `Input` and layer calls). "
                        f"Received: {value!r}")
    return items


class Model(Sequential):
    """Keras's `Model(inputs, outputs, name=None)` (the functional API); see the module text."""

    def __init__(self, inputs, outputs, name=None, trainable=True):
        super().__init__(name=name or _auto_name("functional"), trainable=trainable)
        self.inputs = _as_list(inputs, "inputs")
        self.outputs = _as_list(outputs, "outputs")
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        for t in self.inputs:
            if t._node is not None:
                raise ValueError(f"Model inputs must come from `Input(...)`; {t!r} is a layer's output.")
        known = {id(t) for t in self.inputs}
        order, seen = [], set()

        def visit(tensor):  # depth first: a node after every node it reads from
            if id(tensor) in known:
                return
            node = tensor._node
            if node is None:
                raise ValueError(
                    f"An output of the model depends on {tensor!r}, which is not among the model's inputs."
                )
            if id(node) in seen:
                return
            seen.add(id(node))
            for t in node.inputs:
                visit(t)
            order.append(node)

        for t in self.outputs:
            visit(t)
        layers = [n.layer for n in order]
        for layer in layers:
            if sum(l is layer for l in layers) > 1:
                raise ValueError(
                    f"Layer {layer.name!r} is called twice in this model; an lstmfast layer keeps one call's "
                    "values for its backward pass. Use a second layer (and copy its weights if they are shared)."
                )
        self._nodes = order
        self._layers = layers
        # the first layer reading each input (None: unused), which decides how it is converted
        self._readers = [next((n.layer for n in order if n.inputs[0] is t), None) for t in self.inputs]
        self._input_layer = self.inputs[0]._input_layer
        for layer in layers:  # the RepeatVector → LSTM link is Sequential's (adjacent layers) only
            if isinstance(layer, RepeatVector):
                layer._feeds_lstm = False
            if isinstance(layer, LSTM):
                layer._after_repeat_vector = False
        self._build_graph()

    def _build_graph(self):
        """Which layers owe their inputs a gradient, and whether the output carries a mask."""
        has_mask = {id(t): False for t in self.inputs}
        from_weights = {id(t): False for t in self.inputs}  # does a tensor depend on any weight?
        self._node_need_dx = {}  # per node; set on its layer at each backward (a layer may be in several models)
        for node in self._nodes:
            x = node.inputs[0]
            layer = node.layer
            if has_mask[id(x)] and not layer.supports_masking:
                _warn_mask_dropped(layer)
            self._node_need_dx[id(node)] = from_weights[id(x)]
            out_mask = layer._output_has_mask(has_mask[id(x)])
            depends = any(from_weights[id(t)] for t in node.inputs) or bool(layer.weights)
            for i, t in enumerate(node.outputs):
                has_mask[id(t)] = out_mask if i == 0 else False
                from_weights[id(t)] = depends
        self._uses_mask = has_mask[id(self.outputs[0])]
        self._output_shape = tuple(self.outputs[0].shape)
        self.built = True

    @property
    def input_shape(self):
        shapes = [tuple(t.shape) for t in self.inputs]
        return shapes[0] if self._single_input else shapes

    @property
    def output_shape(self):
        shapes = [tuple(t.shape) for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    def add(self, layer, rebuild=True):
        raise TypeError("A functional Model is defined by its inputs and outputs; `add` is for Sequential.")

    def pop(self, rebuild=True):
        raise TypeError("A functional Model is defined by its inputs and outputs; `pop` is for Sequential.")

    def build(self, input_shape=None):
        return None  # built by the layer calls that defined it

    def compile(self, *args, **kwargs):
        if len(self.outputs) != 1:
            raise ValueError(
                f"Training a model with {len(self.outputs)} outputs is not supported: lstmfast trains one "
                "output. Build the model to train with one output; models with several outputs can predict."
            )
        return super().compile(*args, **kwargs)

    # ------------------------------------------------------------------ data
    def _prepare_x(self, x, arg="x"):
        if len(self.inputs) == 1:
            arrays = [_unwrap_single(x, arg)]  # an array, or a list holding one array
        else:
            if not isinstance(x, (list, tuple)) or len(x) != len(self.inputs):
                got = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
                raise ValueError(f"This model has {len(self.inputs)} inputs; `{arg}` must be a list of "
                                 f"{len(self.inputs)} arrays. Received: {got}.")
            arrays = list(x)
        out = []
        for i, (a, t, reader) in enumerate(zip(arrays, self.inputs, self._readers)):
            out.append(_prepare_array(a, f"{arg}[{i}]" if len(self.inputs) > 1 else arg, reader, self.dtype,
                                      t._input_layer.batch_shape, t.name))
        n = {a.shape[0] for a in out}
        if len(n) > 1:
            raise ValueError(f"All inputs must have the same number of samples. Received: {[a.shape[0] for a in out]}")
        return _Inputs(out)

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, x, training):
        values = {id(t): (a, None) for t, a in zip(self.inputs, x)}
        for node in self._nodes:
            layer = node.layer
            xin, mask = values[id(node.inputs[0])]
            if len(node.inputs) > 1:
                y = layer._forward(xin, mask, training, initial_state=[values[id(t)][0] for t in node.inputs[1:]])
            else:
                y = layer._forward(xin, mask, training)
            out_mask = layer.compute_mask(xin, mask) if layer.supports_masking else None
            ys = y if isinstance(y, tuple) else (y,)
            masks = out_mask if isinstance(out_mask, list) else [out_mask] + [None] * (len(ys) - 1)
            for t, v, m in zip(node.outputs, ys, masks):
                values[id(t)] = (v, m)
        if len(self.outputs) == 1:
            return values[id(self.outputs[0])]
        return tuple(values[id(t)][0] for t in self.outputs), None

    def _backward(self, dy):
        grads = {id(self.outputs[0]): dy}
        for node in reversed(self._nodes):
            layer = node.layer
            g = [grads.pop(id(t), None) for t in node.outputs]
            if all(v is None for v in g):  # nothing downstream of this node reaches the loss
                for v in layer.trainable_weights:
                    v._ensure_grad()[...] = 0
                continue
            layer._need_dx = self._node_need_dx[id(node)]
            if isinstance(layer, LSTM) and layer.return_state:
                dx = layer._backward(g[0], d_h=g[1], d_c=g[2])
            else:
                dx = layer._backward(g[0])
            inbound = [dx]
            if len(node.inputs) > 1:
                inbound.extend(layer._d_initial_state)
            for t, d in zip(node.inputs, inbound):
                if d is not None:
                    grads[id(t)] = d if id(t) not in grads else grads[id(t)] + d

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x in batches: an array, or a list of arrays when the model was
        given its outputs as a list."""
        out = super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        return [out] if not self._single_output and not isinstance(out, list) else out

    def _output_shapes(self):
        return [tuple(t.shape) for t in self.outputs]

    def __call__(self, x, training=False):
        if isinstance(x, KerasTensor) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], KerasTensor)):
            raise TypeError("Calling a functional Model on symbolic tensors (nesting models) is not supported.")
        y = self._forward(self._prepare_x(x), bool(training))[0]
        return list(y) if isinstance(y, tuple) else y

    # ------------------------------------------------------------------ saving
    def get_config(self):
        raise NotImplementedError(
            "Saving the architecture of a functional Model is not supported by lstmfast: use "
            "save_weights()/load_weights() and build the model again in code."
        )

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        self.get_config()

    def __repr__(self):
        return f"<Model name={self.name}, inputs={len(self.inputs)}, outputs={len(self.outputs)}>"
