"""Masking: the time steps whose features all equal `mask_value` are padding.

    m[b, t] = any_d (x[b, t, d] ≠ mask_value)      the mask that the next layers receive
    y = m ⊙ x                                      padded steps output zeros
    ∂L/∂x = m ⊙ ∂L/∂y

An LSTM after it carries h and c through the padded steps, as after `Embedding(mask_zero=True)`.
"""

import numpy as np

from .layer import Layer


class Masking(Layer):
    """Keras's `Masking(mask_value=0.0)`."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.integer, np.floating)):
            raise ValueError(f"Argument `mask_value` must be a number. Received: mask_value={mask_value!r}")
        self.mask_value = mask_value
        self.supports_masking = True
        self.built = True

    def compute_mask(self, inputs, mask=None):
        if inputs is self._seen:  # the forward pass just computed it (a model asks right after)
            return self._keep[..., 0]
        return np.any(inputs != self.mask_value, axis=-1)

    def output_has_mask(self, input_has_mask):
        return True

    _seen = None  # the input of the last forward pass

    def forward(self, x, mask=None, training=False):
        self._seen = None
        self._keep = self.compute_mask(x)[..., None]
        self._seen = x
        return np.where(self._keep, x, x.dtype.type(0))

    def backward(self, dy):
        return np.where(self._keep, dy, dy.dtype.type(0))

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config
