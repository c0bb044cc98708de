"""Functional models saved and loaded with their architecture: Keras's seq2seq example rebuilds
its inference models from a loaded training model; round trips of graphs with merges, attention
and shared layers predict bit for bit as before; clone_model; Keras 3 functional .keras files
import and predict as Keras does."""

import numpy as np
import pytest

from keras_reference import import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers
N_IN, N_OUT, LATENT = 7, 6, 8


def _onehot(n, t, k, seed):
    return np.eye(k, dtype=np.float32)[np.random.default_rng(seed).integers(0, k, (n, t))]


def test_keras_seq2seq_example_rebuilds_its_inference_models_from_a_saved_model(tmp_path):
    # Training model, as keras-io's lstm_seq2seq.py writes it.
    lf.utils.set_random_seed(0)
    encoder_inputs = lf.Input(shape=(None, N_IN))
    encoder = L.LSTM(LATENT, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)
    decoder_inputs = lf.Input(shape=(None, N_OUT))
    decoder_lstm = L.LSTM(LATENT, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_dense = L.Dense(N_OUT, activation="softmax")
    model = lf.Model([encoder_inputs, decoder_inputs], decoder_dense(decoder_outputs))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    enc, dec = _onehot(32, 5, N_IN, 1), _onehot(32, 4, N_OUT, 2)
    model.fit([enc, dec], np.roll(dec, -1, axis=1), batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "s2s.lstmfast")

    # Its inference part, as the example writes it after keras.models.load_model.
    model = lf.models.load_model(tmp_path / "s2s.lstmfast")
    encoder_inputs = model.input[0]  # input_1
    encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output  # lstm_1
    encoder_model = lf.Model(encoder_inputs, [state_h_enc, state_c_enc])
    decoder_inputs = model.input[1]  # input_2
    decoder_state_input_h = lf.Input(shape=(LATENT,))
    decoder_state_input_c = lf.Input(shape=(LATENT,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(decoder_inputs, initial_state=decoder_states_inputs)
    decoder_dense = model.layers[4]
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = lf.Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs, state_h_dec, state_c_dec])

    # Step by step, the inference models give what the training model gives with teacher forcing.
    h, c = encoder_model.predict(enc, verbose=0)
    steps = []
    for t in range(dec.shape[1]):
        out, h, c = decoder_model.predict([dec[:, t:t + 1], h, c], verbose=0)
        steps.append(out[:, 0])
    np.testing.assert_allclose(np.stack(steps, axis=1), model.predict([enc, dec], verbose=0), atol=1e-6)
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "InputLayer", "LSTM", "LSTM", "Dense"]
    with pytest.raises(AttributeError, match="multiple inbound nodes"):
        decoder_lstm.output


def _graphs():
    def merges(M, Input):
        a, b = Input(shape=(5, 3)), Input(shape=(5, 3))
        x, y = M.LSTM(4, return_sequences=True)(a), M.LSTM(4, return_sequences=True)(b)
        z = M.Concatenate()([M.Add()([x, y]), M.Multiply()([x, y]), M.Dot(axes=2)([x, y])])
        return [a, b], M.Dense(2)(M.LSTM(3)(z))

    def attention(M, Input, masked=True):
        q, v = Input(shape=(4,)), Input(shape=(6,))
        emb = M.Embedding(10, 3, mask_zero=masked)  # shared by both inputs
        qs = M.LSTM(5, return_sequences=True)(emb(q))
        vs = M.LSTM(5, return_sequences=True)(emb(v))
        context = M.AdditiveAttention()([qs, vs])
        return [q, v], M.Dense(1)(M.LSTM(2)(M.Concatenate()([qs, context])))

    return {"merges": merges, "attention": attention}


@pytest.mark.parametrize("name", sorted(_graphs()))
def test_a_functional_model_saves_loads_and_clones(name, tmp_path):
    graph = _graphs()[name]
    lf.utils.set_random_seed(3)
    ins, out = graph(L, lf.Input)
    model = lf.Model(ins, out)
    model.compile("adam", "mse")
    rng = np.random.default_rng(4)
    if name == "attention":
        xs = [rng.integers(1, 10, (12, 4)), rng.integers(1, 10, (12, 6))]
        xs[1][:4, -2:] = 0
    else:
        xs = [rng.standard_normal((12, 5, 3)).astype(np.float32) for _ in range(2)]
    y = rng.standard_normal((12,) + model.output_shape[1:]).astype(np.float32)
    model.fit(xs, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.lstmfast")
    loaded = lf.load_model(tmp_path / "m.lstmfast")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0))
    # training goes on from the saved optimizer state as it would have without saving
    np.testing.assert_array_equal(loaded.train_on_batch(xs, y), model.train_on_batch(xs, y))
    clone = lf.models.clone_model(model)
    assert clone.get_config()["layers"][-1]["class_name"] == "Dense"
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert not all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights()))


@pytest.mark.parametrize("name", sorted(_graphs()))
def test_a_keras_functional_file_loads_and_predicts_as_keras(name, tmp_path):
    graph = _graphs()[name]
    # (Keras records the operations that carry the masks as nodes of the graph: left out on import)
    ins, out = graph(K, keras.Input)
    km = keras.Model(ins, out)
    km.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(5)
    if name == "attention":
        xs = [rng.integers(1, 10, (12, 4)), rng.integers(1, 10, (12, 6))]
        xs[0][:3, -1:] = 0
    else:
        xs = [rng.standard_normal((12, 5, 3)).astype(np.float32) for _ in range(2)]
    km.fit(xs, rng.standard_normal((12,) + tuple(km.output_shape[1:])).astype(np.float32), epochs=1, verbose=0)
    km.save(tmp_path / "k.keras")
    lm = lf.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(lm.predict(xs, verbose=0), km.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    assert [type(l).__name__ for l in lm.layers] == [type(l).__name__ for l in km.layers]
