"""Numeric gradient checks in float64 through whole models: the analytic gradient that `fit`
uses (layer backward passes chained through the C++ LSTM kernel, the losses' gradients, masks)
against central differences of the loss, for every weight of every layer.

Each check samples up to 12 entries per weight, perturbs them by ±1e-6 and compares
(L(w+ε) − L(w−ε)) / 2ε with the analytic value: |numeric − analytic| ≤ 1e-6 + 1e-5·|analytic|.
Sequences are long enough (T ≥ 6) that backpropagation runs through many c_{t−1} steps. Dropout
masks are redrawn from the same seed for every evaluation, so the function is deterministic.
"""

import numpy as np
import pytest

import lstmfast as lf
from lstmfast import layers as L
from lstmfast import losses

EPS = 1e-6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Hundreds of tiny kernel calls: one thread avoids waiting at per-step barriers when the
    # machine is busy. Gradients do not depend on the thread count (tests/test_ops_* check that).
    before = lf.get_num_threads()
    lf.set_num_threads(1)
    yield
    lf.set_num_threads(before)


@pytest.fixture(autouse=True)
def _float64():
    lf.config.set_floatx("float64")
    lf.utils.set_random_seed(3)
    yield
    lf.config.set_floatx("float32")


def _generators(model):
    out = []
    for layer in model.layers:
        for sub in [layer] + layer.sublayers():
            if hasattr(sub, "_gen"):
                out.append(sub._gen)
    return out


def _loss(model, x, y, sw=None):
    for i, g in enumerate(_generators(model)):
        g.rng = np.random.default_rng(100 + i)
    y_pred, mask = model.forward(x, True)
    value, grad = model.loss._loss_and_grad(y, y_pred, sw, mask)
    return value, grad


def check_model_gradients(model, x, y, sw=None, samples=12):
    model.flat_parameters()
    _, dy = _loss(model, x, y, sw)
    model.backward(dy)
    analytic = model.flat_parameters().grads.copy()
    flat = model.flat_parameters().values
    rng = np.random.default_rng(0)
    checked = 0
    for v, (a, b) in zip(model.trainable_weights, model.flat_parameters().segments):
        idx = rng.choice(np.arange(a, b), size=min(samples, b - a), replace=False)
        for i in idx:
            old = flat[i]
            flat[i] = old + EPS
            up = _loss(model, x, y, sw)[0]
            flat[i] = old - EPS
            down = _loss(model, x, y, sw)[0]
            flat[i] = old
            numeric = (up - down) / (2 * EPS)
            assert abs(numeric - analytic[i]) <= 1e-6 + 1e-5 * abs(analytic[i]), (
                f"{v.path}[{np.unravel_index(i - a, v.shape)}]: numeric {numeric:.10g} vs analytic {analytic[i]:.10g}"
            )
            checked += 1
    assert checked > 0
    return analytic


def _ids(b, t, vocab, seed=0):
    ids = np.random.default_rng(seed).integers(1, vocab, (b, t))
    ids[: b // 3, :3] = 0          # pre-padding
    ids[b // 3: 2 * b // 3, -2:] = 0  # post-padding
    return ids


def test_embedding_with_mask_through_lstm_sequences_and_time_distributed_softmax():
    model = lf.Sequential([L.Input((8,)), L.Embedding(12, 4, mask_zero=True), L.LSTM(5, return_sequences=True),
                           L.TimeDistributed(L.Dense(3, activation="softmax"))])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = _ids(6, 8, 12)
    y = np.random.default_rng(1).integers(0, 3, (6, 8))
    grads = check_model_gradients(model, x, y)
    # the padding row of the embedding gets no gradient: masked steps do not read their input
    emb = model.layers[0].embeddings
    a, b = model.flat_parameters().segments[0]
    np.testing.assert_array_equal(grads[a:b].reshape(emb.shape)[0], 0)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_masked_bidirectional_stack(merge_mode):
    model = lf.Sequential([L.Input((7,)), L.Embedding(10, 3, mask_zero=True),
                           L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=merge_mode),
                           L.Bidirectional(L.LSTM(3), merge_mode=merge_mode), L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    x = _ids(6, 7, 10, seed=2)
    y = np.random.default_rng(3).integers(0, 2, (6, 1)).astype(float)
    check_model_gradients(model, x, y)


def test_layers_fed_with_data_skip_their_input_gradient_and_train_the_same():
    # Only a layer with weights somewhere before it owes its input a gradient.
    model = lf.Sequential([L.Input((6, 3)), L.Dropout(0.2), L.Bidirectional(L.LSTM(4, return_sequences=True)),
                           L.LSTM(3, return_sequences=True), L.TimeDistributed(L.Dense(2))])
    model.compile("adam", "mse")
    assert [layer.needs_input_gradient for layer in model.layers] == [False, False, True, True]
    x = np.random.default_rng(8).normal(size=(5, 6, 3))
    y = np.random.default_rng(9).normal(size=(5, 6, 2))
    check_model_gradients(model, x, y)
    # The same model computing every input gradient gives the same weight gradients.
    lean = model.flat_parameters().grads.copy()
    for layer in model.layers:
        layer.needs_input_gradient = True
    model.flat_parameters().grads[...] = 0
    model.backward(_loss(model, x, y)[1])
    np.testing.assert_array_equal(model.flat_parameters().grads, lean)
    embedded = lf.Sequential([L.Input((5,)), L.Embedding(9, 3), L.LSTM(2)])
    embedded.build()
    assert [layer.needs_input_gradient for layer in embedded.layers] == [False, True]


def test_dense_then_lstm_variants_then_repeat_vector_encoder_decoder():
    model = lf.Sequential([L.Input((6, 3)), L.Dense(4, activation="tanh"),
                           L.LSTM(5, activation="relu", recurrent_activation="hard_sigmoid", go_backwards=True),
                           L.RepeatVector(4), L.LSTM(4, return_sequences=True, activation="sigmoid"),
                           L.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(4).normal(size=(5, 6, 3))
    y = lf.utils.to_categorical(np.random.default_rng(5).integers(0, 3, (5, 4)), 3)
    check_model_gradients(model, x, y)


def test_lstm_dropout_and_recurrent_dropout_masks_and_dropout_layer():
    model = lf.Sequential([L.Input((6, 3)), L.LSTM(5, return_sequences=True, dropout=0.3, recurrent_dropout=0.4),
                           L.Dropout(0.25), L.Flatten(), L.Activation("tanh"), L.Dense(2, use_bias=False)])
    model.compile("adam", "mse")
    x = np.random.default_rng(6).normal(size=(5, 6, 3))
    y = np.random.default_rng(7).normal(size=(5, 2))
    check_model_gradients(model, x, y, sw=np.array([1.0, 0.5, 2.0, 0.0, 1.5]))


def test_stateful_lstm_and_lstm_without_bias():
    model = lf.Sequential([L.Input((6, 2), batch_size=4), L.LSTM(3, stateful=True, return_sequences=True),
                           L.LSTM(3, use_bias=False, unit_forget_bias=False), L.Dense(1)])
    model.compile("adam", "mae")
    x = np.random.default_rng(8).normal(size=(4, 6, 2))
    model.predict(x, batch_size=4, verbose=0)  # move the carried state away from zero

    states = [s.copy() for s in model.layers[0].states]
    y = np.random.default_rng(9).normal(size=(4, 1))
    orig = model.layers[0].forward

    def forward(x, mask=None, training=False, initial_state=None):
        model.layers[0].states = [s.copy() for s in states]
        return orig(x, mask, training, initial_state)

    model.layers[0].forward = forward
    check_model_gradients(model, x, y)


LOSS_CASES = [
    ("mse", losses.MeanSquaredError(), "linear", "real"),
    ("mae", losses.MeanAbsoluteError(), "linear", "real"),
    ("bce", losses.BinaryCrossentropy(), "sigmoid", "binary"),
    ("bce_logits", losses.BinaryCrossentropy(from_logits=True), "linear", "binary"),
    ("bce_smoothing", losses.BinaryCrossentropy(label_smoothing=0.2), "sigmoid", "binary"),
    ("cce", losses.CategoricalCrossentropy(), "softmax", "onehot"),
    ("cce_logits", losses.CategoricalCrossentropy(from_logits=True), "linear", "onehot"),
    ("cce_smoothing", losses.CategoricalCrossentropy(label_smoothing=0.1), "softmax", "onehot"),
    ("scce", losses.SparseCategoricalCrossentropy(), "softmax", "sparse"),
    ("scce_logits", losses.SparseCategoricalCrossentropy(from_logits=True), "linear", "sparse"),
    ("mse_sum", losses.MeanSquaredError(reduction="sum"), "linear", "real"),
    ("bce_mean_with_sample_weight", losses.BinaryCrossentropy(reduction="mean_with_sample_weight"), "sigmoid", "binary"),
]


@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_each_loss_gradient_through_a_sequence_model(case, masked):
    _, loss, act, kind = case
    k = 3
    model = lf.Sequential([L.Input((6,)), L.Embedding(9, 3, mask_zero=masked),
                           L.LSTM(4, return_sequences=True), L.Dense(k, activation=act)])
    model.compile("adam", loss)
    rng = np.random.default_rng(11)
    x = _ids(5, 6, 9, seed=12)
    if kind == "real":
        y = rng.normal(size=(5, 6, k))
    elif kind == "binary":
        y = rng.integers(0, 2, (5, 6, k)).astype(float)
    elif kind == "onehot":
        y = lf.utils.to_categorical(rng.integers(0, k, (5, 6)), k).astype(float)
    else:
        y = rng.integers(0, k, (5, 6))
    sw = np.array([1.0, 2.0, 0.5, 1.0, 3.0]) if "sample_weight" in case[0] else None
    check_model_gradients(model, x, y, sw=sw, samples=6)


def test_loss_gradients_match_finite_differences_of_the_loss_alone():
    rng = np.random.default_rng(13)
    for loss, y_pred, y_true in [
        (losses.CategoricalCrossentropy(), rng.dirichlet(np.ones(4), size=5), lf.utils.to_categorical(rng.integers(0, 4, 5), 4)),
        (losses.SparseCategoricalCrossentropy(), rng.dirichlet(np.ones(4), size=5) * 1.3, rng.integers(0, 4, 5)),
        (losses.BinaryCrossentropy(), rng.uniform(0.05, 0.95, (5, 2)), rng.integers(0, 2, (5, 2)).astype(float)),
        (losses.MeanSquaredError(), rng.normal(size=(5, 1)), rng.normal(size=5)),
    ]:
        _, grad = loss._loss_and_grad(y_true, y_pred)
        for i in np.ndindex(y_pred.shape):
            p = y_pred.copy()
            p[i] += EPS
            up = loss(y_true, p)
            p[i] -= 2 * EPS
            down = loss(y_true, p)
            assert abs((up - down) / (2 * EPS) - grad[i]) <= 1e-6 + 1e-5 * abs(grad[i])


def test_embedding_gradient_sums_the_rows_of_repeated_ids_like_add_at():
    from lstmfast import ops

    rng = np.random.default_rng(14)
    # uniform ids (short runs) and Zipf-like ids (a few very long runs, as in real text)
    for ids in (rng.integers(0, 50, 3000), np.minimum(rng.zipf(1.3, 5000), 999), np.array([3]), np.full(20, 2)):
        rows = rng.normal(size=(ids.size, 4))
        V = int(ids.max()) + 1
        grad = np.full((V, 4), 7.0)  # stale values: cleared rows must not keep them
        ops.embedding_backward(ids, rows, grad, clear_ids=np.arange(V))
        expected = np.zeros((V, 4))
        np.add.at(expected, ids, rows)
        np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)
        # only the rows named in clear_ids are cleared
        grad2 = np.full((V, 4), 7.0)
        ops.embedding_backward(ids[:1], rows[:1], grad2, clear_ids=ids[:1])
        assert np.all(np.delete(grad2, ids[0], axis=0) == 7.0)
        np.testing.assert_array_equal(grad2[ids[0]], rows[0])


def _padded(b, t, d, seed=0):
    x = np.random.default_rng(seed).normal(size=(b, t, d))
    x[: b // 3, :2] = 0          # pre-padding
    x[b // 3: 2 * b // 3, -3:] = 0  # post-padding
    return x


def test_masking_lstm_sequences_masked_average_pooling():
    model = lf.Sequential([L.Input((8, 3)), L.Masking(), L.LSTM(4, return_sequences=True),
                           L.GlobalAveragePooling1D(), L.Dense(2)])
    model.compile("adam", "mse")
    check_model_gradients(model, _padded(6, 8, 3), np.random.default_rng(1).normal(size=(6, 2)))


def test_spatial_dropout_lstm_max_pooling_and_keepdims_average_pooling():
    model = lf.Sequential([L.Input((7, 3)), L.Dense(4), L.SpatialDropout1D(0.4), L.LSTM(5, return_sequences=True),
                           L.GlobalMaxPooling1D(keepdims=True), L.Flatten(), L.Dense(2)])
    model.compile("adam", "mse")
    x = np.random.default_rng(2).normal(size=(5, 7, 3))
    check_model_gradients(model, x, np.random.default_rng(3).normal(size=(5, 2)))
    model = lf.Sequential([L.Input((7, 3)), L.Dense(4), L.GlobalAveragePooling1D(data_format="channels_first"),
                           L.Dense(1)])
    model.compile("adam", "mse")
    check_model_gradients(model, x, np.random.default_rng(4).normal(size=(5, 1)))


# (layer, whether it gets a mask): GlobalMaxPooling1D takes none, as in Keras.
INPUT_GRADIENT_CASES = [
    ("masking", lambda: L.Masking(), False),
    ("average", lambda: L.GlobalAveragePooling1D(), False),
    ("average_masked", lambda: L.GlobalAveragePooling1D(), True),
    ("average_first_keepdims", lambda: L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True), False),
    ("average_first_keepdims_masked", lambda: L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True), True),
    ("max", lambda: L.GlobalMaxPooling1D(), False),
    ("max_first", lambda: L.GlobalMaxPooling1D(data_format="channels_first"), False),
]


@pytest.mark.parametrize("case", INPUT_GRADIENT_CASES, ids=[c[0] for c in INPUT_GRADIENT_CASES])
def test_input_gradients_of_masking_and_pooling_match_finite_differences(case):
    _, make, masked = case
    layer = make()
    if isinstance(layer, L.GlobalMaxPooling1D):
        # no padding: equal maxima (a max over padded zeros) are where max is not differentiable
        x = np.random.default_rng(5).normal(size=(4, 6, 3))
    else:
        x = _padded(4, 6, 3, seed=5)
    channels_first = getattr(layer, "data_format", "") == "channels_first"
    mask = np.any(x != 0, axis=1 if channels_first else -1) if masked else None  # (batch, steps)
    layer._maybe_build(x.shape)
    w = np.random.default_rng(6).normal(size=layer.forward(x, mask, True).shape)

    def f(v):
        return float(np.sum(w * layer.forward(v, mask, True)))

    f(x)
    dx = layer.backward(w)
    assert dx.shape == x.shape
    rng = np.random.default_rng(7)
    for i in rng.choice(x.size, size=20, replace=False):
        idx = np.unravel_index(i, x.shape)
        if x[idx] == 0 and isinstance(layer, L.Masking):
            continue  # moving a padded value off 0 unmasks its step: not differentiable there
        v = x.copy()
        v[idx] += EPS
        up = f(v)
        v[idx] -= 2 * EPS
        down = f(v)
        f(x)
        assert abs((up - down) / (2 * EPS) - dx[idx]) <= 1e-6 + 1e-5 * abs(dx[idx]), idx


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3), dict(kernel_size=3, padding="same", strides=2, activation="tanh"),
    dict(kernel_size=2, padding="causal", dilation_rate=3, data_format="channels_first"),
], ids=["valid", "same_strided_tanh", "causal_dilated_channels_first"])
def test_dense_conv1d_max_pooling_lstm(conv):
    model = lf.Sequential([L.Input((9, 3)), L.Dense(4), L.Conv1D(5, **conv),
                           L.MaxPooling1D(2, padding="same", data_format=conv.get("data_format")),
                           L.LSTM(3), L.Dense(2)])
    model.compile("adam", "mse")
    x = np.random.default_rng(10).normal(size=(4, 9, 3))
    check_model_gradients(model, x, np.random.default_rng(11).normal(size=(4, 2)))


def test_dense_reshape_permute_lstm():
    model = lf.Sequential([L.Input((12,)), L.Dense(12, activation="tanh"), L.Reshape((-1, 4)), L.Permute((2, 1)),
                           L.LSTM(3), L.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(12).normal(size=(4, 12))
    check_model_gradients(model, x, np.random.default_rng(13).normal(size=(4, 1)))


# --- a softmax output and a crossentropy loss: the gradient past the softmax in one step -----------

def _output_gradients(model, x, y, sw, fused):
    """The weight gradients of one backward pass, the loss's ∂L/∂z handed to the softmax layer
    (fused) or ∂L/∂ŷ taken through the softmax Jacobian."""
    from lstmfast.trainers.steps import loss_and_output_gradient

    params = model.flat_parameters()  # the buffer that backward writes the gradients into
    y_pred, mask = model.forward(x, True)
    if fused:
        loss, dy, layer = loss_and_output_gradient(model, y, y_pred, sw, mask)
        assert layer is not None
        layer._gradient_is_for_logits = True
    else:
        loss, dy = model.loss._loss_and_grad(y, y_pred, sw, mask)
    model.backward(dy)
    return loss, params.grads.copy()


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  losses.CategoricalCrossentropy(label_smoothing=0.2)],
                         ids=["sparse", "categorical", "smoothed"])
@pytest.mark.parametrize("wrap", [False, True], ids=["dense", "time_distributed"])
def test_a_crossentropy_past_a_softmax_output_gives_the_chained_gradient(loss, wrap):
    rng = np.random.default_rng(5)
    dense = L.Dense(7, activation="softmax")
    model = lf.Sequential([lf.Input((6,), dtype="int32"), L.Embedding(9, 4, mask_zero=True),
                           L.LSTM(5, return_sequences=True), L.TimeDistributed(dense) if wrap else dense])
    model.compile("adam", loss)
    ids = rng.integers(1, 9, (8, 6))
    ids[:3, -2:] = 0  # padded steps: masked out of the loss
    labels = rng.integers(0, 7, (8, 6))
    labels[0, :] = 3
    y = labels if loss == "sparse_categorical_crossentropy" else np.eye(7)[labels]
    x = model.prepare_inputs(ids)
    sw = rng.uniform(0.5, 2.0, 8)
    loss_a, a = _output_gradients(model, x, y, sw, fused=False)
    loss_b, b = _output_gradients(model, x, y, sw, fused=True)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    assert np.abs(a).max() > 0


@pytest.mark.parametrize("loss", [losses.SparseCategoricalCrossentropy(), losses.CategoricalCrossentropy(),
                                  losses.CategoricalCrossentropy(label_smoothing=0.1)],
                         ids=["sparse", "categorical", "smoothed"])
def test_clipped_probabilities_give_the_same_logit_gradient_as_the_chain(loss):
    # rows sure of themselves: q_y above 1 − ε or below ε, where Keras's clip makes ∂L/∂q zero
    from lstmfast.activations import _softmax_grad, softmax

    z = np.array([[40.0, 0, 0, 0], [0, 40.0, 0, 0], [0.5, -1, 2, 0.1], [-30, 3, 1, 0]])
    p = softmax(z)
    labels = np.array([0, 2, 2, 0])
    y = labels if isinstance(loss, losses.SparseCategoricalCrossentropy) else np.eye(4)[labels]
    loss_a, dp = loss._loss_and_grad(y, p)
    loss_b, dz = loss._loss_and_grad(y, p, softmax_logits=True)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    np.testing.assert_allclose(dz, _softmax_grad(dp, z, p), rtol=1e-9, atol=1e-15)
    if not getattr(loss, "label_smoothing", 0):
        assert not dz[0].any() and not dz[1].any() and not dz[3].any() and dz[2].any()


def test_the_softmax_output_takes_the_loss_gradient_only_where_nothing_else_reads_it():
    x = lf.Input((3,))
    hidden = L.Dense(4)(x)
    out = L.Dense(5, activation="softmax")
    probs = out(hidden)
    assert lf.Model(x, probs)._softmax_output_layer() is out
    assert lf.Model(x, [probs, L.Dense(1)(probs)])._softmax_output_layer() is None  # two outputs
    assert lf.Model(x, L.Dense(5, activation="softmax", activity_regularizer="l2")(hidden))._softmax_output_layer() is None
    assert lf.Model(x, L.Dense(5, activation="tanh")(hidden))._softmax_output_layer() is None
    model = lf.Sequential([lf.Input((3,)), L.Dense(4, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    model.fit(np.ones((4, 3)), np.eye(4), verbose=0)
    assert "_gradient_is_for_logits" not in vars(model.layers[-1])  # handed over and used up
