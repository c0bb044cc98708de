"""A loss and a metric written by the user as numpy functions of (y_true, y_pred), and a custom
callback, work in compile and fit as in Keras."""

import warnings

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def huber(y_true, y_pred):
    """Per-sample Huber loss (δ = 1), as a Keras user writes a loss function."""
    err = y_pred - y_true
    small = np.abs(err) <= 1.0
    return np.mean(np.where(small, 0.5 * err ** 2, np.abs(err) - 0.5), axis=-1)


def mean_error(y_true, y_pred):
    return np.mean(y_pred - y_true, axis=-1)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 5, 2)).astype(np.float32)
    return x, 3 * x.sum(axis=(1, 2))[:, None]


def test_a_numpy_loss_function_trains_and_its_gradient_matches_the_exact_one():
    x, y = _data()
    # mean squared error as a user function against the built-in: the same training
    def mse(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2, axis=-1)
    runs = []
    for loss in (mse, "mse"):
        lf.utils.set_random_seed(1)
        m = lf.Sequential([L.Input((5, 2)), L.LSTM(4), L.Dense(1)])
        m.compile("adam", loss=loss)
        runs.append((m.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"], m.get_weights()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_numpy_loss_and_metric_on_a_model_with_several_outputs_per_sample():
    x, y = _data(2)
    y3 = np.concatenate([y, -y, 2 * y], axis=1)
    lf.utils.set_random_seed(3)
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(6), L.Dense(3)])
    m.compile("adam", loss=huber, metrics=[mean_error, "mae"])
    h = m.fit(x, y3, batch_size=8, epochs=6, verbose=0).history
    assert sorted(h) == ["loss", "mae", "mean_error"] and h["loss"][-1] < h["loss"][0]
    loss, me, mae = m.evaluate(x, y3, verbose=0)
    np.testing.assert_allclose(loss, np.mean(huber(y3, m.predict(x, verbose=0))), rtol=1e-5)


def test_a_loss_function_returning_a_scalar_is_refused_with_a_reason(tmp_path):
    x, y = _data()
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(2), L.Dense(1)])
    m.compile("adam", loss=lambda t, p: float(np.mean((t - p) ** 2)))
    with pytest.raises(ValueError, match="one value per sample"):
        m.fit(x, y, verbose=0)
    m.compile("adam", loss=huber)
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.lstmfast")
    with pytest.warns(UserWarning, match="loaded uncompiled"):
        again = lf.load_model(tmp_path / "m.lstmfast")
    np.testing.assert_array_equal(again.predict(x, verbose=0), m.predict(x, verbose=0))


def test_a_custom_callback_sees_every_epoch_and_can_stop_training():
    class StopAtLoss(lf.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(logs["loss"])
            if epoch == 2:
                self.model.stop_training = True

    x, y = _data()
    m = lf.Sequential([L.Input((5, 2)), L.LSTM(2), L.Dense(1)])
    m.compile("adam", "mse")
    cb = StopAtLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = m.fit(x, y, epochs=10, verbose=0, callbacks=[cb])
    assert len(cb.seen) == 3 and h.history["loss"] == cb.seen
