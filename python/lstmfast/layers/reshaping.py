"""Shape-only layers: RepeatVector (B, D) -> (B, n, D) and Flatten (B, ...) -> (B, prod(...)).
Neither supports masking (as in Keras): a mask reaching them is dropped with a warning."""

import numpy as np

from .layer import Layer, _check_positive_int


class TimeSummedGradient:
    """The gradient of a time-constant input, Σ_t ∂L/∂x_t (B, D), as an LSTM fed by a
    RepeatVector returns it; only RepeatVector's backward takes it."""

    __slots__ = ("summed",)

    def __init__(self, summed):
        self.summed = summed


class RepeatVector(Layer):
    """Keras's `RepeatVector(n)`: repeat a (B, D) input n times along a new time axis."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _check_positive_int(n, "n", "RepeatVector")
        self.built = True

    _input_axes = ("batch", "features")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    # Set by Sequential when the next layer is an LSTM, which projects a time-constant input
    # once instead of n times: this layer then hands it a read-only view with time stride 0
    # (no copy), and gets back the gradient already summed over time.
    _feeds_lstm = False

    def _forward(self, x, mask=None, training=False):
        # y[:, t, :] = x for every t
        y = np.broadcast_to(x[:, None, :], (x.shape[0], self.n, x.shape[1]))
        return y if self._feeds_lstm else np.ascontiguousarray(y)

    def _backward(self, dy):
        if isinstance(dy, TimeSummedGradient):
            return dy.summed
        return dy.sum(axis=1)

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config


class Flatten(Layer):
    """Keras's `Flatten()`: merge all non-batch axes."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format
        self.built = True

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], size)

    def _forward(self, x, mask=None, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy):
        return dy.reshape(self._shape)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config
