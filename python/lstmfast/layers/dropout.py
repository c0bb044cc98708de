"""Dropout: in training, zero each input element with probability `rate` and scale the rest by
1 / (1 - rate); at inference, the identity. The keep mask comes from the layer's own seeded numpy
Generator. SpatialDropout1D drops whole channels: one keep mask per (sample, channel), shared
by every time step."""

import numpy as np

from .. import _random
from .layer import Layer, _check_rate


class Dropout(Layer):
    """Keras's `Dropout(rate, noise_shape=None, seed=None)`; passes masks through."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate, "rate")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._gen = _random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def forward(self, x, mask=None, training=False):
        if not training or self.rate == 0.0:
            self._keep = None
            return x
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        keep = self._gen.rng.random(shape, dtype=np.float64) >= self.rate
        # scaled mask: 0 where dropped, 1/(1-rate) where kept
        self._keep = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate)) if self.rate < 1 else keep.astype(x.dtype)
        return x * self._keep

    def backward(self, dy):
        if self._keep is None:
            return dy
        return dy * self._keep

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape})
        return config


class SpatialDropout1D(Dropout):
    """Keras's `SpatialDropout1D(rate, seed=None)` on (batch, steps, channels): in training a
    dropped channel is zero at every step of its sample (noise shape (batch, 1, channels))."""

    def __init__(self, rate, seed=None, **kwargs):
        kwargs.pop("noise_shape", None)  # older Keras configs list it; this layer fixes it
        super().__init__(rate, noise_shape=(None, 1, None), seed=seed, **kwargs)

    input_axes = ("batch", "steps", "channels")

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        return config
