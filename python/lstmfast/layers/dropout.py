"""Dropout: in training, zero each input element with probability `rate` and scale the rest by
1 / (1 - rate); at inference, the identity. Each training call draws a 64-bit key from the
layer's own seeded numpy Generator; element i is kept when hash(key, i)/2³² ≥ rate, computed in
C++ (cpp/dropout.h), and the backward recomputes that mask from the key. SpatialDropout1D drops
whole channels: one keep mask per (sample, channel), shared by every time step."""

import numpy as np

from .. import _random, ops
from .layer import Layer, _check_rate


def _kernel_dtype(dtype):
    """The dtype the dropout kernel computes in: the array's own when float32 or float64."""
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


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
        self._key = self._keep = None
        if not training or self.rate == 0.0:
            return x
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        if self.rate >= 1.0:  # every element dropped
            self._keep = np.zeros(shape, x.dtype)
            return x * self._keep
        # One 64-bit key per call; element i is kept when hash(key, i)/2³² ≥ rate (cpp/dropout.h).
        key = int(self._gen.rng.integers(0, 2**64, dtype=np.uint64))
        if tuple(shape) == x.shape and x.dtype in (np.float32, np.float64):
            self._key = key  # y = x · keep / (1 − rate); the backward redraws keep from the key
            return ops.dropout(np.ascontiguousarray(x), self.rate, key)
        # A noise shape broadcasts one mask over some axes (or x is of a dtype the kernel lacks):
        # keep the mask for the backward.
        mask = ops.dropout_mask(int(np.prod(shape)), self.rate, key, _kernel_dtype(x.dtype))
        self._keep = mask.reshape(shape).astype(x.dtype, copy=False)
        return x * self._keep

    def backward(self, dy):
        # ∂L/∂x = ∂L/∂y · keep / (1 − rate)
        if self._key is not None:
            return ops.dropout(np.ascontiguousarray(dy, _kernel_dtype(dy.dtype)), self.rate, self._key)
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
