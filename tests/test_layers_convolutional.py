"""Conv1D and MaxPooling1D: values against a direct sum, shapes, masks, saving, a Keras file and
bad input. (Keras parity: test_models_keras_parity.py; gradients: test_models_gradients.py.)"""

import re
import warnings

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_conv1d_is_the_sum_over_taps_and_channels():
    x = _x((2, 7, 3))
    layer = L.Conv1D(4, 3, dilation_rate=2, padding="causal", use_bias=True, bias_initializer="ones")
    y = layer(x)
    w, b = layer.get_weights()
    xp = np.pad(x, ((0, 0), (4, 0), (0, 0)))  # causal: (k − 1)·d zeros in front
    expected = np.stack([sum(xp[:, t + 2 * j] @ w[j] for j in range(3)) for t in range(7)], axis=1) + b
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # causal: y_t does not see x after t
    x2 = x.copy()
    x2[:, 5:] += 1
    np.testing.assert_array_equal(layer(x2)[:, :5], y[:, :5])


@pytest.mark.parametrize("padding,strides,expected", [("valid", 1, 8), ("same", 1, 10), ("causal", 1, 10),
                                                      ("valid", 2, 4), ("same", 3, 4)])
def test_conv1d_output_lengths(padding, strides, expected):
    layer = L.Conv1D(2, 3, strides=strides, padding=padding)
    assert layer(_x((1, 10, 2))).shape == (1, expected, 2)
    assert layer.compute_output_shape((None, 10, 2)) == (None, expected, 2)


def test_max_pooling_values_and_first_maximum_gets_the_gradient():
    x = np.array([[[1.0], [3.0], [3.0], [0.0], [-1.0]]], np.float32)
    layer = L.MaxPooling1D(2, strides=1)
    y = layer(x, training=True)
    np.testing.assert_array_equal(y[0, :, 0], [3, 3, 3, 0])
    dx = layer.backward(np.ones_like(y))
    # windows (1,3) (3,3) (3,0) (0,-1): the first 3 wins the tie in the second window
    np.testing.assert_array_equal(dx[0, :, 0], [0, 2, 1, 1, 0])
    same = L.MaxPooling1D(2, padding="same")
    np.testing.assert_array_equal(same(x)[0, :, 0], [3, 3, -1])  # the −inf padding never wins


def test_a_mask_is_dropped_by_conv1d_with_keras_warning():
    with pytest.warns(UserWarning, match="Conv1D.*does not support masking"):
        lf.Sequential([L.Input((8,)), L.Embedding(10, 3, mask_zero=True), L.Conv1D(4, 3), L.LSTM(2)])


def test_cnn_lstm_model_saves_loads_and_trains(tmp_path):
    lf.utils.set_random_seed(0)
    model = lf.Sequential([L.Input((12,)), L.Embedding(20, 6), L.Conv1D(8, 3, padding="same", activation="relu"),
                           L.MaxPool1D(2), L.LSTM(5), L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    ids = np.random.default_rng(1).integers(0, 20, (32, 12))
    y = (ids[:, 0] > 10).astype(np.float32)
    history = model.fit(ids, y, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.keras")
    loaded = lf.load_model(tmp_path / "m.keras")
    assert loaded.layers[1].padding == "same" and loaded.layers[2].pool_size == (2,)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_a_keras_file_with_conv1d_and_max_pooling_loads_and_predicts_the_same(tmp_path):
    from keras_reference import import_keras

    keras = import_keras()
    K = keras.layers
    km = keras.Sequential([keras.Input((10, 3)), K.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
                           K.MaxPooling1D(3, strides=2, padding="same"), K.LSTM(5), K.Dense(1)])
    km.compile("adam", "mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.save(tmp_path / "k.keras")
    m = lf.load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in m.layers] == ["Conv1D", "MaxPooling1D", "LSTM", "Dense"]
    x = _x((6, 10, 3))
    np.testing.assert_allclose(m.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-6)


def test_bad_arguments_and_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="padding.*Conv1D.*'valid', 'same', 'causal'.*'full'"):
        L.Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="padding.*MaxPooling1D.*'valid', 'same'.*'causal'"):
        L.MaxPooling1D(padding="causal")
    with pytest.raises(ValueError, match="kernel_size.*tuple of 1 int.*\\(3, 3\\)"):
        L.Conv1D(2, (3, 3))
    with pytest.raises(ValueError, match="filters.*positive integer.*0"):
        L.Conv1D(0, 3)
    with pytest.raises(ValueError, match="groups.*only 1.*2"):
        L.Conv1D(4, 3, groups=2)
    with pytest.raises(ValueError, match="regularizer identifier: 'l3'"):
        L.Conv1D(4, 3, kernel_regularizer="l3")
    with pytest.raises(ValueError, match=r"Conv1D .* expects 3-D input .*\(4, 3\)"):
        L.Conv1D(2, 3)(_x((4, 3)))
    with pytest.raises(ValueError, match="4 steps are fewer than one window of 5 steps.*padding='same'"):
        L.Conv1D(2, 5)(_x((2, 4, 3)))
    with pytest.raises(ValueError, match="3 steps are fewer than one window of 4"):
        L.MaxPooling1D(4)(_x((2, 3, 3)))
    with pytest.raises(ValueError, match="4 steps are fewer than one window of 5"):
        lf.Sequential([L.Input((4, 3)), L.Conv1D(2, 5)])


def test_default_layer_names_are_keras_names():
    for layer, prefix in ((L.Conv1D(2, 3), "conv1d"), (L.MaxPooling1D(), "max_pooling1d"),
                          (L.GlobalAveragePooling1D(), "global_average_pooling1d"),
                          (L.SpatialDropout1D(0.1), "spatial_dropout1d"), (L.TimeDistributed(L.Dense(1)), "time_distributed")):
        assert re.fullmatch(prefix + r"(_\d+)?", layer.name), layer.name  # conv1d, conv1d_1, ...
