"""The functional API (lstmfast.Model): Keras's seq2seq encoder-decoder with return_state and
initial_state, trained and predicting as in Keras; the inference models that share its layers;
float64 gradients through the graph (including ∂L/∂h0, ∂L/∂c0 into the encoder); bad graphs."""

import numpy as np
import pytest

from gradcheck import assert_model_gradients
from keras_reference import import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers
N_IN, N_OUT, LATENT = 7, 6, 8


def _data(n=32, te=5, td=4, seed=0):
    rng = np.random.default_rng(seed)
    enc = np.eye(N_IN, dtype=np.float32)[rng.integers(0, N_IN, (n, te))]
    dec = np.eye(N_OUT, dtype=np.float32)[rng.integers(0, N_OUT, (n, td))]
    return enc, dec, np.roll(dec, -1, axis=1)


def _seq2seq(M, Lm, Input):
    """Keras's lstm_seq2seq example, on either library: (training model, layers, inputs, states)."""
    encoder_inputs = Input(shape=(None, N_IN))
    _, state_h, state_c = Lm.LSTM(LATENT, return_state=True)(encoder_inputs)
    decoder_inputs = Input(shape=(None, N_OUT))
    decoder_lstm = Lm.LSTM(LATENT, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_dense = Lm.Dense(N_OUT, activation="softmax")
    model = M([encoder_inputs, decoder_inputs], decoder_dense(decoder_outputs))
    return model, (decoder_lstm, decoder_dense), (encoder_inputs, decoder_inputs), [state_h, state_c]


def _pair():
    lf.utils.set_random_seed(0)
    lm, lparts, lins, lstates = _seq2seq(lf.Model, L, lf.Input)
    km, kparts, kins, kstates = _seq2seq(keras.Model, K, keras.Input)
    assert [tuple(w.shape) for w in km.weights] == [w.shape for w in lm.weights]
    km.set_weights(lm.get_weights())
    return (lm, lparts, lins, lstates), (km, kparts, kins, kstates)


def test_seq2seq_training_model_predicts_and_trains_like_keras():
    (lm, *_), (km, *_) = _pair()
    enc, dec, target = _data()
    np.testing.assert_allclose(lm.predict([enc, dec], verbose=0), km.predict([enc, dec], verbose=0), atol=1e-6)
    for m in (lm, km):
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    fit = dict(batch_size=16, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    hl = lm.fit([enc, dec], target, **fit).history
    hk = km.fit([enc, dec], target, **fit).history
    for key in hk:
        np.testing.assert_allclose(hl[key], hk[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=5e-5)


def test_inference_models_share_the_trained_layers_and_return_several_outputs():
    (lm, (dlstm, ddense), (enc_in, dec_in), states), (km, (kdlstm, kddense), (kenc_in, kdec_in), kstates) = _pair()
    enc, dec, target = _data()
    lm.compile("adam", "categorical_crossentropy")
    lm.fit([enc, dec], target, epochs=1, verbose=0)
    km.set_weights(lm.get_weights())

    def inference(M, Input, lstm, dense, enc_in, dec_in, states):
        encoder_model = M(enc_in, states)
        h_in, c_in = Input(shape=(LATENT,)), Input(shape=(LATENT,))
        out, h, c = lstm(dec_in, initial_state=[h_in, c_in])
        return encoder_model, M([dec_in, h_in, c_in], [dense(out), h, c])

    le, ld = inference(lf.Model, lf.Input, dlstm, ddense, enc_in, dec_in, states)
    ke, kd = inference(keras.Model, keras.Input, kdlstm, kddense, kenc_in, kdec_in, kstates)
    s_l, s_k = le.predict(enc, verbose=0), ke.predict(enc, verbose=0)
    assert isinstance(s_l, list) and len(s_l) == 2
    for a, b in zip(s_l, s_k):
        np.testing.assert_allclose(a, b, atol=1e-6)
    step = dec[:, :1]
    for a, b in zip(ld.predict([step] + s_l, verbose=0), kd.predict([step] + s_k, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the inference models read the trained weights themselves, not copies
    np.testing.assert_array_equal(ld.get_weights()[0], lm.get_weights()[3])


def test_an_lstm_shared_by_two_models_gives_dx_to_the_one_that_needs_it():
    # One model feeds the LSTM data (no dx wanted: its training forward keeps no transposed
    # kernel), the other a Dense layer's output (dx wanted). Each backward leaves the layer's
    # flag at its own model's answer, so the second model's forward is told no dx after a step
    # of the first; its backward then packs the kernel it is given, and the Dense still learns.
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(3)
        shared = L.LSTM(6)
        a, b = lf.Input(shape=(5, 4)), lf.Input(shape=(5, 3))
        on_data = lf.Model(a, L.Dense(2)(shared(a)))
        dense = L.Dense(4)
        on_layer = lf.Model(b, L.Dense(2)(shared(dense(b))))
        for m in (on_data, on_layer):
            m.compile("adam", "mse")
        rng = np.random.default_rng(0)
        xa, xb, y = rng.standard_normal((4, 5, 4)), rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 2))
        on_data.train_on_batch(xa, y)
        assert shared.needs_input_gradient is False
        analytic = assert_model_gradients(on_layer, on_layer.prepare_inputs(xb), y, samples=8)
        params = on_layer.flat_parameters()
        start, stop = params.segments[[id(v) for v in params.variables].index(id(dense.kernel))]
        assert np.abs(analytic[start:stop]).max() > 0
    finally:
        lf.config.set_floatx("float32")


def test_gradients_through_the_graph_match_finite_differences():
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(1)
        model, *_ = _seq2seq(lf.Model, L, lf.Input)
        model.compile("adam", "categorical_crossentropy")
        enc, dec, target = (a.astype(np.float64) for a in _data(n=5))
        analytic = assert_model_gradients(model, model.prepare_inputs([enc, dec]), target, samples=10)
        # the encoder learns only through the decoder's initial state: its gradient is not zero
        a, b = model.flat_parameters().segments[0]
        assert np.abs(analytic[a:b]).max() > 0
    finally:
        lf.config.set_floatx("float32")


def test_a_sequential_stack_written_functionally_matches_sequential():
    lf.utils.set_random_seed(2)
    inp = lf.Input(shape=(6, 3))
    hidden = L.LSTM(5, return_sequences=True)(inp)
    out = L.Dense(1)(L.LSTM(4)(hidden))
    model = lf.Model(inp, out)
    seq = lf.Sequential([lf.Input((6, 3)), L.LSTM(5, return_sequences=True), L.LSTM(4), L.Dense(1)])
    seq.set_weights(model.get_weights())
    x = np.random.default_rng(3).normal(size=(10, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), seq.predict(x, verbose=0))
    assert model.output_shape == (None, 1) and model.input_shape == (None, 6, 3)


def test_bad_graphs_and_unsupported_uses_say_why():
    a, b = lf.Input(shape=(4, 2)), lf.Input(shape=(4, 2))
    lstm = L.LSTM(3)
    with pytest.raises(ValueError, match="depends on .* not among the model's inputs"):
        lf.Model(a, lstm(b))
    with pytest.raises(TypeError, match="merge several tensors"):
        L.Dense(2)([a, b])
    with pytest.raises(ValueError, match=r"initial_state.*\[h0, c0\]"):
        L.LSTM(3)(a, initial_state=[b])
    with pytest.raises(ValueError, match=r"initial state h0 must have shape \(batch, 3\)"):
        L.LSTM(3)(a, initial_state=[lf.Input(shape=(5,)), lf.Input(shape=(3,))])
    with pytest.raises(ValueError, match=r"initial_state.*four tensors"):
        L.Bidirectional(L.LSTM(3, return_state=True))(a, initial_state=[b, b])
    with pytest.raises(ValueError, match=r"each initial state must have shape \(batch, 3\)"):
        L.Bidirectional(L.LSTM(3))(a, initial_state=[lf.Input(shape=(5,))] * 4)
    two = lf.Model(a, L.LSTM(3, return_state=True)(a))
    with pytest.raises(ValueError, match="3 outputs is not supported"):
        two.compile("adam", "mse")
    model = lf.Model([a, b], L.Dense(1)(L.LSTM(3)(a)))
    with pytest.raises(ValueError, match="2 inputs; `x` must be a list of 2 arrays"):
        model.predict(np.zeros((2, 4, 2)), verbose=0)


def test_masked_embedding_graph_trains_exactly_as_the_same_sequential():
    def layers():
        return [L.Embedding(12, 4, mask_zero=True), L.Bidirectional(L.LSTM(5, return_sequences=True)),
                L.LSTM(3), L.Dropout(0.0), L.Dense(1, activation="sigmoid")]

    lf.utils.set_random_seed(4)
    inp = lf.Input(shape=(7,))
    t = inp
    for layer in layers():
        t = layer(t)
    model = lf.Model(inp, t)
    seq = lf.Sequential([lf.Input((7,))] + layers())
    seq.set_weights(model.get_weights())
    ids = np.random.default_rng(5).integers(1, 12, (24, 7))
    ids[:8, :3] = 0
    ids[8:16, -2:] = 0
    y = (np.random.default_rng(6).random((24, 1)) > 0.5).astype(np.float32)
    for m in (model, seq):
        m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    hm = model.fit(ids, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    hs = seq.fit(ids, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert hm == hs
    for a, b in zip(model.get_weights(), seq.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_one_input_model_takes_an_array_a_list_holding_one_array_or_nested_lists():
    a = lf.Input(shape=(2,))
    model = lf.Model(a, L.Dense(1)(a))
    x = np.array([[1.0, 2.0]], np.float32)
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict([x], verbose=0), expected)
    np.testing.assert_array_equal(model.predict([[1.0, 2.0]], verbose=0), expected)


def test_a_layer_shared_with_a_later_model_still_passes_gradients_back_in_the_first():
    lf.utils.set_random_seed(7)
    inp = lf.Input(shape=(5, 3))
    pre, lstm, head = L.Dense(4), L.LSTM(3), L.Dense(1)
    trained = lf.Model(inp, head(lstm(pre(inp))))
    # a second model in which the same LSTM reads a model input (it owes no input gradient there)
    inp2 = lf.Input(shape=(5, 4))
    other = lf.Model(inp2, head(lstm(inp2)))
    other.compile("adam", "mse")
    x2 = np.random.default_rng(9).normal(size=(16, 5, 4)).astype(np.float32)
    other.train_on_batch(x2, x2[:, 0, :1])
    assert lstm.needs_input_gradient is False  # fed with data there: no input gradient computed
    trained.compile("adam", "mse")
    before = pre.get_weights()[0].copy()
    x = np.random.default_rng(8).normal(size=(16, 5, 3)).astype(np.float32)
    trained.fit(x, x[:, 0, :1], epochs=1, verbose=0)
    assert lstm.needs_input_gradient is True
    assert not np.array_equal(pre.get_weights()[0], before)  # the layer before the LSTM trained


def test_two_models_sharing_layers_can_be_trained_in_turns():
    lf.utils.set_random_seed(10)
    lstm, head = L.LSTM(3), L.Dense(1)
    a, b = lf.Input(shape=(5, 2)), lf.Input(shape=(5, 2))
    first, second = lf.Model(a, head(lstm(a))), lf.Model(b, head(lstm(b)))
    x = np.random.default_rng(11).normal(size=(16, 5, 2)).astype(np.float32)
    y = x[:, -1, :1]
    for m in (first, second):
        m.compile("adam", "mse")
    first.fit(x, y, epochs=1, verbose=0)
    second.fit(x, y, epochs=1, verbose=0)  # moves the shared weights into its own buffer
    before = lstm.get_weights()[0].copy()
    first.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(lstm.get_weights()[0], before)  # the first model trains them again
