"""fit / evaluate / predict behaviour: reproducibility, Ctrl-C, validation, shuffling, epochs,
sample and class weights, train_on_batch, summary, learnability."""

import signal

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L


def _series(n=96, t=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, t, 1)).astype(np.float32)
    return x, x.mean(axis=1)


def _model(dropout=0.0, seed=None):
    if seed is not None:
        lf.utils.set_random_seed(seed)
    m = lf.Sequential([L.Input((8, 1)), L.LSTM(8, dropout=dropout, recurrent_dropout=dropout), L.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    return m


def test_set_random_seed_makes_two_fits_bit_identical_with_dropout_and_shuffling():
    x, y = _series()
    runs = []
    for _ in range(2):
        m = _model(dropout=0.3, seed=42)
        h = m.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_split=0.25)
        runs.append((h.history, m.get_weights(), m.predict(x, verbose=0)))
    (h1, w1, p1), (h2, w2, p2) = runs
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def test_fits_with_one_and_two_threads_are_bit_identical():
    x, y = _series()
    before = lf.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            lf.set_num_threads(n)
            m = _model(dropout=0.2, seed=5)
            m.fit(x, y, batch_size=32, epochs=2, verbose=0)
            results.append(m.get_weights())
    finally:
        lf.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_initial_weights():
    a = _model(seed=1).get_weights()[0]
    b = _model(seed=2).get_weights()[0]
    assert not np.array_equal(a, b)


def test_fit_learns_a_task_that_needs_memory():
    # the label is the sign of the first step, seen 10 steps earlier
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 10, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.float32)
    lf.utils.set_random_seed(0)
    m = lf.Sequential([L.Input((10, 1)), L.LSTM(16), L.Dense(1, activation="sigmoid")])
    m.compile(lf.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    m.fit(x, y, batch_size=32, epochs=30, verbose=0)
    assert m.evaluate(x, y, verbose=0)[1] > 0.95


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test: a process started in the background by a shell
    inherits SIGINT ignored, and fit() leaves a handler that is not Python's default alone."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_stops_fit_cleanly_with_the_weights_of_the_last_finished_step(default_sigint):
    x, y = _series(n=64)
    m = _model(seed=3)
    ref = _model(seed=3)
    ref.train_on_batch(x[:16], y[:16])
    ref.train_on_batch(x[16:32], y[16:32])

    def interrupt(batch, logs):
        if batch == 1:
            signal.raise_signal(signal.SIGINT)

    cb = lf.callbacks.LambdaCallback(on_train_batch_end=interrupt)
    h = m.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0, callbacks=[cb])
    assert h.history == {}  # stopped inside the first epoch
    for a, b in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the handler is restored afterwards
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_keyboard_interrupt_raised_inside_fit_also_stops_cleanly():
    x, y = _series(n=64)
    m = _model(seed=3)

    def boom(batch, logs):
        if batch == 2:
            raise KeyboardInterrupt

    h = m.fit(x, y, batch_size=16, epochs=3, verbose=0,
              callbacks=[lf.callbacks.LambdaCallback(on_train_batch_begin=boom)])
    assert isinstance(h, lf.callbacks.History)
    assert m.optimizer.iterations == 2


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = _series(n=100)
    m = _model(seed=0)
    h = m.fit(x, y, batch_size=10, epochs=1, validation_split=0.2, verbose=0)
    assert m.optimizer.iterations == 8
    np.testing.assert_allclose(h.history["val_loss"][0], m.evaluate(x[80:], y[80:], verbose=0, batch_size=10), rtol=1e-6)


def test_validation_data_is_evaluated_every_validation_freq_epochs():
    x, y = _series(n=40)
    m = _model(seed=0)
    h = m.fit(x, y, epochs=4, batch_size=20, validation_data=(x[:8], y[:8]), validation_freq=2, verbose=0)
    assert len(h.history["loss"]) == 4 and len(h.history["val_loss"]) == 2


def test_initial_epoch_starts_counting_there():
    x, y = _series(n=32)
    m = _model(seed=0)
    h = m.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert h.epoch == [3, 4]


def test_shuffle_false_visits_batches_in_order_and_shuffle_true_does_not():
    x, y = _series(n=64)
    seen = {}
    for shuffle in (False, True):
        m = _model(seed=0)
        order = []
        orig = m._train_step

        def spy(xb, yb, swb, orig=orig, order=order):
            order.append(float(yb[0, 0]))
            return orig(xb, yb, swb)

        m._train_step = spy
        m.fit(x, y, batch_size=16, epochs=1, shuffle=shuffle, verbose=0)
        seen[shuffle] = order
    assert seen[False] == [float(y[i, 0]) for i in (0, 16, 32, 48)]
    assert seen[True] != seen[False]


def test_epoch_loss_is_the_batch_size_weighted_mean_of_batch_losses():
    x, y = _series(n=40)
    m = _model(seed=0)
    losses = []
    cb = lf.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: losses.append(logs["loss"]))
    h = m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    assert h.history["loss"][0] == pytest.approx(losses[-1])


def test_sample_weight_zero_removes_samples_from_the_loss():
    x, y = _series(n=32)
    m = _model(seed=0)
    w = np.ones(32)
    w[16:] = 0
    full = m.evaluate(x, y, verbose=0, sample_weight=w, batch_size=32)
    assert full == pytest.approx(m.evaluate(x[:16], y[:16], verbose=0) * 0.5, rel=1e-5)


def test_class_weight_scales_the_loss_per_class():
    rng = np.random.default_rng(0)
    x = rng.random((32, 4, 2)).astype(np.float32)
    y = (np.arange(32) % 2).astype(np.float32)
    lf.utils.set_random_seed(0)
    m = lf.Sequential([L.Input((4, 2)), L.LSTM(3), L.Dense(1, activation="sigmoid")])
    m.compile("sgd", "binary_crossentropy")
    w0 = m.get_weights()
    m.fit(x, y, epochs=1, batch_size=32, class_weight={0: 1.0, 1: 0.0}, shuffle=False, verbose=0)
    a = m.get_weights()
    m.set_weights(w0)
    m.fit(x[y == 0], y[y == 0], epochs=1, batch_size=32, shuffle=False, verbose=0)
    # with class 1 weighted 0, the step equals half of the step on class 0 alone (mean over 32 vs 16)
    for wa, wb, w00 in zip(a, m.get_weights(), w0):
        np.testing.assert_allclose(wa - w00, (wb - w00) / 2, atol=1e-7)


def test_train_on_batch_predict_on_batch_and_test_on_batch():
    x, y = _series(n=16)
    m = _model(seed=0)
    before = m.test_on_batch(x, y)
    loss = m.train_on_batch(x, y)
    assert loss == pytest.approx(before, rel=1e-6)
    assert m.test_on_batch(x, y) < before
    np.testing.assert_array_equal(m.predict_on_batch(x), m.predict(x, batch_size=16, verbose=0))
    logs = m.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss"}


def test_evaluate_returns_loss_then_metrics_and_a_dict_on_request():
    x, y = _series(n=16)
    m = lf.Sequential([L.Input((8, 1)), L.LSTM(4), L.Dense(1)])
    m.compile("adam", "mse", metrics=["mae", "mse"])
    out = m.evaluate(x, y, verbose=0)
    d = m.evaluate(x, y, verbose=0, return_dict=True)
    assert out == [d["loss"], d["mae"], d["mse"]]
    assert d["loss"] == pytest.approx(d["mse"], rel=1e-6)


def test_accuracy_is_resolved_from_the_shapes_like_keras():
    x = np.random.default_rng(0).random((8, 3, 2)).astype(np.float32)
    for units, act, loss, y, cls in [
        (1, "sigmoid", "binary_crossentropy", np.ones(8), lf.metrics.BinaryAccuracy),
        (3, "softmax", "sparse_categorical_crossentropy", np.zeros(8, int), lf.metrics.SparseCategoricalAccuracy),
        (3, "softmax", "categorical_crossentropy", lf.utils.to_categorical(np.zeros(8, int), 3), lf.metrics.CategoricalAccuracy),
    ]:
        m = lf.Sequential([L.Input((3, 2)), L.LSTM(2), L.Dense(units, activation=act)])
        m.compile("adam", loss, metrics=["accuracy"])
        m.evaluate(x, y, verbose=0)
        assert isinstance(m._metrics[0], cls) and m.metrics_names == ["loss", "accuracy"]


def test_predict_batches_agree_with_one_big_batch_and_keep_float32():
    x, _ = _series(n=50)
    m = _model(seed=0)
    a = m.predict(x, batch_size=7, verbose=0)
    b = m.predict(x, batch_size=50, verbose=0)
    assert a.dtype == np.float32 and a.shape == (50, 1)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(m(x), b)


def test_predict_and_evaluate_pack_lstm_weights_once_and_forget_them_after(monkeypatch):
    # Over several batches predict() and evaluate() pack each LSTM's weights once (weights do
    # not change meanwhile), with the same bits as packing at every batch, and drop the pack
    # when they return, so that the next call sees weights changed in between.
    from lstmfast import ops

    x, y = _series(n=50)
    m = lf.Sequential([L.Input((8, 1)), L.LSTM(8, return_sequences=True),
                       L.Bidirectional(L.LSTM(6)), L.Dense(1)])
    m.compile("adam", "mse")
    lstms = [m.layers[0], m.layers[1].forward_layer, m.layers[1].backward_layer]
    packs = []
    pack = ops.pack_lstm_weights
    monkeypatch.setattr(ops, "pack_lstm_weights", lambda *a: packs.append(1) or pack(*a))
    batches = [m(x[i:i + 7]) for i in range(0, 50, 7)]
    assert not packs  # a direct call packs nothing ahead
    np.testing.assert_array_equal(m.predict(x, batch_size=7, verbose=0), np.concatenate(batches))
    assert len(packs) == 3 and all(layer._packed is None for layer in lstms)
    loss = m.evaluate(x, y, batch_size=7, verbose=0)
    assert len(packs) == 6 and loss == pytest.approx(float(np.mean((np.concatenate(batches) - y) ** 2)), rel=1e-6)
    m.predict(x, batch_size=50, verbose=0)  # one batch: nothing to share
    assert len(packs) == 6
    kernel = m.layers[0].kernel
    kernel.assign(kernel.numpy() * 0.5)
    np.testing.assert_array_equal(m.predict(x, batch_size=7, verbose=0),
                                  np.concatenate([m(x[i:i + 7]) for i in range(0, 50, 7)]))


def test_predict_with_callbacks_that_change_weights_uses_the_new_weights():
    x, _ = _series(n=40)
    m = _model(seed=3)
    first = m(x[10:])

    class Halve(lf.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            if batch == 0:
                k = self.model.layers[0].recurrent_kernel
                k.assign(k.numpy() * 0.5)

    out = m.predict(x, batch_size=10, verbose=0, callbacks=[Halve()])
    # batch by batch, as predict ran them (a matrix product's bits may depend on its row count)
    np.testing.assert_array_equal(out[10:], np.concatenate([m(x[i:i + 10]) for i in range(10, 40, 10)]))
    assert not np.array_equal(out[10:], first)


def test_stateful_model_carries_state_across_batches_until_reset_states():
    x = np.random.default_rng(0).random((4, 5, 1)).astype(np.float32)
    m = lf.Sequential([L.Input((5, 1), batch_size=4), L.LSTM(3, stateful=True), L.Dense(1)])
    m.compile("adam", "mse")
    p1 = m.predict(x, batch_size=4, verbose=0)
    p2 = m.predict(x, batch_size=4, verbose=0)
    assert not np.allclose(p1, p2)
    m.reset_states()
    np.testing.assert_array_equal(m.predict(x, batch_size=4, verbose=0), p1)
    m.fit(x, p1, batch_size=4, epochs=2, shuffle=False, verbose=0)


def test_frozen_layer_is_not_updated_by_fit():
    x, y = _series(n=32)
    m = _model(seed=0)
    m.layers[0].trainable = False
    m.compile("adam", "mse")
    frozen = [w.copy() for w in m.layers[0].get_weights()]
    dense = m.layers[1].get_weights()[0].copy()
    m.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, m.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(dense, m.layers[1].get_weights()[0])
    assert len(m.trainable_weights) == 2 and len(m.non_trainable_weights) == 3


def test_model_built_from_data_when_no_input_shape_is_given():
    x, y = _series(n=16)
    m = lf.Sequential()
    m.add(L.LSTM(4))
    m.add(L.Dense(1))
    assert not m.built
    m.compile("adam", "mse")
    m.fit(x, y, verbose=0)
    assert m.built and m.input_shape == (None, 8, 1) and m.output_shape == (None, 1)


def test_summary_prints_keras_parameter_counts_and_optimizer_params():
    lines = []
    m = lf.Sequential([L.Input((5, 3)), L.LSTM(4), L.Dense(1, activation="sigmoid")])
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "lstm" in text and "(None, 4)" in text and "128" in text
    assert "Total params: 133 (532.00 B)" in text
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    m.fit(np.zeros((4, 5, 3), np.float32), np.zeros(4), verbose=0)
    lines.clear()
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    # Keras counts Adam's m and v (2 × 133) plus its iteration and learning-rate variables
    assert "Optimizer params: 268" in text and "Total params: 401 (1.57 KB)" in text


def test_summary_separates_thousands_as_keras_does():
    lines = []
    # LSTM(64) on 3 features: 4·64·(3 + 64 + 1) = 17,408 weights; Dense(1): 65.
    m = lf.Sequential([L.Input((5, 3)), L.LSTM(64), L.Dense(1)])
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "17,408" in text and "Total params: 17,473 (68.25 KB)" in text
    assert "Trainable params: 17,473 (68.25 KB)" in text


def test_progress_bar_and_per_epoch_lines_look_like_keras(capsys):
    x, y = _series(n=32)
    m = _model(seed=0)
    m.fit(x, y, batch_size=16, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "2/2" in out and "loss:" in out and "step" in out
    m.fit(x, y, batch_size=16, epochs=2, verbose=2, validation_split=0.5)
    lines = [l for l in capsys.readouterr().out.splitlines() if l]
    assert lines[0] == "Epoch 1/2"
    assert lines[1].startswith("1/1 - ") and " - loss: " in lines[1] and " - val_loss: " in lines[1]
    m.fit(x, y, epochs=1, verbose=0)
    m.predict(x, verbose=0)
    m.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""


def test_clone_keeps_the_architecture_with_new_weights():
    m = _model(seed=0)
    c = lf.models.clone_model(m)
    assert c.get_config()["layers"][1]["config"]["units"] == 8
    assert [w.shape for w in c.get_weights()] == [w.shape for w in m.get_weights()]
    assert not np.array_equal(c.get_weights()[0], m.get_weights()[0])


@pytest.mark.parametrize("between", (None, "dropout_0", "dropout_0.3"))
def test_an_lstm_after_repeat_vector_trains_like_one_fed_the_repeated_input(between, monkeypatch):
    # The LSTM after a RepeatVector projects the time-constant input once and hands
    # RepeatVector Σ_t dx_t; the model must train exactly as if the repeated input were data.
    # Any layer in between (Dropout, even at rate 0; a linear Activation) receives a plain array.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 5)).astype(np.float32)
    y = rng.standard_normal((24, 4, 3)).astype(np.float32)
    rate = None if between is None else float(between.split("_")[1])
    lf.utils.set_random_seed(5)
    mid = [] if rate is None else [L.Dropout(rate, seed=1)]
    a = lf.Sequential([L.Input((5,)), L.Dense(6), L.RepeatVector(4), *mid,
                       L.LSTM(7, return_sequences=True), L.Dense(3)])
    b = lf.Sequential([L.Input((5,)), L.Dense(6), L.RepeatVector(4), *([L.Dropout(rate, seed=1)] if mid else []),
                       L.Activation("linear"), L.LSTM(7, return_sequences=True), L.Dense(3)])
    b.set_weights(a.get_weights())
    calls = []
    forward = lf.ops.lstm_forward
    monkeypatch.setattr(lf.ops, "lstm_forward", lambda *args, **kw: calls.append(kw.get("timesteps"))
                        or forward(*args, **kw))
    for m in (a, b):
        m.compile(optimizer="adam", loss="mse")
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert calls[:6] == ([4] * 6 if rate is None else [None] * 6) and calls[6:] == [None] * 6
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_numpys_blas_runs_on_one_thread_inside_fit_and_gets_its_threads_back():
    # numpy's BLAS threads would fight the kernels' threads; fit lends it one thread and
    # restores the caller's setting afterwards, also when fit raises.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [lib for lib in threadpoolctl.ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    if not blas:
        pytest.skip("numpy is linked to no BLAS that threadpoolctl can control")

    def threads():
        return [lib.num_threads for lib in blas]

    x, y = _series(n=32)
    m = _model(seed=0)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = threads()
        seen = []
        m.fit(x, y, epochs=2, verbose=0,
              callbacks=[lf.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(threads()))])
        assert seen == [[1] * len(blas)] * 2
        assert threads() == before
        with pytest.raises(ValueError):
            m.fit(x, np.zeros((32, 3), np.float32), verbose=0)
        assert threads() == before
        m.train_on_batch(x, y)
        assert threads() == before


def test_fit_with_a_time_axis_of_unknown_length_trains():
    # Input((None, d)): the output (None, None, units) has an axis whose size comes with the data
    m = lf.Sequential([L.Input((None, 3)), L.LSTM(4, return_sequences=True), L.Dense(2)])
    m.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(8, 5, 3)).astype(np.float32)
    history = m.fit(x, x[..., :2], epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert m.predict(x[:, :7], verbose=0).shape == (8, 5, 2)
    with pytest.raises(ValueError):
        m.fit(x, x[..., :1], epochs=1, verbose=0)  # wrong target width, found at the first batch
