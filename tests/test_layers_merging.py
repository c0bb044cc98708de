"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) in the
functional API: predictions and two epochs of fit as in Keras (torch backend, same weights),
masks as Keras propagates them, float64 gradients through graphs that merge, bad calls."""

import numpy as np
import pytest

from gradcheck import assert_model_gradients
from keras_reference import assert_trains_like_keras, import_keras

keras = import_keras()

import lstmfast as lf  # noqa: E402
from lstmfast import layers as L  # noqa: E402

K = keras.layers

MERGES = {
    "add": lambda M: M.Add(),
    "subtract": lambda M: M.Subtract(),
    "multiply": lambda M: M.Multiply(),
    "average": lambda M: M.Average(),
    "maximum": lambda M: M.Maximum(),
    "minimum": lambda M: M.Minimum(),
    "concatenate": lambda M: M.Concatenate(),
    "concatenate_time": lambda M: M.Concatenate(axis=1),
    "dot": lambda M: M.Dot(axes=2),
    "dot_normalize": lambda M: M.Dot(axes=(2, 2), normalize=True),
    "dot_over_time": lambda M: M.Dot(axes=(1, 1)),
}
TWO_ONLY = ("subtract", "dot", "dot_normalize", "dot_over_time")


def _graph(M, Input, merge, n_inputs):
    """Sequences (T=5, D=3) -> LSTM(4, return_sequences) each -> merge -> Flatten -> Dense(2)."""
    inputs = [Input(shape=(5, 3)) for _ in range(n_inputs)]
    branches = [M.LSTM(4, return_sequences=True)(x) for x in inputs]
    merged = MERGES[merge](M)(branches)
    return inputs, M.Dense(2)(M.Flatten()(merged))


def _pair(merge, n_inputs):
    lf.utils.set_random_seed(0)
    lin, lout = _graph(L, lf.Input, merge, n_inputs)
    kin, kout = _graph(K, keras.Input, merge, n_inputs)
    lm, km = lf.Model(lin, lout), keras.Model(kin, kout)
    assert [tuple(w.shape) for w in km.weights] == [w.shape for w in lm.weights]
    km.set_weights(lm.get_weights())
    return lm, km


def _data(n_inputs, n=24, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 5, 3)).astype(np.float32) for _ in range(n_inputs)], \
        rng.standard_normal((n, 2)).astype(np.float32)


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_a_merge_predicts_and_trains_like_keras(merge):
    n_inputs = 2 if merge in TWO_ONLY else 3
    lm, km = _pair(merge, n_inputs)
    xs, y = _data(n_inputs)
    assert lm.output_shape == tuple(km.output_shape)
    assert_trains_like_keras(lm, km, xs, y)


def _masked_graph(M, Input, merge):
    """Token ids -> Embedding(mask_zero) -> LSTM(return_sequences) twice -> merge -> LSTM(3)."""
    a, b = Input(shape=(6,)), Input(shape=(6,))
    xa = M.LSTM(4, return_sequences=True)(M.Embedding(9, 3, mask_zero=True)(a))
    xb = M.LSTM(4, return_sequences=True)(M.Embedding(9, 3, mask_zero=True)(b))
    return [a, b], M.Dense(1)(M.LSTM(3)(MERGES[merge](M)([xa, xb])))


@pytest.mark.parametrize("merge", ["add", "multiply", "maximum", "minimum", "concatenate", "average"])
def test_masks_pass_through_a_merge_as_in_keras(merge):
    lf.utils.set_random_seed(1)
    lin, lout = _masked_graph(L, lf.Input, merge)
    kin, kout = _masked_graph(K, keras.Input, merge)
    lm, km = lf.Model(lin, lout), keras.Model(kin, kout)
    km.set_weights(lm.get_weights())
    rng = np.random.default_rng(2)
    a, b = rng.integers(1, 9, (16, 6)), rng.integers(1, 9, (16, 6))
    a[:5, -2:] = 0   # a padded at the end, b at other rows: the masks differ
    b[3:9, -3:] = 0
    np.testing.assert_allclose(lm.predict([a, b], verbose=0), km.predict([a, b], verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_gradients_through_a_merge_match_finite_differences_float64(merge):
    lf.config.set_floatx("float64")
    try:
        n_inputs = 2 if merge in TWO_ONLY else 3
        lf.utils.set_random_seed(3)
        inputs, out = _graph(L, lf.Input, merge, n_inputs)
        model = lf.Model(inputs, out)
        model.compile("adam", "mse")
        xs, y = _data(n_inputs, n=4, seed=4)
        x = model.prepare_inputs([a.astype(np.float64) for a in xs])
        assert_model_gradients(model, x, y.astype(np.float64), what=merge)
    finally:
        lf.config.set_floatx("float32")


def test_merge_layers_called_on_arrays_compute_what_keras_computes():
    rng = np.random.default_rng(5)
    x1, x2 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    x3 = rng.standard_normal((3, 1)).astype(np.float32)  # broadcast against (3, 4)
    for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        ours = getattr(L, name)()([x1, x3])
        theirs = keras.ops.convert_to_numpy(getattr(K, name)()([x1, x3]))
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(L.Dot(axes=1)([x1, x2]), keras.ops.convert_to_numpy(K.Dot(axes=1)([x1, x2])), rtol=1e-5)
    np.testing.assert_array_equal(L.concatenate([x1, x2]), np.concatenate([x1, x2], axis=-1))
    np.testing.assert_array_equal(L.add([x1, x2]), x1 + x2)


def test_merge_configs_round_trip():
    for layer in (L.Concatenate(axis=1), L.Dot(axes=(1, 2), normalize=True), L.Add(name="plus")):
        again = L.deserialize(L.serialize(layer))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_bad_merges_say_what_was_expected():
    a, b, c = lf.Input(shape=(4,)), lf.Input(shape=(5,)), lf.Input(shape=(4,))
    with pytest.raises(ValueError, match="incompatible shapes"):
        L.Add()([a, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        L.Subtract()([a, c, c])
    with pytest.raises(ValueError, match="list of inputs"):
        L.Add()(a)
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        L.Concatenate(axis=1)([lf.Input(shape=(3, 2)), lf.Input(shape=(3, 4))])
    with pytest.raises(ValueError, match=r"axis values 4 \(at axis 1\) != 5"):
        L.Dot(axes=1)([a, b])
    with pytest.raises(ValueError, match="list of inputs"):
        lf.Sequential([L.Input((4,)), L.Add()]).build()


@pytest.mark.parametrize("merge", ["add", "multiply", "maximum", "average"])
def test_inputs_of_different_ranks_broadcast_and_train_like_keras(merge):
    def graph(M, Input):
        a, b = Input(shape=(4,)), Input(shape=(3, 4))
        merged = MERGES[merge](M)([M.Dense(4)(a), M.LSTM(4, return_sequences=True)(b)])
        return [a, b], M.Dense(1)(M.Flatten()(merged))

    lf.utils.set_random_seed(7)
    lin, lout = graph(L, lf.Input)
    kin, kout = graph(K, keras.Input)
    lm, km = lf.Model(lin, lout), keras.Model(kin, kout)
    km.set_weights(lm.get_weights())
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((16, 4)).astype(np.float32), rng.standard_normal((16, 3, 4)).astype(np.float32)]
    y = rng.standard_normal((16, 1)).astype(np.float32)
    assert_trains_like_keras(lm, km, xs, y, weights=False)
