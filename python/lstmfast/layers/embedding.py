"""Embedding: integer ids -> rows of a (input_dim, output_dim) matrix.

Shapes: ids (B, T) -> y (B, T, output_dim). With `mask_zero=True` the output mask is `ids != 0`
and travels to the layers below (LSTM skips those steps). The gradient is sparse: only rows that
occur in the batch are non-zero. The C++ kernels gather the rows (forward) and scatter-add the
gradient rows in the order of the ids (backward, reproducible), clearing only the rows the
previous step touched.
"""

import numpy as np

from .. import initializers, ops
from .dense import _set_weight_options, _weight_options_config
from .layer import Layer, _check_positive_int


class Embedding(Layer):
    """Keras's `Embedding(input_dim, output_dim, embeddings_initializer="uniform",
    mask_zero=False)`; `input_length` is accepted (Keras 2 code passes it) and only checked."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, input_length=None, **kwargs):
        for k in ("lora_rank", "lora_alpha", "quantization_config"):
            if kwargs.pop(k, None) is not None:
                raise ValueError(f"Argument `{k}` of Embedding is not supported by lstmfast.")
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (_check_positive_int(input_length, "input_length", "Embedding"),)
        super().__init__(**kwargs)
        _set_weight_options(self, embeddings_regularizer=embeddings_regularizer,
                            embeddings_constraint=embeddings_constraint)
        self.input_dim = _check_positive_int(input_dim, "input_dim", "Embedding")
        self.output_dim = _check_positive_int(output_dim, "output_dim", "Embedding")
        self.input_length = input_length
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.embeddings = None
        self._touched = None
        if weights is not None:
            self.build(None)
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape=None):
        if self.embeddings is None:
            self.embeddings = self.add_weight(
                (self.input_dim, self.output_dim), self.embeddings_initializer, "embeddings",
                regularizer=self.embeddings_regularizer, constraint=self.embeddings_constraint)
        self.built = True
        if input_shape is not None:
            super().build(input_shape)

    def _check_input_shape(self, shape):
        # ids of any length once built, as in Keras: only the rank is fixed
        expected = self._build_input_shape
        if expected is not None and len(shape) != len(expected):
            super()._check_input_shape(shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return inputs != 0

    def output_has_mask(self, input_has_mask):
        return self.mask_zero

    def _cast_input(self, x):
        return self._ids(np.asarray(x))

    def _ids(self, x):
        """Validate ids: integers (or integral floats) in [0, input_dim)."""
        if x.dtype.kind not in "iu":
            if x.dtype.kind != "f" or not np.all(np.isfinite(x)) or np.any(x != np.floor(x)):
                raise ValueError(
                    f"Embedding layer {self.name!r} expects integer token ids. Received an array of "
                    f"dtype {x.dtype}" + (" with non-integer values." if x.dtype.kind == "f" else ".")
                )
            x = x.astype(np.int64)
        if x.size:
            lo, hi = x.min(), x.max()
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"Embedding layer {self.name!r} has input_dim={self.input_dim}, so ids must lie in "
                    f"[0, {self.input_dim - 1}]. Received id {int(bad)}."
                )
        return x

    def forward(self, x, mask=None, training=False):
        x = np.ascontiguousarray(x, dtype=np.int64)
        if training:
            self._x = x
        return ops.embedding_forward(x, self.embeddings.value)  # y[b, t] = E[ids[b, t]]

    def backward(self, dy):
        if self.trainable:
            grad = self.embeddings._ensure_grad()
            if self._touched is None or self.embeddings.regularizer is not None:
                grad[...] = 0  # a regularizer's gradient reaches every row: clear them all
            # dE[ids[n]] += dy[n], after zeroing the rows the previous step wrote
            ops.embedding_backward(self._x, np.ascontiguousarray(dy, dtype=grad.dtype), grad,
                                   clear_ids=self._touched)
            self._touched = self._x if self.embeddings.regularizer is None else None
        self._x = None
        return None  # ids have no gradient

    def weights_moved(self):
        self._touched = None

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            **_weight_options_config(self, "embeddings_regularizer", "activity_regularizer", "embeddings_constraint"),
            "mask_zero": self.mask_zero,
        })
        return config
