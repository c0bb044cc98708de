"""Metrics with Keras's names. A metric accumulates a weighted mean over an epoch:
`update_state(y_true, y_pred, sample_weight=None)`, `result()`, `reset_state()`.

`compile(metrics=["accuracy"])` resolves "accuracy"/"acc" as Keras does from the shapes of the
first batch: a last axis of size 1 in y_pred -> BinaryAccuracy (threshold 0.5); integer labels
(y_true of lower rank, or a last axis of 1 against several classes) -> SparseCategoricalAccuracy;
otherwise CategoricalAccuracy. A mask on the model output weights the values as in the loss.
"""

import numpy as np

from . import losses as losses_module


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where (y_pred > threshold) equals y_true, else 0.0."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    y_true, y_pred = losses_module.squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == (y_pred > threshold)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_true) equals argmax(y_pred) on the last axis."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label equals argmax(y_pred) on the last axis."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)


def mean_squared_error(y_true, y_pred):
    return losses_module.mean_squared_error(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return losses_module.mean_absolute_error(y_true, y_pred)


class Metric:
    """Base class: a weighted running mean of per-sample values."""

    def __init__(self, name=None, dtype=None):
        self.name = name or type(self).__name__.lower()
        self.dtype = dtype
        self.reset_state()

    def reset_state(self):
        self._total = 0.0
        self._count = 0.0

    def _values(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        values = np.asarray(self._values(y_true, y_pred))
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            while w.ndim > values.ndim and w.shape[-1] == 1:
                w = w[..., 0]
            w = w.reshape(w.shape + (1,) * (values.ndim - w.ndim))
            w = np.broadcast_to(w, values.shape)
        if mask is not None:
            if values.ndim == mask.ndim + 1 and values.shape[-1] == 1:
                values = values[..., 0]
                if w is not None:
                    w = w[..., 0]
            if values.shape == mask.shape:
                w = mask if w is None else w * mask
        if w is None:
            self._total += float(np.sum(values, dtype=np.float64))
            self._count += values.size
        else:
            self._total += float(np.sum(values * w, dtype=np.float64))
            self._count += float(np.sum(w, dtype=np.float64))

    def result(self):
        return self._total / self._count if self._count else 0.0

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class MeanMetricWrapper(Metric):
    """Weighted mean of `fn(y_true, y_pred)`."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name or getattr(fn, "__name__", "metric"), dtype)

    def _values(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)


class Mean(Metric):
    """Weighted mean of the values passed to `update_state(values, sample_weight=None)`."""

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self._total += float(values.sum())
            self._count += values.size
        else:
            w = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), values.shape)
            self._total += float((values * w).sum())
            self._count += float(w.sum())


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


ALL_OBJECTS = {
    "BinaryAccuracy": BinaryAccuracy,
    "CategoricalAccuracy": CategoricalAccuracy,
    "SparseCategoricalAccuracy": SparseCategoricalAccuracy,
    "MeanSquaredError": MeanSquaredError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
}


def _is_binary_or_sparse(y_true_shape, y_pred_shape):
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    return is_binary, is_sparse


def get(identifier, y_true_shape=None, y_pred_shape=None):
    """Return a Metric for a name, class, instance or function; "accuracy" needs the shapes."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        cls = ALL_OBJECTS.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown metric: {identifier!r}. Expected one of {sorted(ALL_OBJECTS)}.")
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            if y_true_shape is None:
                raise ValueError("Resolving 'accuracy' needs the shapes of y_true and y_pred.")
            binary, sparse = _is_binary_or_sparse(y_true_shape, y_pred_shape)
            cls = BinaryAccuracy if binary else SparseCategoricalAccuracy if sparse else CategoricalAccuracy
            return cls(name=identifier)
        cls = ALL_OBJECTS.get(identifier)
        if cls is None:
            raise ValueError(
                f"Unknown metric: {identifier!r}. Expected 'accuracy' or one of "
                f"{sorted(k for k in ALL_OBJECTS if k.islower())}."
            )
        return cls(name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")
