"""MultiHeadAttention as Keras computes it: self- and cross-attention in functional graphs with
masks from the inputs, a separate key, the causal mask, an attention_mask tensor, a sliding
window, value_dim / output_shape / use_bias — predictions and two epochs of fit against Keras
(torch backend, same weights); the attention weights returned; float64 gradients; models saved
by Keras loaded and predicting the same; configs and bad calls."""

import numpy as np
import pytest

from gradcheck import assert_model_gradients
from keras_reference import assert_trains_like_keras, functional_pair, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers

CASES = {
    "self": dict(layer={}, call={}),
    "cross_key": dict(layer={"value_dim": 3, "output_shape": 5}, call={}, key=True, cross=True),
    "causal": dict(layer={"num_heads": 3}, call={"use_causal_mask": True}),
    "no_bias": dict(layer={"use_bias": False}, call={}, cross=True),
    "attention_mask": dict(layer={}, call={}, attention_mask=True),
    "sliding_window": dict(layer={"sliding_window": 2}, call={"use_causal_mask": True}),
}


def _graph(M, Input, case):
    """Token ids -> Embedding(mask_zero) -> LSTM(return_sequences) for the query (and value, key)
    -> MultiHeadAttention -> LSTM(3) -> Dense(2). Every query step keeps at least one visible key."""
    c = CASES[case]
    ins = [Input(shape=(6,))] + ([Input(shape=(6,))] if c.get("cross") else []) + \
          ([Input(shape=(6,))] if c.get("key") else [])
    seqs = [M.LSTM(4, return_sequences=True)(M.Embedding(9, 3, mask_zero=True)(x)) for x in ins]
    kwargs = dict(c["call"])
    if c.get("key"):
        kwargs["key"] = seqs[2]
    if c.get("attention_mask"):
        ins.append(Input(shape=(6, 6)))
        kwargs["attention_mask"] = ins[-1]
    mha = M.MultiHeadAttention(**dict({"num_heads": 2, "key_dim": 3}, **c["layer"]))
    context = mha(seqs[0], seqs[1] if c.get("cross") else seqs[0], **kwargs)
    return ins, M.Dense(2)(M.LSTM(3)(context))


def _ids(n, seed):
    """Right-padded ids: the first step is always a word, so no query step sees only padding."""
    ids = np.random.default_rng(seed).integers(1, 9, (n, 6))
    ids[: n // 3, -2:] = 0
    ids[n // 3: n // 2, -1:] = 0
    return ids


def _inputs(case, n=24):
    c = CASES[case]
    xs = [_ids(n, 1)] + ([_ids(n, 2)] if c.get("cross") else []) + ([_ids(n, 3)] if c.get("key") else [])
    if c.get("attention_mask"):
        m = np.random.default_rng(4).random((n, 6, 6)) > 0.4
        m[:, :, 0] = True
        xs.append(m.astype(np.float32))
    return xs


@pytest.mark.parametrize("case", sorted(CASES))
def test_multi_head_attention_predicts_and_trains_like_keras(case):
    lm, km = functional_pair(keras, lambda M, Input: _graph(M, Input, case))
    y = np.random.default_rng(5).standard_normal((24, 2)).astype(np.float32)
    assert_trains_like_keras(lm, km, _inputs(case), y)


def test_the_attention_weights_come_out_as_keras_returns_them():
    rng = np.random.default_rng(5)
    q, v = rng.standard_normal((3, 4, 6)).astype(np.float32), rng.standard_normal((3, 5, 7)).astype(np.float32)
    vm = np.ones((3, 5), bool)
    vm[0, -2:] = False
    ours = L.MultiHeadAttention(num_heads=3, key_dim=2, value_dim=4)
    theirs = K.MultiHeadAttention(num_heads=3, key_dim=2, value_dim=4)
    o1, a1 = ours(q, v, value_mask=vm, return_attention_scores=True)
    theirs.build(q.shape, v.shape)
    theirs.set_weights(ours.get_weights())
    o2, a2 = theirs(q, v, value_mask=vm, return_attention_scores=True)
    assert a1.shape == (3, 3, 4, 5)  # (batch, heads, query steps, value steps)
    np.testing.assert_allclose(o1, keras.ops.convert_to_numpy(o2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a1, keras.ops.convert_to_numpy(a2), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a1.sum(axis=-1), 1, rtol=1e-6)
    assert np.all(a1[0, :, :, -2:] == 0)


def test_gradients_through_multi_head_attention_match_finite_differences_float64():
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(6)
        ins = [lf.Input(shape=(4, 3)), lf.Input(shape=(5, 2)), lf.Input(shape=(4, 5))]
        q = L.LSTM(3, return_sequences=True)(L.Masking()(ins[0]))
        v = L.LSTM(4, return_sequences=True)(ins[1])
        mha = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2)
        out, weights = mha(q, v, key=L.Dense(3)(v), attention_mask=ins[2], use_causal_mask=True,
                           return_attention_scores=True)
        self_out = L.MultiHeadAttention(num_heads=2, key_dim=2)(out, out)  # query = value = key
        flat = L.Concatenate()([L.Flatten()(self_out), L.Flatten()(weights)])
        model = lf.Model(ins, L.Dense(1)(flat))
        model.compile("adam", "mse")
        rng = np.random.default_rng(7)
        xq = rng.standard_normal((3, 4, 3))
        xq[0, -1] = 0  # a masked query step
        att = rng.random((3, 4, 5)) > 0.3
        att[:, :, 0] = True
        x = model.prepare_inputs([xq, rng.standard_normal((3, 5, 2)), att.astype(np.float64)])
        assert_model_gradients(model, x, rng.standard_normal((3, 1)), rng, what="MultiHeadAttention")
    finally:
        lf.config.set_floatx("float32")


def test_a_keras_saved_model_with_multi_head_attention_loads_and_predicts_the_same(tmp_path):
    x = keras.Input((5, 3))
    h = K.MultiHeadAttention(2, 4, name="mha")(x, x, use_causal_mask=True)
    km = keras.Model(x, K.Dense(1)(K.GlobalAveragePooling1D()(h)))
    path = str(tmp_path / "mha.keras")
    km.save(path)
    lm = lf.models.load_model(path)
    data = np.random.default_rng(8).standard_normal((4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(lm.predict(data, verbose=0), km.predict(data, verbose=0), rtol=1e-5, atol=1e-6)
    assert len(lm.get_layer("mha").input) == 2  # [query, value], as Keras lists them
    lm.save(str(tmp_path / "again.keras"))
    again = lf.models.load_model(str(tmp_path / "again.keras"))
    np.testing.assert_array_equal(again.predict(data, verbose=0), lm.predict(data, verbose=0))


def test_dropout_on_the_weights_trains_and_inference_is_deterministic():
    lf.utils.set_random_seed(9)
    x = lf.Input((6, 4))
    h = L.MultiHeadAttention(2, 4, dropout=0.3, seed=1)(x, x)
    model = lf.Model(x, L.Dense(1)(L.GlobalAveragePooling1D()(h)))
    model.compile(lf.optimizers.Adam(0.01), "mse")
    rng = np.random.default_rng(10)
    data = rng.standard_normal((64, 6, 4)).astype(np.float32)
    target = data[:, :, 0].mean(axis=1, keepdims=True)
    losses = model.fit(data, target, epochs=8, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_array_equal(model.predict(data, verbose=0), model.predict(data, verbose=0))


def test_configs_round_trip_and_bad_calls_say_why():
    layer = L.MultiHeadAttention(3, 4, value_dim=2, dropout=0.1, output_shape=7, sliding_window=3,
                                 kernel_regularizer="l2", seed=2)
    again = L.deserialize(L.serialize(layer))
    assert type(again) is L.MultiHeadAttention and again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="num_heads"):
        L.MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="key_dim"):
        L.MultiHeadAttention(2, 4.5)
    with pytest.raises(ValueError, match="attention_axes"):
        L.MultiHeadAttention(2, 4, attention_axes=(2,))
    with pytest.raises(ValueError, match="use_gate"):
        L.MultiHeadAttention(2, 4, use_gate=True)
    q = lf.Input((4, 3))
    with pytest.raises(TypeError, match="value"):
        L.MultiHeadAttention(2, 4)(q)
    with pytest.raises(ValueError, match="3-D"):
        L.MultiHeadAttention(2, 4)(q, lf.Input((5,)))
    with pytest.raises(ValueError, match="except the last one"):
        L.MultiHeadAttention(2, 4)(q, lf.Input((5, 3)), key=lf.Input((6, 3)))
    with pytest.raises(ValueError, match="attention_mask must be shaped"):
        L.MultiHeadAttention(2, 4)(q, lf.Input((5, 3)), attention_mask=lf.Input((4, 4)))
