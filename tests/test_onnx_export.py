"""ONNX export (`model.export(path, format="onnx")`): the exported file passes onnx.checker and
ONNX Runtime computes what lstmfast's predict computes, for the seed's three models and LSTM
variants; what has no faithful ONNX form is refused with its reason."""

import os

import numpy as np
import pytest

import lstmfast as lf

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
L = lf.layers


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def seed_models(rng):
    """The seed's three Keras models (smaller widths), with inputs."""
    yield "translation", lf.Sequential([
        lf.Input((20, 60)), L.LSTM(64), L.RepeatVector(20), L.LSTM(64, return_sequences=True),
        L.Dense(60, activation="softmax")]), np.eye(60, dtype=np.float32)[rng.integers(0, 60, (7, 20))]
    yield "timeseries", lf.Sequential([lf.Input((30, 1)), L.LSTM(50, activation="relu"), L.Dense(1)]), \
        rng.standard_normal((7, 30, 1)).astype(np.float32)
    yield "sentiment", lf.Sequential([
        lf.Input((200,), dtype="int32"), L.Embedding(2000, 32), L.LSTM(32, dropout=0.2, recurrent_dropout=0.2),
        L.Dense(1, activation="sigmoid")]), rng.integers(0, 2000, (7, 200)).astype(np.int32)


@pytest.mark.parametrize("index", range(3), ids=["translation", "timeseries", "sentiment"])
def test_seed_models_run_the_same_on_onnx_runtime(tmp_path, index):
    name, model, x = list(seed_models(np.random.default_rng(index)))[index]
    path = tmp_path / f"{name}.onnx"
    model.export(str(path), format="onnx", verbose=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    np.testing.assert_allclose(run_onnx(path, x), model.predict(x, verbose=0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(run_onnx(path, x[:1]), model.predict(x[:1], verbose=0), rtol=0, atol=1e-5)  # any batch
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


VARIANTS = {
    "bidirectional stack, hard_sigmoid": [L.Bidirectional(L.LSTM(8, return_sequences=True,
                                                                 recurrent_activation="hard_sigmoid")),
                                          L.Bidirectional(L.LSTM(6)), L.Dense(3)],
    "merge sum / ave / mul": [L.Bidirectional(L.LSTM(8, return_sequences=True), merge_mode="sum"),
                              L.Bidirectional(L.LSTM(8, return_sequences=True), merge_mode="ave"),
                              L.Bidirectional(L.LSTM(5), merge_mode="mul")],
    "relu, no bias, 3-D Dense": [L.LSTM(12, activation="relu", use_bias=False, return_sequences=True),
                                 L.Dropout(0.5), L.Dense(4, activation="tanh")],
    "sequence out, Activation": [L.LSTM(9, return_sequences=True), L.Activation("softmax")],
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_lstm_variants_run_the_same_on_onnx_runtime(tmp_path, name):
    rng = np.random.default_rng(len(name))
    model = lf.Sequential([lf.Input((10, 4))] + VARIANTS[name])
    for w in model.weights:  # weights away from their initial values (biases included)
        w.value[...] = rng.standard_normal(w.value.shape).astype(np.float32) * 0.5
    x = rng.standard_normal((6, 10, 4)).astype(np.float32)
    path = tmp_path / "m.onnx"
    model.export(str(path), verbose=False)
    np.testing.assert_allclose(run_onnx(path, x), model.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_an_lstm_is_one_onnx_lstm_node(tmp_path):
    model = lf.Sequential([lf.Input((10, 4)), L.Bidirectional(L.LSTM(8)), L.Dense(1)])
    model.export(str(tmp_path / "m.onnx"), verbose=False)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert ops.count("LSTM") == 1 and "Loop" not in ops and "Scan" not in ops
    lstm = next(n for n in onnx.load(str(tmp_path / "m.onnx")).graph.node if n.op_type == "LSTM")
    assert onnx.helper.get_attribute_value(lstm.attribute[[a.name for a in lstm.attribute].index("direction")]) \
        == b"bidirectional"


MASKED = {  # fresh layers for each model
    "last output": lambda: [L.LSTM(6)],
    "sequence carried, states": lambda: [L.LSTM(6, return_sequences=True), L.LSTM(5, return_sequences=True),
                                         L.Dense(2)],
    "bidirectional sequence": lambda: [L.Bidirectional(L.LSTM(6, return_sequences=True)), L.Bidirectional(L.LSTM(4))],
    "bidirectional hard_sigmoid, ave": lambda: [
        L.Bidirectional(L.LSTM(5, recurrent_activation="hard_sigmoid", return_sequences=True), merge_mode="ave"),
        L.Dense(3, activation="tanh")],
}


@pytest.mark.parametrize("name", list(MASKED))
@pytest.mark.parametrize("source", ["embedding", "masking"])
def test_right_padded_masks_run_the_same_on_onnx_runtime(tmp_path, name, source):
    """A mask reaches the ONNX LSTM as sequence_lens; right-padded rows (every row's real steps
    first, as pad_sequences(padding="post") writes them) give what predict gives."""
    rng = np.random.default_rng(len(name))
    lengths = np.array([12, 1, 7, 12, 4, 9])
    if source == "embedding":
        x = rng.integers(1, 50, (6, 12)).astype(np.int32)
        first = [lf.Input((12,), dtype="int32"), L.Embedding(50, 8, mask_zero=True)]
    else:
        x = rng.standard_normal((6, 12, 3)).astype(np.float32)
        first = [lf.Input((12, 3)), L.Masking(0.0)]
    for row, n in enumerate(lengths):
        x[row, n:] = 0
    model = lf.Sequential(first + MASKED[name]())
    randomize(model, 3)
    path = tmp_path / "m.onnx"
    model.export(str(path), verbose=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    np.testing.assert_allclose(run_onnx(path, x), model.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_a_masked_functional_model_with_states(tmp_path):
    ids = lf.Input((10,), dtype="int32", name="ids")
    e = L.Embedding(30, 6, mask_zero=True)(ids)
    seq, h, c = L.LSTM(7, return_sequences=True, return_state=True)(e)
    out = L.Dense(2)(L.LSTM(4)(seq, initial_state=[L.Dense(4)(h), L.Dense(4)(c)]))
    model = lf.Model(ids, [out, h])
    randomize(model, 4)
    x = np.random.default_rng(5).integers(1, 30, (5, 10)).astype(np.int32)
    x[0, 3:], x[2, 8:], x[4, 1:] = 0, 0, 0
    check_functional(tmp_path, model, [x])


@pytest.mark.parametrize("layers, message", [
    ([L.Embedding(50, 8), L.LSTM(4, go_backwards=True)], "go_backwards"),
    ([L.Embedding(50, 8), L.Conv1D(4, 3)], r"\(Conv1D\) has no ONNX export yet"),
    ([L.Embedding(50, 8), L.LSTM(4), L.Dense(2, activation="elu")], "activation 'elu' has no ONNX form"),
])
def test_what_onnx_cannot_express_is_refused_with_its_reason(tmp_path, layers, message):
    model = lf.Sequential([lf.Input((12,), dtype="int32")] + layers)
    with pytest.raises(ValueError, match=message):
        model.export(str(tmp_path / "m.onnx"), verbose=False)
    assert not os.listdir(tmp_path)   # nothing written


def test_masks_that_onnx_cannot_carry_are_refused(tmp_path):
    a, b = lf.Input((8,), dtype="int32"), lf.Input((8,), dtype="int32")
    ea, eb = L.Embedding(20, 4, mask_zero=True)(a), L.Embedding(20, 4, mask_zero=True)(b)
    merged = L.Concatenate()([ea, eb])
    with pytest.raises(ValueError, match="mask merged from several inputs"):
        lf.Model([a, b], L.LSTM(3)(merged)).export(str(tmp_path / "m.onnx"), verbose=False)
    q = L.Embedding(20, 4, mask_zero=True)(a)
    with pytest.raises(ValueError, match="receives a mask"):
        lf.Model(a, L.Attention()([q, q])).export(str(tmp_path / "m.onnx"), verbose=False)
    assert not os.listdir(tmp_path)


def test_stateful_models_and_other_formats_are_refused(tmp_path):
    stateful = lf.Sequential([lf.Input((5, 3), batch_size=2), L.LSTM(4, stateful=True)])
    with pytest.raises(ValueError, match="stateful"):
        stateful.export(str(tmp_path / "s.onnx"), verbose=False)
    with pytest.raises(ValueError, match="Unrecognized format='tf_saved_model'"):
        stateful.export(str(tmp_path / "f"), format="tf_saved_model")


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.value[...] = rng.standard_normal(w.value.shape).astype(np.float32) * 0.4


def check_functional(tmp_path, model, feeds):
    path = tmp_path / "f.onnx"
    model.export(str(path), verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), feeds)})
    want = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_keras_seq2seq_encoder_decoder_with_states(tmp_path):
    # Keras's character-level seq2seq: encoder states start the decoder (return_state, initial_state)
    enc_in, dec_in = lf.Input((None, 12)), lf.Input((None, 9))
    _, h, c = L.LSTM(16, return_state=True)(enc_in)
    dec, _, _ = L.LSTM(16, return_sequences=True, return_state=True)(dec_in, initial_state=[h, c])
    model = lf.Model([enc_in, dec_in], L.Dense(9, activation="softmax")(dec))
    randomize(model, 1)
    rng = np.random.default_rng(1)
    check_functional(tmp_path, model, [rng.standard_normal((4, 7, 12)).astype(np.float32),
                                       rng.standard_normal((4, 5, 9)).astype(np.float32)])


def test_bidirectional_states_and_luong_attention_decoder(tmp_path):
    # the translation pipeline's shape: a Bidirectional encoder's four states start the decoder,
    # which attends over the encoder outputs
    src, tgt = lf.Input((None,), dtype="int32"), lf.Input((None,), dtype="int32")
    enc, fh, fc, bh, bc = L.Bidirectional(L.LSTM(8, return_sequences=True, return_state=True))(
        L.Embedding(30, 6)(src))
    h, c = L.Concatenate()([fh, bh]), L.Concatenate()([fc, bc])
    dec = L.LSTM(16, return_sequences=True)(L.Embedding(25, 6)(tgt), initial_state=[h, c])
    context = L.Attention(use_scale=True)([dec, enc])
    merged = L.Dense(16, activation="tanh")(L.Concatenate()([dec, context]))
    model = lf.Model([src, tgt], L.Dense(25, activation="softmax")(merged))
    randomize(model, 2)
    rng = np.random.default_rng(2)
    check_functional(tmp_path, model, [rng.integers(0, 30, (3, 9)).astype(np.int32),
                                       rng.integers(0, 25, (3, 6)).astype(np.int32)])


def test_multi_input_merges_and_several_outputs(tmp_path):
    seq, num = lf.Input((10, 4)), lf.Input((3,))
    a = L.LSTM(5)(seq)
    b = L.Dense(5, activation="relu")(num)
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
              L.Maximum()([a, b])]
    out = L.Dense(2)(L.Concatenate()(merged))
    model = lf.Model([seq, num], [out, L.Dense(1, activation="sigmoid")(a)])
    randomize(model, 3)
    rng = np.random.default_rng(3)
    check_functional(tmp_path, model, [rng.standard_normal((4, 10, 4)).astype(np.float32),
                                       rng.standard_normal((4, 3)).astype(np.float32)])
