"""Time series: sliding windows, scalers and chronological splits.

Shapes: a series is ``(N,)`` or ``(N, F)`` (N time steps, F features). A
window batch is ``X`` of shape ``(W, n_steps, F)`` with targets ``y`` of shape
``(W, horizon)``: window ``w`` sees steps ``start+w .. start+w+n_steps-1`` and
its targets are the ``horizon`` steps right after.

Scalers are fitted on the training part only and then applied to every part,
so nothing about the validation or test period leaks into training.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sliding_windows", "window_targets_index", "MinMaxScaler", "StandardScaler",
    "scaler_from_config", "chronological_split", "interpolate_missing",
]


def _as_2d(series, name="series"):
    a = np.asarray(series, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"`{name}` must be 1-D (N,) or 2-D (N, F). Received shape {a.shape}")
    return a


def sliding_windows(series, n_steps, horizon=1, target=None, target_column=0, dtype=np.float32):
    """Cut a series into overlapping input windows and the values that follow them.

    Args:
        series: ``(N,)`` or ``(N, F)`` input features.
        n_steps: window length (time steps the model sees).
        horizon: how many following steps of the target each window predicts.
        target: optional ``(N,)`` target series; by default column
            ``target_column`` of ``series``.
        dtype: dtype of the returned arrays.

    Returns:
        ``X`` of shape ``(N - n_steps - horizon + 1, n_steps, F)`` and ``y`` of
        shape ``(same, horizon)``: ``y[w, k] = target[w + n_steps + k]``.
    """
    x = _as_2d(series)
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"Argument `n_steps` must be a positive integer. Received: n_steps={n_steps!r}")
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"Argument `horizon` must be a positive integer. Received: horizon={horizon!r}")
    t = x[:, target_column] if target is None else np.asarray(target, dtype=np.float64).reshape(-1)
    if len(t) != len(x):
        raise ValueError(f"`target` has {len(t)} steps but `series` has {len(x)}")
    n_windows = len(x) - n_steps - horizon + 1
    if n_windows < 1:
        raise ValueError(
            f"a series of {len(x)} steps is too short for windows of n_steps={n_steps} "
            f"and horizon={horizon} (needs at least {n_steps + horizon})"
        )
    idx = np.arange(n_windows)[:, None]
    X = x[idx + np.arange(n_steps)[None, :]]
    y = t[idx + n_steps + np.arange(horizon)[None, :]]
    return X.astype(dtype), y.astype(dtype)


def window_targets_index(n, n_steps, horizon=1):
    """Index (into the series) of the first target of each window from :func:`sliding_windows`."""
    return np.arange(n - n_steps - horizon + 1) + n_steps


class _Scaler:
    kind = ""

    def __init__(self):
        self.a_ = None  # x_scaled = (x - a) / b
        self.b_ = None

    @property
    def fitted(self):
        return self.a_ is not None

    def _check(self):
        if not self.fitted:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit() on the training part first")

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def transform(self, x):
        """Scale ``x`` (``(N,)`` or ``(..., F)``) with the statistics from ``fit``."""
        self._check()
        x = np.asarray(x, dtype=np.float64)
        return (x - self._bc(x, self.a_)) / self._bc(x, self.b_)

    def inverse_transform(self, x, column=None):
        """Undo :meth:`transform`; ``column`` picks one feature's statistics for a 1-feature array."""
        self._check()
        x = np.asarray(x, dtype=np.float64)
        a, b = self.a_, self.b_
        if column is not None:
            a, b = a[column:column + 1], b[column:column + 1]
        return x * self._bc(x, b) + self._bc(x, a)

    @staticmethod
    def _bc(x, stat):
        # (N,) inputs with one feature scale by the scalar; otherwise by the last axis.
        if x.ndim == 0 or (x.ndim >= 1 and stat.shape[0] == 1):
            return stat[0]
        if x.shape[-1] != stat.shape[0]:
            raise ValueError(f"x has {x.shape[-1]} features but the scaler was fitted on {stat.shape[0]}")
        return stat

    def get_config(self):
        self._check()
        return {"kind": self.kind, "a": self.a_.tolist(), "b": self.b_.tolist()}


class MinMaxScaler(_Scaler):
    """Scale each feature to ``feature_range`` using the training minimum and maximum."""

    kind = "minmax"

    def __init__(self, feature_range=(0.0, 1.0)):
        super().__init__()
        self.feature_range = tuple(feature_range)

    def fit(self, x):
        x = _as_2d(x, "x")
        lo, hi = self.feature_range
        mn, mx = x.min(axis=0), x.max(axis=0)
        span = np.where(mx > mn, mx - mn, 1.0)
        # x_scaled = (x - mn)/span*(hi-lo) + lo  ==  (x - a)/b
        self.b_ = span / (hi - lo)
        self.a_ = mn - lo * self.b_
        return self

    def get_config(self):
        return {**super().get_config(), "feature_range": list(self.feature_range)}


class StandardScaler(_Scaler):
    """Scale each feature to zero mean and unit variance over the training part."""

    kind = "standard"

    def fit(self, x):
        x = _as_2d(x, "x")
        std = x.std(axis=0)
        self.a_ = x.mean(axis=0)
        self.b_ = np.where(std > 0, std, 1.0)
        return self


def scaler_from_config(config):
    """Rebuild a fitted scaler from :meth:`get_config` output."""
    kind = config.get("kind")
    if kind == "minmax":
        s = MinMaxScaler(config.get("feature_range", (0.0, 1.0)))
    elif kind == "standard":
        s = StandardScaler()
    else:
        raise ValueError(f"unknown scaler kind {kind!r}; expected 'minmax' or 'standard'")
    s.a_ = np.asarray(config["a"], dtype=np.float64)
    s.b_ = np.asarray(config["b"], dtype=np.float64)
    return s


def chronological_split(n, test_size, val_size=0):
    """Split ``range(n)`` in time order into train, validation and test slices.

    The test part is the last ``test_size`` steps, validation the
    ``val_size`` steps before it, training everything earlier. Sizes below 1
    are read as fractions of ``n``. Returns three ``slice`` objects.
    """
    def count(size, name):
        if size < 0:
            raise ValueError(f"Argument `{name}` must be non-negative. Received: {name}={size!r}")
        return int(round(size * n)) if 0 < size < 1 else int(size)

    n_test, n_val = count(test_size, "test_size"), count(val_size, "val_size")
    n_train = n - n_test - n_val
    if n_train < 1:
        raise ValueError(f"a series of {n} steps leaves nothing to train on after {n_val} validation and {n_test} test steps")
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)


def interpolate_missing(values):
    """Fill NaNs in each column by linear interpolation in time (ends: nearest value).

    Returns ``(filled, n_filled)``. A column with no finite value raises ValueError.
    """
    a = np.array(values, dtype=np.float64, copy=True)
    flat = a.ndim == 1
    a2 = a[:, None] if flat else a
    filled = 0
    steps = np.arange(a2.shape[0])
    for j in range(a2.shape[1]):
        col = a2[:, j]
        bad = ~np.isfinite(col)
        if bad.all():
            raise ValueError(f"column {j} has no values")
        if bad.any():
            col[bad] = np.interp(steps[bad], steps[~bad], col[~bad])
            filled += int(bad.sum())
    return a, filled
