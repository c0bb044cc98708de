"""One layer called at several nodes of a graph (a shared Embedding, a siamese LSTM, a Dense
applied twice): predictions and two epochs of fit as in Keras (torch backend, same weights),
gradients summed over the calls (float64 finite differences), the layer listed once."""

import numpy as np
import pytest

from gradcheck import assert_model_gradients
from keras_reference import assert_trains_like_keras, functional_pair, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers


def _siamese(M, Input):
    """Two token sequences through one masked Embedding and one LSTM, compared by |a − b| and a ⊙ b."""
    a, b = Input(shape=(6,)), Input(shape=(6,))
    emb = M.Embedding(12, 4, mask_zero=True)
    lstm = M.LSTM(5, return_sequences=True)
    pool = M.LSTM(3)
    ea, eb = pool(lstm(emb(a))), pool(lstm(emb(b)))
    merged = M.Concatenate()([M.Subtract()([ea, eb]), M.Multiply()([ea, eb])])
    dense = M.Dense(4, activation="tanh")
    return [a, b], M.Dense(1, activation="sigmoid")(dense(merged))


def _twice(M, Input):
    """A Dense applied to its own output, and a shared LSTM over two different lengths."""
    a, b = Input(shape=(5, 3)), Input(shape=(7, 3))
    lstm, dense = M.LSTM(3), M.Dense(3, activation="tanh")
    return [a, b], M.Dense(1)(M.Add()([dense(dense(lstm(a))), lstm(b)]))


@pytest.mark.parametrize("graph", [_siamese, _twice], ids=["siamese", "twice"])
def test_a_shared_layer_predicts_and_trains_like_keras(graph):
    lm, km = functional_pair(keras, graph)
    rng = np.random.default_rng(1)
    if graph is _siamese:
        xs = [rng.integers(1, 12, (24, 6)), rng.integers(1, 12, (24, 6))]
        xs[0][:6, -2:] = 0
        xs[1][4:12, -3:] = 0
        y = rng.integers(0, 2, (24, 1)).astype(np.float32)
        loss = "binary_crossentropy"
    else:
        xs = [rng.standard_normal((24, 5, 3)).astype(np.float32), rng.standard_normal((24, 7, 3)).astype(np.float32)]
        y = rng.standard_normal((24, 1)).astype(np.float32)
        loss = "mse"
    assert_trains_like_keras(lm, km, xs, y, loss=loss)


@pytest.mark.parametrize("graph", [_siamese, _twice], ids=["siamese", "twice"])
def test_gradients_of_a_shared_layer_sum_over_its_calls_float64(graph):
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(2)
        lin, lout = graph(L, lf.Input)
        model = lf.Model(lin, lout)
        model.compile("adam", "mse")
        rng = np.random.default_rng(3)
        if graph is _siamese:
            xs = [rng.integers(1, 12, (4, 6)), rng.integers(1, 12, (4, 6))]
            xs[0][:2, -2:] = 0
        else:
            xs = [rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 7, 3))]
        x = model.prepare_inputs(xs)
        y = rng.standard_normal((4, 1))
        # two passes in a row: the second backward must keep nothing of the first
        assert_model_gradients(model, x, y, rng, samples=8, backward_passes=2)
        assert len(model.layers) == len({id(layer) for layer in model.layers})
    finally:
        lf.config.set_floatx("float32")


def test_a_layer_shared_between_data_and_a_weighted_branch_passes_gradients_back_through_the_second():
    # The shared Dense owes no input gradient at its call on data, and one at its call on the
    # output of another Dense: each call must get its own answer.
    lf.config.set_floatx("float64")
    try:
        lf.utils.set_random_seed(4)
        a, b = lf.Input(shape=(3,)), lf.Input(shape=(5,))
        shared = L.Dense(3, activation="tanh")
        out = L.Dense(1)(L.Add()([shared(a), shared(L.Dense(3)(b))]))
        model = lf.Model([a, b], out)
        model.compile("adam", "mse")
        rng = np.random.default_rng(5)
        x = model.prepare_inputs([rng.standard_normal((6, 3)), rng.standard_normal((6, 5))])
        assert_model_gradients(model, x, rng.standard_normal((6, 1)), rng, samples=None, backward_passes=2)
    finally:
        lf.config.set_floatx("float32")
