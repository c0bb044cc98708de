"""An optimizer updating its buffer part by part (what each rank does when data-parallel training
shares the update out, trainers.distributed): the parts, updated one after another with their
parts of the state, give the bits of one whole update, for every optimizer and option that is
element by element; clipping by norm sums its squares over all the parts; a state that is split
over ranks is never saved."""

import numpy as np
import pytest

import lstmfast as lf
from lstmfast.parameters import ALIGN, aligned_zeros

OPTIMIZERS = [
    ("Adam", {}),
    ("Adam", {"amsgrad": True}),
    ("Adam", {"weight_decay": 0.01, "use_ema": True, "ema_overwrite_frequency": 3}),
    ("Adam", {"clipvalue": 0.05}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {}),
    ("RMSprop", {"momentum": 0.5, "centered": True}),
]


def buffers(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = aligned_zeros(n, dtype)
    params[...] = rng.standard_normal(n)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(5)]
    return params, grads


def aligned_copy(a):
    """A copy on a 64-byte boundary, as every parameter buffer lies (parameters.aligned_zeros)."""
    b = aligned_zeros(a.size, a.dtype)
    b[...] = a
    return b


def cuts(n, parts):
    """The cuts trainers.distributed.OptimizerParts makes: multiples of ALIGN."""
    return [0] + [n * r // parts // ALIGN * ALIGN for r in range(1, parts)] + [n]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_parts_updated_one_by_one_give_the_bits_of_the_whole_update(name, kwargs, dtype):
    n, segments = 1000, [(0, 300), (304, 700), (704, 1000)]
    whole_params, grads = buffers(n, dtype)
    whole = getattr(lf.optimizers, name)(learning_rate=0.01, **kwargs)
    whole.build(whole_params, segments)
    parted_params = aligned_copy(whole_params)
    parted = getattr(lf.optimizers, name)(learning_rate=0.01, **kwargs)
    parted.build(parted_params, segments)
    c = cuts(n, 3)
    for g in grads:
        whole.apply(whole_params, g.copy())
        iterations = parted.iterations
        for a, b in zip(c, c[1:]):  # each "rank" updates its part; iterations count once
            parted.iterations = iterations
            parted.apply(parted_params, g.copy(), part=(a, b), total=lambda s: s)
        np.testing.assert_array_equal(parted_params, whole_params)
    for key, value in whole.get_state().items():
        np.testing.assert_array_equal(parted.get_state()[key], value)
    whole.finalize_variable_values(whole_params)
    parted.finalize_variable_values(parted_params)
    np.testing.assert_array_equal(parted_params, whole_params)


@pytest.mark.parametrize("clip", [{"clipnorm": 1.0}, {"global_clipnorm": 1.5}])
def test_clipping_by_norm_sums_the_squares_of_every_part(clip):
    n, segments = 800, [(0, 400), (400, 800)]
    whole_params, grads = buffers(n, np.float64, seed=1)
    whole = lf.optimizers.Adam(learning_rate=0.01, **clip)
    whole.build(whole_params, segments)
    parted_params = aligned_copy(whole_params)
    parted = lf.optimizers.Adam(learning_rate=0.01, **clip)
    parted.build(parted_params, segments)
    c = [0, 208, 592, 800]  # parts that cut across both weights
    for g in grads:
        g = g * 3.0  # norms above the clip
        whole.apply(whole_params, g.copy())
        iterations = parted.iterations
        squares = []  # what each part adds to the sum over the ranks, found first
        for a, b in zip(c, c[1:]):
            gp = g[a:b]
            if "clipnorm" in clip:
                squares.append(np.array([np.dot(gp[max(s, a) - a:min(e, b) - a], gp[max(s, a) - a:min(e, b) - a])
                                         if min(e, b) > max(s, a) else 0.0 for s, e in segments]))
            else:
                squares.append(np.array([np.dot(gp, gp)]))
        total = sum(squares)
        for a, b in zip(c, c[1:]):
            parted.iterations = iterations
            parted.apply(parted_params, g.copy(), part=(a, b), total=lambda s: total)
        np.testing.assert_allclose(parted_params, whole_params, rtol=0, atol=1e-12)
    assert not np.array_equal(whole_params, buffers(n, np.float64, seed=1)[0])


def test_a_state_split_over_ranks_is_never_saved_and_custom_optimizers_update_whole_buffers():
    params, grads = buffers(64, np.float32)
    opt = lf.optimizers.Adam()
    opt.build(params, [(0, 64)])
    opt._state_split = True  # what fit leaves between two epoch ends on every rank
    with pytest.raises(RuntimeError, match="split over the ranks.*shard_optimizer=False"):
        opt.get_state()

    class Custom(lf.optimizers.Optimizer):
        def _update(self, params, grads, lr):
            params -= grads * lr

    custom = Custom()
    custom.build(params, [(0, 64)])
    with pytest.raises(ValueError, match="whole buffer only"):
        custom.apply(params, grads[0], part=(0, 32))
