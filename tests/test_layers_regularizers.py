"""Regularizers (L1, L2, L1L2; weights and activity) and constraints (MaxNorm, NonNeg, UnitNorm,
MinMaxNorm) on Embedding, LSTM, Dense and Conv1D: the loss, its history and the weights after
training as in Keras (torch backend, same weights); configs, names and saving."""

import numpy as np
import pytest

from keras_reference import import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402


def _lstm_stack(M, R, C):
    return [
        M.Embedding(20, 4, embeddings_regularizer=R.L2(0.01), embeddings_constraint=C.MaxNorm(0.3, axis=1)),
        M.LSTM(5, kernel_regularizer="l2", recurrent_regularizer=R.L1(0.001), bias_regularizer=R.L1L2(0.01, 0.02),
               activity_regularizer=R.L2(0.05), kernel_constraint=C.MaxNorm(1.5), recurrent_constraint=C.UnitNorm(),
               bias_constraint=C.NonNeg()),
        M.Dense(3, activation="softmax", kernel_regularizer=R.L1L2(l1=0.01, l2=0.01), activity_regularizer="l1",
                kernel_constraint=C.MinMaxNorm(0.5, 1.0, rate=0.5), bias_constraint="non_neg"),
    ]


def _conv_stack(M, R, C):
    return [
        M.Conv1D(4, 3, kernel_regularizer="l1", bias_regularizer=R.L2(0.1), activity_regularizer=R.L1(0.01),
                 kernel_constraint=C.UnitNorm(axis=[0, 1]), bias_constraint=C.MaxNorm(0.1)),
        M.LSTM(3),
        M.Dense(1, kernel_regularizer=R.L2(0.2)),
    ]


def _pair(stack, shape, int_input):
    lf.utils.set_random_seed(0)
    lm = lf.Sequential([L.Input(shape)] + stack(L, lf.regularizers, lf.constraints))
    km = keras.Sequential([keras.Input(shape, dtype="int32" if int_input else None)]
                          + stack(keras.layers, keras.regularizers, keras.constraints))
    km.set_weights(lm.get_weights())
    return lm, km


@pytest.mark.parametrize("case", ["lstm", "conv"])
def test_regularized_and_constrained_models_train_like_keras(case):
    rng = np.random.default_rng(1)
    if case == "lstm":
        lm, km = _pair(_lstm_stack, (6,), True)
        x = rng.integers(1, 20, (32, 6))
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
        loss = "categorical_crossentropy"
    else:
        lm, km = _pair(_conv_stack, (9, 2), False)
        x = rng.standard_normal((32, 9, 2)).astype(np.float32)
        y = rng.standard_normal((32, 1)).astype(np.float32)
        loss = "mse"
    for m in (lm, km):
        m.compile(optimizer=keras.optimizers.Adam(0.01) if m is km else lf.optimizers.Adam(0.01), loss=loss)
    # the penalties are in the loss, before any training
    np.testing.assert_allclose(lm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0), rtol=1e-5)
    fit = dict(batch_size=8, epochs=2, shuffle=False, verbose=0)
    hl, hk = lm.fit(x, y, **fit).history, km.fit(x, y, **fit).history
    np.testing.assert_allclose(hl["loss"], hk["loss"], rtol=1e-4)
    for a, b in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=5e-5)
    np.testing.assert_allclose(lm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0), rtol=1e-4)


def test_constraints_hold_after_every_step():
    lf.utils.set_random_seed(2)
    m = lf.Sequential([L.Input((4,)), L.Dense(3, kernel_constraint="non_neg", bias_constraint=lf.constraints.MaxNorm(0.05)),
                       L.Dense(1, kernel_constraint="unit_norm")])
    m.compile("sgd", "mse")
    x, y = np.random.default_rng(3).standard_normal((64, 4)), np.random.default_rng(4).standard_normal((64, 1))
    m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    k0, b0, k1, _ = m.get_weights()
    assert k0.min() >= 0 and np.linalg.norm(b0) <= 0.05 + 1e-6
    np.testing.assert_allclose(np.linalg.norm(k1, axis=0), 1, rtol=1e-5)


def test_regularizers_and_constraints_by_name_class_and_config():
    R, C = lf.regularizers, lf.constraints
    assert type(R.get("l1")) is R.L1 and R.get("l1").l1 == 0.01
    assert type(R.get("L2")) is R.L2 and type(R.get(R.L1L2)) is R.L1L2
    assert R.get({"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}}).get_config() == {"l1": 0.1, "l2": 0.2}
    assert type(C.get("max_norm")) is C.MaxNorm and type(C.get("NonNeg")) is C.NonNeg
    w = np.array([[3.0, 0.0], [4.0, -1.0]], np.float32)
    np.testing.assert_allclose(C.MaxNorm(1)(w), [[0.6, 0.0], [0.8, -1.0]], rtol=1e-6)
    np.testing.assert_allclose(R.L2(0.5)(w), 0.5 * 26)
    np.testing.assert_allclose(R.L1(0.5).gradient(w), 0.5 * np.sign(w))
    dense = L.Dense(2, kernel_regularizer=R.L1L2(0.1, 0.2), kernel_constraint=C.MinMaxNorm(0.1, 2.0))
    again = L.Dense.from_config(dense.get_config())
    assert again.get_config() == dense.get_config()
    with pytest.raises(ValueError, match="non-negative"):
        R.L2(-1)


def test_a_saved_regularized_model_loads_with_its_regularizers(tmp_path):
    lf.utils.set_random_seed(5)
    m = lf.Sequential([L.Input((6,))] + _lstm_stack(L, lf.regularizers, lf.constraints))
    m.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(6).integers(1, 20, (8, 6))
    y = np.eye(3, dtype=np.float32)[np.random.default_rng(7).integers(0, 3, 8)]
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.lstmfast")
    r = lf.load_model(tmp_path / "m.lstmfast")
    assert r.get_config() == m.get_config()
    assert r.evaluate(x, y, verbose=0) == pytest.approx(m.evaluate(x, y, verbose=0), rel=1e-6)
