"""Streaming inference (`model.stream(batch)`): T calls of `step` give the bits `predict` gives on
the T steps; state is kept between calls and `reset` clears it; whole-sequence layers are
refused; bad input to the one-step kernel is refused at the door."""

import numpy as np
import pytest

import lstmfast as lf

L = lf.layers


def test_steps_equal_predict_on_each_prefix():
    rng = np.random.default_rng(0)
    model = lf.Sequential([lf.Input((None, 4)), L.LSTM(16, return_sequences=True),
                           L.LSTM(8, recurrent_activation="hard_sigmoid"), L.Dropout(0.5), L.Dense(3)])
    x = rng.standard_normal((2, 9, 4)).astype(np.float32)
    stream = model.stream(batch=2)
    for t in range(9):
        # an LSTM without return_sequences answers as if the sequence ended at t
        np.testing.assert_array_equal(stream.step(x[:, t]), model.predict(x[:, :t + 1], verbose=0))


def test_sequence_outputs_and_float64_match_predict():
    lf.config.set_floatx("float64")
    try:
        rng = np.random.default_rng(1)
        model = lf.Sequential([lf.Input((None, 3)), L.LSTM(6, return_sequences=True, activation="relu"),
                               L.Dense(2, activation="tanh")])
        x = rng.standard_normal((3, 7, 3))
        stream = model.stream(batch=3)
        got = np.stack([stream.step(x[:, t]) for t in range(7)], axis=1)
        np.testing.assert_array_equal(got, model.predict(x, verbose=0))
    finally:
        lf.config.set_floatx("float32")


def test_token_streams_reset_and_state():
    rng = np.random.default_rng(2)
    model = lf.Sequential([lf.Input((None,), dtype="int32"), L.Embedding(50, 8), L.LSTM(5), L.Dense(1)])
    ids = rng.integers(0, 50, (1, 6)).astype(np.int32)
    stream = model.stream()
    first = [stream.step(ids[:, t]) for t in range(6)]
    assert not np.allclose(stream.states[0][0], 0)
    stream.reset()
    assert all(np.all(h == 0) and np.all(c == 0) for h, c in stream.states)
    again = [stream.step(ids[:, t]) for t in range(6)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[-1], model.predict(ids, verbose=0))


def test_a_stateful_model_streams_on_from_its_state():
    rng = np.random.default_rng(3)
    model = lf.Sequential([lf.Input((5, 2), batch_size=1), L.LSTM(4, stateful=True), L.Dense(1)])
    x = rng.standard_normal((1, 10, 2)).astype(np.float32)
    model.predict(x[:, :5], verbose=0)          # the layer's state after the first five steps
    stream = model.stream(batch=1)
    for t in range(5, 10):
        out = stream.step(x[:, t])
    model.reset_states()
    fresh = lf.Sequential([lf.Input((10, 2)), L.LSTM(4), L.Dense(1)])
    fresh.set_weights(model.get_weights())
    # the stream went on from the state predict left: as predict of x[:, 5:] from that state
    # (bit for bit), and as one predict over all ten steps within float32 rounding
    np.testing.assert_allclose(out, fresh.predict(x, verbose=0), rtol=0, atol=1e-6)
    model.predict(x[:, :5], verbose=0)
    np.testing.assert_array_equal(out, model.predict(x[:, 5:], verbose=0))


@pytest.mark.parametrize("layers, message", [
    ([L.LSTM(4, go_backwards=True)], "go_backwards"),
    ([L.Bidirectional(L.LSTM(4))], r"\(Bidirectional\) cannot run one step at a time"),
    ([L.LSTM(4, return_sequences=True), L.GlobalMaxPooling1D()], "needs the whole sequence"),
])
def test_whole_sequence_layers_are_refused(layers, message):
    model = lf.Sequential([lf.Input((None, 3))] + layers)
    with pytest.raises(ValueError, match=message):
        model.stream()


def test_bad_steps_are_refused_with_the_shape():
    model = lf.Sequential([lf.Input((None, 3)), L.LSTM(4)])
    stream = model.stream(batch=2)
    with pytest.raises(ValueError, match=r"shape \(2, features\); received shape \(3, 3\)"):
        stream.step(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="`batch` must be a positive integer"):
        model.stream(batch=0)


@pytest.mark.parametrize("batch, features, units", [(1, 32, 128), (3, 5, 12), (17, 300, 300), (1, 32, 512),
                                                   (2, 1, 50), (40, 20, 33)])
def test_sequence_outputs_equal_predict_at_every_size(batch, features, units):
    rng = np.random.default_rng(batch)
    model = lf.Sequential([lf.Input((None, features)), L.LSTM(units, return_sequences=True),
                           L.LSTM(7, return_sequences=True)])
    for w in model.weights:
        w.value[...] = rng.standard_normal(w.value.shape).astype(np.float32) * 0.2
    x = rng.standard_normal((batch, 8, features)).astype(np.float32)
    stream = model.stream(batch=batch)
    got = np.stack([stream.step(x[:, t]) for t in range(8)], axis=1)
    np.testing.assert_array_equal(got, model.predict(x, batch_size=batch, verbose=0))


def test_the_one_step_kernel_checks_its_arguments():
    from lstmfast import ops
    from lstmfast._core import core

    packed = ops.pack_lstm_weights(np.zeros((3, 8), np.float32), np.zeros((2, 8), np.float32), np.zeros(8, np.float32))
    stream = core.LSTMStream_f32(packed._impl, 1, 0, 0)
    h, c = np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="h"):
        stream.step(np.zeros((1, 3), np.float32), np.zeros((2, 2), np.float32), c, 0, False)
    with pytest.raises(ValueError, match="x"):
        stream.step(np.zeros((1, 4), np.float32), h, c, 0, False)
    with pytest.raises(ValueError, match="activation"):
        core.LSTMStream_f32(packed._impl, 1, 9, 0)
    with pytest.raises(ValueError, match="batch"):
        core.LSTMStream_f32(packed._impl, 0, 0, 0)
    with pytest.raises(TypeError):
        stream.step(np.zeros((1, 3), np.float64), h, c, 0, False)
    stream.step(np.ones((1, 3), np.float32), h, c, 0, False)  # zero weights: h stays 0
    assert np.all(h == 0)
    del packed  # the stream keeps the packed weights alive
    stream.step(np.ones((1, 3), np.float32), h, c, 1, False)
    assert np.all(h == 0)
