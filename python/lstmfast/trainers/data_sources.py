"""Data that does not fit in memory: batches from a generator, an iterable or a `PyDataset`.

`fit`, `evaluate` and `predict` take, in place of arrays, anything that yields batches
`(x, y)` or `(x, y, sample_weight)` (for `predict`, `x` alone or any of those):

    a Python generator or iterator      read on across epochs; `steps_per_epoch` cuts the epochs,
                                        else an epoch ends when it runs out
    an iterable (a list of batches, a   iterated afresh every epoch
    tf.data.Dataset, a torch DataLoader)
    a `PyDataset` (`__len__` and        batch i is `dataset[i]`; `on_epoch_end()` after each epoch;
    `__getitem__`), as Keras has it     `fit(shuffle=True)` (the default) visits the batches in a
                                        new random order every epoch, as Keras does

A background thread reads the next batches while the model trains on the current one (the C++
kernels release the interpreter, so reading from disk overlaps with them): `max_queue_size`
batches ahead (a `PyDataset`'s own setting, else 2).
"""

import queue
import threading
import types

import numpy as np

__all__ = ["PyDataset", "BatchSource", "is_batch_source", "unpack_batch", "unpack_targets"]

_EPOCH_END = object()  # an iterable's epoch is over
_DONE = object()       # the source has nothing more


class PyDataset:
    """Keras's `PyDataset`: subclass it with `__len__` (batches per epoch) and `__getitem__(i)`
    (batch i, a tuple `(x, y)` or `(x, y, sample_weight)`); `on_epoch_end()` runs after each
    epoch (to reshuffle, say). `workers` and `use_multiprocessing` are accepted for Keras code;
    one background thread reads ahead `max_queue_size` batches."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__ (the number of batches).")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__ (batch `index`).")

    def on_epoch_end(self):
        pass

    @property
    def num_batches(self):
        return len(self)


def is_batch_source(x):
    """Whether `x` yields batches rather than being the data itself (an array, or a list or tuple
    of arrays for a model with several inputs)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(x, "shape"):
        return False
    return isinstance(x, PyDataset) or hasattr(x, "__iter__") or hasattr(x, "__next__")


def unpack_batch(batch, what):
    """(x, y, sample_weight) of one batch, as Keras reads it: a tuple of 1, 2 or 3 items (a list
    counts as a tuple), or x alone."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"A batch from the data given to {what} must be x, (x,), (x, y) or (x, y, "
                         f"sample_weight). Received a tuple of {len(batch)} items.")
    return batch + (None,) * (3 - len(batch))


def unpack_targets(batch, what):
    """(x, y, sample_weight) of a training or evaluation batch: y is required."""
    x, y, sw = unpack_batch(batch, what)
    if y is None:
        raise ValueError(f"The data given to {what} yields batches without targets; each batch must be "
                         "(x, y) or (x, y, sample_weight).")
    return x, y, sw


class BatchSource:
    """Reads batches from `source` in a background thread; `epoch()` yields one epoch's batches.

    `steps`: batches per epoch (None: until the source ends an epoch or runs out). `rng` (a numpy
    Generator, used by the reader thread alone): a PyDataset's batches are read in a new random
    order every epoch; None: in order."""

    def __init__(self, source, steps=None, rng=None):
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"The number of steps must be a positive integer. Received: {steps!r}")
        self.source = source
        if isinstance(source, PyDataset):
            self._kind, n = "pydataset", len(source)
            self.steps = n if steps is None else int(steps)
            depth = max(1, int(getattr(source, "max_queue_size", 10) or 1))
        elif isinstance(source, types.GeneratorType) or (hasattr(source, "__next__") and iter(source) is source):
            self._kind, self.steps, depth = "iterator", None if steps is None else int(steps), 2
        else:
            self._kind, depth = "iterable", 2
            size = len(source) if hasattr(source, "__len__") else None
            self.steps = int(steps) if steps is not None else size
        self._steps_given = steps is not None
        self._rng = rng if self._kind == "pydataset" else None
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = None
        self.exhausted = False

    # ----- the reader thread -----
    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self):
        try:
            if self._kind == "iterator":
                for batch in self.source:
                    if not self._put(batch):
                        return
            else:
                while not self._stop.is_set():
                    if self._kind == "pydataset":
                        n = len(self.source)
                        order = self._rng.permutation(n) if self._rng is not None else range(n)
                        for i in order:
                            if not self._put(self.source[int(i)]):
                                return
                        self.source.on_epoch_end()
                    else:
                        for batch in self.source:
                            if not self._put(batch):
                                return
                    if not self._put(_EPOCH_END):
                        return
        except BaseException as e:  # handed to the training loop, raised there
            self._put(_Failure(e))
            return
        self._put(_DONE)

    def _start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="lstmfast-data", daemon=True)
            self._thread.start()

    def close(self):
        """Stop the reader (it may have read a few batches ahead that are then dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ----- the training loop's side -----
    def epoch(self):
        """(step, batch) for one epoch."""
        if self.exhausted:
            return
        self._start()
        step = 0
        while self.steps is None or step < self.steps:
            item = self._queue.get()
            if isinstance(item, _Failure):
                raise item.error
            if item is _DONE:
                self.exhausted = True
                return
            if item is _EPOCH_END:
                if self._steps_given:  # the epochs are cut by steps, not by the source
                    continue
                return
            yield step, item
            step += 1
        if self._kind != "iterator" and not self._steps_given:
            self._queue.get()  # the source's own end of this epoch


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error
