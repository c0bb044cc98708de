"""Data-parallel training over MPI: one added line, and `mpiexec -n N python train.py`.

    import lstmfast
    lstmfast.distribute.init()          # every rank; the rest of the script is unchanged
    model.fit(x, y, batch_size=64)      # each step: 64 samples split over the N ranks

Every rank runs the same script. `init()` joins the MPI job (`mpi4py`, from the `mpi` extra:
`pip install "lstmfast[mpi]"`), sizes each rank's kernel threads to its share of the machine's
cores, and makes `fit`, `evaluate` and `predict` data-parallel:

- at the start of `fit`, the weights and the optimizer state of rank 0 are copied to every rank;
- each step, each rank runs forward and backward on its part of the batch; the gradients, which
  every model keeps in one flat buffer (`lstmfast.parameters`), are summed over the ranks (in one
  `MPI_Allreduce`, or, in `fit`, as the next point says), each rank's weighted by its share of the
  batch:

      ∂L/∂w = Σ_r (n_r / n) · ∂L_r/∂w        n_r: rank r's samples of the step, n = Σ_r n_r

  which is the gradient of the batch's mean loss, as one process would compute it;
- the optimizer's update is shared out as the first stage of ZeRO does it: the buffer is cut into
  N contiguous parts, a reduce-scatter gives rank r the sum of its part r only, rank r updates
  that part of the weights (and keeps the optimizer's state of that part), and an allgather gives
  every rank all the updated weights (two ranks: each sends the other the half it updates, twice;
  more: `MPI_Reduce_scatter` and `MPI_Allgatherv`). The same bytes move as in one
  allreduce, and each rank does 1/N of the update. The optimizer's state is gathered whole at
  the end of every epoch and of `fit` (for checkpoints); `init(shard_optimizer=False)` keeps one
  allreduce and the whole update on every rank (so does deterministic mode, and an optimizer
  that cannot update a part);
- the loss and the metrics are summed over the ranks at the end of every epoch (and of
  `evaluate`), so logs, `History`, `EarlyStopping` and `ReduceLROnPlateau` see the same figures
  on every rank and decide alike; the progress bar, `ModelCheckpoint`, `CSVLogger` and
  `Model.save` act on rank 0 only.

Data: by default every rank is given the same whole arrays (`data="whole"`); each global batch
(`batch_size`, the same batches as one process would cut) is split into N near-equal parts.
With `init(data="shard")` each rank is given only its own part of the data (for example
`distribute.shard(x)`, or files read per rank) and takes its share of each batch of
`batch_size` from it; ranks with fewer samples take part in the later steps with none, so no
rank waits forever and no sample is dropped. Generators and datasets always give each rank its
own batches (the step's batch is the union of the ranks' batches).

Learning rate: the global batch is what `batch_size` says, so a script trains as it would in one
process; scaling the batch (and the learning rate with it) as N grows is the user's choice.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

__all__ = ["Strategy", "init", "current", "shard", "rank", "size", "is_chief", "barrier", "launched_by_mpi"]

_current = None

def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (`mpiexec`) with more than one rank
    (the size MPICH's and Open MPI's launchers put in the environment of every rank)."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        value = os.environ.get(var)
        if value is not None:
            try:
                return int(value) > 1
            except ValueError:
                return False
    return False


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("lstmfast.distribute needs mpi4py and an MPI library: pip install "
                          "\"lstmfast[mpi]\" (mpi4py with the MPICH wheel)") from e
    return MPI


class Strategy:
    """The MPI job this process is part of, and the collective operations `fit` needs."""

    def __init__(self, comm, data="whole", deterministic=False, shard_optimizer=True):
        if data not in ("whole", "shard"):
            raise ValueError(f"Argument `data` must be 'whole' or 'shard'. Received: data={data!r}")
        MPI = _import_mpi()
        self._MPI = MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.data = data
        self.deterministic = bool(deterministic)
        self.shard_optimizer = bool(shard_optimizer)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    # -------------------------------------------------------------- collectives
    def broadcast(self, array: np.ndarray) -> None:
        """array ← rank 0's array, in place (same shape and dtype on every rank; C-contiguous)."""
        if not array.flags.c_contiguous:
            raise ValueError(f"broadcast works in place on a C-contiguous array; got one of shape {array.shape} "
                             "that is not")
        self.comm.Bcast(array, root=0)

    def broadcast_object(self, obj):
        return self.comm.bcast(obj, root=0)

    def allreduce_sum(self, array: np.ndarray) -> None:
        """array ← Σ over ranks, in place. Deterministic mode: every rank gathers all the arrays
        and adds them in rank order, so the result is the same bits on every rank and in every
        run with this number of ranks."""
        if self.size == 1:
            return
        if self.deterministic:
            parts = np.empty((self.size,) + array.shape, array.dtype)
            self.comm.Allgather(array, parts)
            np.copyto(array, parts[0])
            for p in parts[1:]:
                array += p
        else:
            self.comm.Allreduce(self._MPI.IN_PLACE, array, op=self._MPI.SUM)

    def reduce_scatter_sum(self, array: np.ndarray, counts, displs, scratch: np.ndarray) -> None:
        """This rank's part of `array` ← its sum over the ranks, in place (1-D; part r:
        `counts[r]` elements from `displs[r]`, the parts consecutive in rank order); the other
        parts are left as they are. scratch: at least this rank's part's size.

        Two ranks swap the halves each needs from the other (one MPI_Sendrecv) and add: what any
        reduce-scatter of two does, without the collective's own copies (MPICH's reduce-scatter
        takes about as long as its whole allreduce). More ranks: MPI_Reduce_scatter."""
        a, n = displs[self.rank], counts[self.rank]
        got = scratch[:n]
        if self.size == 2:
            other = 1 - self.rank
            theirs = array[displs[other]:displs[other] + counts[other]]
            self.comm.Sendrecv(theirs, dest=other, recvbuf=got, source=other)
            array[a:a + n] += got
        else:
            self.comm.Reduce_scatter(array[:sum(counts)], got, recvcounts=list(counts), op=self._MPI.SUM)
            array[a:a + n] = got

    def allgather_parts(self, array: np.ndarray, counts, displs) -> None:
        """Every rank's part of `array` (1-D; part r: `counts[r]` elements from `displs[r]`)
        copied from that rank into every rank's `array`, in place (two ranks: one
        MPI_Sendrecv; more: MPI_Allgatherv)."""
        if self.size == 2:
            mine, other = self.rank, 1 - self.rank
            self.comm.Sendrecv(array[displs[mine]:displs[mine] + counts[mine]], dest=other,
                               recvbuf=array[displs[other]:displs[other] + counts[other]], source=other)
        else:
            self.comm.Allgatherv(self._MPI.IN_PLACE, [array, (list(counts), list(displs))])

    def sum_floats(self, *values) -> np.ndarray:
        """Σ over ranks of a few float64 values (in rank order when deterministic)."""
        a = np.array(values, dtype=np.float64)
        self.allreduce_sum(a)
        return a

    def max_int(self, value: int) -> int:
        return int(self.comm.allreduce(int(value), op=self._MPI.MAX))

    def allgather(self, obj):
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End the whole job with exit status `code` (after giving the launcher half a second to
        pass on what this rank printed: it may drop a rank's last lines when the job ends)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        time.sleep(0.5)
        self.comm.Abort(code)

    # -------------------------------------------------------------- data
    def part(self, n: int) -> tuple[int, int]:
        """This rank's [start, stop) of n items split into near-equal contiguous parts."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size


def init(comm=None, data: str = "whole", deterministic: bool = False, threads: int | None = None,
         shard_optimizer: bool = True) -> Strategy:
    """Join the MPI job and make `fit`, `evaluate` and `predict` data-parallel over its ranks.

    comm: an mpi4py communicator (default: MPI.COMM_WORLD). data: "whole" (every rank is given
    the same arrays; the default) or "shard" (each rank only its own part). deterministic: sum
    the gradients in rank order, so results are bitwise the same from run to run for a fixed
    number of ranks (slower for many ranks). threads: kernel threads per rank (default: the
    physical cores divided by the ranks on this machine, at least 1; `LSTMFAST_NUM_THREADS`
    also sets it). shard_optimizer: each rank updates its part of the weights during `fit`
    (module docstring); False: every rank updates all of them. Returns the `Strategy`, also
    given by `lstmfast.distribute.current()`.

    A rank that raises ends the whole job (MPI_Abort) after printing its error, so that the
    other ranks never wait forever for it.
    """
    global _current
    MPI = _import_mpi()
    strategy = Strategy(comm if comm is not None else MPI.COMM_WORLD, data, deterministic, shard_optimizer)
    from . import _threads

    if threads is not None:
        _threads.set_num_threads(threads)
    elif not (os.environ.get("LSTMFAST_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")):
        _threads.set_num_threads(max(1, _threads.physical_cores() // strategy.local_size))
    if strategy.size > 1:
        _abort_on_uncaught_exception(strategy)
    _current = strategy
    return strategy


def _abort_on_uncaught_exception(strategy):
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            # the error first, in one line: the launcher may drop what a rank writes last
            sys.stderr.write(f"lstmfast.distribute: rank {strategy.rank} of {strategy.size} failed "
                             f"({kind.__name__}: {value}); ending the job\n")
            sys.stderr.flush()
            previous(kind, value, tb)
        finally:
            strategy.abort(1)

    sys.excepthook = hook


def current() -> Strategy | None:
    """The strategy `init()` made, or None: `fit` then runs in this process alone."""
    return _current if _current is not None and _current.size > 1 else None


def rank() -> int:
    return _current.rank if _current is not None else 0


def size() -> int:
    return _current.size if _current is not None else 1


def is_chief() -> bool:
    """True on rank 0 (and without `init()`): the rank that prints and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing without `init()`)."""
    if current() is not None:
        _current.barrier()


def shard(array):
    """This rank's contiguous part of `array` along its first axis (near-equal parts; the whole
    array without `init()`)."""
    if _current is None:
        return array
    start, stop = _current.part(len(array))
    return array[start:stop]
