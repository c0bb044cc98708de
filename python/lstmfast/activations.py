"""Activation functions, named as in `keras.activations`.

Each function maps a numpy array to a numpy array of the same shape. Layers that train through an
activation also need its derivative; `_DERIVATIVES` holds, for each function, the map
(dy, x, y) -> dx where x is the input and y = f(x) the output (whichever is cheaper is used).
"""

import numpy as np

from . import ops


def linear(x):
    """f(x) = x."""
    return x


def relu(x):
    """f(x) = max(x, 0)."""
    return np.maximum(x, 0)


def _on_kernels(x):
    """x as the kernels take it (ops.activation, ops.softmax), or None where numpy computes f(x):
    float arrays go to the kernels, so that predict and the C++ runtime compute the same bits."""
    if isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) and x.size > 0:
        return np.ascontiguousarray(x)
    return None


def sigmoid(x):
    """f(x) = 1 / (1 + exp(-x)), evaluated without overflow for large |x|."""
    xk = _on_kernels(x)
    if xk is not None:
        return ops.activation(xk, "sigmoid")
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def tanh(x):
    """f(x) = tanh(x)."""
    xk = _on_kernels(x)
    if xk is not None:
        return ops.activation(xk, "tanh")
    return np.tanh(x)


def hard_sigmoid(x):
    """Keras 3's piecewise-linear sigmoid: f(x) = clip(x / 6 + 0.5, 0, 1)."""
    xk = _on_kernels(x)
    if xk is not None:
        return ops.activation(xk, "hard_sigmoid")
    x = np.asarray(x)
    return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)


def softmax(x, axis=-1):
    """f(x)_k = exp(x_k) / sum_j exp(x_j) along `axis`, shifted by the max for stability. Float
    arrays over their last axis go to the kernels (ops.softmax)."""
    xk = _on_kernels(x)
    if xk is not None and xk.ndim >= 1 and axis in (-1, xk.ndim - 1):
        return ops.softmax(xk)
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softplus(x):
    """f(x) = log(1 + exp(x)), stable for large |x|."""
    return np.logaddexp(0, x).astype(np.asarray(x).dtype, copy=False)


def softsign(x):
    """f(x) = x / (1 + |x|)."""
    return x / (1 + np.abs(x))


def elu(x, alpha=1.0):
    """f(x) = x if x > 0 else alpha * (exp(x) - 1)."""
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(np.asarray(x).dtype, copy=False)


def selu(x):
    """f(x) = scale * elu(x, alpha) with the self-normalising constants."""
    return (1.0507009873554805 * elu(x, 1.6732632423543772)).astype(np.asarray(x).dtype, copy=False)


def swish(x):
    """f(x) = x * sigmoid(x) (also called silu)."""
    return x * sigmoid(x)


silu = swish


def exponential(x):
    """f(x) = exp(x)."""
    return np.exp(x)


def leaky_relu(x, negative_slope=0.2):
    """f(x) = x if x > 0 else negative_slope * x."""
    return np.where(x > 0, x, negative_slope * x).astype(np.asarray(x).dtype, copy=False)


# (dy, x, y) -> dx for each activation; softmax works on the last axis.
def _softmax_grad(dy, x, y):
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _elu_grad(dy, x, y):
    return dy * np.where(x > 0, 1, y + 1)


_DERIVATIVES = {
    linear: lambda dy, x, y: dy,
    relu: lambda dy, x, y: dy * (x > 0),
    sigmoid: lambda dy, x, y: dy * y * (1 - y),
    tanh: lambda dy, x, y: dy * (1 - y * y),
    hard_sigmoid: lambda dy, x, y: dy * ((x > -3) & (x < 3)) / 6,
    softmax: _softmax_grad,
    softplus: lambda dy, x, y: dy * sigmoid(x),
    softsign: lambda dy, x, y: dy / (1 + np.abs(x)) ** 2,
    elu: _elu_grad,
    selu: lambda dy, x, y: dy * np.where(x > 0, 1.0507009873554805, y + 1.0507009873554805 * 1.6732632423543772),
    swish: lambda dy, x, y: dy * (lambda s: s * (1 + x * (1 - s)))(sigmoid(x)),
    exponential: lambda dy, x, y: dy * y,
    leaky_relu: lambda dy, x, y: dy * np.where(x > 0, 1, 0.2),
}

ALL_OBJECTS = {
    "linear": linear,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "hard_sigmoid": hard_sigmoid,
    "softmax": softmax,
    "softplus": softplus,
    "softsign": softsign,
    "elu": elu,
    "selu": selu,
    "swish": swish,
    "silu": swish,
    "exponential": exponential,
    "leaky_relu": leaky_relu,
}


def get(identifier):
    """Return the activation function for `identifier` (a name, None for linear, or a function).

    Raises ValueError for an unknown name, listing the known ones.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, dict):  # {"class_name": ..., "config": ...} or {"module": ...}
        identifier = identifier.get("config", identifier.get("class_name"))
        if isinstance(identifier, dict):
            identifier = identifier.get("name")
    if isinstance(identifier, str):
        fn = ALL_OBJECTS.get(identifier) or ALL_OBJECTS.get(identifier.lower())
        if fn is None:
            raise ValueError(
                f"Could not interpret activation function identifier: {identifier!r}. "
                f"Expected one of {sorted(ALL_OBJECTS)} or a function."
            )
        return fn
    if callable(identifier):
        return identifier
    raise TypeError(
        "Could not interpret activation function identifier: expected a name, None or a function. "
        f"Received: {identifier!r} of type {type(identifier).__name__}"
    )


def serialize(activation):
    """Return the name of a built-in activation (Keras writes the name in configs)."""
    for name, fn in ALL_OBJECTS.items():
        if fn is activation:
            return name
    name = getattr(activation, "__name__", None)
    if name is None:
        raise ValueError(f"Cannot serialize activation {activation!r}: it has no name.")
    return name


def derivative(activation):
    """Return the (dy, x, y) -> dx map of a built-in activation, or raise ValueError."""
    try:
        return _DERIVATIVES[activation]
    except KeyError:
        raise ValueError(
            f"Activation {serialize(activation)!r} has no derivative in lstmfast, so a layer using it "
            f"cannot be trained. Trainable activations: {sorted(n for n in ALL_OBJECTS)}."
        ) from None
