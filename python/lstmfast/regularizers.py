"""Weight and activity regularizers with Keras's names, defaults and formulas, each with its
gradient:

    L1(l1=0.01):           R(w) = l1 · Σ|w|               ∂R/∂w = l1 · sign(w)
    L2(l2=0.01):           R(w) = l2 · Σ w²               ∂R/∂w = 2 · l2 · w
    L1L2(l1=0.0, l2=0.0):  R(w) = l1 · Σ|w| + l2 · Σ w²

A layer's weight regularizers add R(w) to the training loss (and its gradient to the weight's);
an activity regularizer adds R(y) / batch size for the layer's output y, as Keras 3 does.
"""

import inspect

import numpy as np

from . import _registry

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize", "deserialize"]


def _float_arg(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value) \
            or value < 0:
        raise ValueError(f"Argument `{name}` must be a non-negative finite number. Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class: `__call__(x)` is the penalty (a float), `gradient(x)` its gradient."""

    def __call__(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros_like(x)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """R(w) = l1 · Σ|w| + l2 · Σ w²."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _float_arg(l1, "l1"), _float_arg(l2, "l2")

    def __call__(self, x):
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.sum(np.abs(x)))
        if self.l2:
            total += self.l2 * float(np.sum(np.square(x)))
        return total

    def gradient(self, x):
        g = np.zeros_like(x)
        if self.l1:
            g += x.dtype.type(self.l1) * np.sign(x)
        if self.l2:
            g += x.dtype.type(2 * self.l2) * x
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """R(w) = l1 · Σ|w|."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """R(w) = l2 · Σ w²."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


ALL_OBJECTS = {"Regularizer": Regularizer, "L1": L1, "L2": L2, "L1L2": L1L2,
               "l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2}


def serialize(regularizer):
    return _registry.serialize(regularizer, "keras.regularizers")


def deserialize(config):
    return _registry.from_config(config, ALL_OBJECTS, "regularizer")


def get(identifier):
    """A regularizer from None, a name ('l1', 'l2', 'L1L2', …), a config dict or an instance."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return _registry.from_name(identifier, ALL_OBJECTS, "regularizer")
    if inspect.isclass(identifier) and issubclass(identifier, Regularizer):
        return identifier()
    if isinstance(identifier, Regularizer):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r} (a regularizer needs "
                     "a penalty and its gradient: subclass lstmfast.regularizers.Regularizer).")


# Keras's lower-case names for the classes.
l1, l2, l1_l2 = L1, L2, L1L2
