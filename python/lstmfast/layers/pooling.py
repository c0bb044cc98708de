"""Global pooling over the time axis: (B, T, C) -> (B, C) (channels_last, Keras's default) or
(B, C, T) -> (B, C) (channels_first); `keepdims=True` keeps the pooled axis with size 1.

GlobalAveragePooling1D averages the steps that are not masked (Keras's rule), with m the mask
(all ones without one):
    y = Σ_t m_t x_t / Σ_t m_t,       ∂L/∂x_t = m_t / Σ_s m_s · ∂L/∂y
A sample whose steps are all masked divides 0 by 0, as in Keras.

GlobalMaxPooling1D takes the largest value of each channel over all steps; it does not
support masking (as in Keras: a mask reaching it is dropped with a warning):
    y = max_t x_t,                   ∂L/∂x_t = [x_t = y] / #{s : x_s = y} · ∂L/∂y
(equal maxima share the gradient evenly, as PyTorch's amax and TensorFlow's reduce_max do).
"""

import numpy as np

from .layer import Layer, _check_data_format


class _GlobalPooling1D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _check_data_format(data_format)
        self.keepdims = bool(keepdims)
        self.built = True

    @property
    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    input_axes = ("batch", "steps", "channels")  # (batch, channels, steps) with channels_first

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.keepdims:
            shape[self._steps_axis] = 1
        else:
            del shape[self._steps_axis]
        return tuple(shape)

    def compute_mask(self, inputs, mask=None):
        return None

    def output_has_mask(self, input_has_mask):
        return False

    def _expand(self, dy):
        """∂L/∂y with the pooled axis back (size 1), to broadcast over the steps."""
        return dy if self.keepdims else np.expand_dims(dy, self._steps_axis)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Keras's `GlobalAveragePooling1D(data_format=None, keepdims=False)`; with a mask, the mean
    over the unmasked steps."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format, keepdims, **kwargs)
        self.supports_masking = True

    def forward(self, x, mask=None, training=False):
        axis = self._steps_axis
        self._x_shape = x.shape
        if mask is None:
            self._weight = x.dtype.type(1.0 / x.shape[axis])  # 1/T for every step
            return x.mean(axis=axis, keepdims=self.keepdims)
        m = np.expand_dims(mask.astype(bool), 2 if axis == 1 else 1)
        count = m.sum(axis=axis, keepdims=True, dtype=x.dtype)  # Σ_t m_t
        with np.errstate(invalid="ignore", divide="ignore"):
            self._weight = m / count  # m_t / Σ_s m_s
            y = np.where(m, x, x.dtype.type(0)).sum(axis=axis, keepdims=True) / count
        return y if self.keepdims else np.squeeze(y, axis)

    def backward(self, dy):
        dx = np.empty(self._x_shape, dy.dtype)
        dx[...] = self._expand(dy) * self._weight  # broadcast over the steps
        return dx


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Keras's `GlobalMaxPooling1D(data_format=None, keepdims=False)`."""

    def forward(self, x, mask=None, training=False):
        axis = self._steps_axis
        y = x.max(axis=axis, keepdims=True)
        if training:  # each step's share of ∂L/∂y: [x_t = y] / #{s : x_s = y}
            hit = x == y
            self._share = (hit / np.maximum(hit.sum(axis=axis, keepdims=True), 1)).astype(x.dtype, copy=False)
        return y if self.keepdims else np.squeeze(y, axis)

    def backward(self, dy):
        return self._expand(dy) * self._share
