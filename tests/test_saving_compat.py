"""Models saved by lstmfast 0.1.0 (tests/data, see its README) load and compute as they did."""

from pathlib import Path

import numpy as np
import pytest

import lstmfast as lf

DATA = Path(__file__).parent / "data"
EXPECTED = np.load(DATA / "v0.1-expected.npz")
# The same kernel set on the same number of threads computes within float32 rounding of what
# 0.1 computed; another kernel set (another CPU) sums in another order.
SAME_KERNELS = str(EXPECTED["isa"]) == lf.cpu_isa() and int(EXPECTED["threads"]) == lf.get_num_threads()


def _same(actual, expected):
    if SAME_KERNELS:
        np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-7)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,key", [("seq2seq", "1"), ("timeseries", "2"), ("translation", "3")])
def test_a_model_saved_by_version_0_1_predicts_and_trains_on_as_it_did(name, key):
    model = lf.load_model(DATA / f"v0.1-{name}.lstmfast")
    x, y = EXPECTED["x" + key], EXPECTED["y" + key]
    # (softmax outputs now come from the kernels' softmax at every size, the function the C++
    # runtime computes too, where 0.1 used numpy's below 4096 values; and the LSTM cell's σ and
    # tanh now multiply by a Newton-refined reciprocal where 0.1 divided: within float32 rounding)
    _same(model.predict(x, verbose=0), EXPECTED["p" + key])
    # the optimizer state came back too: one more step lands on the same weights (the seq2seq
    # model draws dropout masks, which depend on the random state of the process: not compared)
    loss = model.train_on_batch(x, y)
    assert np.all(np.isfinite(loss))
    # (the translation model's softmax + crossentropy gradient is now taken in one step, q − onehot,
    # which rounds differently from 0.1's chain through the softmax: close, not the same bits)
    if name != "seq2seq":
        _same(np.concatenate([w.ravel() for w in model.get_weights()]), EXPECTED["after" + key])


def test_a_model_saved_by_version_0_1_holds_its_architecture_and_compile_settings():
    model = lf.load_model(DATA / "v0.1-translation.lstmfast")
    assert [type(l).__name__ for l in model.layers] == ["LSTM", "RepeatVector", "LSTM", "TimeDistributed"]
    assert model.metrics_names[0] == "loss" and type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.iterations == 4  # 2 epochs of 2 batches
