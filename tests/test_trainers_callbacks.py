"""Behaviour of every callback: History, ProgbarLogger, EarlyStopping (with
restore_best_weights), ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN, CSVLogger and
LambdaCallback, and the order in which fit calls the hooks."""

import csv
import io
import os

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import callbacks as C
from lstmfast import layers as L


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 5, 2)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None] / 10


def _model(seed=0, lr=0.01):
    lf.utils.set_random_seed(seed)
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(4), L.Dense(1)])
    m.compile(lf.optimizers.Adam(lr), "mse", metrics=["mae"])
    return m


class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None): self.calls.append("train_begin")
    def on_epoch_begin(self, epoch, logs=None): self.calls.append(f"epoch_begin {epoch}")
    def on_train_batch_begin(self, batch, logs=None): self.calls.append(f"batch_begin {batch}")
    def on_train_batch_end(self, batch, logs=None): self.calls.append(f"batch_end {batch} {sorted(logs)}")
    def on_epoch_end(self, epoch, logs=None): self.calls.append(f"epoch_end {epoch} {sorted(logs)}")
    def on_train_end(self, logs=None): self.calls.append("train_end")


def test_fit_calls_the_hooks_in_keras_order_with_logs():
    x, y = _data(n=8)
    m = _model()
    rec = Recorder()
    m.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[rec], validation_data=(x, y))
    assert rec.model is m and rec.params["epochs"] == 2 and rec.params["steps"] == 2
    assert rec.calls == [
        "train_begin",
        "epoch_begin 0", "batch_begin 0", "batch_end 0 ['loss', 'mae']", "batch_begin 1",
        "batch_end 1 ['loss', 'mae']", "epoch_end 0 ['loss', 'mae', 'val_loss', 'val_mae']",
        "epoch_begin 1", "batch_begin 0", "batch_end 0 ['loss', 'mae']", "batch_begin 1",
        "batch_end 1 ['loss', 'mae']", "epoch_end 1 ['loss', 'mae', 'val_loss', 'val_mae']",
        "train_end",
    ]


def test_history_records_every_epoch_and_is_returned_and_attached():
    x, y = _data()
    m = _model()
    h = m.fit(x, y, epochs=3, verbose=0, validation_split=0.25)
    assert isinstance(h, C.History) and m.history is h
    assert h.epoch == [0, 1, 2]
    assert sorted(h.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(len(v) == 3 for v in h.history.values())
    assert h.params["epochs"] == 3


def test_progbar_draws_one_line_on_a_terminal_and_the_last_line_elsewhere():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream, dynamic in ((Tty(), True), (io.StringIO(), False)):
        bar = C.Progbar(4, verbose=1, file=stream, interval=0)
        for i in range(1, 5):
            bar.update(i, [("loss", 0.5 / i)])
        text = stream.getvalue()
        if dynamic:
            assert text.count("\r") == 4 and "\x1b[32m" in text
        else:
            assert text.count("\n") == 1 and "\x1b" not in text
        assert "4/4" in text and "loss: 0.1250" in text
    stream = io.StringIO()
    bar = C.Progbar(3, verbose=2, file=stream)
    for i in range(1, 4):
        bar.update(i, [("loss", 1e-5)])
    assert stream.getvalue().startswith("3/3 - ") and "loss: 1.0000e-05" in stream.getvalue()


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    x, y = _data()
    m = _model()
    values = iter([1.0, 0.5, 0.6, 0.55, 0.7, 0.4])
    force = C.LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("val_loss", next(values)))
    es = C.EarlyStopping(monitor="val_loss", patience=2)
    h = m.fit(x, y, epochs=6, verbose=0, callbacks=[force, es], validation_split=0.25)
    assert es.stopped_epoch == 3 and h.epoch == [0, 1, 2, 3]
    assert es.best == 0.5


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    x, y = _data()
    m = _model()
    snapshots = []
    values = iter([1.0, 0.2, 0.6, 0.7, 0.8])

    def on_end(epoch, logs):
        logs["val_loss"] = next(values)
        snapshots.append(m.get_weights())

    es = C.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    m.fit(x, y, epochs=5, verbose=0, callbacks=[C.LambdaCallback(on_epoch_end=on_end), es])
    assert es.best_epoch == 1 and es.stopped_epoch == 3
    for a, b in zip(m.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_mode_min_delta_baseline_and_start_from_epoch():
    es = C.EarlyStopping(monitor="val_accuracy")
    es.set_model(_model())
    es._set_monitor_op()
    assert es.monitor_op is np.greater
    es = C.EarlyStopping(monitor="loss", min_delta=0.1)
    es._set_monitor_op()
    assert es._is_improvement(0.85, 1.0) and not es._is_improvement(0.95, 1.0)
    x, y = _data()
    m = _model()

    def run(**kwargs):
        values = iter([1.0, 0.9, 0.95, 0.96, 0.97, 0.98])
        force = C.LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("val_loss", next(values)))
        return m.fit(x, y, epochs=6, verbose=0, callbacks=[force, C.EarlyStopping(patience=2, **kwargs)]).epoch

    assert run() == [0, 1, 2, 3]
    assert run(baseline=0.5) == [0, 1, 2]  # improving on the best but never on the baseline
    assert run(start_from_epoch=2) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="mode='max'"):
        C.EarlyStopping(monitor="weird_metric")._set_monitor_op()
    with pytest.warns(UserWarning, match="not available"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[C.EarlyStopping(monitor="val_loss")])


def test_model_checkpoint_saves_every_epoch_with_formatted_names(tmp_path):
    x, y = _data()
    m = _model()
    path = str(tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.keras")
    m.fit(x, y, epochs=3, verbose=0, callbacks=[C.ModelCheckpoint(path, monitor="loss")])
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3 and files[0].startswith("ckpt-01-") and files[2].startswith("ckpt-03-")
    restored = lf.load_model(tmp_path / files[-1])
    np.testing.assert_array_equal(restored.predict(x, verbose=0), m.predict(x, verbose=0))


def test_model_checkpoint_save_best_only_keeps_the_best(tmp_path):
    x, y = _data()
    m = _model()
    values = iter([0.5, 0.3, 0.4, 0.2])
    best = []

    def on_end(epoch, logs):
        logs["val_loss"] = next(values)
        if logs["val_loss"] <= min([0.5, 0.3, 0.4, 0.2][: epoch + 1]):
            best.append(m.predict(x, verbose=0))

    path = tmp_path / "best.keras"
    cp = C.ModelCheckpoint(path, save_best_only=True, verbose=1)
    writes = []
    orig = m.save
    m.save = lambda *a, **k: (writes.append(1), orig(*a, **k))
    m.fit(x, y, epochs=4, verbose=0, callbacks=[C.LambdaCallback(on_epoch_end=on_end), cp])
    assert len(writes) == 3 and cp.best == 0.2
    np.testing.assert_array_equal(lf.load_model(path).predict(x, verbose=0), best[-1])


def test_model_checkpoint_weights_only_and_every_n_steps(tmp_path):
    x, y = _data()
    m = _model()
    path = tmp_path / "w-{epoch}-{batch}.weights.h5"
    m.fit(x, y, batch_size=8, epochs=2, verbose=0,
          callbacks=[C.ModelCheckpoint(str(path), save_weights_only=True, save_freq=3)])
    files = sorted(os.listdir(tmp_path))
    assert files == ["w-1-3.weights.h5", "w-2-2.weights.h5"]
    other = _model(seed=9)
    other.load_weights(tmp_path / files[-1])
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint("x.keras", save_freq="sometimes")


def test_reduce_lr_on_plateau_multiplies_the_learning_rate_after_patience():
    x, y = _data()
    m = _model(lr=0.01)
    values = iter([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0])
    force = C.LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("val_loss", next(values)))
    rl = C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.002)
    seen = []
    h = m.fit(x, y, epochs=8, verbose=0,
              callbacks=[force, rl, C.LambdaCallback(on_epoch_end=lambda e, l: seen.append(m.optimizer.learning_rate))])
    assert seen == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.0025, 0.002]
    assert h.history["learning_rate"][0] == 0.01
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.5)


def test_terminate_on_nan_stops_at_the_first_nan_loss(capsys):
    x, y = _data()
    m = _model(lr=1e30)
    m.compile(lf.optimizers.SGD(learning_rate=1e30), "mse")
    h = m.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert m.optimizer.iterations < 20
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert len(h.epoch) == 1
    m = _model()
    m.compile(lf.optimizers.SGD(learning_rate=1e30), "mse")
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        m.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[C.TerminateOnNaN(raise_error=True)])


def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = _data()
    m = _model()
    path = tmp_path / "log.csv"
    m.fit(x, y, epochs=2, verbose=0, callbacks=[C.CSVLogger(path)], validation_split=0.25)
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    m.fit(x, y, epochs=1, verbose=0, callbacks=[C.CSVLogger(path, append=True)], validation_split=0.25)
    assert len(list(csv.DictReader(open(path)))) == 3
    m.fit(x, y, epochs=1, verbose=0, callbacks=[C.CSVLogger(path, separator=";")])
    text = open(path).read().splitlines()
    assert text[0] == "epoch;loss;mae;val_loss;val_mae" and text[1].endswith(";NA;NA")


def test_lambda_callback_calls_the_given_functions():
    x, y = _data(n=8)
    m = _model()
    seen = []
    cb = C.LambdaCallback(on_train_begin=lambda logs: seen.append("begin"),
                          on_epoch_begin=lambda e, logs: seen.append(f"e{e}"),
                          on_batch_end=lambda b, logs: seen.append(f"b{b}"),
                          on_train_end=lambda logs: seen.append("end"))
    m.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[cb])
    assert seen == ["begin", "e0", "b0", "b1", "e1", "b0", "b1", "end"]
    with pytest.raises(TypeError):
        C.LambdaCallback(on_epoch_end=3)
    with pytest.raises(TypeError):
        C.LambdaCallback(on_weird=print)


def test_callbacks_must_be_callback_instances():
    x, y = _data(n=8)
    with pytest.raises(TypeError, match="Callback"):
        _model().fit(x, y, verbose=0, callbacks=[lambda: None])


def test_stop_training_from_a_batch_hook_ends_fit_after_that_step():
    x, y = _data()
    m = _model()

    def stop(batch, logs):
        if batch == 1:
            m.stop_training = True

    h = m.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[C.LambdaCallback(on_train_batch_end=stop)])
    assert m.optimizer.iterations == 2 and h.epoch == [0]
