"""Masking, SpatialDropout1D and the global pooling layers: behaviour, saving, Keras files and
bad input. (Keras parity: test_models_keras_parity.py; gradients: test_models_gradients.py.)"""

import warnings

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def _padded(b=6, t=8, d=3, seed=0):
    x = np.random.default_rng(seed).normal(size=(b, t, d)).astype(np.float32)
    x[:2, :3] = 0    # pre-padding
    x[2:4, -2:] = 0  # post-padding
    return x


def test_masking_zeroes_and_masks_the_padded_steps_and_the_lstm_skips_them():
    x = _padded()
    layer = L.Masking()
    y = layer(x)
    np.testing.assert_array_equal(layer.compute_mask(x), np.any(x != 0, axis=-1))
    np.testing.assert_array_equal(y, x)
    # A masked step carries h and c: the post-padded rows end with the state of their last
    # real step, the pre-padded rows start from zeros after the padding.
    model = lf.Sequential([L.Input((8, 3)), L.Masking(), L.LSTM(4)])
    short = lf.Sequential([L.Input((6, 3)), L.LSTM(4)])
    short.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x[2:4], verbose=0), short.predict(x[2:4, :6], verbose=0), atol=1e-6)
    pre = lf.Sequential([L.Input((5, 3)), L.LSTM(4)])
    pre.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x[:2], verbose=0), pre.predict(x[:2, 3:], verbose=0), atol=1e-6)


def test_masking_with_a_value_other_than_zero_outputs_zeros_on_masked_steps():
    x = _padded()
    x[x == 0] = -9.0
    y = L.Masking(mask_value=-9.0)(x)
    assert np.all(y[:2, :3] == 0) and np.array_equal(y[4:], x[4:])


def test_spatial_dropout_drops_whole_channels_in_training_only():
    x = np.ones((64, 10, 8), np.float32)
    layer = L.SpatialDropout1D(0.5, seed=1)
    y = layer(x, training=True)
    # every channel of every sample is all zeros or all 2 (= 1 / (1 - rate)) over the steps
    assert set(np.unique(y)) == {0.0, 2.0}
    assert np.all(y == y[:, :1, :])
    assert 0.35 < (y[:, 0, :] == 0).mean() < 0.65
    dy = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dy), dy * y)
    np.testing.assert_array_equal(layer(x), x)


def test_global_pooling_values_and_shapes():
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    np.testing.assert_array_equal(L.GlobalAveragePooling1D()(x), x.mean(axis=1))
    np.testing.assert_array_equal(L.GlobalMaxPooling1D()(x), x.max(axis=1))
    assert L.GlobalMaxPooling1D(keepdims=True)(x).shape == (2, 1, 3)
    np.testing.assert_array_equal(L.GlobalAveragePooling1D(data_format="channels_first")(x), x.mean(axis=2))
    mask = np.array([[True, True, False, False], [False, True, True, True]])
    np.testing.assert_allclose(L.GlobalAveragePooling1D()(x, mask=mask),
                               [x[0, :2].mean(axis=0), x[1, 1:].mean(axis=0)])
    assert L.GlobalAvgPool1D is L.GlobalAveragePooling1D and L.GlobalMaxPool1D is L.GlobalMaxPooling1D


def test_mask_ends_at_average_pooling_and_is_dropped_by_max_pooling_with_a_warning():
    avg = lf.Sequential([L.Input((8,)), L.Embedding(10, 3, mask_zero=True), L.LSTM(4, return_sequences=True),
                         L.GlobalAveragePooling1D(), L.Dense(1)])
    assert avg._uses_mask is False
    with pytest.warns(UserWarning, match="does not support masking"):
        lf.Sequential([L.Input((8,)), L.Embedding(10, 3, mask_zero=True), L.LSTM(4, return_sequences=True),
                       L.GlobalMaxPooling1D(), L.Dense(1)])
    seq = lf.Sequential([L.Input((8, 3)), L.Masking(), L.LSTM(4, return_sequences=True)])
    assert seq._uses_mask is True


def test_models_with_the_new_layers_save_load_and_train(tmp_path):
    lf.utils.set_random_seed(0)
    model = lf.Sequential([L.Input((8, 3)), L.Masking(-1.0), L.SpatialDropout1D(0.2), L.LSTM(5, return_sequences=True),
                           L.GlobalAveragePooling1D(keepdims=True), L.Flatten(), L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    x = _padded()
    x[x == 0] = -1.0
    y = np.array([0, 1, 0, 1, 1, 0], np.float32)
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = lf.load_model(tmp_path / "m.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.layers[0].mask_value == -1.0 and loaded.layers[3].keepdims is True
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0)


def test_a_keras_file_with_the_new_layers_loads_and_predicts_the_same(tmp_path):
    from keras_reference import import_keras

    keras = import_keras()
    K = keras.layers
    with warnings.catch_warnings():  # Keras warns that GlobalMaxPooling1D drops the mask
        warnings.simplefilter("ignore")
        km = keras.Sequential([keras.Input((8, 3)), K.Masking(), K.SpatialDropout1D(0.1),
                               K.LSTM(4, return_sequences=True), K.GlobalMaxPooling1D(), K.Dense(2)])
        km.compile("adam", "mse")
        km.save(tmp_path / "k.keras")
    with pytest.warns(UserWarning, match="GlobalMaxPooling1D.*does not support masking"):  # as Keras warns
        m = lf.load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in m.layers] == ["Masking", "SpatialDropout1D", "LSTM", "GlobalMaxPooling1D", "Dense"]
    x = _padded()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = km.predict(x, verbose=0)
    np.testing.assert_allclose(m.predict(x, verbose=0), expected, atol=1e-6)


def test_bad_arguments_and_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="mask_value.*number.*'zero'"):
        L.Masking("zero")
    with pytest.raises(ValueError, match="data_format.*channels_first.*channels_last.*'nhwc'"):
        L.GlobalAveragePooling1D(data_format="nhwc")
    with pytest.raises(ValueError, match=r"GlobalMaxPooling1D .* expects 3-D input .*\(4, 3\)"):
        L.GlobalMaxPooling1D()(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"SpatialDropout1D .* expects 3-D input .*\(4, 3\)"):
        L.SpatialDropout1D(0.1)(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="rate"):
        L.SpatialDropout1D(1.5)
    with pytest.raises(ValueError, match=r"GlobalAveragePooling1D .* expects 3-D input"):
        lf.Sequential([L.Input((5,)), L.GlobalAveragePooling1D()])
