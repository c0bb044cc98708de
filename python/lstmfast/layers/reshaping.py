"""Shape-only layers: RepeatVector (B, D) -> (B, n, D), Flatten (B, ...) -> (B, prod(...)),
Reshape (B, ...) -> (B, *target_shape) and Permute (B, ...) -> the non-batch axes reordered.
None supports masking (as in Keras): a mask reaching them is dropped with a warning. Each
backward undoes its forward's rearrangement of ∂L/∂y (a sum over the repeats for RepeatVector)."""

import numpy as np

from .layer import Layer, RepeatedSequence, TimeSummedGradient, _check_positive_int


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
        # y[:, t, :] = x for every t: a view, no copy; a layer that does not read the vector
        # itself (Layer.receive) gets it as a plain array
        return RepeatedSequence.of(np.ascontiguousarray(x), self.n)

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
