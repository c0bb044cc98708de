"""Losses with Keras's names, formulas and reductions, each with its exact gradient.

A loss maps (y_true, y_pred) to per-sample values (the mean over the last axis, or the
crossentropy over the class axis), then reduces them to a scalar:
"sum_over_batch_size" (default) divides the weighted sum by the number of values, "sum" does not,
"mean_with_sample_weight" divides by the sum of the weights. A mask (B, T) coming from the model's
output (e.g. after `Embedding(mask_zero=True)` and `LSTM(return_sequences=True)`) weights the values
as Keras does: masked values count zero and the mean is over the valid ones.

Probabilities are clipped to [ε, 1 − ε] (ε = 1e-7) before the logarithm, as Keras does, and the
gradient follows the clip. `from_logits=True` uses log-softmax / log-sigmoid forms that never
overflow. `Loss._values_and_grad` returns the values and the per-element factor `local` such that
dL/dy_pred = (dL/dvalue)[..., None] · local; all of it is vectorised numpy.
"""

import math

import numpy as np

from . import config as _config
from .ops import all_finite


def _as_float(y, dtype, arg):
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"`{arg}` must be numeric. Received an array of dtype {y.dtype}.")
    y = y.astype(dtype, copy=False)
    return y


def _check_finite(y, arg):
    if not all_finite(y):
        raise ValueError(f"`{arg}` contains NaN or infinite values; every value must be finite.")


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Make ranks agree when they differ by a trailing axis of size 1 (Keras's rule)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _same_shape(y_true, y_pred, loss_name):
    """Return y_true shaped like y_pred, after Keras's rank reconciliation; raise if incompatible."""
    a, b = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if a.shape != b.shape:
        raise ValueError(
            f"{loss_name}: `y_true` and `y_pred` must have the same shape. Received: "
            f"y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    _check_finite(y_true, "y_true")
    return y_true.reshape(y_pred.shape)


# ----- per-sample values and their local gradients -----

def _mse(y_true, y_pred):
    # value = mean((p − t)², −1) ; dvalue/dp = 2(p − t)/K
    diff = y_pred - y_true
    k = y_pred.shape[-1]
    return np.mean(diff * diff, axis=-1), diff * (2.0 / k)


def _mae(y_true, y_pred):
    # value = mean(|p − t|, −1) ; dvalue/dp = sign(p − t)/K
    diff = y_pred - y_true
    k = y_pred.shape[-1]
    return np.mean(np.abs(diff), axis=-1), np.sign(diff) * (1.0 / k)


def _bce(y_true, y_pred, from_logits, eps):
    k = y_pred.shape[-1]
    if from_logits:
        # e = max(z, 0) − z·t + log(1 + exp(−|z|)) ; de/dz = σ(z) − t
        z = y_pred
        e = np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))
        sig = np.exp(-np.logaddexp(0, -z)).astype(z.dtype, copy=False)
        return np.mean(e, axis=-1), (sig - y_true) * (1.0 / k)
    # p = clip(y_pred, ε, 1 − ε) ; e = −(t·log p + (1 − t)·log(1 − p)) ; de/dp = (p − t)/(p(1 − p))
    p = np.clip(y_pred, eps, 1 - eps)
    e = -(y_true * np.log(p) + (1 - y_true) * np.log1p(-p))
    inside = (y_pred >= eps) & (y_pred <= 1 - eps)
    local = (p - y_true) / (p * (1 - p)) * inside * (1.0 / k)
    return np.mean(e, axis=-1), local


def _normalized_log(y_pred, eps):
    """q = p / Σp, clipped to [ε, 1 − ε]; returns (log q, q, Σp, inside-clip mask)."""
    s = np.sum(y_pred, axis=-1, keepdims=True)
    q = y_pred / s
    qc = np.clip(q, eps, 1 - eps)
    return np.log(qc), qc, q, s, (q >= eps) & (q <= 1 - eps)


def _through_normalization(dq, q, s):
    # q_j = p_j / Σp  =>  dL/dp_j = (dq_j − Σ_k dq_k q_k) / Σp
    return (dq - np.sum(dq * q, axis=-1, keepdims=True)) / s


def _cce(y_true, y_pred, from_logits, eps):
    if from_logits:
        # value = −Σ t·log_softmax(z) ; dvalue/dz = softmax(z)·Σt − t
        z = y_pred - np.max(y_pred, axis=-1, keepdims=True)
        lse = np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
        logp = z - lse
        return -np.sum(y_true * logp, axis=-1), np.exp(logp) * np.sum(y_true, -1, keepdims=True) - y_true
    logq, qc, q, s, inside = _normalized_log(y_pred, eps)
    dq = -y_true / qc * inside
    return -np.sum(y_true * logq, axis=-1), _through_normalization(dq, q, s)


def _scce(labels, y_pred, from_logits, eps):
    k = y_pred.shape[-1]
    onehot_idx = labels[..., None]
    if from_logits:
        # value = −log_softmax(z)[label] ; dvalue/dz = softmax(z) − onehot
        z = y_pred - np.max(y_pred, axis=-1, keepdims=True)
        lse = np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
        logp = z - lse
        values = -np.take_along_axis(logp, onehot_idx, axis=-1)[..., 0]
        local = np.exp(logp)
        np.put_along_axis(local, onehot_idx, np.take_along_axis(local, onehot_idx, -1) - 1, axis=-1)
        return values, local
    logq, qc, q, s, inside = _normalized_log(y_pred, eps)
    values = -np.take_along_axis(logq, onehot_idx, axis=-1)[..., 0]
    dq = np.zeros_like(y_pred)
    picked = -1.0 / np.take_along_axis(qc, onehot_idx, -1) * np.take_along_axis(inside, onehot_idx, -1)
    np.put_along_axis(dq, onehot_idx, picked.astype(y_pred.dtype), axis=-1)
    del k
    return values, _through_normalization(dq, q, s)


def _sparse_labels(y_true, y_pred, loss_name):
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"{loss_name}: `y_true` must hold one integer label per prediction, shaped like `y_pred` "
            f"without its last (class) axis. Received: y_true.shape={np.asarray(y_true).shape}, "
            f"y_pred.shape={y_pred.shape}"
        )
    if y_true.dtype.kind == "f":
        if not np.isfinite(y_true).all() or np.any(y_true != np.floor(y_true)):
            raise ValueError(f"{loss_name}: labels must be integers. Received non-integer or NaN values.")
    elif y_true.dtype.kind not in "iub":
        raise TypeError(f"{loss_name}: labels must be integers. Received dtype {y_true.dtype}.")
    labels = y_true.astype(np.intp, copy=False)
    k = y_pred.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(
            f"{loss_name}: labels must be in [0, {k - 1}] for {k} classes. Received label {int(bad)}."
        )
    return labels


# ----- public functions (per-sample values, as in keras.losses) -----

def mean_squared_error(y_true, y_pred):
    """mean(square(y_true − y_pred), axis=−1)."""
    y_pred = np.asarray(y_pred)
    y_true = _same_shape(_as_float(y_true, y_pred.dtype, "y_true"), y_pred, "mean_squared_error")
    return _mse(y_true, y_pred)[0]


def mean_absolute_error(y_true, y_pred):
    """mean(abs(y_true − y_pred), axis=−1)."""
    y_pred = np.asarray(y_pred)
    y_true = _same_shape(_as_float(y_true, y_pred.dtype, "y_true"), y_pred, "mean_absolute_error")
    return _mae(y_true, y_pred)[0]


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """mean(−(t·log p + (1 − t)·log(1 − p)), axis=−1), p clipped to [ε, 1 − ε]."""
    return BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing).call(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """−Σ t·log(p / Σp), p clipped to [ε, 1 − ε]."""
    return CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing).call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """−log(p[label] / Σp), p clipped to [ε, 1 − ε]."""
    return SparseCategoricalCrossentropy(from_logits=from_logits).call(y_true, y_pred)


# ----- loss classes -----

_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


class Loss:
    """Base class: `loss(y_true, y_pred, sample_weight=None)` returns the reduced scalar."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"Invalid value for argument `reduction`. Expected one of {set(_REDUCTIONS)}. "
                f"Received: reduction={reduction!r}"
            )
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    # subclasses: return (values, local) for float arrays y_true, y_pred
    fuses_softmax = False  # see CategoricalCrossentropy

    def _values_and_local(self, y_true, y_pred):
        raise NotImplementedError

    def _prepare(self, y_true, y_pred):
        return _same_shape(_as_float(y_true, y_pred.dtype, "y_true"), y_pred, self.name)

    def call(self, y_true, y_pred):
        """Per-sample loss values (before reduction)."""
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(_config.floatx())
        return self._values_and_local(self._prepare(y_true, y_pred), y_pred)[0]

    def _weights(self, values_shape, sample_weight, mask, dtype):
        """Combine sample_weight and mask into per-value weights (None = all ones)."""
        w = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=dtype)
            if sw.ndim > len(values_shape) and sw.shape[-1] == 1:
                sw = sw[..., 0]
            if sw.ndim < len(values_shape):
                sw = sw.reshape(sw.shape + (1,) * (len(values_shape) - sw.ndim))
            try:
                w = np.broadcast_to(sw, values_shape)
            except ValueError:
                raise ValueError(
                    f"`sample_weight` of shape {sw.shape} cannot be broadcast to the loss values of "
                    f"shape {values_shape}."
                ) from None
        if mask is not None:
            m = mask.astype(dtype)
            if self.reduction in ("mean", "sum_over_batch_size"):
                valid = m.sum()
                m = m * (m.size / valid if valid > 0 else 0.0)
            w = m if w is None else w * m
        return w

    def _reduce(self, values, w):
        """Reduced loss and dLoss/dvalues."""
        if w is not None:
            weighted = values * w
        else:
            weighted = values
        g = self._value_gradient(w, values.shape, values.dtype)
        if self.reduction in (None, "none"):
            return weighted, g
        return values.dtype.type(weighted.sum() / self._divisor(w, values.size)), g

    def _divisor(self, w, size):
        """What the weighted sum of the values is divided by."""
        if self.reduction == "sum":
            return 1.0
        if self.reduction == "mean_with_sample_weight" and w is not None:
            return float(w.sum()) or 1.0
        return float(size) or 1.0

    def _value_gradient(self, w, shape, dtype):
        """dLoss/dvalues (what _reduce returns second), from the weights alone."""
        if self.reduction in (None, "none"):
            return np.ascontiguousarray(w, dtype) if w is not None else np.ones(shape, dtype)
        divisor = dtype.type(self._divisor(w, math.prod(shape)))
        if w is None:
            return np.full(shape, dtype.type(1) / divisor, dtype)
        return np.ascontiguousarray(w / divisor, dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(_config.floatx())
        values, _ = self._values_and_local(self._prepare(y_true, y_pred), y_pred)
        w = self._weights(values.shape, sample_weight, None, values.dtype)
        return self._reduce(values, w)[0]

    def _loss_and_grad(self, y_true, y_pred, sample_weight=None, mask=None, softmax_logits=False):
        """Scalar loss and dLoss/dy_pred for a model output `y_pred` (float array). With
        `softmax_logits` (only where `fuses_softmax`), the gradient is dLoss/dz instead, for
        y_pred = softmax(z): the output layer then skips its softmax backward."""
        prepared = self._prepare(y_true, y_pred)
        if softmax_logits:
            # the kernels: values and g·∂values/∂z in one pass over the rows (ops.crossentropy_on_softmax)
            w = self._weights(y_pred.shape[:-1], sample_weight, mask, y_pred.dtype)
            g = self._value_gradient(w, y_pred.shape[:-1], y_pred.dtype)
            values, grad = self._values_and_logit_grad(prepared, np.ascontiguousarray(y_pred), g)
            return self._reduce(values, w)[0], grad
        values, local = self._values_and_local(prepared, y_pred)
        w = self._weights(values.shape, sample_weight, mask, values.dtype)
        loss, g = self._reduce(values, w)
        grad = local * g[..., None].astype(local.dtype, copy=False)
        return loss, grad

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


def _snake(name):
    import re

    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class MeanSquaredError(Loss):
    """mean(square(y_true − y_pred)) over the last axis, then reduced."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)

    def _values_and_local(self, y_true, y_pred):
        return _mse(y_true, y_pred)


class MeanAbsoluteError(Loss):
    """mean(abs(y_true − y_pred)) over the last axis, then reduced."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name, reduction, dtype)

    def _values_and_local(self, y_true, y_pred):
        return _mae(y_true, y_pred)


class BinaryCrossentropy(Loss):
    """Binary crossentropy, mean over the last axis; labels in [0, 1]."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        if axis != -1:
            raise ValueError(f"lstmfast losses reduce over the last axis only. Received: axis={axis}")
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis

    def _prepare(self, y_true, y_pred):
        y_true = super()._prepare(y_true, y_pred)
        _check_finite(y_true, "y_true")
        if y_true.size and (y_true.min() < 0 or y_true.max() > 1):
            raise ValueError(
                f"{self.name}: labels must be in [0, 1]. Received values in "
                f"[{float(y_true.min())}, {float(y_true.max())}]."
            )
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return y_true

    def _values_and_local(self, y_true, y_pred):
        return _bce(y_true, y_pred, self.from_logits, _config.epsilon())

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalCrossentropy(Loss):
    """Crossentropy between one-hot (or soft) labels and predicted class probabilities."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        if axis != -1:
            raise ValueError(f"lstmfast losses reduce over the last axis only. Received: axis={axis}")
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis

    def _prepare(self, y_true, y_pred):
        y_true = _as_float(y_true, y_pred.dtype, "y_true")
        if y_true.shape != y_pred.shape:
            hint = (" (integer labels? use loss='sparse_categorical_crossentropy', or "
                    "lstmfast.utils.to_categorical)") if y_true.ndim == y_pred.ndim - 1 or (
                        y_true.shape[-1:] == (1,)) else ""
            raise ValueError(
                f"{self.name}: `y_true` must be one-hot with the same shape as `y_pred`{hint}. "
                f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
            )
        _check_finite(y_true, "y_true")
        if self.label_smoothing:
            k = y_true.shape[-1]
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / k
        return y_true

    def _values_and_local(self, y_true, y_pred):
        return _cce(y_true, y_pred, self.from_logits, _config.epsilon())

    @property
    def fuses_softmax(self):
        """Whether _loss_and_grad can give ∂L/∂z past a softmax output (probabilities in)."""
        return not self.from_logits

    def _values_and_logit_grad(self, y_true, y_pred, g):
        # With q = p/Σp clipped to [ε, 1 − ε] (inside_j: q_j not clipped), the chain through the
        # normalization and the softmax Jacobian collapses: ∂L/∂z_i = q_i·Σ_k t_k·inside_k −
        # t_i·inside_i (q − t where nothing is clipped), times g: no product over the classes.
        from . import ops

        return ops.crossentropy_on_softmax(y_pred, y_true, g, epsilon=_config.epsilon())

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(Loss):
    """Crossentropy between integer labels and predicted class probabilities."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        if ignore_class is not None:
            raise ValueError("Argument `ignore_class` is not supported by lstmfast (only None).")
        self.from_logits = bool(from_logits)
        self.ignore_class = None

    def _prepare(self, y_true, y_pred):
        return _sparse_labels(y_true, y_pred, self.name)

    def _values_and_local(self, labels, y_pred):
        return _scce(labels, y_pred, self.from_logits, _config.epsilon())

    @property
    def fuses_softmax(self):
        return not self.from_logits

    def _values_and_logit_grad(self, labels, y_pred, g):
        # ∂L/∂z = g·inside_y·(q − onehot(y)), the one-hot case of CategoricalCrossentropy's
        from . import ops

        return ops.crossentropy_on_softmax(y_pred, labels, g, epsilon=_config.epsilon(), sparse=True)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": None}


ALL_OBJECTS = {
    "MeanSquaredError": MeanSquaredError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "BinaryCrossentropy": BinaryCrossentropy,
    "CategoricalCrossentropy": CategoricalCrossentropy,
    "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}

_FUNCTIONS = {
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}


class FunctionLoss(Loss):
    """A loss written as a numpy function `fn(y_true, y_pred)` that returns one value per sample
    (the shape of y_pred without its last axis), as Keras's loss functions do. Its gradient is
    taken by central differences in float64, one last-axis entry at a time for every sample at
    once (each sample's value depends on its own row only):

        ∂l_b/∂ŷ_bj ≈ (fn(ŷ + h·e_j)_b − fn(ŷ − h·e_j)_b) / 2h,   h = 1e-6 · max(1, |ŷ_bj|)

    2·K calls of `fn` per step for K outputs per row. A loss that needs exact or cheaper gradients
    subclasses `Loss` and writes `_values_and_local`."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None):
        super().__init__(name or getattr(fn, "__name__", "custom_loss"), reduction)
        self.fn = fn

    def _values(self, y_true, y_pred):
        values = np.asarray(self.fn(y_true, y_pred), dtype=np.float64)
        if values.shape != y_pred.shape[:-1]:
            raise ValueError(
                f"Loss function {self.name!r} must return one value per sample, shaped {y_pred.shape[:-1]} "
                f"(y_pred's shape without its last axis). It returned shape {values.shape}."
            )
        return values

    def _values_and_local(self, y_true, y_pred):
        t, p = y_true.astype(np.float64), y_pred.astype(np.float64)
        values = self._values(t, p)
        local = np.empty(p.shape, dtype=np.float64)
        for j in range(p.shape[-1]):
            h = 1e-6 * np.maximum(1.0, np.abs(p[..., j]))
            up, down = p.copy(), p.copy()
            up[..., j] += h
            down[..., j] -= h
            local[..., j] = (self._values(t, up) - self._values(t, down)) / (2 * h)
        return values.astype(y_pred.dtype), local.astype(y_pred.dtype)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


def get(identifier):
    """Return a `Loss` for a name ("mse", "binary_crossentropy", ...), a config dict, a class, a
    built-in loss function, a `Loss` instance, or a numpy function of (y_true, y_pred) returning
    per-sample values (`FunctionLoss`)."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        cls = ALL_OBJECTS.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown loss: {identifier!r}. Expected one of {sorted(ALL_OBJECTS)}.")
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, str):
        cls = ALL_OBJECTS.get(identifier)
        if cls is None:
            raise ValueError(
                f"Unknown loss: {identifier!r}. Expected one of "
                f"{sorted(k for k in ALL_OBJECTS if k.islower())} or a lstmfast.losses.Loss."
            )
        loss = cls()
        if identifier in ("mse", "mae", "MSE", "MAE"):
            loss.name = identifier.lower()
        return loss
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier) and not isinstance(identifier, type):
        return FunctionLoss(identifier)
    raise ValueError(
        f"Could not interpret loss identifier: {identifier!r}. Expected one of "
        f"{sorted(k for k in ALL_OBJECTS if k.islower())}, a lstmfast.losses.Loss, or a function of "
        "(y_true, y_pred) returning per-sample values."
    )


def serialize(loss):
    return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
            "registered_name": None}


def deserialize(config):
    return get(config)
