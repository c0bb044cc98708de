"""Reshape and Permute: values, shapes, saving and bad input. (Keras parity:
test_models_keras_parity.py; gradients: test_models_gradients.py.)"""

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def test_reshape_and_permute_values_and_their_backward():
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    r = L.Reshape((3, -1))
    np.testing.assert_array_equal(r(x), x.reshape(2, 3, 4))
    assert r.compute_output_shape((None, 12)) == (None, 3, 4)
    assert r.compute_output_shape((None, None)) == (None, 3, None)
    np.testing.assert_array_equal(r.backward(r(x)), x)
    p = L.Permute((2, 1))
    y = p(x.reshape(2, 4, 3))
    np.testing.assert_array_equal(y, x.reshape(2, 4, 3).transpose(0, 2, 1))
    assert y.flags.c_contiguous
    np.testing.assert_array_equal(p.backward(y), x.reshape(2, 4, 3))
    p3 = L.Permute((3, 1, 2))
    z = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(p3.backward(p3(z)), z)


def test_a_model_with_reshape_and_permute_saves_loads_and_trains(tmp_path):
    lf.utils.set_random_seed(0)
    model = lf.Sequential([L.Input((12,)), L.Reshape((6, 2)), L.Permute((2, 1)), L.LSTM(4), L.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(1).normal(size=(16, 12)).astype(np.float32)
    model.fit(x, x[:, :1], epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = lf.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].target_shape == (6, 2) and loaded.layers[1].dims == (2, 1)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_arguments_and_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="at most one -1.*\\(-1, -1\\)"):
        L.Reshape((-1, -1))
    with pytest.raises(ValueError, match="tuple of ints.*'abc'"):
        L.Reshape("abc")
    with pytest.raises(ValueError, match=r"shape \(12,\) per sample cannot be reshaped to target_shape=\(5, 2\)"):
        L.Reshape((5, 2))(np.zeros((2, 12), np.float32))
    with pytest.raises(ValueError, match=r"shape \(12,\) per sample cannot be reshaped to target_shape=\(5, -1\)"):
        lf.Sequential([L.Input((12,)), L.Reshape((5, -1))])
    with pytest.raises(ValueError, match="consecutive and start from 1.*\\(0, 1\\)"):
        L.Permute((0, 1))
    with pytest.raises(ValueError, match=r"Permute .* expects 3-D input .*\(2, 12\)"):
        L.Permute((2, 1))(np.zeros((2, 12), np.float32))
