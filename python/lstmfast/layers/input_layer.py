"""`Input(shape)` and `InputLayer`: declare the input shape of a model.

`Input` returns a symbolic placeholder (`KerasTensor`) that `Sequential` accepts in place of a
layer, as in Keras, and that layers can be called on to build a functional `Model`
(`lstmfast.models.Functional`).
"""

import numpy as np

from ..graph import KerasTensor
from .layer import Layer


class InputLayer(Layer):
    """Holds the batch input shape; computes nothing."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, **kwargs):
        if "input_shape" in kwargs:  # Keras 2 spelling
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        if sparse:
            raise ValueError("Sparse inputs are not supported by lstmfast.")
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if shape is None and batch_shape is None:
            raise ValueError("You must pass a `shape` argument to Input (e.g. `Input(shape=(30, 1))`).")
        if batch_shape is None:
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        for d in batch_shape[1:]:
            if d is not None and d <= 0:
                raise ValueError(f"Input shape dimensions must be positive. Received: shape={batch_shape[1:]}")
        if dtype is not None:
            dtype = getattr(dtype, "name", dtype)
            try:
                np.dtype(dtype)
            except TypeError:
                raise ValueError(f"Invalid dtype for Input: {dtype!r}. Expected a numpy dtype name such as "
                                 "'float32', 'int32' or 'bool'.") from None
            if not isinstance(dtype, str):
                dtype = np.dtype(dtype).name
        self._input_dtype = dtype
        kwargs.pop("trainable", None)
        super().__init__(name=name, **kwargs)
        self.batch_shape = batch_shape
        self.built = True
        self._tensor = KerasTensor(self)
        self._build_input_shape = batch_shape
        self._output_shape = batch_shape

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self._input_dtype or self.dtype,
                "sparse": False, "name": self.name}

    def forward(self, x, mask=None, training=False):
        return x

    @property
    def output(self):
        """The model input this layer stands for (what `Input(...)` returned)."""
        return self._tensor


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """Declare a model input of `shape` (without the batch axis), e.g. `Input(shape=(30, 1))`."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       batch_shape=batch_shape, name=name)
    return layer.output
