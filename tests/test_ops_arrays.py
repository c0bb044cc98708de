"""ops.concatenate, ops.add and ops.column_sums: numpy's results, on the kernels' threads for float arrays whose
rows lie contiguously, and numpy's own path for everything else."""

import numpy as np
import pytest

import lstmfast
from lstmfast import ops
from lstmfast import Input, Model
from lstmfast.layers import LSTM, Attention, Concatenate, Dense

from gradcheck import assert_model_gradients


def rng_arrays(seed, *shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("shapes,axis", [
    (((4, 5, 7), (4, 5, 3)), -1),
    (((4, 5, 7), (4, 5, 3), (4, 5, 1)), 2),
    (((3, 2, 4), (3, 6, 4)), 1),
    (((2, 3), (5, 3)), 0),
    (((300, 20, 256), (300, 20, 256)), -1),  # many tiles of rows
])
def test_concatenate_gives_numpys_bits(shapes, axis, dtype, restore_threads):
    xs = rng_arrays(len(shapes), *shapes, dtype=dtype)
    want = np.concatenate(xs, axis=axis)
    for threads in (1, 2):
        lstmfast.set_num_threads(threads)
        got = ops.concatenate(xs, axis=axis)
        assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


def test_concatenate_takes_numpys_path_for_other_inputs():
    a, b = rng_arrays(0, (3, 4), (3, 2))
    for xs, axis in [([a.astype(np.int64), b.astype(np.int64)], -1),  # not float
                     ([a, b.astype(np.float64)], -1),  # dtypes differ: numpy promotes
                     ([a[:, ::2], b], -1),  # a strided view
                     ([a, np.zeros((3, 0), np.float32)], -1)]:  # an empty input
        np.testing.assert_array_equal(ops.concatenate(xs, axis=axis), np.concatenate(xs, axis=axis))
    with pytest.raises(ValueError):
        ops.concatenate([a, b], axis=0)  # shapes differ off the axis: numpy's own message
    with pytest.raises(ValueError, match="at least one"):
        ops.concatenate([])


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_add_of_views_gives_numpys_sum_as_a_contiguous_array(dtype, restore_threads):
    (y, z) = rng_arrays(1, (64, 20, 512), (64, 20, 256), dtype=dtype)
    left, right = y[..., :256], y[..., 256:]  # Concatenate's gradients: views of the last axis
    cases = [(left, z), (z, right), (left, right), (z, z), (y[:, :3], y[:, 5:8]), (z[0], z[1])]
    for threads in (1, 2):
        lstmfast.set_num_threads(threads)
        for a, b in cases:
            got = ops.add(a, b)
            assert got.flags.c_contiguous and got.dtype == dtype
            np.testing.assert_array_equal(got, a + b)


def test_add_takes_numpys_path_for_other_inputs():
    a, b, c = rng_arrays(2, (6, 4), (6, 4), (4, 6, 3))
    for x, y in [(c[:, :2], c[:, 3:5]),  # rows that do not step evenly
                 (a[:, ::-1], b),  # a negative stride
                 (a[:, 0], b[:, 0]),  # 1-D
                 (a, b.astype(np.float64)),  # dtypes differ
                 (a.astype(np.int32), b.astype(np.int32)),
                 (a, b[:1])]:  # broadcasting
        np.testing.assert_array_equal(ops.add(x, y), x + y)


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("shape", [(1, 5), (7, 60), (1280, 60), (3, 257, 33), (600, 1)])
def test_column_sums_add_every_row_the_same_way_on_any_thread_count(shape, dtype, restore_threads):
    (a,) = rng_arrays(3, shape, dtype=dtype)
    want = a.astype(np.float64).reshape(-1, shape[-1]).sum(0)
    runs = []
    for threads in (1, 2):
        lstmfast.set_num_threads(threads)
        runs.append(ops.column_sums(a))
    assert runs[0].shape == (shape[-1],) and runs[0].dtype == dtype
    np.testing.assert_array_equal(runs[0], runs[1])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(runs[0], want, rtol=tol, atol=tol * np.sqrt(a.size / shape[-1]))
    out = np.full(shape[-1], np.nan, dtype)
    assert ops.column_sums(a, out=out) is out
    np.testing.assert_array_equal(out, runs[0])


def test_column_sums_refuse_what_they_cannot_sum():
    a = np.ones((4, 3), np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.column_sums(a.astype(np.int32))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        ops.column_sums(a, out=np.empty(4, np.float32))
    with pytest.raises(TypeError, match="dtype float32"):
        ops.column_sums(a, out=np.empty(3, np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.column_sums(a.T)
    with pytest.raises(ValueError, match="last axis of size >= 1"):
        ops.column_sums(np.ones((4, 0), np.float32))


def test_a_tensor_used_twice_gets_the_sum_of_its_gradients_float64():
    """An LSTM's outputs feed Concatenate and Attention: ∂L/∂h is the sum of a view of
    Concatenate's gradient and Attention's, which ops.add sums (central differences)."""
    lstmfast.config.set_floatx("float64")
    try:
        lstmfast.utils.set_random_seed(5)
        inp = Input(shape=(6, 3))
        h = LSTM(4, return_sequences=True)(inp)
        context = Attention()([h, h])
        out = Dense(2)(Concatenate()([h, context, h]))
        model = Model(inp, out)
        model.compile("adam", "mse")
        rng = np.random.default_rng(6)
        x, y = rng.standard_normal((5, 6, 3)), rng.standard_normal((5, 6, 2))
        assert_model_gradients(model, model.prepare_inputs(x), y, what="h used three times")
    finally:
        lstmfast.config.set_floatx("float32")
