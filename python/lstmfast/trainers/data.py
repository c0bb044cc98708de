"""Data at the door: what `fit`, `evaluate` and `predict` accept, checked and converted once.

Inputs are checked against the model (shapes, NaN/inf, token ids against an Embedding's range)
and converted once to the model's dtype, so that batches are plain slices with no conversion
inside the training loop. Messages say what was expected and what came.
"""

import numpy as np

from ..layers.embedding import Embedding
from ..layers.layer import _fmt_shape
from ..losses import SparseCategoricalCrossentropy
from ..ops import all_finite


def resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"Argument `verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


def check_batch_size(batch_size, default=32):
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


def unwrap_single(a, arg):
    """A list holding one array is that array (Keras accepts both for a one-input model)."""
    if isinstance(a, (list, tuple)) and len(a) == 1 and hasattr(a[0], "shape"):
        return a[0]
    if isinstance(a, dict):
        raise TypeError(f"`{arg}` must be a numpy array, or a list of arrays for a model with several "
                        "inputs; inputs given by name (a dict) are not supported.")
    return a


def coerce_array(x, arg):
    """`x` as a numeric numpy array with a batch axis, or a ValueError/TypeError saying why not."""
    if x is None:
        raise ValueError(f"Argument `{arg}` is required.")
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == object:
        raise TypeError(
            f"`{arg}` must be a numeric array. Received an object array (ragged sequences? pad "
            "them to one length first)."
        )
    if x.dtype.kind not in "biuf":
        raise TypeError(f"`{arg}` must be numeric. Received dtype {x.dtype}.")
    if x.ndim == 0:
        raise ValueError(f"`{arg}` must have a batch axis. Received a scalar.")
    return x


def prepare_array(x, arg, reader, dtype, expected, name):
    """One model input, checked and converted once: token ids when the layer that reads it
    (`reader`, None when none does) is an Embedding, else finite values of `dtype`; its shape
    must match the batch shape `expected` (None: any size) of the input called `name` in
    messages."""
    x = coerce_array(x, arg)
    if isinstance(reader, Embedding):
        x = reader._ids(x)
    else:
        if not all_finite(x):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
            raise ValueError(f"`{arg}` contains NaN or infinite values (first at index {bad}); "
                             "every value must be finite.")
        if x.dtype != dtype:
            x = x.astype(dtype)
    if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], x.shape[1:])):
        hint = ""
        if x.ndim + 1 == len(expected) and tuple(x.shape[1:]) + (1,) == tuple(
                e if e is not None else s for e, s in zip(expected[1:], tuple(x.shape[1:]) + (1,))):
            hint = " Add a trailing feature axis: x[..., None]."
        raise ValueError(
            f'Input 0 of layer "{name}" is incompatible with the layer: expected '
            f"shape={_fmt_shape(expected)}, found shape={_fmt_shape(x.shape)}.{hint}"
        )
    return np.ascontiguousarray(x)


def prepare_targets(y, n, loss, dtype, output_shape, arg="y"):
    """The targets for `n` samples, checked once against the model output (`output_shape`, batch
    axis first) by the loss, in `dtype` (integer labels stay integers for a sparse loss)."""
    y = unwrap_single(y, arg)
    if y is None:
        raise ValueError(f"Argument `{arg}` (the targets) is required for training and evaluation.")
    if type(y).__module__.startswith("torch"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind not in "biuf":
        raise TypeError(f"`{arg}` must be a numeric array. Received dtype {y.dtype}.")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(
            "Data cardinality is ambiguous. Make sure all arrays contain the same number of "
            f"samples. 'x' sizes: {n} 'y' sizes: {y.shape[0] if y.ndim else 'scalar'}"
        )
    if not isinstance(loss, SparseCategoricalCrossentropy):
        y = y.astype(dtype, copy=False)
    shape = (n,) + tuple(output_shape[1:])
    if None not in shape:  # an axis of unknown size (time) is checked batch by batch
        loss._prepare(y, np.broadcast_to(np.zeros((), dtype), shape))
    return np.ascontiguousarray(y)


def prepare_sample_weight(sample_weight, class_weight, y, n):
    """One weight per sample (float64) from `sample_weight` and/or `class_weight`, or None."""
    sw = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape[0] != n:
            raise ValueError(f"`sample_weight` has {sw.shape[0]} entries but there are {n} samples.")
        if not np.isfinite(sw).all():
            raise ValueError("`sample_weight` contains NaN or infinite values; every weight must be finite.")
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise TypeError("`class_weight` must be a dict mapping class index to weight.")
        yy = np.asarray(y)
        if yy.ndim >= 2 and yy.shape[-1] > 1:
            labels = np.argmax(yy, axis=-1)
        else:
            labels = np.rint(yy.reshape(yy.shape[0], -1)[:, 0]).astype(np.int64)
        labels = labels.reshape(n, -1)[:, 0] if labels.ndim > 1 else labels
        cw = np.array([class_weight.get(int(c), 1.0) for c in range(int(labels.max()) + 1)])
        w = cw[labels]
        sw = w if sw is None else sw * w
    return sw
