"""Attention (Luong: dot and concat scores, use_scale) and AdditiveAttention (Bahdanau) as Keras
computes them: predictions and two epochs of fit against Keras (torch backend, same weights),
query and value masks, the causal mask, the weights returned as a second output, a separate
key; float64 gradients; a Luong-attention encoder-decoder trained as in Keras."""

import numpy as np
import pytest

from gradcheck import assert_model_gradients
from keras_reference import assert_trains_like_keras, functional_pair, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers

LAYERS = {
    "dot": lambda M: M.Attention(),
    "dot_scaled": lambda M: M.Attention(use_scale=True),
    "concat": lambda M: M.Attention(score_mode="concat"),
    "concat_scaled": lambda M: M.Attention(use_scale=True, score_mode="concat"),
    "additive": lambda M: M.AdditiveAttention(),
    "additive_unscaled": lambda M: M.AdditiveAttention(use_scale=False),
}


def _graph(M, Input, kind, key=False, causal=False, masked=False):
    """Token ids -> Embedding (masked) -> LSTM(return_sequences) for query and value (and key)
    -> attention -> LSTM(3) -> Dense(2)."""
    ins = [Input(shape=(6,)), Input(shape=(7,))] + ([Input(shape=(7,))] if key else [])
    seqs = [M.LSTM(4, return_sequences=True)(M.Embedding(9, 3, mask_zero=masked)(x)) for x in ins]
    context = LAYERS[kind](M)(seqs, use_causal_mask=causal)
    return ins, M.Dense(2)(M.LSTM(3)(context))


def _ids(n, t, seed):
    ids = np.random.default_rng(seed).integers(1, 9, (n, t))
    ids[: n // 3, -2:] = 0
    ids[n // 3: n // 2, -1:] = 0
    return ids


def _pair(kind, **opts):
    return functional_pair(keras, lambda M, Input: _graph(M, Input, kind, **opts))


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("opts", [{}, {"masked": True}, {"masked": True, "key": True}, {"causal": True}],
                         ids=["plain", "masked", "key", "causal"])
def test_attention_predicts_and_trains_like_keras(kind, opts):
    lm, km = _pair(kind, **opts)
    xs = [_ids(24, 6, 1), _ids(24, 7, 2)] + ([_ids(24, 7, 3)] if opts.get("key") else [])
    y = np.random.default_rng(4).standard_normal((24, 2)).astype(np.float32)
    assert_trains_like_keras(lm, km, xs, y)


@pytest.mark.parametrize("kind", ["dot_scaled", "additive"])
def test_the_attention_weights_come_out_as_keras_returns_them(kind):
    rng = np.random.default_rng(5)
    q, v = rng.standard_normal((3, 4, 5)).astype(np.float32), rng.standard_normal((3, 6, 5)).astype(np.float32)
    vm = np.ones((3, 6), bool)
    vm[0, -2:] = False
    ours, theirs = LAYERS[kind](L), LAYERS[kind](K)
    o1, a1 = ours([q, v], mask=[None, vm], return_attention_scores=True)
    theirs.build([q.shape, v.shape])
    theirs.set_weights(ours.get_weights())
    o2, a2 = theirs([q, v], mask=[None, vm], return_attention_scores=True)
    np.testing.assert_allclose(o1, keras.ops.convert_to_numpy(o2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a1, keras.ops.convert_to_numpy(a2), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a1.sum(axis=-1), 1, rtol=1e-6)
    assert np.all(a1[0, :, -2:] < 1e-6)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradients_through_attention_match_finite_differences_float64(kind):
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(6)
        ins = [lf.Input(shape=(4, 3)), lf.Input(shape=(5, 3))]
        q, v = L.LSTM(3, return_sequences=True)(ins[0]), L.LSTM(3, return_sequences=True)(ins[1])
        out, weights = LAYERS[kind](L)([q, v], return_attention_scores=True, use_causal_mask=kind == "dot")
        model = lf.Model(ins, L.Dense(1)(L.Flatten()(L.Concatenate()([out, weights]))))
        model.compile("adam", "mse")
        rng = np.random.default_rng(7)
        x = model.prepare_inputs([rng.standard_normal((3, 4, 3)), rng.standard_normal((3, 5, 3))])
        y = rng.standard_normal((3, 1))
        if kind == "concat_scaled":  # away from 1, so that a wrong scale gradient shows
            model.get_layer(index=4).scale.assign(np.float64(0.7))
        assert_model_gradients(model, x, y, rng, what=kind)
    finally:
        lf.config.set_floatx("float32")


def _luong_seq2seq(M, Input, n_in=7, n_out=6, units=8):
    """An encoder-decoder with Luong attention, as Keras tutorials write it."""
    enc_in, dec_in = Input(shape=(None, n_in)), Input(shape=(None, n_out))
    enc_seq, h, c = M.LSTM(units, return_sequences=True, return_state=True)(enc_in)
    dec_seq = M.LSTM(units, return_sequences=True)(dec_in, initial_state=[h, c])
    context = M.Attention()([dec_seq, enc_seq])
    merged = M.Concatenate()([dec_seq, context])
    return M.Dense(n_out, activation="softmax")(merged), [enc_in, dec_in]


def test_a_luong_attention_encoder_decoder_trains_like_keras():
    lf.utils.set_random_seed(8)
    lout, lin = _luong_seq2seq(L, lf.Input)
    kout, kin = _luong_seq2seq(K, keras.Input)
    lm, km = lf.Model(lin, lout), keras.Model(kin, kout)
    km.set_weights(lm.get_weights())
    rng = np.random.default_rng(9)
    enc = np.eye(7, dtype=np.float32)[rng.integers(0, 7, (32, 5))]
    dec = np.eye(6, dtype=np.float32)[rng.integers(0, 6, (32, 4))]
    target = np.roll(dec, -1, axis=1)
    np.testing.assert_allclose(lm.predict([enc, dec], verbose=0), km.predict([enc, dec], verbose=0), atol=1e-6)
    for m in (lm, km):
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    fit = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
    hl, hk = lm.fit([enc, dec], target, **fit).history, km.fit([enc, dec], target, **fit).history
    for key in hk:
        np.testing.assert_allclose(hl[key], hk[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=5e-5)


def _bidirectional_translator(M, Input, v_in=11, v_out=9, emb=5, units=4):
    """The translation model: masked source Embedding -> Bidirectional LSTM encoder returning its
    four states -> decoder LSTM started from the concatenated states, teacher-forced -> Luong
    attention over the encoder outputs -> Concatenate -> Dense(tanh) -> Dense(softmax)."""
    src, tgt = Input(shape=(None,), dtype="int32"), Input(shape=(None,), dtype="int32")
    enc_seq, fh, fc, bh, bc = M.Bidirectional(M.LSTM(units, return_sequences=True, return_state=True))(
        M.Embedding(v_in, emb, mask_zero=True)(src))
    h, c = M.Concatenate()([fh, bh]), M.Concatenate()([fc, bc])
    dec = M.LSTM(2 * units, return_sequences=True)(M.Embedding(v_out, emb, mask_zero=True)(tgt), initial_state=[h, c])
    merged = M.Concatenate()([dec, M.Attention()([dec, enc_seq])])
    return [src, tgt], M.Dense(v_out, activation="softmax")(M.Dense(2 * units, activation="tanh")(merged))


def _right_padded(n, t, v, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, v, (n, t))
    for i, length in enumerate(rng.integers(2, t + 1, n)):
        ids[i, length:] = 0
    return ids


def test_a_bidirectional_encoder_returning_its_states_feeds_an_attention_decoder_as_in_keras(tmp_path):
    lf.utils.set_random_seed(3)
    lin, lout = _bidirectional_translator(L, lf.Input)
    kin, kout = _bidirectional_translator(K, keras.Input)
    lm, km = lf.Model(lin, lout), keras.Model(kin, kout)
    assert [type(l).__name__ for l in lm.layers] == [type(l).__name__ for l in km.layers]  # Inputs as Keras
    assert [tuple(w.shape) for w in km.weights] == [w.shape for w in lm.weights]
    km.set_weights(lm.get_weights())
    # Padded sources; whole targets: Keras 3 drops the mask of an LSTM called with `initial_state`
    # (docs/keras.md), where lstmfast keeps it, so padded targets would differ at their padding.
    src, tgt = _right_padded(32, 6, 11, 1), np.random.default_rng(2).integers(1, 9, (32, 5))
    target = np.concatenate([tgt[:, 1:], np.zeros((32, 1), tgt.dtype)], axis=1)
    np.testing.assert_allclose(lm.predict([src, tgt], verbose=0), km.predict([src, tgt], verbose=0), atol=1e-6)
    for m in (lm, km):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    fit = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
    hl, hk = lm.fit([src, tgt], target, **fit).history, km.fit([src, tgt], target, **fit).history
    np.testing.assert_allclose(hl["loss"], hk["loss"], rtol=1e-4, atol=1e-6)
    for a, b in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=5e-5)
    lm.save(tmp_path / "translator.lstmfast")
    again = lf.load_model(tmp_path / "translator.lstmfast")
    np.testing.assert_array_equal(again.predict([src, tgt], verbose=0), lm.predict([src, tgt], verbose=0))


def test_gradients_through_a_bidirectional_encoder_with_states_in_and_out_float64():
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(4)
        lin, lout = _bidirectional_translator(L, lf.Input, units=3)
        model = lf.Model(lin, lout)
        model.compile("adam", "sparse_categorical_crossentropy")
        src, tgt = _right_padded(3, 5, 11, 5), _right_padded(3, 4, 9, 6)
        assert_model_gradients(model, model.prepare_inputs([src, tgt]), tgt, what="translator")
        # initial states given to the Bidirectional layer itself, and its states as the only output
        x, s = lf.Input(shape=(4, 2)), lf.Input(shape=(3,))
        states = [L.Dense(3, activation="tanh")(s) for _ in range(4)]
        _, fh, fc, bh, bc = L.Bidirectional(L.LSTM(3, return_state=True))(x, initial_state=states)
        model = lf.Model([x, s], L.Dense(1)(L.Concatenate()([fh, fc, bh, bc])))
        model.compile("adam", "mse")
        rng = np.random.default_rng(8)
        xs = model.prepare_inputs([rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 3))])
        assert_model_gradients(model, xs, rng.standard_normal((3, 1)), rng, what="initial states")
    finally:
        lf.config.set_floatx("float32")


def test_attention_configs_round_trip_and_bad_calls_say_why():
    for layer in (L.Attention(use_scale=True, score_mode="concat", dropout=0.1), L.AdditiveAttention(use_scale=False)):
        again = L.deserialize(L.serialize(layer))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="score_mode"):
        L.Attention(score_mode="general")
    q = lf.Input(shape=(4, 3))
    with pytest.raises(ValueError, match="same number of features"):
        L.Attention()([q, lf.Input(shape=(5, 2)), lf.Input(shape=(5, 4))])
    with pytest.raises(ValueError, match="at least 2 inputs|list of inputs"):
        L.Attention()([q])
