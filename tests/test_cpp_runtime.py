"""The C++ inference library (liblstmfast, lstmfast/lstmfast.hpp), through the example program
examples/cpp/predict.cpp built here with CMake against the installed package, as a user builds
it: its outputs equal Python's `predict` bit for bit (same batch size, same machine), its
streams equal Python's streams; damaged files, layers it does not run and bad inputs are clear
errors in C++ too."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import cmake as lf_cmake

L = lf.layers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    prebuilt = os.environ.get("LSTMFAST_CPP_EXAMPLE")  # .ci/sanitize: the example built with the sanitizers
    if prebuilt:
        return prebuilt
    cmake = shutil.which("cmake")
    if cmake is None or shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("cmake and a C++ compiler are needed to build the C++ example (pip install cmake)")
    build = tmp_path_factory.mktemp("example-build")
    subprocess.run([cmake, "-S", os.path.join(ROOT, "examples", "cpp"), "-B", str(build),
                    f"-Dlstmfast_DIR={lf_cmake.get_cmake_dir()}", "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    return str(build / "lstmfast_predict")


def run_example(exe, model_path, xs, out, *flags):
    cmd = [exe, str(model_path)]
    for i, x in enumerate(xs):
        path = f"{out}.x{i}"
        np.ascontiguousarray(x, dtype=np.float32).tofile(path)
        cmd += [path, ",".join(str(d) for d in x.shape)]
    return subprocess.run(cmd + ["--out", str(out)] + list(flags), capture_output=True, text=True)


def cpp_predict(exe, model, xs, tmp_path, batch_size=32):
    xs = xs if isinstance(xs, list) else [xs]
    path = tmp_path / "model.lstmfast"
    model.save(path)
    r = run_example(exe, path, xs, tmp_path / "y", "--batch-size", str(batch_size))
    assert r.returncode == 0, r.stderr
    want = model.predict(xs if len(xs) > 1 else xs[0], batch_size=batch_size, verbose=0)
    want = want if isinstance(want, list) else [want]
    got = [np.fromfile(tmp_path / f"y{k}.f32", np.float32).reshape(w.shape) for k, w in enumerate(want)]
    return got, want


def seed_models(rng):
    """The seed's three Keras models (seq2seq with RepeatVector, forecasting, sentiment)."""
    seq2seq = lf.Sequential([L.Input((7, 12)), L.LSTM(32), L.RepeatVector(5), L.LSTM(32, return_sequences=True),
                             L.Dense(20, activation="softmax")])
    forecast = lf.Sequential([L.Input((9, 1)), L.LSTM(50, activation="relu"), L.Dense(1)])
    sentiment = lf.Sequential([L.Input((30,)), L.Embedding(100, 16), L.LSTM(24, dropout=0.2, recurrent_dropout=0.2),
                               L.Dense(1, activation="sigmoid")])
    return [(seq2seq, rng.normal(size=(70, 7, 12))), (forecast, rng.normal(size=(45, 9, 1))),
            (sentiment, rng.integers(0, 100, size=(50, 30)).astype(np.float32))]


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("batch_size", [32, 7])
def test_seed_models_equal_predict_bit_for_bit(example, tmp_path, index, batch_size):
    model, x = seed_models(np.random.default_rng(index))[index]
    got, want = cpp_predict(example, model, x, tmp_path, batch_size)
    np.testing.assert_array_equal(got[0], want[0])


def test_trained_model_with_masks_bidirectional_and_pooling(example, tmp_path):
    rng = np.random.default_rng(3)
    model = lf.Sequential([L.Input((20,)), L.Embedding(50, 8, mask_zero=True),
                           L.Bidirectional(L.LSTM(10, return_sequences=True, recurrent_activation="hard_sigmoid"),
                                           merge_mode="ave"),
                           L.GlobalAveragePooling1D(), L.Dense(4, activation="hard_sigmoid")])
    x = rng.integers(1, 50, size=(33, 20)).astype(np.float32)
    x[:, 15:] = 0  # right-padded
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.random((33, 4)).astype(np.float32), epochs=2, verbose=0)
    got, want = cpp_predict(example, model, x, tmp_path)
    np.testing.assert_array_equal(got[0], want[0])


def test_a_repeated_vector_read_by_lstm_bidirectional_and_dropout(example, tmp_path):
    """Only an LSTM projects a RepeatVector's vector once; Bidirectional and the layers between
    take the repeated sequence written out, in C++ as in Python."""
    rng = np.random.default_rng(18)
    encoded = L.Input((5,))
    repeated = L.RepeatVector(4)(encoded)
    a = L.LSTM(3, return_sequences=True)(repeated)
    b = L.Bidirectional(L.LSTM(3, return_sequences=True))(repeated)
    c = L.LSTM(3, return_sequences=True)(L.Dropout(0.5)(repeated))
    model = lf.Model(encoded, [a, b, c])
    randomize(model, 19)
    got, want = cpp_predict(example, model, rng.normal(size=(6, 5)), tmp_path)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_masking_bidirectional_time_distributed_one_hot(example, tmp_path):
    rng = np.random.default_rng(4)
    model = lf.Sequential([L.Input((None, 6)), L.Masking(0.0), L.Bidirectional(L.LSTM(8, return_sequences=True)),
                           L.TimeDistributed(L.Dense(3, activation="tanh"))])
    x = rng.normal(size=(40, 11, 6))
    x[:, 8:] = 0
    got, want = cpp_predict(example, model, x, tmp_path)
    np.testing.assert_array_equal(got[0], want[0])
    onehot = lf.Sequential([L.Input((6, 20)), L.LSTM(16, return_sequences=True), L.Activation("sigmoid"), L.Flatten(),
                            L.Dropout(0.5), L.Dense(3, activation="relu")])
    got, want = cpp_predict(example, onehot, np.eye(20)[rng.integers(0, 20, size=(40, 6))], tmp_path)
    np.testing.assert_array_equal(got[0], want[0])


def test_functional_model_with_states_merges_and_a_shared_layer(example, tmp_path):
    rng = np.random.default_rng(5)
    a, b, h0, c0 = L.Input((None, 5)), L.Input((3,)), L.Input((6,)), L.Input((6,))
    o, h, c = L.LSTM(6, return_state=True)(a, initial_state=[h0, c0])
    shared = L.Dense(6, activation="tanh")  # called twice
    y = L.Dense(2, activation="softmax")(shared(L.Dense(6)(L.Concatenate()([o, b, h]))))
    model = lf.Model([a, b, h0, c0], [y, L.Multiply()([shared(h), c]), L.Average()([o, h]), L.Maximum()([o, c]),
                                      L.Subtract()([o, c]), L.Add()([o, h, c])])
    xs = [rng.normal(size=(37, 8, 5)), rng.normal(size=(37, 3)), rng.normal(size=(37, 6)), rng.normal(size=(37, 6))]
    got, want = cpp_predict(example, model, xs, tmp_path)
    assert len(got) == 6
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_streams_equal_python_streams(example, tmp_path):
    rng = np.random.default_rng(6)
    model = lf.Sequential([L.Input((None,)), L.Embedding(100, 16), L.LSTM(24, return_sequences=True), L.LSTM(8),
                           L.Dense(3, activation="softmax")])
    x = rng.integers(0, 100, size=(2, 30)).astype(np.float32)
    model.save(tmp_path / "m.lstmfast")
    r = run_example(example, tmp_path / "m.lstmfast", [x], tmp_path / "y", "--stream")
    assert r.returncode == 0, r.stderr
    got = np.fromfile(tmp_path / "y0.f32", np.float32).reshape(30, 2, 3)
    stream = model.stream(batch=2)
    np.testing.assert_array_equal(got, np.stack([stream.step(x[:, t]) for t in range(30)]))
    np.testing.assert_allclose(got[-1], model.predict(x, verbose=0), rtol=0, atol=1e-6)


def test_damaged_files_are_clear_errors(example, tmp_path):
    model = seed_models(np.random.default_rng(7))[1][0]
    path = tmp_path / "good.lstmfast"
    model.save(path)
    data = path.read_bytes()
    x = np.zeros((2, 9, 1), np.float32)
    cases = {
        "truncated": (data[:-40], "not a zip archive"),
        "flipped": (data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:], "CRC-32"),
        "empty": (b"", "not a zip archive"),
    }
    for name, (content, message) in cases.items():
        bad = tmp_path / f"{name}.lstmfast"
        bad.write_bytes(content)
        r = run_example(example, bad, [x], tmp_path / name)
        assert r.returncode == 1 and message in r.stderr and "not a valid lstmfast file" in r.stderr, (name, r.stderr)
    weights = tmp_path / "weights.lstmfast"
    model.save_weights(weights)
    r = run_example(example, weights, [x], tmp_path / "w")
    assert r.returncode == 1 and "only weights" in r.stderr
    r = run_example(example, tmp_path / "missing.lstmfast", [x], tmp_path / "m")
    assert r.returncode == 1 and "cannot open" in r.stderr


def test_random_damage_is_an_error_never_a_crash(example, tmp_path):
    """Bytes flipped anywhere in a model file, or the file cut anywhere: the program reports an
    error (exit 1) or, where the damage hit nothing it reads, predicts; it never crashes."""
    model = seed_models(np.random.default_rng(10))[2][0]
    path = tmp_path / "good.lstmfast"
    model.save(path)
    data = path.read_bytes()
    rng = np.random.default_rng(11)
    x = [rng.integers(0, 100, size=(2, 30)).astype(np.float32)]
    for case in range(int(os.environ.get("LSTMFAST_FUZZ_CASES", 40)) // 2):
        damaged = bytearray(data)
        for at in rng.integers(0, len(data), size=rng.integers(1, 4)):
            damaged[at] ^= int(rng.integers(1, 256))
        cut = data[:int(rng.integers(0, len(data)))]
        for name, content in (("flip", bytes(damaged)), ("cut", cut)):
            bad = tmp_path / f"{name}{case}.lstmfast"
            bad.write_bytes(content)
            r = run_example(example, bad, x, tmp_path / f"{name}{case}")
            assert r.returncode in (0, 1), (name, case, r.returncode, r.stderr[-2000:])
            if r.returncode == 1:
                assert r.stderr.startswith("error: ") and str(bad) in r.stderr, r.stderr


def test_unsupported_layers_and_bad_inputs_are_clear_errors(example, tmp_path):
    conv = lf.Sequential([L.Input((6, 4)), L.Conv1D(3, 2, name="conv"), L.LSTM(3)])
    conv.save(tmp_path / "conv.lstmfast")
    r = run_example(example, tmp_path / "conv.lstmfast", [np.zeros((1, 6, 4))], tmp_path / "c")
    assert r.returncode == 1 and "'conv' (Conv1D) cannot run in the C++ runtime" in r.stderr and "LSTM" in r.stderr
    model = seed_models(np.random.default_rng(8))[1][0]
    model.save(tmp_path / "f.lstmfast")
    r = run_example(example, tmp_path / "f.lstmfast", [np.zeros((4, 1, 9))], tmp_path / "s")
    assert r.returncode == 1 and "must have shape (None, 9, 1)" in r.stderr and "got (4, 1, 9)" in r.stderr
    x = np.zeros((4, 9, 1))
    x[2, 3, 0] = np.nan
    r = run_example(example, tmp_path / "f.lstmfast", [x], tmp_path / "n")
    assert r.returncode == 1 and "NaN" in r.stderr
    tokens = seed_models(np.random.default_rng(9))[2][0]
    tokens.save(tmp_path / "t.lstmfast")
    r = run_example(example, tmp_path / "t.lstmfast", [np.full((2, 30), 100.0)], tmp_path / "t")
    assert r.returncode == 1 and "ids must lie in [0, 99]" in r.stderr
    bidi = lf.Sequential([L.Input((5, 2)), L.Bidirectional(L.LSTM(3)), L.Dense(1)])
    bidi.save(tmp_path / "b.lstmfast")
    r = run_example(example, tmp_path / "b.lstmfast", [np.zeros((1, 5, 2))], tmp_path / "b", "--stream")
    assert r.returncode == 1 and "cannot run one step at a time" in r.stderr


def test_cmake_helper_finds_the_package():
    cmake_dir = lf_cmake.get_cmake_dir()
    assert os.path.exists(os.path.join(cmake_dir, "lstmfastConfig.cmake"))
    assert os.path.exists(os.path.join(lf_cmake.get_include(), "lstmfast", "lstmfast.hpp"))
    out = subprocess.run([sys.executable, "-m", "lstmfast.cmake"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == cmake_dir
    out = subprocess.run([sys.executable, "-m", "lstmfast", "--cmake-dir"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == cmake_dir


def test_stateful_lstm_carries_its_state_across_batches(example, tmp_path):
    rng = np.random.default_rng(12)
    model = lf.Sequential([L.Input(batch_shape=(4, 5, 3)), L.LSTM(7, stateful=True, return_sequences=True),
                           L.LSTM(5, stateful=True), L.Dense(2)])
    x = rng.normal(size=(12, 5, 3))  # three batches of 4: each starts from the state the one before left
    got, want = cpp_predict(example, model, x, tmp_path, batch_size=4)
    np.testing.assert_array_equal(got[0], want[0])
    assert not np.allclose(want[0][4:8], model.reset_states() or model.predict(x[4:8], batch_size=4, verbose=0))


def test_the_pipelines_translator_and_sentiment_models(example, tmp_path):
    """The translation pipeline's attention encoder–decoder (masked Bidirectional encoder with
    states, a decoder from them, Attention over the masked memory, Concatenate) and the sentiment
    pipeline's Bidirectional towers with max pooling over a masked sequence, in two members
    whose probabilities are averaged, run in C++ with predict's bits."""
    from lstmfast.pipelines import seq2seq, sentiment

    rng = np.random.default_rng(13)
    translator = seq2seq.build_attention_model(source_size=40, target_input_size=30, target_size=30,
                                               embedding_dim=8, units=16, learning_rate=1e-3)
    randomize(translator, 14)
    src = rng.integers(1, 40, (9, 11)).astype(np.float32)
    tgt = rng.integers(1, 30, (9, 7)).astype(np.float32)
    src[:, 8:], tgt[:, 5:] = 0, 0  # padded
    src[3, 2:], tgt[4, 1:] = 0, 0
    got, want = cpp_predict(example, translator, [src, tgt], tmp_path)
    np.testing.assert_array_equal(got[0], want[0])

    config = sentiment.SentimentConfig(towers=2, members=2, units=6, embedding_dim=5)
    model = sentiment.build_model(config, 50)
    randomize(model, 15)
    tokens = rng.integers(1, 50, (10, 25)).astype(np.float32)
    tokens[:, 18:] = 0
    got, want = cpp_predict(example, model, tokens, tmp_path)
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("scale, causal, three", [(False, False, False), (True, True, True)])
def test_attention_with_scale_causal_mask_and_key(example, tmp_path, scale, causal, three):
    rng = np.random.default_rng(16)
    width = 4 if three else 6  # without a key, the value is the key: the query's width
    q_in, v_in, k_in = L.Input((None, 6)), L.Input((None, width)), L.Input((None, 6))
    inputs = [q_in, v_in] + ([k_in] if three else [])
    out = L.Attention(use_scale=scale)(inputs, use_causal_mask=causal)
    model = lf.Model(inputs, L.Dense(3)(L.Concatenate()([q_in, out])))
    randomize(model, 17)
    xs = [rng.normal(size=(5, 7, 6)), rng.normal(size=(5, 9, width))] + ([rng.normal(size=(5, 9, 6))] if three else [])
    got, want = cpp_predict(example, model, xs, tmp_path)
    np.testing.assert_array_equal(got[0], want[0])


def randomize(model, seed):
    """Weights away from their initial values (a trained model's spread)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.value[...] = rng.standard_normal(w.value.shape).astype(np.float32) * 0.4


def test_well_formed_archives_with_a_wrong_header_are_clear_errors(example, tmp_path):
    """Archives whose CRCs are right but whose header lies: the C++ reader checks the header's
    contents too (and the sanitizer job runs this)."""
    import json
    import zipfile

    model = seed_models(np.random.default_rng(20))[1][0]
    path = tmp_path / "good.lstmfast"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = json.loads(members["lstmfast.json"])

    def edited(change):
        h = json.loads(json.dumps(header))
        change(h)
        return h

    layers = lambda h: h["config"]["config"]["layers"]  # noqa: E731
    cases = {
        "newer format": (edited(lambda h: h.update(format_version=99)), "format version 99"),
        "no units": (edited(lambda h: layers(h)[1]["config"].pop("units")), "not what lstmfast writes"),
        "no input shape": (edited(lambda h: layers(h)[0]["config"].update(batch_shape=[])), "no input shape"),
        "a weight short": (edited(lambda h: h["weights"].pop()), "weights"),
        "wrong weight shape": (edited(lambda h: h["weights"][0].update(shape=[2, 200])), "shape"),
        "unknown model class": (edited(lambda h: h["config"].update(class_name="Subclassed")), "neither Sequential"),
        "not a model": (edited(lambda h: h.update(format="other")), "does not name the lstmfast format"),
    }
    x = [np.zeros((2, 9, 1))]
    for name, (h, message) in cases.items():
        bad = tmp_path / (name.replace(" ", "_") + ".lstmfast")
        with zipfile.ZipFile(bad, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, json.dumps(h).encode() if member == "lstmfast.json" else data)
        r = run_example(example, bad, x, tmp_path / "y")
        assert r.returncode == 1 and message in r.stderr, (name, r.stderr)


def test_threads_share_one_model(tmp_path):
    """Several threads predicting on one Model (no stateful LSTM) get the bits one thread gets."""
    if os.environ.get("LSTMFAST_CPP_EXAMPLE"):
        pytest.skip("the sanitizer job runs the example program only")
    cmake = shutil.which("cmake")
    if cmake is None or shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("cmake and a C++ compiler are needed to build the C++ test program (pip install cmake)")
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", os.path.join(ROOT, "tests", "cpp"), "-B", str(build),
                    f"-Dlstmfast_DIR={lf_cmake.get_cmake_dir()}", "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    rng = np.random.default_rng(21)
    model = lf.Sequential([L.Input((12, 6)), L.Bidirectional(L.LSTM(24, return_sequences=True)), L.LSTM(16),
                           L.Dense(4, activation="softmax")])
    randomize(model, 22)
    model.save(tmp_path / "m.lstmfast")
    x = rng.normal(size=(40, 12, 6)).astype(np.float32)
    x.tofile(tmp_path / "x.f32")
    r = subprocess.run([str(build / "concurrent_predict"), str(tmp_path / "m.lstmfast"), str(tmp_path / "x.f32"),
                        "40,12,6", "4"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 of 80 predictions differed" in r.stdout
