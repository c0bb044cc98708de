"""The layer contract, checked the same way for every layer (in the manner of Keras's
`run_layer_test`): output shapes, weight count, order and shapes, parameter count, config round
trip, serialisation, and one training step that lowers the loss."""

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L

# (id, factory, input shape without batch, integer input?, expected [(weight name, shape)], expected output shape)
CASES = [
    ("lstm", lambda: L.LSTM(5), (7, 3), False,
     [("kernel", (3, 20)), ("recurrent_kernel", (5, 20)), ("bias", (20,))], (None, 5)),
    ("lstm_sequences_no_bias", lambda: L.LSTM(4, return_sequences=True, use_bias=False), (6, 2), False,
     [("kernel", (2, 16)), ("recurrent_kernel", (4, 16))], (None, 6, 4)),
    ("lstm_relu_dropout", lambda: L.LSTM(4, activation="relu", dropout=0.2, recurrent_dropout=0.2), (5, 3), False,
     [("kernel", (3, 16)), ("recurrent_kernel", (4, 16)), ("bias", (16,))], (None, 4)),
    ("dense_2d", lambda: L.Dense(4, activation="relu"), (3,), False, [("kernel", (3, 4)), ("bias", (4,))], (None, 4)),
    ("dense_3d", lambda: L.Dense(2, use_bias=False), (5, 3), False, [("kernel", (3, 2))], (None, 5, 2)),
    ("embedding", lambda: L.Embedding(11, 4, mask_zero=True), (6,), True, [("embeddings", (11, 4))], (None, 6, 4)),
    ("repeat_vector", lambda: L.RepeatVector(3), (4,), False, [], (None, 3, 4)),
    ("dropout", lambda: L.Dropout(0.3, seed=1), (4, 2), False, [], (None, 4, 2)),
    ("flatten", lambda: L.Flatten(), (4, 2), False, [], (None, 8)),
    ("activation", lambda: L.Activation("softmax"), (5,), False, [], (None, 5)),
    ("time_distributed", lambda: L.TimeDistributed(L.Dense(3, activation="tanh")), (4, 2), False,
     [("kernel", (2, 3)), ("bias", (3,))], (None, 4, 3)),
    ("bidirectional_concat", lambda: L.Bidirectional(L.LSTM(3, return_sequences=True)), (5, 2), False,
     [("kernel", (2, 12)), ("recurrent_kernel", (3, 12)), ("bias", (12,))] * 2, (None, 5, 6)),
    ("bidirectional_sum", lambda: L.Bidirectional(L.LSTM(3), merge_mode="sum"), (5, 2), False,
     [("kernel", (2, 12)), ("recurrent_kernel", (3, 12)), ("bias", (12,))] * 2, (None, 3)),
    ("layer_normalization", lambda: L.LayerNormalization(), (4, 3), False, [("gamma", (3,)), ("beta", (3,))],
     (None, 4, 3)),
]


def _input(shape, integer, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    if integer:
        return rng.integers(0, 11, (batch,) + shape)
    return rng.random((batch,) + shape).astype(np.float32)


@pytest.fixture(autouse=True)
def _seed():
    lf.utils.set_random_seed(7)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_builds_weights_in_keras_order_with_the_right_shapes(case):
    _, factory, shape, integer, weights, out_shape = case
    layer = factory()
    layer._maybe_build((None,) + shape)
    assert [(v.name, v.shape) for v in layer.weights] == weights
    assert layer.count_params() == sum(int(np.prod(s)) for _, s in weights)
    assert layer.compute_output_shape((None,) + shape) == out_shape
    assert [w.shape for w in layer.get_weights()] == [s for _, s in weights]
    assert all(w.dtype == np.float32 for w in layer.get_weights())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_output_has_the_computed_shape_in_inference_and_training(case):
    _, factory, shape, integer, _, out_shape = case
    layer = factory()
    x = _input(shape, integer)
    for training in (False, True):
        y = layer(x, training=training)
        assert y.shape == (8,) + out_shape[1:]
        assert y.dtype == np.float32
        assert np.isfinite(y).all()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_config_round_trips_and_rebuilds_the_same_layer(case):
    _, factory, shape, integer, _, _ = case
    layer = factory()
    layer._maybe_build((None,) + shape)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    again = L.deserialize(L.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == config
    again._maybe_build((None,) + shape)
    again.set_weights(layer.get_weights())
    x = _input(shape, integer)
    np.testing.assert_array_equal(again(x), layer(x))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_one_training_step_lowers_the_loss(case):
    _, factory, shape, integer, _, out_shape = case
    head = [] if len(out_shape) == 2 and case[0] != "activation" else [L.Flatten()]
    model = lf.Sequential([L.Input(shape), factory()] + head + [L.Dense(2)])
    model.compile(optimizer=lf.optimizers.SGD(learning_rate=0.05), loss="mse")
    x = _input(shape, integer, batch=16)
    y = np.random.default_rng(1).random((16, 2)).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0)
    assert after < before


def test_layers_get_unique_keras_style_names():
    a, b = L.Dense(1), L.Dense(1)
    assert a.name.startswith("dense") and b.name.startswith("dense") and a.name != b.name
    assert L.LSTM(2, name="encoder").name == "encoder"
    assert L.RepeatVector(2).name.startswith("repeat_vector")


def test_lstm_forget_gate_bias_starts_at_one_and_the_others_at_zero():
    layer = L.LSTM(4)
    layer._maybe_build((None, 3, 2))
    b = layer.bias.value
    np.testing.assert_array_equal(b[:4], 0)
    np.testing.assert_array_equal(b[4:8], 1)
    np.testing.assert_array_equal(b[8:], 0)
    layer = L.LSTM(4, unit_forget_bias=False)
    layer._maybe_build((None, 3, 2))
    np.testing.assert_array_equal(layer.bias.value, 0)


def test_lstm_recurrent_kernel_starts_orthogonal_per_keras_initializers():
    layer = L.LSTM(4)
    layer._maybe_build((None, 3, 2))
    u = layer.recurrent_kernel.value.astype(np.float64)  # (H, 4H): orthonormal rows
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)
    limit = np.sqrt(6 / (2 + 16))
    assert np.abs(layer.kernel.value).max() <= limit


def test_bidirectional_names_its_copies_forward_and_backward_and_reverses_one():
    bi = L.Bidirectional(L.LSTM(3, name="enc"))
    assert bi.forward_layer.name == "forward_enc" and bi.backward_layer.name == "backward_enc"
    assert not bi.forward_layer.go_backwards and bi.backward_layer.go_backwards


def test_layer_weights_are_float64_when_asked():
    layer = L.LSTM(3, dtype="float64")
    layer._maybe_build((None, 4, 2))
    assert all(w.dtype == np.float64 for w in layer.get_weights())
    lf.config.set_floatx("float64")
    try:
        dense = L.Dense(2)
        dense._maybe_build((None, 3))
        assert dense.kernel.dtype == np.float64
    finally:
        lf.config.set_floatx("float32")


def test_stateful_lstm_carries_state_between_calls_until_reset():
    layer = L.LSTM(3, stateful=True)
    x = _input((4, 2), False, batch=2)
    first = layer(x)
    second = layer(x)
    assert not np.allclose(first, second)
    layer.reset_states()
    np.testing.assert_allclose(layer(x), first, rtol=1e-6)
    with pytest.raises(ValueError, match="batch size"):
        layer(_input((4, 2), False, batch=3))


def test_lstm_return_state_gives_the_final_hidden_and_cell_states():
    layer = L.LSTM(3, return_sequences=True, return_state=True)
    x = _input((4, 2), False, batch=2)
    seq, h, c = layer(x)
    assert seq.shape == (2, 4, 3) and h.shape == (2, 3) and c.shape == (2, 3)
    np.testing.assert_allclose(seq[:, -1], h, rtol=1e-6)
    out2 = L.LSTM(3)
    out2._maybe_build((None, 4, 2))
    out2.set_weights(layer.get_weights())
    # starting from the returned state continues the sequence
    h2 = out2(x, initial_state=[h, c])
    assert h2.shape == (2, 3)
