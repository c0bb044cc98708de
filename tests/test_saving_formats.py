"""Saving and loading: lstmfast's own format (bit-exact round trips, optimizer state, atomic
writes, clear errors for corrupted or foreign files) and imports of Keras `.keras` and legacy
`.h5` files written by Keras itself, and of PyTorch `nn.LSTM` weights."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def _model(seed=0):
    lf.utils.set_random_seed(seed)
    m = lf.Sequential([L.Input((6,)), L.Embedding(20, 4, mask_zero=True),
                       L.Bidirectional(L.LSTM(3, return_sequences=True)), L.LSTM(5, dropout=0.1),
                       L.Dropout(0.2), L.RepeatVector(2), L.TimeDistributed(L.Dense(3, activation="softmax"))])
    m.compile(lf.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 20, (n, 6))
    x[:4, :2] = 0
    y = lf.utils.to_categorical(rng.integers(0, 3, (n, 2)), 3)
    return x, y


def test_save_and_load_model_round_trip_predicts_bit_exactly(tmp_path):
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    m.save(path)
    r = lf.load_model(path)
    assert r.get_config() == m.get_config()
    assert [l.name for l in r.layers] == [l.name for l in m.layers]
    np.testing.assert_array_equal(r.predict(x, verbose=0), m.predict(x, verbose=0))
    for a, b in zip(r.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert r.optimizer.get_config() == m.optimizer.get_config()
    assert r.loss.get_config() == m.loss.get_config()


def test_resumed_adam_matches_uninterrupted_training(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((32, 5, 2)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None]

    def make():
        lf.utils.set_random_seed(4)
        m = lf.Sequential([L.Input((5, 2)), L.LSTM(4), L.Dense(1)])
        m.compile("adam", "mse")
        return m

    straight = make()
    straight.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    first = make()
    first.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    first.save(tmp_path / "half.keras")
    resumed = lf.load_model(tmp_path / "half.keras")
    resumed.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_moving_average_of_use_ema_is_saved_with_the_optimizer(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((16, 5, 2)).astype(np.float32)
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(3), L.Dense(1)])
    m.compile(lf.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=5), "mse")
    m.fit(x, x.sum(axis=(1, 2))[:, None], epochs=2, batch_size=4, verbose=0)
    state = m.optimizer.get_state()
    np.testing.assert_array_equal(state["average"], m.flat_parameters().values)  # finalised at the end of fit
    m.save(tmp_path / "ema.keras")
    again = lf.load_model(tmp_path / "ema.keras")
    assert again.optimizer.get_config()["use_ema"] and again.optimizer.ema_overwrite_frequency == 5
    np.testing.assert_array_equal(again.optimizer.get_state()["average"], state["average"])
    for bad in (dict(ema_momentum=1.5), dict(ema_overwrite_frequency=0)):
        with pytest.raises(ValueError, match="ema_"):
            lf.optimizers.Adam(use_ema=True, **bad)


def test_save_weights_and_load_weights_round_trip(tmp_path):
    x, _ = _data()
    m = _model(seed=1)
    m.save_weights(tmp_path / "w.weights.h5")
    other = _model(seed=2)
    assert not np.array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))
    with pytest.raises(ValueError, match="holds only weights"):
        lf.load_model(tmp_path / "w.weights.h5")
    small = lf.Sequential([L.Input((6,)), L.Embedding(20, 4), L.LSTM(2)])
    with pytest.raises(ValueError, match="holds 12 weights, but the model has 4"):
        small.load_weights(tmp_path / "w.weights.h5")


def test_saving_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    m = _model()
    path = tmp_path / "m.keras"
    m.save(path)
    before = path.read_bytes()
    import lstmfast.saving as saving

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(saving.native, "_npy_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]
    with pytest.raises(FileExistsError):
        m.save(path, overwrite=False)


def test_a_truncated_or_corrupted_file_gives_a_clear_error(tmp_path):
    m = _model()
    path = tmp_path / "m.keras"
    m.save(path)
    data = path.read_bytes()
    (tmp_path / "trunc.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.keras"):
        lf.load_model(tmp_path / "trunc.keras")
    # flip bytes inside a stored weight: the zip CRC catches it
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("weights/00003.npy")
    corrupt = bytearray(data)
    start = info.header_offset + 30 + len(info.filename) + 200
    corrupt[start:start + 8] = b"\xff" * 8
    (tmp_path / "crc.keras").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="not a valid lstmfast file.*corrupted"):
        lf.load_model(tmp_path / "crc.keras")


def test_foreign_files_and_newer_versions_are_refused_with_a_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an lstmfast file, a Keras .keras archive or an HDF5"):
        lf.load_model(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("a.txt", "x")
    with pytest.raises(ValueError, match="neither an lstmfast file"):
        lf.load_model(tmp_path / "other.zip")
    m = _model()
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as src, zipfile.ZipFile(tmp_path / "future.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "lstmfast.json":
                header = json.loads(data)
                header["format_version"] = 99
                data = json.dumps(header).encode()
            dst.writestr(item, data)
    with pytest.raises(ValueError, match="format version 99.*Upgrade lstmfast"):
        lf.load_model(tmp_path / "future.keras")
    with pytest.raises(FileNotFoundError):
        lf.load_model(tmp_path / "missing.keras")


def test_weight_shape_mismatch_in_a_file_is_reported(tmp_path):
    m = _model()
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as src, zipfile.ZipFile(tmp_path / "bad.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "weights/00000.npy":
                buf = io.BytesIO()
                np.save(buf, np.zeros((3, 3), np.float32))
                data = buf.getvalue()
            dst.writestr(item, data)
    with pytest.raises(ValueError, match=r"weight 0 .* has shape \(3, 3\)"):
        lf.load_model(tmp_path / "bad.keras")


# ---------------------------------------------------------------------------- Keras files

@pytest.fixture(scope="module")
def keras():
    from keras_reference import import_keras

    pytest.importorskip("h5py", reason="reading Keras HDF5 files needs h5py")
    return import_keras()


def _keras_model(keras):
    K = keras.layers
    m = keras.Sequential([keras.Input((6,), dtype="int32"), K.Embedding(20, 4, mask_zero=True),
                          K.Bidirectional(K.LSTM(3, return_sequences=True)), K.LSTM(5, activation="relu"),
                          K.Dropout(0.1), K.RepeatVector(2), K.TimeDistributed(K.Dense(3, activation="softmax"))])
    m.compile(keras.optimizers.Adam(0.003), "categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_model_saved_by_keras_loads_and_predicts_the_same(keras, tmp_path, suffix):
    import warnings

    km = _keras_model(keras)
    x, y = _data()
    km.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / f"k{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.save(path)
    m = lf.load_model(path)
    assert [type(l).__name__ for l in m.layers] == ["Embedding", "Bidirectional", "LSTM", "Dropout", "RepeatVector", "TimeDistributed"]
    expected = km.predict(x, verbose=0)
    np.testing.assert_allclose(m.predict(x, verbose=0), expected, atol=1e-6)
    assert m.optimizer.learning_rate == pytest.approx(0.003)
    assert isinstance(m.loss, lf.losses.CategoricalCrossentropy)
    m.fit(x, y, epochs=1, verbose=0)  # and it trains


def test_keras_weights_file_loads_into_the_same_lstmfast_architecture(keras, tmp_path):
    km = _keras_model(keras)
    km.save_weights(tmp_path / "k.weights.h5")
    m = lf.Sequential([L.Input((6,)), L.Embedding(20, 4, mask_zero=True),
                       L.Bidirectional(L.LSTM(3, return_sequences=True)), L.LSTM(5, activation="relu"),
                       L.Dropout(0.1), L.RepeatVector(2), L.TimeDistributed(L.Dense(3, activation="softmax"))])
    m.load_weights(tmp_path / "k.weights.h5")
    x, _ = _data()
    np.testing.assert_allclose(m.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-6)


def test_keras_functional_models_load_and_predict_as_keras(keras, tmp_path):
    inp = keras.Input((3,))
    out = keras.layers.Dense(2)(keras.layers.Dense(2)(inp))
    km = keras.Model(inp, out)
    km.save(tmp_path / "f.keras")
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    np.testing.assert_allclose(lf.load_model(tmp_path / "f.keras").predict(x, verbose=0),
                               km.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- PyTorch

def test_torch_lstm_state_dict_loads_into_an_lstm_layer():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=True)
    x = np.random.default_rng(0).random((4, 7, 3)).astype(np.float32)
    with torch.no_grad():
        expected, (h, c) = net(torch.from_numpy(x))
    sd = net.state_dict()
    layer0 = _torch_layer0(torch, net, x)  # (4, 7, 10): forward then reverse direction
    first = L.LSTM(5, return_sequences=True)
    first.load_torch_state_dict(sd, layer=0)
    np.testing.assert_allclose(first(x), layer0[..., :5], atol=1e-6)
    bi = L.Bidirectional(L.LSTM(5, return_sequences=True))
    bi._maybe_build((None, 7, 3))
    bi.forward_layer.load_torch_state_dict(sd, layer=0)
    bi.backward_layer.load_torch_state_dict(sd, layer=0, reverse=True)
    out0 = bi(x)
    np.testing.assert_allclose(out0, layer0, atol=1e-6)
    second = L.Bidirectional(L.LSTM(5, return_sequences=True))
    second._maybe_build((None, 7, 10))
    second.forward_layer.load_torch_state_dict(sd, layer=1)
    second.backward_layer.load_torch_state_dict(sd, layer=1, reverse=True)
    np.testing.assert_allclose(second(out0), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="weight_ih_l2"):
        L.LSTM(5).load_torch_state_dict(sd, layer=2)
    with pytest.raises(ValueError):
        L.LSTM(4).load_torch_state_dict(sd)


def _torch_layer0(torch, net, x):
    one = torch.nn.LSTM(3, 5, batch_first=True, bidirectional=True)
    sd = {k: v for k, v in net.state_dict().items() if "_l0" in k}
    one.load_state_dict(sd)
    with torch.no_grad():
        return one(torch.from_numpy(x))[0].numpy()


def test_torch_weights_in_a_module_state_dict_are_found_by_prefix():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.LSTM(2, 3, batch_first=True)
            self.head = torch.nn.Linear(3, 1)

    net = Net()
    layer = L.LSTM(3)
    layer.load_torch_state_dict(net.state_dict())
    x = np.random.default_rng(1).random((2, 4, 2)).astype(np.float32)
    with torch.no_grad():
        _, (h, _) = net.encoder(torch.from_numpy(x))
    np.testing.assert_allclose(layer(x), h[0].numpy(), atol=1e-6)
    w = lf.saving.torch_lstm_weights(net.state_dict(), prefix="encoder.")
    np.testing.assert_array_equal(w[0], net.encoder.weight_ih_l0.detach().numpy().T)


def test_a_keras_2_hdf5_file_loads_with_its_weights_and_compile_settings(tmp_path):
    """A file laid out as tf.keras 2.x writes it (model_config with batch_input_shape on the first
    layer, `name:0` weight paths, Keras 2 optimizer config), built here with h5py."""
    h5py = pytest.importorskip("h5py", reason="reading Keras HDF5 files needs h5py")
    init = {"class_name": "GlorotUniform", "config": {"seed": None}}
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 7], "dtype": "float32",
                                                 "sparse": False, "ragged": False, "name": "embedding_input"}},
        {"class_name": "Embedding", "config": {"name": "embedding", "trainable": True, "batch_input_shape": [None, 7],
                                               "dtype": "float32", "input_dim": 30, "output_dim": 4,
                                               "embeddings_initializer": {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05, "seed": None}},
                                               "embeddings_regularizer": None, "activity_regularizer": None,
                                               "embeddings_constraint": None, "mask_zero": True, "input_length": 7}},
        {"class_name": "LSTM", "config": {"name": "lstm", "trainable": True, "dtype": "float32", "return_sequences": False,
                                          "return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
                                          "time_major": False, "units": 5, "activation": "tanh", "recurrent_activation": "sigmoid",
                                          "use_bias": True, "kernel_initializer": init,
                                          "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
                                          "bias_initializer": {"class_name": "Zeros", "config": {}}, "unit_forget_bias": True,
                                          "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
                                          "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
                                          "bias_constraint": None, "dropout": 0.2, "recurrent_dropout": 0.0, "implementation": 2}},
        {"class_name": "Dense", "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 1,
                                           "activation": "sigmoid", "use_bias": True, "kernel_initializer": init,
                                           "bias_initializer": {"class_name": "Zeros", "config": {}},
                                           "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                                           "kernel_constraint": None, "bias_constraint": None}}]}}
    training = {"loss": "binary_crossentropy", "metrics": [[{"class_name": "MeanMetricWrapper", "config": {"name": "accuracy", "dtype": "float32"}}]],
                "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.002, "decay": 0.0,
                                                                      "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}}
    rng = np.random.default_rng(0)
    weights = {"embedding": [("embedding/embeddings:0", rng.normal(size=(30, 4)))],
               "lstm": [("lstm/lstm_cell/kernel:0", rng.normal(size=(4, 20))),
                        ("lstm/lstm_cell/recurrent_kernel:0", rng.normal(size=(5, 20))),
                        ("lstm/lstm_cell/bias:0", rng.normal(size=20))],
               "dense": [("dense/kernel:0", rng.normal(size=(5, 1))), ("dense/bias:0", rng.normal(size=1))]}
    path = tmp_path / "keras2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n in ("embedding_input", "embedding", "lstm", "dense")]
        g.create_group("embedding_input").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, ws in weights.items():
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = [n.encode() for n, _ in ws]
            for n, w in ws:
                lg.create_dataset(n, data=w.astype(np.float32))
    m = lf.load_model(path)
    assert [type(l).__name__ for l in m.layers] == ["Embedding", "LSTM", "Dense"]
    assert m.layers[1].dropout == 0.2 and m.layers[0].mask_zero
    assert m.optimizer.learning_rate == pytest.approx(0.002) and m.metrics_names == ["loss"]
    ref = lf.Sequential([L.Input((7,)), L.Embedding(30, 4, mask_zero=True), L.LSTM(5), L.Dense(1, activation="sigmoid")])
    ref.set_weights([w for ws in weights.values() for _, w in ws])
    x = rng.integers(0, 30, (6, 7))
    x[:2, :3] = 0
    np.testing.assert_array_equal(m.predict(x, verbose=0), ref.predict(x, verbose=0))
    m.fit(x, np.ones(6), epochs=1, verbose=0)
    assert m.metrics_names == ["loss", "accuracy"]


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save_and_others_are_left(tmp_path):
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(3), L.Dense(1)])
    dead = 2 ** 22 + 54321  # above the default pid_max: no such process
    leftover = tmp_path / f".m.keras.{dead}.x1y2.tmp"
    leftover.write_bytes(b"half a model")
    foreign = tmp_path / ".m.keras.notes.tmp"
    foreign.write_bytes(b"someone else's")
    m.save(tmp_path / "m.keras")
    assert not leftover.exists() and foreign.exists()
    assert lf.load_model(tmp_path / "m.keras").count_params() == m.count_params()


def _rewrite_member(src, dst, name, data, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            payload = data if info.filename == name else zin.read(info.filename)
            zout.writestr(info.filename, payload, compress_type=compress if info.filename == name else info.compress_type)


def test_untrusted_model_files_are_checked_before_anything_is_inflated_or_allocated(tmp_path):
    m = _model()
    path = tmp_path / "m.keras"
    m.save(path)
    # a deflated member that inflates to 50 MB from a few KB: a zip bomb, refused by its declared size
    bomb = tmp_path / "bomb.keras"
    _rewrite_member(path, bomb, "weights/00000.npy", b"\0" * (50 << 20), zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="claims 52,428,800 bytes"):
        lf.load_model(bomb)
    # an .npy header claiming 2**40 values over a few bytes
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (2 ** 40,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    liar = tmp_path / "liar.keras"
    _rewrite_member(path, liar, "weights/00000.npy", buf.getvalue() + b"\0" * 16)
    with pytest.raises(ValueError, match="claims shape"):
        lf.load_model(liar)
    # a FIFO: refused, not waited on
    fifo = tmp_path / "fifo.keras"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        lf.load_model(fifo)


def test_text_files_with_a_line_too_long_or_that_are_no_files_are_refused(tmp_path):
    from lstmfast.data import DataError
    from lstmfast.data._io import MAX_LINE, read_lines

    long = tmp_path / "pairs.tsv"
    long.write_text("one\tun\n" + "x" * (MAX_LINE + 1) + "\ttwo\n")
    with pytest.raises(DataError, match="line 2: a line of 1,000,00"):
        list(read_lines(long))
    fifo = tmp_path / "fifo.tsv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        list(read_lines(fifo))


def test_crafted_headers_and_damaged_keras_files_name_the_file(tmp_path):
    m = _model()
    m.compile("adam", "mse")
    path = tmp_path / "m.keras"
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        header_name = next(n for n in zf.namelist() if n.endswith(".json"))
        header = json.loads(zf.read(header_name))
    bad_json = tmp_path / "badjson.keras"
    _rewrite_member(path, bad_json, header_name, b"{not json")
    with pytest.raises(ValueError, match="badjson.keras.*not valid JSON"):
        lf.load_model(bad_json)
    del header["compile_config"]["optimizer"]
    no_opt = tmp_path / "noopt.keras"
    _rewrite_member(path, no_opt, header_name, json.dumps(header).encode())
    with pytest.raises(ValueError, match="noopt.keras.*optimizer or the loss"):
        lf.load_model(no_opt)
    h5 = tmp_path / "broken.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    pytest.importorskip("h5py")
    with pytest.raises(ValueError, match="broken.h5"):
        lf.load_model(h5)
