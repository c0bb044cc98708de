"""fit and evaluate over the ranks of an MPI job (`lstmfast.distribute`): each rank's part of
every batch, in lockstep with the other ranks, and the one data-parallel training step.

A step on rank r with n_r of the step's n = Σ_r n_r samples (n_r may be 0):

    L_r, ∂L_r/∂ŷ = loss(y_r, ŷ_r)                       the mean over rank r's samples
    ∂L/∂ŷ_r = (n_r / n) · ∂L_r/∂ŷ                        rank r's share of the batch's mean loss
    [g | Σ_r n_r·L_r | f] = Σ_r [backward(∂L/∂ŷ_r) | n_r·L_r | L_r not finite]   one allreduce
    w ← optimizer(w, g), unless f > 0 (a loss was not finite: every rank skips the step)

n is known to every rank when each is given the whole arrays (the step's batch is cut from them);
otherwise a first allreduce of (n_r, n_r·L_r, L_r not finite) finds it before the backward.
The step follows the gradient of the whole batch's mean loss, as one process would.

In `fit` the update is shared out (ZeRO's first stage; OptimizerParts): with the buffer cut into
parts P_0 … P_{N−1}, one per rank,

    [Σ_r n_r·L_r | f] = Σ_r [n_r·L_r | L_r not finite]       a small allreduce
    g[P_r] = Σ_q backward_q(∂L/∂ŷ_q)[P_r]                    one reduce-scatter: rank r its part
    w[P_r] ← optimizer(w[P_r], g[P_r])                       rank r, with its part of the state
    w = [w[P_0] | … | w[P_{N−1}]]                            one allgather, to every rank

The same bytes move as in the allreduce of g (which is a reduce-scatter and an allgather), and
each rank does 1/N of the update's work. The update is element by element and every part starts
on a multiple of the packet size, so the weights are the bits that the whole update gives.
"""

import numpy as np

from ..parameters import ALIGN, aligned_zeros
from .epoch_iterator import ArrayBatches, EpochIterator
from .steps import apply_gradients, backward_from_output, loss_and_output_gradient


class RankBatches:
    """This rank's part of every step's batch. epoch() yields (step, x, y, sample_weight) for every
    step of the job's epoch, with x None where this rank has no sample in that step.

    whole arrays: the global batches of `batches` (cut as one process cuts them, shuffled by
    rank 0's generator, whose state every rank is given), each split into near-equal parts;
    a shard: batches of this rank's share of `batch_size` over its own arrays, for as many steps
    as the rank with the most batches needs;
    a batch source (generator, iterable, PyDataset): with whole data, every rank reads the same
    batches (a PyDataset's shuffled order is rank 0's, its generator's state shared) and takes its
    part of each; with shards, each rank its own batches, until no rank has one left (asked every
    step when the number of steps is not known)."""

    def __init__(self, strategy, batches, batch_size=None):
        self.strategy, self._batches = strategy, batches
        self.step_samples = None  # the samples of the current step over all ranks, where known
        self._arrays = isinstance(batches, ArrayBatches)
        if self._arrays:
            it = batches._it
            batch_size = it.batch_size if batch_size is None else batch_size
            if strategy.data == "shard":
                if batch_size < strategy.size:
                    raise ValueError(f"`batch_size`={batch_size} is smaller than the {strategy.size} ranks: "
                                     "every rank needs at least one sample of each batch.")
                a, b = strategy.part(batch_size)
                it = EpochIterator(it.n, b - a, it.shuffle, it.rng)
            if it.shuffle and strategy.data == "whole":  # rank 0's order (its generator's state) everywhere
                it.rng.bit_generator.state = strategy.broadcast_object(it.rng.bit_generator.state)
            elif it.shuffle:  # each rank its own order of its own shard
                seed = strategy.broadcast_object(int(it.rng.integers(2**63)))
                it.rng = np.random.default_rng([seed, strategy.rank])
            self._it = it
            self.steps = it.steps if strategy.data == "whole" else strategy.max_int(it.steps)
        else:
            source = getattr(batches, "_source", None)
            if strategy.data == "whole" and getattr(source, "_rng", None) is not None:
                # a PyDataset's shuffled batch order: the same on every rank
                source._rng.bit_generator.state = strategy.broadcast_object(source._rng.bit_generator.state)
            steps = batches.steps
            known = all(s is not None for s in strategy.allgather(steps))
            self.steps = strategy.max_int(steps) if known else None

    def epoch(self):
        if self._arrays:
            yield from self._array_epoch()
            return
        whole = self.strategy.data == "whole"
        local = iter(self._batches.epoch())
        step = 0
        while self.steps is None or step < self.steps:
            item = next(local, None)
            has = item is not None
            if self.steps is None and self.strategy.sum_floats(float(has))[0] == 0:
                return  # no rank has a batch left
            if has and whole:  # every rank read the same batch: this rank takes its part
                self.step_samples = item[1].shape[0]
                yield (step, *_rank_part(self.strategy, *item[1:]))
            else:
                yield (step, *item[1:]) if has else (step, None, None, None)
            step += 1
        next(local, None)  # let the source finish its epoch (it reads the epoch's end marker)

    def _array_epoch(self):
        bx, by, bsw = self._batches.x, self._batches.y, self._batches.sw
        whole = self.strategy.data == "whole"
        steps = 0
        for step, index in self._it.epoch():
            if whole:
                self.step_samples = _length(index, bx.shape[0])  # every rank knows the step's batch
                a, b = self.strategy.part(self.step_samples)
                index = slice(index.start + a, index.start + b) if isinstance(index, slice) else index[a:b]
            if _length(index, bx.shape[0]) == 0:
                yield step, None, None, None
            else:
                yield step, bx[index], None if by is None else by[index], None if bsw is None else bsw[index]
            steps += 1
        for step in range(steps, self.steps):  # this shard ran out before the largest one
            yield step, None, None, None

    def close(self):
        self._batches.close()


def _rank_part(strategy, x, y, sw):
    """This rank's contiguous part of a batch every rank holds whole: (x, y, sw), or Nones
    where the part is empty."""
    a, b = strategy.part(x.shape[0])
    if a == b:
        return None, None, None
    return x[a:b], None if y is None else y[a:b], None if sw is None else sw[a:b]


def _length(index, n):
    return len(range(*index.indices(n))) if isinstance(index, slice) else len(index)


def train_step(trainer, strategy, xb, yb, swb, n=None, parts=None):
    """One data-parallel optimizer step (module docstring); n: the step's samples over all ranks
    where every rank knows it (whole arrays), else None (one more allreduce, before the backward,
    finds it); parts: fit's OptimizerParts, or None (one allreduce, the whole update on every
    rank). Returns (the step's loss, n_r, L_r)."""
    n_r = 0 if xb is None else xb.shape[0]
    params = trainer._params
    loss = 0.0
    if n_r:
        y_pred, mask = trainer.forward(xb, True)
        loss, dy, logits_layer = loss_and_output_gradient(trainer, yb, y_pred, swb, mask)
        loss = float(loss)
    if n_r and trainer._regularized:
        loss += trainer.regularization_loss()  # Σ R(w) (the same on every rank) + this rank's Σ R(y)/B
    finite = bool(np.isfinite(loss))
    loss_sum, bad = None, False
    if n is None:
        n, loss_sum, bad = strategy.sum_floats(n_r, n_r * loss if finite else 0.0, not finite)
        if bad:  # every rank skips the update (as one process does after a non-finite loss)
            return float("nan"), n_r, loss
    if n_r and finite:
        backward_from_output(trainer, _scaled(dy, n_r / n), logits_layer)  # ∂L/∂ŷ_r = (n_r/n)·∂L_r/∂ŷ
    else:
        params.grads.fill(0)
    if parts is None:
        # One allreduce of [∂L/∂w | n_r·L_r | non-finite]: the step's only meeting of the ranks.
        step = params.grads_and_step
        step[-2:] = (n_r * loss if finite else 0.0, 0.0 if finite else 1.0)
        strategy.allreduce_sum(step)
        loss_sum, bad = step[-2], step[-1] != 0
    elif loss_sum is None:
        loss_sum, bad = strategy.sum_floats(n_r * loss if finite else 0.0, not finite)
    if bad:  # some rank's loss was not finite: every rank skips the update
        return float("nan"), n_r, loss
    if parts is None:
        apply_gradients(trainer)  # ∂R/∂w added once, after the sum over the ranks
    else:
        parts.step(trainer, strategy)
    if n_r and trainer._metrics:
        for m in trainer._metrics:
            m.update_state(yb, y_pred, swb, mask)
    return float(loss_sum) / n, n_r, loss


def train_on_batch(trainer, strategy, params, x, y, sw):
    """`train_on_batch` of a batch every rank is given: rank 0's weights on every rank the first
    time (and whenever the weights were packed anew), then one step on this rank's part."""
    if getattr(trainer, "_distributed_params", None) is not params:
        start(trainer, strategy)
    return train_step(trainer, strategy, *_rank_part(strategy, x, y, sw), n=x.shape[0])[0]


def gather_parts(strategy, outs):
    """`predict`'s outputs: every rank's part (its contiguous share of the samples), in rank
    order, on every rank."""
    parts = strategy.allgather(outs)
    gathered = []
    for i, mine in enumerate(outs):
        pieces = [p[i] for p in parts if p[i].shape[0]]
        gathered.append(np.concatenate(pieces) if pieces else mine)
    return gathered


def _scaled(dy, factor):
    if isinstance(dy, (list, tuple)):
        return type(dy)(d * d.dtype.type(factor) for d in dy)
    return dy * dy.dtype.type(factor)


def rank_callbacks(callbacks, strategy):
    """The callbacks this rank runs: all on rank 0; elsewhere none of those that print or write
    files (`Callback._chief_only`: ModelCheckpoint, CSVLogger, BackupAndRestore, ...)."""
    callbacks = list(callbacks or [])
    return callbacks if strategy.is_chief else [c for c in callbacks if not getattr(c, "_chief_only", False)]


class OptimizerParts:
    """The optimizer's update shared out over the ranks (module docstring): the flat buffer cut
    into one contiguous part per rank, each starting on a multiple of ALIGN elements (a whole
    number of packets: a part's update runs the vector code that the whole buffer's runs)."""

    def __init__(self, strategy, params):
        n, size = params.values.size, strategy.size
        cuts = [0] + [n * r // size // ALIGN * ALIGN for r in range(1, size)] + [n]
        self.counts = [b - a for a, b in zip(cuts, cuts[1:])]
        self.displs = cuts[:-1]
        self.part = (cuts[strategy.rank], cuts[strategy.rank + 1])
        self._scratch = aligned_zeros(max(self.counts[strategy.rank], 1), params.values.dtype)

    @staticmethod
    def wanted(trainer, strategy, callbacks):
        """Whether `fit` shares the update out: asked for (`init(shard_optimizer=True)`), not in
        deterministic mode, an optimizer that updates parts, and no callback that saves every few
        steps (the optimizer's state is whole only at the end of an epoch)."""
        return (strategy.shard_optimizer and not strategy.deterministic and strategy.size > 1
                and type(trainer.optimizer)._updates_parts
                and all(getattr(c, "save_freq", "epoch") == "epoch" for c in callbacks or []))

    def step(self, trainer, strategy):
        """g[P_r] = Σ_q g_q[P_r]; w[P_r] ← optimizer(w[P_r], g[P_r]); w gathered on every rank."""
        params = trainer._params
        strategy.reduce_scatter_sum(params.grads, self.counts, self.displs, self._scratch)
        apply_gradients(trainer, part=self.part, total=lambda squares: strategy.sum_floats(*squares),
                        gather=lambda values: strategy.allgather_parts(values, self.counts, self.displs))
        trainer.optimizer._state_split = True

    def gather_state(self, trainer, strategy):
        """Every rank's part of the optimizer's state on every rank: the state whole again."""
        opt = trainer.optimizer
        if opt._state_split:
            for array in opt._all_state_arrays().values():
                strategy.allgather_parts(array, self.counts, self.displs)
            opt._state_split = False


def start(trainer, strategy, callbacks=None, share_update=False):
    """Rank 0's weights and optimizer state on every rank (the start of `fit`). Returns fit's
    OptimizerParts when share_update (fit's, given its callbacks) and OptimizerParts.wanted,
    else None."""
    params = trainer._params
    strategy.broadcast(params.values)
    trainer._distributed_params = params
    opt = trainer.optimizer
    opt.iterations = int(strategy.broadcast_object(int(opt.iterations)))
    for array in opt._all_state_arrays().values():
        strategy.broadcast(array)
    opt._state_split = False
    wanted = share_update and OptimizerParts.wanted(trainer, strategy, callbacks)
    return OptimizerParts(strategy, params) if wanted else None


def epoch_end(trainer, strategy, parts):
    """At the end of an epoch, before its callbacks: the loss and metrics summed over the ranks,
    and the optimizer's state whole again (a checkpoint may save it)."""
    reduce_totals(trainer, strategy)
    if parts is not None:
        parts.gather_state(trainer, strategy)


def finish(trainer, strategy, parts=None):
    """The same weights on every rank at the end of `fit` (rank 0's: ranks may differ in the
    last bits where MPI adds the gradients of more than two ranks in different orders), and the
    optimizer's state whole."""
    if parts is not None:
        parts.gather_state(trainer, strategy)
    if trainer._params is not None and not strategy.deterministic:
        strategy.broadcast(trainer._params.values)


def reduce_totals(trainer, strategy):
    """The running loss total and every metric's state summed over the ranks (end of an epoch
    or of `evaluate`): the logs are then those of all the samples, the same on every rank."""
    metrics = trainer._metrics or []
    sums = strategy.sum_floats(trainer._loss_total, trainer._loss_count,
                               *[v for m in metrics for v in (m._total, m._count)])
    trainer._loss_total, trainer._loss_count = float(sums[0]), float(sums[1])
    for i, m in enumerate(metrics):
        m._total, m._count = float(sums[2 + 2 * i]), float(sums[3 + 2 * i])
