"""Utilities named as in `keras.utils`: `set_random_seed`, `to_categorical`, `pad_sequences`,
`PyDataset` and `timeseries_dataset_from_array`."""

import random

import numpy as np

from . import _random
from .data.text import pad_sequences
from .trainers.data_sources import PyDataset

__all__ = ["set_random_seed", "to_categorical", "pad_sequences", "PyDataset", "TimeseriesDataset", "BatchArray",
           "timeseries_dataset_from_array"]


def set_random_seed(seed):
    """Seed every random draw lstmfast makes (initializers, dropout, shuffling), plus Python's
    `random` and numpy's legacy global state. After `set_random_seed(s)`, building and fitting
    the same model twice gives bit-identical results."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"Expected `seed` argument to be a non-negative integer. Received: seed={seed!r}"
        )
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _random.set_global_seed(seed)


def to_categorical(x, num_classes=None):
    """One-hot encode integer class labels: shape (...,) -> (..., num_classes) float32.

    A trailing axis of size 1 is dropped first, as in Keras.
    """
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or np.any(x != np.floor(x)):
            raise ValueError("to_categorical expects integer class labels. Received non-integer values.")
    elif x.dtype.kind not in "iub":
        raise TypeError(f"to_categorical expects integer class labels. Received dtype {x.dtype}.")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.size and x.min() < 0:
        raise ValueError(f"to_categorical expects non-negative labels. Received {int(x.min())}.")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    elif x.size and x.max() >= num_classes:
        raise ValueError(
            f"to_categorical: label {int(x.max())} is out of range for num_classes={num_classes}."
        )
    out = np.zeros(x.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


class BatchArray(np.ndarray):
    """A numpy array that also answers `.numpy()` (itself, as a plain array), as the tensors of
    the `tf.data` batches that Keras's `timeseries_dataset_from_array` yields do: Keras code reads
    `x.numpy()` or `x[0][:, 1].numpy()` from them. Everything else is numpy's."""

    def numpy(self):
        return np.asarray(self)


class _TfDataIdioms(PyDataset):
    """What Keras code written against a `tf.data.Dataset` asks of a dataset of batches:
    iteration (`for x, y in ds`), `take(n)` and `as_numpy_iterator()`."""

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def take(self, count):
        """The first `count` batches (all of them when `count` is negative), as `tf.data`'s `take`:
        a `PyDataset` that `fit`, `evaluate` and `predict` take too."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
            raise TypeError(f"`count` must be an integer. Received: count={count!r}")
        return _FirstBatches(self, len(self) if count < 0 else min(int(count), len(self)))

    def as_numpy_iterator(self):
        """The batches as plain numpy arrays, as `tf.data`'s `as_numpy_iterator`."""
        for batch in self:
            yield tuple(np.asarray(a) for a in batch) if isinstance(batch, tuple) else np.asarray(batch)


class TimeseriesDataset(_TfDataIdioms):
    """What `timeseries_dataset_from_array` returns: a `PyDataset` whose batch i holds windows
    `data[p : p + sequence_length·sampling_rate : sampling_rate]` for its start positions p (and
    `targets[p]` beside each), cut out when the batch is read, not stored. Batches are
    `BatchArray`s. For Keras code written against the `tf.data.Dataset` that Keras returns, it
    iterates (`for x, y in ds`), and has `take(n)` and `as_numpy_iterator()`."""

    def __init__(self, data, targets, sequence_length, sequence_stride=1, sampling_rate=1, batch_size=128,
                 shuffle=False, seed=None, start_index=None, end_index=None):
        super().__init__(max_queue_size=2)
        for name, value in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                            ("sampling_rate", sampling_rate)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size <= 0):
            raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}")
        start = 0 if start_index is None else int(start_index)
        end = len(data) if end_index is None else int(end_index)
        if not 0 <= start < end <= len(data):
            raise ValueError(f"`start_index` and `end_index` must satisfy 0 <= start_index < end_index <= "
                             f"len(data) = {len(data)}. Received: start_index={start_index}, end_index={end_index}")
        if targets is not None and len(targets) != len(data):
            raise ValueError(f"Expected data and targets to have the same number of time steps. Received: "
                             f"len(data)={len(data)}, len(targets)={len(targets)}")
        n = end - start - (sequence_length - 1) * sampling_rate
        if targets is not None:
            n = min(n, len(targets))
        if n <= 0:
            raise ValueError(f"{end - start} time steps cannot hold one window of sequence_length={sequence_length} "
                             f"at sampling_rate={sampling_rate}.")
        positions = np.arange(0, n, sequence_stride)
        if shuffle:
            np.random.RandomState(np.random.randint(1_000_000) if seed is None else seed).shuffle(positions)
        self.data, self.targets, self.start = data, targets, start
        self.offsets = np.arange(0, sequence_length * sampling_rate, sampling_rate)
        self.positions = positions
        self.batch_size = len(positions) if batch_size is None else int(batch_size)

    def __len__(self):
        return -(-len(self.positions) // self.batch_size)

    def __getitem__(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        index %= len(self)
        p = self.positions[index * self.batch_size:(index + 1) * self.batch_size] + self.start
        x = np.asarray(self.data)[p[:, None] + self.offsets].view(BatchArray)  # windows (b, sequence_length, …)
        if self.targets is None:
            return x
        return x, np.asarray(self.targets)[p].view(BatchArray)


class _FirstBatches(_TfDataIdioms):
    """The first `count` batches of a dataset (its `take`)."""

    def __init__(self, source, count):
        super().__init__(max_queue_size=source.max_queue_size)
        self.source, self.count = source, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if not -self.count <= index < self.count:
            raise IndexError(f"batch {index} of {self.count}")
        return self.source[index % self.count]


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Keras's `timeseries_dataset_from_array`: sliding windows over `data` (time first) as batches
    of (windows, targets), `targets[i]` going with the window that starts at step i (None: windows
    only). Returns a `TimeseriesDataset` that `fit`, `evaluate` and `predict` take as they are."""
    return TimeseriesDataset(data, targets, sequence_length, sequence_stride, sampling_rate, batch_size,
                             shuffle, seed, start_index, end_index)
