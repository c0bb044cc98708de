"""Wrappers: TimeDistributed applies a layer to every time step; Bidirectional runs an LSTM
forwards and a copy of it backwards and merges the two.

TimeDistributed reshapes (B, T, ...) to (B·T, ...) and calls the inner layer once: no loop over
steps. Bidirectional follows Keras: the backward copy has `go_backwards=True`, its sequence output
is flipped back into time order before merging, and both copies get
`zero_output_for_mask = return_sequences`, so masked steps output zeros in sequence mode.
"""

import numpy as np

from .layer import Layer, _auto_name
from .lstm import LSTM, initial_state_tensors


class TimeDistributed(Layer):
    """Keras's `TimeDistributed(layer)`: input (B, T, ...) -> (B, T, ...layer output...)."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                "Please initialize `TimeDistributed` layer with a `lstmfast.layers.Layer` instance. "
                f"Received: {layer!r}"
            )
        super().__init__(**kwargs)
        self.layer = layer
        self.supports_masking = True
        if self._batch_input_shape is None and layer._batch_input_shape is not None:
            self._batch_input_shape = (layer._batch_input_shape[0], None) + tuple(layer._batch_input_shape[1:])

    def sublayers(self):
        return [self.layer]

    def _inner_shape(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                "`TimeDistributed` Layer should be passed an `input_shape` with at least 3 "
                f"dimensions, received: {tuple(input_shape)}"
            )
        return (input_shape[0],) + tuple(input_shape[2:])

    def build(self, input_shape):
        self.layer._maybe_build(self._inner_shape(input_shape))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape(self._inner_shape(input_shape))
        return (inner[0], input_shape[1]) + tuple(inner[1:])

    def forward(self, x, mask=None, training=False):
        b, t = x.shape[:2]
        y = self.layer.forward(x.reshape((b * t,) + x.shape[2:]), None, training)
        return y.reshape((b, t) + y.shape[1:])

    def backward(self, dy):
        b, t = dy.shape[:2]
        self.layer.needs_input_gradient = self.needs_input_gradient
        dx = self.layer.backward(dy.reshape((b * t,) + dy.shape[2:]))
        return None if dx is None else dx.reshape((b, t) + dx.shape[1:])

    def get_config(self):
        config = super().get_config()
        config["layer"] = _serialize_layer(self.layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = _deserialize_layer(config["layer"])
        return cls(**config)


_MERGE_MODES = ("sum", "mul", "ave", "concat")


class Bidirectional(Layer):
    """Keras's `Bidirectional(layer, merge_mode="concat", backward_layer=None)` for LSTM layers.
    Weights: the forward layer's, then the backward layer's."""

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, LSTM):
            raise ValueError(
                "Please initialize `Bidirectional` layer with an `lstmfast.layers.LSTM` instance. "
                f"Received: {layer!r}"
            )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Invalid merge mode. Received: {merge_mode!r}. Merge mode should be one of "
                f"{list(_MERGE_MODES)} (merge_mode=None, two separate outputs, is not supported in "
                "a Sequential model)."
            )
        if kwargs.get("name") is None:
            kwargs["name"] = _auto_name("bidirectional")
        super().__init__(**kwargs)
        if self._batch_input_shape is None:
            self._batch_input_shape = layer._batch_input_shape
        config = layer.get_config()
        config.pop("batch_input_shape", None)
        config["name"] = "forward_" + _removeprefix(layer.name, "forward_")
        self.forward_layer = LSTM.from_config(config)
        if backward_layer is None:
            config = layer.get_config()
            config.pop("batch_input_shape", None)
            config["go_backwards"] = not layer.go_backwards
            config["name"] = "backward_" + _removeprefix(layer.name, "backward_")
            self.backward_layer = LSTM.from_config(config)
        else:
            if not isinstance(backward_layer, LSTM):
                raise ValueError(
                    f"`backward_layer` must be an `lstmfast.layers.LSTM` instance. Received: {backward_layer!r}"
                )
            self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` value. "
                f"Received: forward_layer.go_backwards {self.forward_layer.go_backwards}, "
                f"backward_layer.go_backwards={self.backward_layer.go_backwards}"
            )
        for a in ("stateful", "return_sequences", "return_state"):
            fv, bv = getattr(self.forward_layer, a), getattr(self.backward_layer, a)
            if fv != bv:
                raise ValueError(
                    f'Forward layer and backward layer are expected to have the same value for '
                    f'attribute "{a}", got "{fv}" for forward layer and "{bv}" for backward layer'
                )
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        self.supports_masking = True
        self._initial_weights = weights

    def sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def build(self, input_shape):
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)
        super().build(input_shape)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        if self.return_state:
            shape, states = shape[0], shape[1:]
        if self.merge_mode == "concat":
            shape = tuple(shape[:-1]) + (shape[-1] * 2,)
        if self.return_state:
            return (shape,) + tuple(states) + tuple(states)
        return tuple(shape)

    def output_has_mask(self, input_has_mask):
        return input_has_mask and self.return_sequences  # as its LSTMs

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out, None, None, None, None]
        return out

    def reset_states(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states

    def forward(self, x, mask=None, training=False, initial_state=None):
        fs = bs = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fs, bs = initial_state[:half], initial_state[half:]
        y = self.forward_layer.forward(x, mask, training, initial_state=fs)
        y_rev = self.backward_layer.forward(x, mask, training, initial_state=bs)
        states = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]  # back into time order
        if self.merge_mode == "concat":
            out = np.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) / 2
        else:  # mul
            out = y * y_rev
        if training:
            self._y, self._y_rev = (y, y_rev) if self.merge_mode == "mul" else (None, None)
        if self.return_state:
            return (out,) + states
        return out

    def backward(self, dy, d_states=None):
        """∂L/∂x from ∂L/∂out and, with return_state, the gradients of the four final states
        [h_fwd, c_fwd, h_bwd, c_bwd] (None: not used)."""
        d_fh, d_fc, d_bh, d_bc = d_states if d_states is not None else (None,) * 4
        self.forward_layer.needs_input_gradient = self.backward_layer.needs_input_gradient = self.needs_input_gradient
        if dy is None:  # only the states reach the loss
            dx_f = self.forward_layer.backward(None, d_h=d_fh, d_c=d_fc)
            dx_b = self.backward_layer.backward(None, d_h=d_bh, d_c=d_bc)
            return None if dx_f is None else dx_f + dx_b
        h = self.forward_layer.units
        if self.merge_mode == "concat":
            dy_f, dy_b = dy[..., :h], dy[..., h:]
        elif self.merge_mode == "sum":
            dy_f = dy_b = dy
        elif self.merge_mode == "ave":
            dy_f = dy_b = dy / 2
        else:  # mul: out = y ⊙ y_rev
            dy_f, dy_b = dy * self._y_rev, dy * self._y
            self._y = self._y_rev = None
        if self.return_sequences:
            dy_b = dy_b[:, ::-1]  # into the backward layer's processing order
        dx_f = self.forward_layer.backward(np.ascontiguousarray(dy_f), d_h=d_fh, d_c=d_fc)
        dx_b = self.backward_layer.backward(np.ascontiguousarray(dy_b), d_h=d_bh, d_c=d_bc)
        return None if dx_f is None else dx_f + dx_b

    # ----- in a functional graph: inputs [x, h0_fwd, c0_fwd, h0_bwd, c0_bwd], outputs
    # [y, h_fwd, c_fwd, h_bwd, c_bwd] with return_state -----
    graph_multi_output = True

    def graph_inputs(self, inputs, kwargs):
        states = kwargs.pop("initial_state", None)
        inbound = super().graph_inputs(inputs, kwargs)
        if states is None:
            return inbound
        names = ("h0_forward", "c0_forward", "h0_backward", "c0_backward")
        return inbound + initial_state_tensors(self, states, names, self.forward_layer.units, one_message=True)

    def graph_forward(self, inputs, masks, training):
        y = self.forward(inputs[0], masks[0], training, initial_state=list(inputs[1:]) or None)
        return y if isinstance(y, tuple) else (y,)

    def graph_backward(self, d_outputs):
        dx = self.backward(d_outputs[0], d_outputs[1:] if self.return_state else None)
        return [dx, *self.forward_layer._d_initial_state, *self.backward_layer._d_initial_state]

    def get_config(self):
        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = _serialize_layer(self.forward_layer)
        config["backward_layer"] = _serialize_layer(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = _deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _deserialize_layer(config["backward_layer"])
        return cls(**config)


def _removeprefix(s, prefix):
    return s[len(prefix):] if s.startswith(prefix) else s


def _serialize_layer(layer):
    from . import serialize

    return serialize(layer)


def _deserialize_layer(config):
    from . import deserialize

    return deserialize(config)
