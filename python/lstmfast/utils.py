"""Utilities named as in `keras.utils`: `set_random_seed`, `to_categorical` and `pad_sequences`."""

import random

import numpy as np

from . import _random
from .data.text import pad_sequences

__all__ = ["set_random_seed", "to_categorical", "pad_sequences"]


def set_random_seed(seed):
    """Seed every random draw lstmfast makes (initializers, dropout, shuffling), plus Python's
    `random` and numpy's legacy global state. After `set_random_seed(s)`, building and fitting
    the same model twice gives bit-identical results."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"Expected `seed` argument to be a non-negative integer. Received: seed={seed!r}"
        )
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _random.set_global_seed(seed)


def to_categorical(x, num_classes=None):
    """One-hot encode integer class labels: shape (...,) -> (..., num_classes) float32.

    A trailing axis of size 1 is dropped first, as in Keras.
    """
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or np.any(x != np.floor(x)):
            raise ValueError("to_categorical expects integer class labels. Received non-integer values.")
    elif x.dtype.kind not in "iub":
        raise TypeError(f"to_categorical expects integer class labels. Received dtype {x.dtype}.")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.size and x.min() < 0:
        raise ValueError(f"to_categorical expects non-negative labels. Received {int(x.min())}.")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    elif x.size and x.max() >= num_classes:
        raise ValueError(
            f"to_categorical: label {int(x.max())} is out of range for num_classes={num_classes}."
        )
    out = np.zeros(x.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out
