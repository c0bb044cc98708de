"""Weight constraints with Keras's names, defaults and formulas, applied to a weight after each
optimizer step (ε = 1e-7; norms over `axis`):

    MaxNorm(max_value=2, axis=0):   w ← w · clip(‖w‖, 0, max_value) / (ε + ‖w‖)
    NonNeg():                       w ← max(w, 0)
    UnitNorm(axis=0):               w ← w / (ε + ‖w‖)
    MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0):
                                    w ← w · (rate · clip(‖w‖, min, max) + (1 − rate) · ‖w‖) / (ε + ‖w‖)
"""

import inspect

import numpy as np

from . import _registry

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "get", "serialize", "deserialize"]

_EPSILON = 1e-7


def _norms(w, axis):
    axis = tuple(axis) if isinstance(axis, list) else axis  # Keras configs write several axes as a list
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class Constraint:
    """Base class: `__call__(w)` returns the constrained weight."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        return w * (np.clip(norms, 0, self.max_value) / (w.dtype.type(_EPSILON) + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return np.maximum(w, w.dtype.type(0))


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return w / (w.dtype.type(_EPSILON) + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (w.dtype.type(_EPSILON) + norms)).astype(w.dtype)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


ALL_OBJECTS = {"Constraint": Constraint, "MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm,
               "MinMaxNorm": MinMaxNorm, "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
               "min_max_norm": MinMaxNorm}


def serialize(constraint):
    return _registry.serialize(constraint, "keras.constraints")


def deserialize(config):
    return _registry.from_config(config, ALL_OBJECTS, "constraint")


def get(identifier):
    """A constraint from None, a name ('max_norm', 'NonNeg', …), a config dict or an instance
    (or a function of the weight array)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return _registry.from_name(identifier, ALL_OBJECTS, "constraint")
    if inspect.isclass(identifier) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")


# Keras's lower-case names for the classes.
max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
