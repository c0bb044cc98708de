"""Keras's functional API: `Model(inputs, outputs)` over layers called on symbolic tensors.

    encoder_inputs = Input(shape=(None, n_in))
    _, state_h, state_c = LSTM(256, return_state=True)(encoder_inputs)
    decoder_inputs = Input(shape=(None, n_out))
    decoder_outputs = LSTM(256, return_sequences=True)(decoder_inputs, initial_state=[state_h, state_c])
    model = Model([encoder_inputs, decoder_inputs], Dense(n_out, activation="softmax")(decoder_outputs))

Calling a layer on a `KerasTensor` builds the layer for that shape and records a `graph.Node`;
the model orders the nodes that the outputs depend on (`graph.topological_order`). A forward
pass runs the nodes in that order (`layer.graph_forward`); the backward pass runs them in reverse
(`layer.graph_backward`), adding up the gradients of a tensor that several nodes read:
    ∂L/∂t = Σ over the nodes n reading t of ∂L/∂(n's input t)
and an LSTM given an initial state passes ∂L/∂h₀ and ∂L/∂c₀ back to the tensors it came from.

Supported: graphs of the layers in `lstmfast.layers`, each taking one tensor (plus an LSTM's
`initial_state`) or, for the merge layers (Concatenate, Add, Dot, …), a list; several inputs,
several outputs for `predict`, one output for training, the same layer in several models (the
inference models of a seq2seq), one layer called at several nodes (a shared Embedding, a siamese
LSTM: each call's state is kept for its backward, and the weight gradients add up over the calls),
the architecture saved and loaded as Keras 3's config (`get_config`, `from_config`, `save`,
`load_model`, `clone_model`).
"""

from __future__ import annotations

from .. import graph, ops
from ..graph import KerasTensor
from ..layers import InputLayer, deserialize as deserialize_layer, serialize as serialize_layer
from ..layers.dense import softmax_output
from ..layers.layer import _auto_name, _warn_mask_dropped
from ..saving.registry import register_model_class
from ..trainers import data
from .model import Model, activity_gradient

__all__ = ["Functional"]


def _as_list(value, what):
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(t, KerasTensor) for t in items):
        raise TypeError(f"`{what}` must be a tensor or a list of tensors (from `Input` and layer calls). "
                        f"Received: {value!r}")
    return items


@register_model_class
class Functional(Model):
    """A model defined by its input and output tensors; see the module text."""

    def __init__(self, inputs, outputs, name=None, trainable=True):
        super().__init__(name=name or _auto_name("functional"), trainable=trainable)
        self.inputs = _as_list(inputs, "inputs")
        self.outputs = _as_list(outputs, "outputs")
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        for t in self.inputs:
            if t._node is not None:
                raise ValueError(f"Model inputs must come from `Input(...)`; {t!r} is a layer's output.")
        order = graph.topological_order(self.inputs, self.outputs)
        layers, calls = [], {}
        for node in order:
            if id(node.layer) not in calls:
                layers.append(node.layer)
            calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        self._nodes = order
        self._layers = layers  # each once, as Keras lists them
        # Layers called at several nodes: their per-call state is kept per node, their weight
        # gradients add up over the calls (∂L/∂w = Σ over the calls of that call's ∂L/∂w).
        self._shared = [layer for layer in layers if calls[id(layer)] > 1]
        self._states = {}
        # as Keras lists them: the InputLayers among the others, by depth
        self._listed = list(dict.fromkeys(
            item.layer if isinstance(item, graph.Node) else item._input_layer
            for item in graph.topological_order(self.inputs, self.outputs, with_inputs=True)))
        # the first layer reading each input (None: unused), which decides how it is converted
        self._readers = [next((n.layer for n in order if n.inputs[0] is t), None) for t in self.inputs]
        self._input_layer = self.inputs[0]._input_layer
        self._build_graph()

    @property
    def layers(self):
        """Every layer, the InputLayers included, in Keras's order."""
        return list(self._listed)

    @property
    def input(self):
        return self.inputs[0] if self._single_input else list(self.inputs)

    @property
    def output(self):
        return self.outputs[0] if self._single_output else list(self.outputs)

    def get_layer(self, name=None, index=None):
        """A layer by `name` or `index` (in `layers`, InputLayers included)."""
        layers = self._listed
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(layers)} layers.")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in layers]}.")

    def _build_graph(self):
        """Which layers owe their inputs a gradient, and whether the output carries a mask."""
        has_mask = {id(t): False for t in self.inputs}
        from_weights = {id(t): False for t in self.inputs}  # does a tensor depend on any weight?
        self._node_need_dx = {}  # per node; set on its layer at each backward (a layer may be in several models)
        for node in self._nodes:
            x = node.inputs[0]
            layer = node.layer
            in_masks = [has_mask[id(t)] for t in node.inputs]
            if any(in_masks) and not layer.supports_masking:
                _warn_mask_dropped(layer)
            self._node_need_dx[id(node)] = from_weights[id(x)]
            out_mask = layer.graph_output_has_mask(in_masks)
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

    def output_shapes(self):
        return [tuple(t.shape) for t in self.outputs]

    def compile(self, *args, **kwargs):
        if len(self.outputs) != 1:
            raise ValueError(
                f"Training a model with {len(self.outputs)} outputs is not supported: lstmfast trains one "
                "output. Build the model to train with one output; models with several outputs can predict."
            )
        return super().compile(*args, **kwargs)

    # ------------------------------------------------------------------ data
    def prepare_inputs(self, x, arg="x"):
        """The model's input arrays, each checked and converted once (`graph.Inputs`)."""
        if len(self.inputs) == 1:
            arrays = [data.unwrap_single(x, arg)]  # an array, or a list holding one array
        else:
            if not isinstance(x, (list, tuple)) or len(x) != len(self.inputs):
                got = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
                raise ValueError(f"This model has {len(self.inputs)} inputs; `{arg}` must be a list of "
                                 f"{len(self.inputs)} arrays. Received: {got}.")
            arrays = list(x)
        out = []
        for i, (a, t, reader) in enumerate(zip(arrays, self.inputs, self._readers)):
            out.append(data.prepare_array(a, f"{arg}[{i}]" if len(self.inputs) > 1 else arg, reader, self.dtype,
                                          t._input_layer.batch_shape, t.name))
        n = {a.shape[0] for a in out}
        if len(n) > 1:
            raise ValueError(f"All inputs must have the same number of samples. Received: {[a.shape[0] for a in out]}")
        return graph.Inputs(out)

    # ------------------------------------------------------------------ forward / backward
    def forward(self, x, training):
        """Every node in order: its layer's outputs (and their masks) from its input tensors'."""
        values = {id(t): (a, None) for t, a in zip(self.inputs, x)}
        self._activity = []
        keep = training and self._shared
        for node in self._nodes:
            layer = node.layer
            xs = [values[id(t)][0] for t in node.inputs]
            masks = [values[id(t)][1] for t in node.inputs]
            ys = layer.graph_forward(xs, masks, training, **node.options)
            if keep and any(layer is s for s in self._shared):
                self._states[id(node)] = dict(vars(layer))  # what this call's backward needs
            out_mask = layer.graph_compute_mask(xs, masks, **node.options)
            masks = out_mask if isinstance(out_mask, list) else [out_mask] + [None] * (len(ys) - 1)
            for t, v, m in zip(node.outputs, ys, masks):
                values[id(t)] = (v, m)
            if layer.activity_regularizer is not None:
                self._activity.append((layer, tuple(ys) if len(ys) > 1 else ys[0]))
        if len(self.outputs) == 1:
            return values[id(self.outputs[0])]
        return tuple(values[id(t)][0] for t in self.outputs), None

    def _softmax_output_layer(self):
        """The layer making the one output by a softmax, that takes ∂L/∂z from the loss
        (dense.softmax_output), when no other node reads that output and the layer is not shared."""
        out = self.outputs[0]
        if len(self.outputs) != 1 or out._node is None or out._node.layer in self._shared:
            return None
        if len(out._node.outputs) != 1 or any(t is out for n in self._nodes for t in n.inputs):
            return None
        return softmax_output(out._node.layer)

    def backward(self, dy):
        """Every node in reverse: ∂L/∂(its inputs) from ∂L/∂(its outputs), summed per tensor."""
        grads = {id(self.outputs[0]): dy}
        activity = dict((id(layer), y) for layer, y in self._activity) if self._activity else None
        shared = {id(layer) for layer in self._shared}
        latest = {id(layer): dict(vars(layer)) for layer in self._shared}  # the state after the last call
        for layer in self._shared:
            for v in layer.trainable_weights:
                v._ensure_grad()[...] = 0
        for node in reversed(self._nodes):
            layer = node.layer
            g = [grads.pop(id(t), None) for t in node.outputs]
            if activity is not None and id(layer) in activity:
                extra = activity_gradient(layer, activity[id(layer)])
                extra = extra if isinstance(extra, tuple) else (extra,)
                g = [e if d is None else d + e for d, e in zip(g, extra)]
            if all(v is None for v in g):  # nothing downstream of this node reaches the loss
                if id(layer) not in shared:
                    for v in layer.trainable_weights:
                        v._ensure_grad()[...] = 0
                continue
            if id(layer) in shared:
                vars(layer).update(self._states[id(node)])
                before = [v.grad.copy() for v in layer.trainable_weights]
            layer.needs_input_gradient = self._node_need_dx[id(node)]
            inbound = layer.graph_backward(g)
            if id(layer) in shared:
                for v, b in zip(layer.trainable_weights, before):
                    v.grad += b  # ∂L/∂w summed over the calls
            for t, d in zip(node.inputs, inbound):
                if d is not None:
                    grads[id(t)] = d if id(t) not in grads else ops.add(grads[id(t)], d)  # Σ over consumers
        for layer in self._shared:
            vars(layer).update(latest[id(layer)])
            layer.weights_moved()  # its gradient buffers were summed behind its back

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x in batches: an array, or a list of arrays when the model was
        given its outputs as a list."""
        out = super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)
        return [out] if not self._single_output and not isinstance(out, list) else out

    def __call__(self, x, training=False):
        if isinstance(x, KerasTensor) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], KerasTensor)):
            raise TypeError("Calling a functional Model on symbolic tensors (nesting models) is not supported.")
        y = self.forward(self.prepare_inputs(x), bool(training))[0]
        return list(y) if isinstance(y, tuple) else y

    # ------------------------------------------------------------------ config
    def _history(self, tensor):
        """[layer name, node index, output index] of a tensor, node indices counted over this
        model's calls of the layer (Keras's `keras_history`)."""
        if tensor._node is None:
            return [tensor._input_layer.name, 0, 0]
        mine = [n for n in tensor._node.layer._inbound_nodes if id(n) in self._node_ids]
        return [tensor._node.layer.name, mine.index(tensor._node), tensor._index]

    def _encode(self, value):
        if isinstance(value, KerasTensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(value.shape), "dtype": value.dtype, "keras_history": self._history(value)}}
        if isinstance(value, (list, tuple)):
            return [self._encode(v) for v in value]
        if isinstance(value, dict):
            return {k: self._encode(v) for k, v in value.items()}
        return value

    def get_config(self):
        """Keras 3's functional config: every layer with the calls ("inbound_nodes") that make
        this model, and the input and output layers."""
        self._node_ids = {id(n) for n in self._nodes}
        layers = []
        for layer in self._listed:
            entry = serialize_layer(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = [
                {"args": self._encode(graph.call_args(node.call[0])), "kwargs": self._encode(node.call[1])}
                for node in layer._inbound_nodes if id(node) in self._node_ids]
            layers.append(entry)
        ins = [self._history(t) for t in self.inputs]
        outs = [self._history(t) for t in self.outputs]
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "input_layers": ins[0] if self._single_input else ins,
                "output_layers": outs[0] if self._single_output else outs}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model a `get_config()` (lstmfast's or Keras 3's) describes, with new layers."""
        tensors, pending = {}, []
        for entry in config["layers"]:
            layer = deserialize_layer(entry)
            if isinstance(layer, InputLayer):
                tensors[(layer.name, 0, 0)] = layer.output
            for i, node in enumerate(entry.get("inbound_nodes") or []):
                pending.append((layer, i, node))

        def decode(value):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                key = tuple(value["config"]["keras_history"])
                if key not in tensors:
                    raise KeyError(key)
                return tensors[key]
            if isinstance(value, list):
                return [decode(v) for v in value]
            if isinstance(value, dict):
                return {k: decode(v) for k, v in value.items()}
            return value

        while pending:  # a call can be made once every tensor it reads exists
            waiting = []
            for layer, i, node in pending:
                try:
                    args, kwargs = decode(node.get("args") or []), decode(node.get("kwargs") or {})
                except KeyError:
                    waiting.append((layer, i, node))
                    continue
                out = layer(*args, **kwargs)
                for k, t in enumerate(out if isinstance(out, list) else [out]):
                    tensors[(layer.name, i, k)] = t
            if len(waiting) == len(pending):
                raise ValueError("The functional config cannot be rebuilt: the calls of layers "
                                 f"{sorted({l.name for l, _, _ in waiting})} read tensors no layer makes.")
            pending = waiting

        def ends(spec):
            if spec and isinstance(spec[0], (list, tuple)):
                return [tensors[tuple(s)] for s in spec]
            return tensors[tuple(spec)]

        return cls(ends(config["input_layers"]), ends(config["output_layers"]), name=config.get("name"),
                   trainable=config.get("trainable", True))

    def __repr__(self):
        return f"<Model name={self.name}, inputs={len(self.inputs)}, outputs={len(self.outputs)}>"
