"""The one batch loop under `fit`, `evaluate` and `predict`.

    for step, index in EpochIterator(n, batch_size, shuffle=True, rng=rng).epoch():
        xb, yb = x[index], y[index]

`index` is a slice (in order) or an array of sample indices (a fresh permutation each epoch when
shuffling). The last batch holds the remainder: steps = ⌈n / batch_size⌉.
"""

import signal
import threading

__all__ = ["ArrayBatches", "EpochIterator", "InterruptGuard", "SourceBatches"]


class EpochIterator:
    """Batches of `batch_size` over `n` samples; `steps` per epoch."""

    def __init__(self, n, batch_size, shuffle=False, rng=None):
        self.n, self.batch_size = int(n), int(batch_size)
        self.shuffle = bool(shuffle) and shuffle != "batch"
        self.rng = rng
        self.steps = -(-self.n // self.batch_size)

    def epoch(self):
        """(step, index) for every batch of one pass over the samples."""
        order = self.rng.permutation(self.n) if self.shuffle else None
        b = self.batch_size
        for step in range(self.steps):
            if order is None:
                yield step, slice(step * b, min(self.n, (step + 1) * b))
            else:
                yield step, order[step * b:(step + 1) * b]


class ArrayBatches:
    """Batches (x, y, sample_weight) of arrays checked at the door, sliced per step."""

    def __init__(self, x, y=None, sw=None, batch_size=32, shuffle=False, rng=None):
        self.x, self.y, self.sw = x, y, sw
        self._it = EpochIterator(x.shape[0], batch_size, shuffle, rng)
        self.steps = self._it.steps

    def epoch(self):
        y, sw = self.y, self.sw
        for step, index in self._it.epoch():
            yield step, self.x[index], None if y is None else y[index], None if sw is None else sw[index]

    def close(self):
        pass


class SourceBatches:
    """Batches read from a generator, iterable or PyDataset (`data_sources.BatchSource`), each
    checked and converted by `prepare(batch) -> (x, y, sample_weight)` as it arrives; `rng` as in
    BatchSource (a PyDataset's batch order shuffled every epoch)."""

    def __init__(self, source, steps, prepare, rng=None):
        from .data_sources import BatchSource

        self._source = BatchSource(source, steps, rng)
        self._prepare = prepare
        self.steps = self._source.steps

    def epoch(self):
        for step, batch in self._source.epoch():
            yield (step, *self._prepare(batch))

    def close(self):
        self._source.close()


class InterruptGuard:
    """Turn the first Ctrl-C during `fit` into a request to stop after the current step.

    The step in progress (forward, backward, optimizer update) finishes, so the model holds the
    weights of the last finished step; a second Ctrl-C interrupts at once.
    """

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self._old = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):
                self._old = None
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
        return False
