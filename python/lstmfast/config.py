"""Global numeric settings, named as in `keras.config`.

`floatx()` is the default dtype of new layer weights ("float32"); set it to "float64" for gradient
checks. `epsilon()` is the fuzz factor the losses clip probabilities with (1e-7, as in Keras).
"""

_FLOATX = "float32"
_EPSILON = 1e-7
_ALLOWED_FLOATX = ("float32", "float64")


def floatx():
    """Return the default float dtype name of new weights: "float32" or "float64"."""
    return _FLOATX


def set_floatx(value):
    """Set the default float dtype of new weights ("float32" or "float64")."""
    global _FLOATX
    value = str(value)
    if value not in _ALLOWED_FLOATX:
        raise ValueError(
            f"Unknown `floatx` value. Expected one of {_ALLOWED_FLOATX}. Received: floatx={value!r}"
        )
    _FLOATX = value


def epsilon():
    """Return the fuzz factor used to keep logarithms finite (1e-7 by default)."""
    return _EPSILON


def set_epsilon(value):
    """Set the fuzz factor used to keep logarithms finite."""
    global _EPSILON
    _EPSILON = float(value)


def standardize_dtype(dtype):
    """Return "float32" or "float64" for `dtype` (None means `floatx()`)."""
    import numpy as np

    if dtype is None:
        return _FLOATX
    name = getattr(dtype, "name", None) or str(np.dtype(dtype))
    if name not in _ALLOWED_FLOATX:
        raise ValueError(
            f"lstmfast computes in float32 or float64. Received: dtype={dtype!r}"
        )
    return name
