"""lstmfast against Keras 3 (torch backend): same weights give the same predictions, and the same
training run gives the same loss history and weights.

Tolerances (float32 throughout):
- predict: |lstmfast − Keras| ≤ 1e-5 · max|Keras| + 1e-6 — both sum the same products in a
  different order, so they differ by a few float32 roundings.
- fit: 2 epochs of Adam (lr 0.01, shuffle off, dropout off), 2 batches each: every logged value
  within 1e-4 relative and every weight within 5e-5 absolute. The per-step rounding differences
  above are amplified a little by Adam's normalisation m/√v, which is why this bound is looser
  than predict's; a wrong formula (gate order, bias, masking, ε placement, reduction) shows up
  orders of magnitude above it.
"""

import numpy as np
import pytest

from keras_reference import build_pair, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers
PRED_RTOL, PRED_ATOL = 1e-5, 1e-6
FIT_RTOL, FIT_WEIGHT_ATOL = 1e-4, 5e-5


@pytest.fixture(autouse=True)
def _seed():
    lf.utils.set_random_seed(1234)


def _x(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float64).astype(np.float32)


def _ids(shape, vocab, seed=0, pre_pad=2, post_pad=3):
    """Token ids with pre-padding on some rows and post-padding on others (0 = padding)."""
    ids = np.random.default_rng(seed).integers(1, vocab, shape)
    ids[: shape[0] // 3, :pre_pad] = 0
    ids[shape[0] // 3: 2 * shape[0] // 3, -post_pad:] = 0
    return ids


def assert_predict_parity(km, lm, x):
    expected = km.predict(x, verbose=0, batch_size=8)
    got = lm.predict(x, verbose=0, batch_size=8)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=PRED_RTOL * np.max(np.abs(expected)) + PRED_ATOL)


def assert_fit_parity(km, lm, x, y, loss, metrics=None, optimizer=("Adam", {"learning_rate": 0.01}),
                      epochs=2, batch_size=16, validation=False):
    name, kwargs = optimizer
    km.compile(getattr(keras.optimizers, name)(**kwargs), loss, metrics=metrics)
    lm.compile(getattr(lf.optimizers, name)(**kwargs), loss, metrics=metrics)
    fit = dict(batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    if validation:
        fit["validation_split"] = 0.25
    hk = km.fit(x, y, **fit).history
    hl = lm.fit(x, y, **fit).history
    assert sorted(hl) == sorted(hk)
    for key in hk:
        np.testing.assert_allclose(hl[key], hk[key], rtol=FIT_RTOL, atol=1e-6, err_msg=key)
    for a, b, v in zip(lm.get_weights(), km.get_weights(), lm.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=FIT_WEIGHT_ATOL, err_msg=v.path)
    return hl


# ---------------------------------------------------------------------------- LSTM

LSTM_VARIANTS = [
    dict(),
    dict(return_sequences=True),
    dict(go_backwards=True, return_sequences=True),
    dict(activation="relu", recurrent_activation="hard_sigmoid"),
    dict(activation="sigmoid", use_bias=False),
    dict(activation="linear", unit_forget_bias=False),
]


@pytest.mark.parametrize("kwargs", LSTM_VARIANTS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_lstm_predict_and_fit_match_keras(kwargs):
    x = _x((32, 7, 3))
    km, lm = build_pair(keras, [K.LSTM(6, **kwargs), K.Flatten()], [L.LSTM(6, **kwargs), L.Flatten()], (7, 3))
    assert_predict_parity(km, lm, x)
    y = _x((32, lm.output_shape[1]), seed=1)
    assert_fit_parity(km, lm, x, y, "mse")


def test_stacked_lstms_with_return_sequences_match_keras():
    x = _x((32, 6, 4))
    km, lm = build_pair(keras, [K.LSTM(8, return_sequences=True), K.LSTM(5, return_sequences=True), K.LSTM(3)],
                        [L.LSTM(8, return_sequences=True), L.LSTM(5, return_sequences=True), L.LSTM(3)], (6, 4))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 3), 1), "mae")


# ---------------------------------------------------------------------------- Dense, Activation, Flatten, Dropout

@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax", "elu", "softplus"])
def test_dense_on_2d_input_matches_keras(activation):
    x = _x((32, 5)) - 0.5
    km, lm = build_pair(keras, [K.Dense(4, activation=activation)], [L.Dense(4, activation=activation)], (5,))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 4), 1), "mse")


def test_dense_on_3d_input_matches_keras():
    x = _x((32, 6, 5))
    km, lm = build_pair(keras, [K.Dense(4, activation="tanh"), K.Dense(3)], [L.Dense(4, activation="tanh"), L.Dense(3)], (6, 5))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 6, 3), 1), "mse")


def test_activation_flatten_and_dropout_match_keras():
    x = _x((32, 4, 3))
    km, lm = build_pair(keras, [K.Activation("tanh"), K.Dropout(0.0), K.Flatten(), K.Dense(2, activation="softmax")],
                        [L.Activation("tanh"), L.Dropout(0.0), L.Flatten(), L.Dense(2, activation="softmax")], (4, 3))
    assert_predict_parity(km, lm, x)
    y = lf.utils.to_categorical(np.arange(32) % 2, 2)
    assert_fit_parity(km, lm, x, y, "categorical_crossentropy", metrics=["accuracy"])


def test_dropout_at_inference_is_the_identity_like_keras():
    x = _x((16, 4, 3))
    km, lm = build_pair(keras, [K.LSTM(4, dropout=0.5, recurrent_dropout=0.5), K.Dropout(0.5)],
                        [L.LSTM(4, dropout=0.5, recurrent_dropout=0.5), L.Dropout(0.5)], (4, 3))
    assert_predict_parity(km, lm, x)


# ---------------------------------------------------------------------------- Embedding and masking

def test_embedding_without_mask_matches_keras():
    ids = _ids((32, 6), 20)
    km, lm = build_pair(keras, [K.Embedding(20, 4), K.LSTM(5)], [L.Embedding(20, 4), L.LSTM(5)], (6,), int_input=True)
    assert_predict_parity(km, lm, ids)
    assert_fit_parity(km, lm, ids, _x((32, 5), 1), "mse")


@pytest.mark.parametrize("return_sequences", [False, True])
def test_embedding_mask_reaches_the_lstm_for_pre_and_post_padding_like_keras(return_sequences):
    ids = _ids((32, 8), 20)
    km, lm = build_pair(keras, [K.Embedding(20, 4, mask_zero=True), K.LSTM(5, return_sequences=return_sequences), K.Dense(1, activation="sigmoid")],
                        [L.Embedding(20, 4, mask_zero=True), L.LSTM(5, return_sequences=return_sequences), L.Dense(1, activation="sigmoid")],
                        (8,), int_input=True)
    assert_predict_parity(km, lm, ids)
    shape = (32, 8, 1) if return_sequences else (32, 1)
    y = (np.random.default_rng(2).random(shape) > 0.5).astype(np.float32)
    # with return_sequences the output keeps the mask, so Keras masks the loss and the accuracy
    assert_fit_parity(km, lm, ids, y, "binary_crossentropy", metrics=["accuracy"])


def test_masked_steps_output_zeros_with_zero_output_for_mask_like_keras():
    ids = _ids((32, 8), 20)
    for kwargs in (dict(return_sequences=True, zero_output_for_mask=True),
                   dict(return_sequences=True, zero_output_for_mask=True, go_backwards=True),
                   dict(zero_output_for_mask=True), dict(go_backwards=True)):
        km, lm = build_pair(keras, [K.Embedding(20, 4, mask_zero=True), K.LSTM(5, **kwargs)],
                            [L.Embedding(20, 4, mask_zero=True), L.LSTM(5, **kwargs)], (8,), int_input=True)
        assert_predict_parity(km, lm, ids)


def _padded_series(shape, seed=0):
    """Float sequences whose padded steps (pre on some rows, post on others) are all zeros."""
    x = _x(shape, seed) + 0.1
    x[: shape[0] // 3, :2] = 0
    x[shape[0] // 3: 2 * shape[0] // 3, -3:] = 0
    return x


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masking_layer_masks_padded_float_steps_like_keras(return_sequences):
    x = _padded_series((32, 8, 3))
    km, lm = build_pair(keras, [K.Masking(0.0), K.LSTM(5, return_sequences=return_sequences), K.Dense(2)],
                        [L.Masking(0.0), L.LSTM(5, return_sequences=return_sequences), L.Dense(2)], (8, 3))
    assert_predict_parity(km, lm, x)
    # with return_sequences the mask reaches the loss: padded steps do not count
    assert_fit_parity(km, lm, x, _x((32, 8, 2) if return_sequences else (32, 2), 1), "mse")


def test_masking_with_another_mask_value_like_keras():
    x = _padded_series((16, 6, 2))
    x[x == 0] = -1.0
    km, lm = build_pair(keras, [K.Masking(mask_value=-1.0), K.LSTM(4)], [L.Masking(mask_value=-1.0), L.LSTM(4)], (6, 2))
    assert_predict_parity(km, lm, x)


@pytest.mark.parametrize("masked", [False, True])
def test_global_average_pooling_averages_the_unmasked_steps_like_keras(masked):
    ids = _ids((32, 8), 20)
    km, lm = build_pair(keras, [K.Embedding(20, 4, mask_zero=masked), K.LSTM(5, return_sequences=True),
                                K.GlobalAveragePooling1D(), K.Dense(1, activation="sigmoid")],
                        [L.Embedding(20, 4, mask_zero=masked), L.LSTM(5, return_sequences=True),
                         L.GlobalAveragePooling1D(), L.Dense(1, activation="sigmoid")], (8,), int_input=True)
    assert_predict_parity(km, lm, ids)
    y = (np.random.default_rng(2).random((32, 1)) > 0.5).astype(np.float32)
    assert_fit_parity(km, lm, ids, y, "binary_crossentropy", metrics=["accuracy"])


def test_global_max_pooling_and_spatial_dropout_like_keras():
    x = _x((32, 7, 3))
    km, lm = build_pair(keras, [K.SpatialDropout1D(0.0), K.LSTM(6, return_sequences=True), K.GlobalMaxPooling1D(), K.Dense(2)],
                        [L.SpatialDropout1D(0.0), L.LSTM(6, return_sequences=True), L.GlobalMaxPooling1D(), L.Dense(2)], (7, 3))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 2), 1), "mse")


@pytest.mark.parametrize("layer", ["GlobalAveragePooling1D", "GlobalMaxPooling1D"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_options_like_keras(layer, data_format, keepdims):
    x = _x((8, 5, 3))
    km, lm = build_pair(keras, [getattr(K, layer)(data_format=data_format, keepdims=keepdims)],
                        [getattr(L, layer)(data_format=data_format, keepdims=keepdims)], (5, 3))
    assert lm.output_shape == km.output_shape
    assert_predict_parity(km, lm, x)


def test_spatial_dropout_at_inference_is_the_identity_like_keras():
    x = _x((16, 4, 3))
    km, lm = build_pair(keras, [K.SpatialDropout1D(0.5), K.LSTM(3)], [L.SpatialDropout1D(0.5), L.LSTM(3)], (4, 3))
    assert_predict_parity(km, lm, x)


CONV_VARIANTS = [
    dict(),
    dict(padding="same", activation="relu"),
    dict(padding="causal", dilation_rate=2),
    dict(strides=2, padding="same", use_bias=False),
    dict(strides=3, kernel_size=(4,)),
    dict(data_format="channels_first", padding="same"),
]


@pytest.mark.parametrize("kwargs", CONV_VARIANTS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_conv1d_matches_keras(kwargs):
    kwargs = {"kernel_size": 3, **kwargs}
    x = _x((32, 11, 4))
    km, lm = build_pair(keras, [K.Dense(3), K.Conv1D(5, **kwargs), K.Flatten(), K.Dense(2)],
                        [L.Dense(3), L.Conv1D(5, **kwargs), L.Flatten(), L.Dense(2)], (11, 4))
    assert lm.layers[1].output_shape == km.layers[1].output.shape
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 2), 1), "mse")


@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=1), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=2, padding="same"), dict(data_format="channels_first")],
                         ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_max_pooling1d_matches_keras(kwargs):
    x = _x((32, 9, 4))
    km, lm = build_pair(keras, [K.Dense(3), K.MaxPooling1D(**kwargs), K.Flatten(), K.Dense(2)],
                        [L.Dense(3), L.MaxPooling1D(**kwargs), L.Flatten(), L.Dense(2)], (9, 4))
    assert lm.layers[1].output_shape == km.layers[1].output.shape
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 2), 1), "mse")


def test_keras_cnn_lstm_sentiment_model_matches_keras():
    # Keras's imdb_cnn_lstm example, small: Embedding → Dropout → Conv1D → MaxPooling1D → LSTM → Dense
    ids = _ids((32, 20), 30)
    km, lm = build_pair(keras, [K.Embedding(30, 8), K.Dropout(0.0), K.Conv1D(6, 5, padding="valid", activation="relu", strides=1),
                                K.MaxPooling1D(pool_size=4), K.LSTM(7), K.Dense(1, activation="sigmoid")],
                        [L.Embedding(30, 8), L.Dropout(0.0), L.Conv1D(6, 5, padding="valid", activation="relu", strides=1),
                         L.MaxPooling1D(pool_size=4), L.LSTM(7), L.Dense(1, activation="sigmoid")], (20,), int_input=True)
    assert_predict_parity(km, lm, ids)
    y = (np.random.default_rng(2).random((32, 1)) > 0.5).astype(np.float32)
    assert_fit_parity(km, lm, ids, y, "binary_crossentropy", metrics=["accuracy"])


def test_time_distributed_cnn_lstm_forecaster_matches_keras():
    # the CNN-LSTM of time-series tutorials: subsequences (B, n_seq, n_steps, features), a Conv1D
    # and a MaxPooling1D applied to each, then an LSTM over the subsequences
    x = _x((32, 3, 4, 2))
    km, lm = build_pair(keras, [K.TimeDistributed(K.Conv1D(8, 2, activation="relu")), K.TimeDistributed(K.MaxPooling1D(2)),
                                K.TimeDistributed(K.Flatten()), K.LSTM(6, activation="relu"), K.Dense(1)],
                        [L.TimeDistributed(L.Conv1D(8, 2, activation="relu")), L.TimeDistributed(L.MaxPooling1D(2)),
                         L.TimeDistributed(L.Flatten()), L.LSTM(6, activation="relu"), L.Dense(1)], (3, 4, 2))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 1), 1), "mse")


def test_reshape_and_permute_match_keras():
    x = _x((32, 12))
    km, lm = build_pair(keras, [K.Dense(12), K.Reshape((4, -1)), K.Permute((2, 1)), K.LSTM(5), K.Dense(2)],
                        [L.Dense(12), L.Reshape((4, -1)), L.Permute((2, 1)), L.LSTM(5), L.Dense(2)], (12,))
    assert [l.output_shape for l in lm.layers[1:3]] == [(None, 4, 3), (None, 3, 4)]
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, 2), 1), "mse")


# ---------------------------------------------------------------------------- wrappers

@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_matches_keras(merge_mode):
    x = _x((32, 6, 3))
    km, lm = build_pair(keras, [K.Bidirectional(K.LSTM(4, return_sequences=True), merge_mode=merge_mode), K.Bidirectional(K.LSTM(3), merge_mode=merge_mode)],
                        [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=merge_mode), L.Bidirectional(L.LSTM(3), merge_mode=merge_mode)],
                        (6, 3))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, _x((32, lm.output_shape[-1]), 1), "mse")


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_with_masked_embedding_matches_keras(return_sequences):
    ids = _ids((32, 8), 20)
    km, lm = build_pair(keras, [K.Embedding(20, 4, mask_zero=True), K.Bidirectional(K.LSTM(4, return_sequences=return_sequences)), K.Dense(3, activation="softmax")],
                        [L.Embedding(20, 4, mask_zero=True), L.Bidirectional(L.LSTM(4, return_sequences=return_sequences)), L.Dense(3, activation="softmax")],
                        (8,), int_input=True)
    assert_predict_parity(km, lm, ids)
    y = np.random.default_rng(3).integers(0, 3, (32, 8) if return_sequences else (32,))
    assert_fit_parity(km, lm, ids, y, "sparse_categorical_crossentropy", metrics=["accuracy"])


def test_repeat_vector_and_time_distributed_dense_match_keras():
    x = _x((32, 5, 3))
    km, lm = build_pair(keras, [K.LSTM(6), K.RepeatVector(4), K.LSTM(5, return_sequences=True), K.TimeDistributed(K.Dense(3, activation="softmax"))],
                        [L.LSTM(6), L.RepeatVector(4), L.LSTM(5, return_sequences=True), L.TimeDistributed(L.Dense(3, activation="softmax"))],
                        (5, 3))
    assert_predict_parity(km, lm, x)
    y = lf.utils.to_categorical(np.random.default_rng(4).integers(0, 3, (32, 4)), 3)
    assert_fit_parity(km, lm, x, y, "categorical_crossentropy", metrics=["accuracy"], validation=True)


# ---------------------------------------------------------------------------- losses and optimizers

@pytest.mark.parametrize("loss", [
    "mse", "mae",
    "binary_crossentropy",
    ("BinaryCrossentropy", dict(from_logits=True)),
    ("BinaryCrossentropy", dict(label_smoothing=0.1)),
])
def test_regression_and_binary_losses_train_like_keras(loss):
    x = _x((32, 5, 2))
    if isinstance(loss, tuple):
        kloss, lloss = getattr(keras.losses, loss[0])(**loss[1]), getattr(lf.losses, loss[0])(**loss[1])
    else:
        kloss = lloss = loss
    act = None if isinstance(loss, tuple) and loss[1].get("from_logits") else "sigmoid"
    km, lm = build_pair(keras, [K.LSTM(4), K.Dense(2, activation=act)], [L.LSTM(4), L.Dense(2, activation=act)], (5, 2))
    y = (np.random.default_rng(5).random((32, 2)) > 0.5).astype(np.float32)
    km.compile(keras.optimizers.Adam(0.01), kloss)
    lm.compile(lf.optimizers.Adam(0.01), lloss)
    hk = km.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    hl = lm.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(hl, hk, rtol=FIT_RTOL)
    for a, b in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=FIT_WEIGHT_ATOL)


@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_losses_train_like_keras(from_logits):
    x = _x((32, 5, 2))
    act = None if from_logits else "softmax"
    for lname, y in (("CategoricalCrossentropy", lf.utils.to_categorical(np.arange(32) % 4, 4)),
                     ("SparseCategoricalCrossentropy", (np.arange(32) % 4)[:, None])):
        km, lm = build_pair(keras, [K.LSTM(4), K.Dense(4, activation=act)], [L.LSTM(4), L.Dense(4, activation=act)], (5, 2))
        km.compile(keras.optimizers.Adam(0.01), getattr(keras.losses, lname)(from_logits=from_logits), metrics=["accuracy"])
        lm.compile(lf.optimizers.Adam(0.01), getattr(lf.losses, lname)(from_logits=from_logits), metrics=["accuracy"])
        hk = km.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
        hl = lm.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
        for key in hk:
            np.testing.assert_allclose(hl[key], hk[key], rtol=FIT_RTOL, err_msg=f"{lname} {key}")


@pytest.mark.parametrize("optimizer", [
    ("Adam", dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True)),
    ("Adam", dict(learning_rate=0.01, clipnorm=0.05)),
    ("Adam", dict(learning_rate=0.01, clipvalue=0.01)),
    ("Adam", dict(learning_rate=0.01, global_clipnorm=0.05)),
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9)),
    ("Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=3)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, use_ema=True)),
], ids=lambda o: o[0] + "," + ",".join(f"{k}={v}" for k, v in o[1].items()))
def test_optimizers_update_like_keras(optimizer):
    x = _x((32, 5, 2))
    km, lm = build_pair(keras, [K.LSTM(4), K.Dense(1)], [L.LSTM(4), L.Dense(1)], (5, 2))
    assert_fit_parity(km, lm, x, _x((32, 1), 1), "mse", optimizer=optimizer)


# ---------------------------------------------------------------------------- the three seed models

def test_translation_seed_model_matches_keras():
    # LSTM(256) -> RepeatVector -> LSTM(256, return_sequences) -> Dense(softmax), short sequences
    x = _x((32, 6, 10))
    km, lm = build_pair(keras, [K.LSTM(256), K.RepeatVector(5), K.LSTM(256, return_sequences=True), K.Dense(12, activation="softmax")],
                        [L.LSTM(256), L.RepeatVector(5), L.LSTM(256, return_sequences=True), L.Dense(12, activation="softmax")],
                        (6, 10))
    assert_predict_parity(km, lm, x)
    y = lf.utils.to_categorical(np.random.default_rng(6).integers(0, 12, (32, 5)), 12)
    assert_fit_parity(km, lm, x, y, "categorical_crossentropy", metrics=["accuracy"], optimizer=("Adam", {}))


def test_time_series_seed_model_matches_keras():
    x = _x((32, 30, 1))
    km, lm = build_pair(keras, [K.LSTM(50, activation="relu"), K.Dense(1)], [L.LSTM(50, activation="relu"), L.Dense(1)], (30, 1))
    assert_predict_parity(km, lm, x)
    assert_fit_parity(km, lm, x, x.sum(axis=1) / 30, "mse", optimizer=("Adam", {}))


def test_sentiment_seed_model_matches_keras_with_dropout_off():
    ids = np.random.default_rng(7).integers(0, 500, (32, 20))
    km, lm = build_pair(keras, [K.Embedding(500, 32), K.LSTM(128), K.Dense(1, activation="sigmoid")],
                        [L.Embedding(500, 32), L.LSTM(128), L.Dense(1, activation="sigmoid")], (20,), int_input=True)
    assert_predict_parity(km, lm, ids)
    y = (ids[:, 0] > 250).astype(np.float32)
    assert_fit_parity(km, lm, ids, y, "binary_crossentropy", metrics=["accuracy"], optimizer=("Adam", {}))
