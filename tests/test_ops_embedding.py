"""The Embedding kernels: row gather forward, ordered scatter-add backward, checked ids."""

import numpy as np
import pytest

from lstmfast import ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_forward_gathers_the_rows_of_the_ids(dtype):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((30, 5)).astype(dtype)
    ids = rng.integers(0, 30, (4, 9))
    out = ops.embedding_forward(ids, table)
    assert out.shape == (4, 9, 5) and out.dtype == dtype
    np.testing.assert_array_equal(out, table[ids])


def test_embedding_backward_adds_in_place_and_clears_only_the_named_rows():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 10, (3, 6))
    d_out = rng.standard_normal((3, 6, 4))
    grad = np.full((10, 4), 5.0)
    ops.embedding_backward(ids, d_out, grad)  # no clearing: adds to what is there
    expected = np.full((10, 4), 5.0)
    np.add.at(expected, ids.ravel(), d_out.reshape(-1, 4))
    np.testing.assert_allclose(grad, expected, rtol=1e-14)


def test_embedding_backward_is_the_transpose_of_forward():
    # <forward(ids, E), dY> = <E, backward(ids, dY)> for any E and dY
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 12, (5, 7))
    E = rng.standard_normal((12, 3))
    dY = rng.standard_normal((5, 7, 3))
    grad = np.zeros_like(E)
    ops.embedding_backward(ids, dY, grad)
    assert np.isclose((ops.embedding_forward(ids, E) * dY).sum(), (E * grad).sum(), rtol=1e-12)


def test_embedding_ops_reject_bad_ids_and_shapes_with_clear_messages():
    table = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match=r"must be in \[0, 10\).*got 10"):
        ops.embedding_forward(np.array([[1, 10]]), table)
    with pytest.raises(ValueError, match=r"got -1"):
        ops.embedding_forward(np.array([-1]), table)
    with pytest.raises(TypeError, match="integer ids; got dtype float32"):
        ops.embedding_forward(np.array([1.0], np.float32), table)
    with pytest.raises(ValueError, match=r"`d_out` must have shape \(2, 4\).*got \(2, 3\)"):
        ops.embedding_backward(np.array([1, 2]), np.zeros((2, 3), np.float32), table)
    with pytest.raises(TypeError, match="dtype float32"):
        ops.embedding_backward(np.array([1, 2]), np.zeros((2, 4)), table)
    with pytest.raises(ValueError, match=r"`clear_ids` must be in \[0, 10\)"):
        ops.embedding_backward(np.array([1]), np.zeros((1, 4), np.float32), table, clear_ids=np.array([11]))
