"""LayerNormalization as Keras computes it (over the features, over several axes, without scale
or centre), against Keras with the same weights: predictions and two epochs of fit; float64
gradients; and a Transformer encoder block (MultiHeadAttention, Add, LayerNormalization, a
feed-forward Dense pair) written functionally as the Keras text-classification example builds
it, trained next to Keras."""

import numpy as np
import pytest

from gradcheck import assert_model_gradients
from keras_reference import assert_trains_like_keras, build_pair, functional_pair, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers


@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2]}, {"center": False}, {"scale": False, "epsilon": 1e-5},
                                    ], ids=["features", "steps_and_features", "no_center", "no_scale"])
def test_layer_normalization_predicts_and_trains_like_keras(kwargs):
    lf.utils.set_random_seed(1)
    km, lm = build_pair(keras, [K.LSTM(4, return_sequences=True), K.LayerNormalization(**kwargs), K.Flatten(),
                                K.Dense(2)],
                        [L.LSTM(4, return_sequences=True), L.LayerNormalization(**kwargs), L.Flatten(), L.Dense(2)],
                        (5, 3))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((24, 5, 3)).astype(np.float32)
    y = rng.standard_normal((24, 2)).astype(np.float32)
    if lm.layers[1].gamma is not None:  # away from the initial ones, so that a wrong γ shows
        w = lm.get_weights()
        k = 3  # LSTM kernel, recurrent kernel, bias, then gamma
        w[k] = rng.uniform(0.5, 1.5, w[k].shape).astype(np.float32)
        lm.set_weights(w)
        km.set_weights(w)
    assert_trains_like_keras(lm, km, x, y)


def test_gradients_through_layer_normalization_match_finite_differences_float64():
    lf.config.set_floatx("float64")
    try:
        for axis in (-1, [1, 2], 1):  # (Keras's torch backend cannot normalise over axis 1 alone)
            lf.utils.set_random_seed(3)
            model = lf.Sequential([lf.Input((4, 3)), L.LSTM(3, return_sequences=True), L.LayerNormalization(axis=axis),
                                   L.Flatten(), L.Dense(1)])
            model.compile("adam", "mse")
            rng = np.random.default_rng(4)
            w = model.get_weights()
            w[3] = rng.uniform(0.5, 1.5, w[3].shape)
            w[4] = rng.uniform(-0.5, 0.5, w[4].shape)
            model.set_weights(w)
            x = model.prepare_inputs(rng.standard_normal((3, 4, 3)))
            assert_model_gradients(model, x, rng.standard_normal((3, 1)), rng, samples=None, what=f"axis={axis}")
    finally:
        lf.config.set_floatx("float32")


def _transformer_classifier(M, Input, vocab=30, maxlen=8, dim=8, heads=2, ff=16):
    """Keras's "Text classification with Transformer" example, functional: token and position
    embeddings added, one encoder block, average pooling, a small classifier head."""
    tokens = Input(shape=(maxlen,), dtype="int32")
    positions = Input(shape=(maxlen,), dtype="int32")
    x = M.Add()([M.Embedding(vocab, dim)(tokens), M.Embedding(maxlen, dim)(positions)])
    attn = M.MultiHeadAttention(num_heads=heads, key_dim=dim)(x, x)
    x = M.LayerNormalization(epsilon=1e-6)(M.Add()([x, M.Dropout(0.1)(attn)]))
    ffn = M.Dense(dim)(M.Dense(ff, activation="relu")(x))
    x = M.LayerNormalization(epsilon=1e-6)(M.Add()([x, M.Dropout(0.1)(ffn)]))
    x = M.Dropout(0.1)(M.GlobalAveragePooling1D()(x))
    out = M.Dense(2, activation="softmax")(M.Dense(8, activation="relu")(x))
    return [tokens, positions], out


def test_a_transformer_encoder_block_classifier_trains_like_keras():
    lm, km = functional_pair(keras, _transformer_classifier, seed=5)
    rng = np.random.default_rng(6)
    tokens = rng.integers(0, 30, (32, 8))
    positions = np.tile(np.arange(8), (32, 1))
    y = (tokens[:, :4].sum(axis=1) > tokens[:, 4:].sum(axis=1)).astype(np.int64)
    # dropout draws differ between the libraries: compare predictions, then train without dropout
    np.testing.assert_allclose(lm.predict([tokens, positions], verbose=0), km.predict([tokens, positions], verbose=0),
                               rtol=1e-5, atol=1e-6)
    for model in (lm, km):
        for layer in model.layers:
            if type(layer).__name__ == "Dropout":
                layer.rate = 0.0
    assert_trains_like_keras(lm, km, [tokens, positions], y, loss="sparse_categorical_crossentropy",
                             metrics=["accuracy"])


def test_config_round_trip_and_bad_arguments_say_why():
    layer = L.LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False, gamma_regularizer="l2")
    again = L.deserialize(L.serialize(layer))
    assert type(again) is L.LayerNormalization and again.get_config() == layer.get_config()
    with pytest.raises(TypeError, match="axis"):
        L.LayerNormalization(axis="last")
    with pytest.raises(ValueError, match="epsilon"):
        L.LayerNormalization(epsilon=0)
    with pytest.raises(ValueError, match="out of bounds"):
        L.LayerNormalization(axis=3)(lf.Input((4, 3)))
    with pytest.raises(ValueError, match="batch axis"):
        L.LayerNormalization(axis=0)(np.ones((2, 3), np.float32))
