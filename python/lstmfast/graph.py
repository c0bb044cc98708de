"""The symbolic graph under the functional API: `KerasTensor`s joined by `Node`s.

    x = Input(shape=(None, 8))              # a KerasTensor with no node: a model input
    y = LSTM(16)(x)                         # Layer.__call__ records Node(LSTM, inputs=[x]) -> y

A `Node` is one call of a layer: the tensors it read (the layer's input, then an LSTM's
`initial_state`) and the tensors it made. A functional model runs its nodes in the order that
`topological_order` gives, forwards, and in reverse for the gradients: a tensor that several nodes
read collects the sum of their gradients,

    ∂L/∂t = Σ over the nodes n reading t of ∂L/∂(n's input t).

This module knows layers only as objects with a `name` (and the methods a model calls through
the layer contract, see `lstmfast.layers.Layer`); it imports none of them.
"""

from __future__ import annotations

__all__ = ["KerasTensor", "Node", "Inputs", "Positional", "call_args", "topological_order"]


class Positional(tuple):
    """The positional arguments of a call that takes its tensors as separate arguments
    (`MultiHeadAttention(query, value)`), as a Node's `call[0]`; any other `call[0]` is the
    one first argument (a tensor, or the list a merge layer takes)."""


def call_args(first):
    """The positional arguments of a recorded call, for saving it as Keras does."""
    return list(first) if isinstance(first, Positional) else [first]


class Node:
    """One layer call: `layer(inputs, **options) -> outputs` (an LSTM's inputs: x, then its
    initial_state; a merge layer's: its list)."""

    __slots__ = ("layer", "inputs", "outputs", "options", "call")

    def __init__(self, layer, inputs, options=None, call=None):
        self.layer, self.inputs, self.outputs = layer, tuple(inputs), ()
        self.options = options or {}
        # how the layer was called, for saving the graph: (first argument or Positional, kwargs)
        # holding KerasTensors
        self.call = call
        layer._inbound_nodes.append(self)

    def make_outputs(self, out_shape, dtype):
        """The KerasTensor(s) this call returns for `out_shape`: one shape, or a tuple of shapes
        for a layer returning several tensors (an LSTM's return_state)."""
        if out_shape and isinstance(out_shape[0], tuple):
            self.outputs = tuple(KerasTensor(shape=s, dtype=dtype, node=self, index=i)
                                 for i, s in enumerate(out_shape))
            return list(self.outputs)
        self.outputs = (KerasTensor(shape=out_shape, dtype=dtype, node=self, index=0),)
        return self.outputs[0]


class KerasTensor:
    """A shape and dtype with no data: what `Input()` returns (from its InputLayer), or a layer
    called on a KerasTensor returns (output `index` of that call, its `_node`)."""

    def __init__(self, input_layer=None, shape=None, dtype=None, node=None, index=0):
        self._input_layer = input_layer
        self._node = node
        self._index = index
        if input_layer is not None:
            self.shape = input_layer.batch_shape
            self.dtype = input_layer._input_dtype or input_layer.dtype
            self.name = input_layer.name
        else:
            self.shape = tuple(shape)
            self.dtype = dtype
            self.name = f"{node.layer.name}/output_{index}"

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def is_symbolic(inputs):
    """Whether a layer is being called on KerasTensors (building a graph) rather than on data."""
    return isinstance(inputs, KerasTensor) or (
        isinstance(inputs, (list, tuple)) and any(isinstance(t, KerasTensor) for t in inputs))


def topological_order(inputs, outputs, with_inputs=False):
    """The nodes that `outputs` depend on, each after every node it reads from, in Keras's
    order: by depth (a node's depth is one more than that of the deepest node reading its
    outputs; the output nodes are at depth 0), deepest first, and within one depth in the order
    a depth-first walk from the outputs first enters them. So a model lists its layers, and
    their weights, in the order Keras does. `with_inputs`: the model's input tensors too, each
    ordered as Keras orders its InputLayer (an input read by no node last, at depth 0). Raises
    ValueError when an output depends on a tensor that is not among `inputs`."""
    known = {id(t) for t in inputs}
    order, seen, entered = [], set(), {}

    def visit(tensor):
        if id(tensor) in known:
            entered.setdefault(id(tensor), len(entered))
            return
        node = tensor._node
        if node is None:
            raise ValueError(
                f"An output of the model depends on {tensor!r}, which is not among the model's inputs."
            )
        if id(node) in seen:
            return
        seen.add(id(node))
        entered.setdefault(id(node), len(entered))
        for t in node.inputs:
            visit(t)
        order.append(node)

    for t in outputs:
        visit(t)
    depth = {}
    for node in reversed(order):  # consumers before the nodes they read from
        d = depth.setdefault(id(node), 0)
        for t in node.inputs:
            key = id(t) if id(t) in known else id(t._node)
            depth[key] = max(depth.get(key, 0), d + 1)
    items = order + (list(inputs) if with_inputs else [])
    rank = lambda item: (-depth.get(id(item), 0), entered.get(id(item), -1))  # noqa: E731
    return sorted(items, key=rank)


class Inputs(tuple):
    """The arrays of a multi-input model, sliced together along the batch axis."""

    @property
    def shape(self):
        return (self[0].shape[0],)

    def __getitem__(self, index):
        if isinstance(index, int):
            return tuple.__getitem__(self, index)
        return Inputs(a[index] for a in self)
