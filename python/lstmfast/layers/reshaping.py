"""Shape-only layers: RepeatVector (B, D) -> (B, n, D), Flatten (B, ...) -> (B, prod(...)),
Reshape (B, ...) -> (B, *target_shape) and Permute (B, ...) -> the non-batch axes reordered.
None supports masking (as in Keras): a mask reaching them is dropped with a warning. Each
backward undoes its forward's rearrangement of ∂L/∂y (a sum over the repeats for RepeatVector)."""

import numpy as np

from .layer import Layer, _check_positive_int


class RepeatedSequence(np.ndarray):
    """What RepeatVector returns: an ordinary (B, n, D) array, y[:, t, :] = v for every t, that
    also carries v itself (`.vector`, (B, D)). A layer that can use the time-constant input
    directly reads `.vector`: an LSTM projects v once instead of n times and returns Σ_t ∂L/∂x_t
    as a `TimeSummedGradient`. A layer that passes its input on untouched passes the array (and,
    backwards, that gradient) on too; any array derived from it (a view, a result) is a plain
    sequence again, with `.vector` None."""

    def __new__(cls, vector, n):
        y = np.empty((vector.shape[0], n, vector.shape[1]), dtype=vector.dtype).view(cls)
        y[...] = vector[:, None, :]
        y.vector = vector
        return y

    def __array_finalize__(self, obj):
        self.vector = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # arithmetic on it gives plain arrays
        inputs = tuple(a.view(np.ndarray) if isinstance(a, RepeatedSequence) else a for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(a.view(np.ndarray) if isinstance(a, RepeatedSequence) else a
                                  for a in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)


class TimeSummedGradient:
    """The gradient of a time-constant input, Σ_t ∂L/∂x_t (B, D), as an LSTM fed by a
    RepeatVector returns it; only RepeatVector's backward takes it. Gradients that meet on the
    same RepeatedSequence add up: Σ_t (∂L/∂x_t + ∂L/∂x'_t)."""

    __slots__ = ("summed",)
    __array_ufunc__ = None  # array + TimeSummedGradient comes here (__radd__), not to numpy

    def __init__(self, summed):
        self.summed = summed

    def __add__(self, other):
        other = other.summed if isinstance(other, TimeSummedGradient) else other.sum(axis=1)
        return TimeSummedGradient(self.summed + other)

    __radd__ = __add__


class RepeatVector(Layer):
    """Keras's `RepeatVector(n)`: repeat a (B, D) input n times along a new time axis."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _check_positive_int(n, "n", "RepeatVector")
        self.built = True

    input_axes = ("batch", "features")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, mask=None, training=False):
        # y[:, t, :] = x for every t, carrying x for a layer that can use it once (an LSTM)
        return RepeatedSequence(np.ascontiguousarray(x), self.n)

    def backward(self, dy):
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

    def forward(self, x, mask=None, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Keras's `Reshape(target_shape)`: every sample reshaped to `target_shape`, in which one
    entry may be -1 (inferred from the others)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target_shape = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"Argument `target_shape` of Reshape must be a tuple of ints. Received: target_shape={target_shape!r}"
            ) from None
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise ValueError(
                "Argument `target_shape` of Reshape takes positive sizes and at most one -1. "
                f"Received: target_shape={target_shape}"
            )
        self.target_shape = target_shape
        self.built = True

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if -1 not in self.target_shape:
            size = int(np.prod(self.target_shape, dtype=np.int64))
            if None not in rest and int(np.prod(rest, dtype=np.int64)) != size:
                raise ValueError(self._mismatch(rest))
            return (input_shape[0],) + self.target_shape
        if None in rest:
            return (input_shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        total = int(np.prod(rest, dtype=np.int64))
        if total % known:
            raise ValueError(self._mismatch(rest))
        return (input_shape[0],) + tuple(total // known if d == -1 else d for d in self.target_shape)

    def _mismatch(self, rest):
        return (f"Reshape {self.name!r}: an input of shape {tuple(rest)} per sample cannot be reshaped to "
                f"target_shape={self.target_shape}.")

    def forward(self, x, mask=None, training=False):
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape)[1:])

    def backward(self, dy):
        return dy.reshape(self._shape)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class Permute(Layer):
    """Keras's `Permute(dims)`: the non-batch axes reordered, axis i of the output being
    axis dims[i − 1] of the input (axes counted from 1, the batch axis 0 staying first)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                "Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` "
                f"must be consecutive and start from 1. Received dims={dims}"
            )
        self.dims = dims
        self.input_axes = ("batch",) + tuple(f"axis {i}" for i in range(1, len(dims) + 1))
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def forward(self, x, mask=None, training=False):
        return np.ascontiguousarray(x.transpose((0,) + self.dims))

    def backward(self, dy):
        return np.ascontiguousarray(dy.transpose(np.argsort((0,) + self.dims)))

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config
