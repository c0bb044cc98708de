"""Dropout's kernel (cpp/dropout.h): the keep mask drawn from a key and each element's index,
its statistics, the backward that redraws it, and the layer on top."""

import numpy as np
import pytest

import lstmfast
import lstmfast as lf
from lstmfast import layers as L
from lstmfast import ops


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5, 0.9])
def test_the_kept_fraction_is_one_minus_rate_and_kept_values_are_scaled(rate):
    n = 1_000_003  # not a multiple of a tile
    mask = ops.dropout_mask(n, rate, 2024)
    kept = mask > 0
    sd = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 5 * sd
    np.testing.assert_allclose(mask[kept], np.float32(1 / (1 - rate)))
    # every stretch of the index range keeps its share: no tile or block is all kept or all dropped
    parts = kept[:1_000_000].reshape(100, -1).mean(axis=1)
    assert np.all(np.abs(parts - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / 10_000))


def test_masks_of_different_keys_and_of_neighbouring_elements_are_independent():
    n, rate = 1_000_000, 0.5
    a, b = ops.dropout_mask(n, rate, 1) > 0, ops.dropout_mask(n, rate, 2) > 0
    sd = np.sqrt(0.25 * 0.75 / n)
    assert abs((a & b).mean() - 0.25) < 5 * sd                 # two keys: P(both kept) = (1 − r)²
    assert abs((a[1:] & a[:-1]).mean() - 0.25) < 5 * sd        # neighbours in one mask
    assert abs((a[64:] & a[:-64]).mean() - 0.25) < 5 * sd      # a vector register apart
    assert not np.array_equal(a, b)


def test_forward_is_x_times_the_mask_and_the_backward_redraws_it():
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        x = rng.normal(size=(7, 13, 11)).astype(dt)
        mask = ops.dropout_mask(x.size, 0.3, 99, dt).reshape(x.shape)
        np.testing.assert_array_equal(ops.dropout(x, 0.3, 99), x * mask)
        # the same key gives the same mask in both precisions
        np.testing.assert_array_equal(mask > 0, ops.dropout_mask(x.size, 0.3, 99, np.float64).reshape(x.shape) > 0)
    layer = L.Dropout(0.4, seed=3)
    x = rng.normal(size=(5, 9, 6)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = rng.normal(size=x.shape).astype(np.float32)
    dx = layer.backward(dy)
    kept = y != 0
    assert 0.4 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-6)
    np.testing.assert_allclose(dx, dy * kept / np.float32(0.6), rtol=1e-6)  # ∂L/∂x = ∂L/∂y · keep/(1 − r)


def test_the_mask_does_not_depend_on_the_thread_count(restore_threads):
    x = np.random.default_rng(1).normal(size=(300_001,)).astype(np.float32)
    lstmfast.set_num_threads(1)
    one = ops.dropout(x, 0.25, 7)
    lstmfast.set_num_threads(2)
    np.testing.assert_array_equal(ops.dropout(x, 0.25, 7), one)


def test_a_seeded_layer_repeats_its_masks_and_each_call_draws_a_new_one():
    x = np.ones((4, 50), np.float32)
    a, b = L.Dropout(0.5, seed=11), L.Dropout(0.5, seed=11)
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))
    np.testing.assert_array_equal(a.forward(x, training=False), x)  # inference: the identity


def test_a_dropped_nan_stays_nan_as_in_keras_and_rate_one_drops_everything():
    x = np.full((2, 1000), np.nan, np.float32)
    assert np.isnan(L.Dropout(0.5, seed=0).forward(x, training=True)).all()  # x · mask, as Keras
    y = L.Dropout(1.0).forward(np.ones((3, 4), np.float32), training=True)
    np.testing.assert_array_equal(y, 0)


def test_a_noise_shape_shares_one_mask_over_its_broadcast_axes():
    layer = L.Dropout(0.5, noise_shape=(None, 1, 8), seed=2)
    x = np.ones((6, 5, 8), np.float32)
    y = layer.forward(x, training=True)
    assert np.all(y == y[:, :1, :])  # the same mask at every step
    np.testing.assert_array_equal(layer.backward(x), y)


def test_bad_rates_and_strided_arrays_are_refused_with_the_reason():
    x = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ops.dropout(x, 1.0, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ops.dropout(x, -0.1, 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.dropout(x[:, ::2], 0.5, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.dropout(x.astype(np.int32), 0.5, 0)


def test_a_model_with_dropout_trains_the_same_bits_twice_from_one_seed():
    def run():
        lf.utils.set_random_seed(5)
        model = lf.Sequential([L.Input((6,)), L.Dense(16, activation="relu"), L.Dropout(0.3), L.Dense(1)])
        model.compile("adam", "mse")
        x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
        model.fit(x, x.sum(1, keepdims=True), epochs=2, batch_size=16, verbose=0)
        return model.get_weights()

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)
