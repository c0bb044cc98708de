"""Learning-rate schedules and the LearningRateScheduler callback as Keras has them: each
schedule's rate at every step equals Keras's; an optimizer driven by a schedule, or a callback
that sets the rate each epoch, trains to Keras's history and weights; schedules survive the
optimizer's config and a saved model; bad arguments say why."""

import numpy as np
import pytest

from keras_reference import build_pair, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402
from lstmfast.optimizers import schedules as S  # noqa: E402

KS = keras.optimizers.schedules

SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.3, staircase=True)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=20, end_learning_rate=0.01, power=2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=15, power=0.5, cycle=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[5, 20], values=[0.1, 0.05, 0.01])),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=30, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=30, warmup_target=0.1, warmup_steps=10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=8)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=8, t_mul=1.0, m_mul=0.5, alpha=0.05)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(SCHEDULES)]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=IDS)
def test_each_schedule_gives_kerass_rate_at_every_step(name, kwargs):
    ours, theirs = getattr(S, name)(**kwargs), getattr(KS, name)(**kwargs)
    for step in range(0, 60):
        expected = float(keras.ops.convert_to_numpy(theirs(step)))
        assert ours(step) == pytest.approx(expected, rel=1e-5, abs=1e-8), f"step {step}"
    again = S.deserialize(S.serialize(ours))
    assert type(again) is type(ours) and again.get_config() == ours.get_config() == theirs.get_config()


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5, 2)).astype(np.float32)
    return x, x.sum(axis=(1, 2))[:, None] / 5


def _fit_both(make_optimizer, callbacks=lambda M: []):
    x, y = _data()
    km, lm = build_pair(keras, [keras.layers.LSTM(4), keras.layers.Dense(1)], [L.LSTM(4), L.Dense(1)], (5, 2))
    km.compile(make_optimizer(keras.optimizers, KS), "mse")
    lm.compile(make_optimizer(lf.optimizers, S), "mse")
    fit = dict(batch_size=8, epochs=3, shuffle=False, verbose=0)
    hk = km.fit(x, y, callbacks=callbacks(keras.callbacks), **fit).history
    hl = lm.fit(x, y, callbacks=callbacks(lf.callbacks), **fit).history
    assert sorted(hl) == sorted(hk)
    for key in hk:
        np.testing.assert_allclose(hl[key], hk[key], rtol=1e-4, err_msg=key)
    for a, b in zip(lm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=5e-5)
    return lm


def test_an_optimizer_driven_by_a_schedule_trains_like_keras():
    lm = _fit_both(lambda O, Sch: O.Adam(Sch.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)))
    assert lm.optimizer.learning_rate == pytest.approx(0.05 * 0.5 ** (12 / 3))  # 12 steps done
    with pytest.raises(TypeError, match="not settable"):
        lm.optimizer.learning_rate = 0.1


@pytest.mark.parametrize("form", ["epoch_and_lr", "epoch_only"])
def test_the_learning_rate_scheduler_callback_trains_like_keras(form):
    def schedule(M):
        if form == "epoch_and_lr":
            return [M.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.3)]
        return [M.LearningRateScheduler(lambda epoch: 0.05 / (1 + epoch))]

    lm = _fit_both(lambda O, Sch: O.Adam(0.02), schedule)
    assert "learning_rate" in lm.history.history


def test_a_schedule_is_saved_with_the_optimizer_and_bad_arguments_say_why(tmp_path):
    x, y = _data()
    model = lf.Sequential([lf.Input((5, 2)), L.LSTM(3), L.Dense(1)])
    model.compile(lf.optimizers.SGD(S.CosineDecay(0.1, decay_steps=10, warmup_target=0.2, warmup_steps=2)), "mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "scheduled.keras")
    again = lf.load_model(tmp_path / "scheduled.keras")
    assert isinstance(again.optimizer._learning_rate, S.CosineDecay)
    assert again.optimizer.learning_rate == pytest.approx(model.optimizer.learning_rate)
    assert lf.optimizers.get(lf.optimizers.serialize(model.optimizer)).get_config() == model.optimizer.get_config()
    with pytest.raises(ValueError, match="decay_steps"):
        S.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)
    with pytest.raises(ValueError, match="1 less than"):
        S.PiecewiseConstantDecay([1, 2], [0.1, 0.01])
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        S.deserialize({"class_name": "NoSuchDecay", "config": {}})
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[lf.callbacks.LearningRateScheduler(lambda e, lr: "fast")])
