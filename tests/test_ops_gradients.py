"""lstm_backward against central differences of lstm_forward, in float64, and the LSTM's
closed forms when all weights but one gate's are zero.

Every gradient is checked: dx, d_kernel, d_recurrent_kernel, d_bias, d_h0, d_c0, for the loss
L = Σ w_out⊙outputs + Σ w_h⊙h_T + Σ w_c⊙c_T with random w's, on sequences of T ≥ 5 steps so
that backpropagation through c_{t−1} really runs. Inputs are drawn so that no pre-activation
comes near a kink (±3 for hard_sigmoid, 0 for relu); each case asserts it.
"""

import itertools

import numpy as np
import pytest

from lstm_cases import MASK_PATTERNS, distance_to_kinks, loss_weights, make_case, numeric_gradient

ops = pytest.importorskip("lstmfast.ops", reason="the lstmfast extension is not built")

GRAD_NAMES = ("dx", "d_kernel", "d_recurrent_kernel", "d_bias", "d_h0", "d_c0")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests check the mathematics, on problems far too small to share between threads;
    one thread keeps them fast on a busy machine. Results do not depend on the thread count
    (test_ops_reference.py checks that, and the fast path on the default thread count)."""
    import lstmfast
    n = lstmfast.get_num_threads()
    lstmfast.set_num_threads(1)
    yield
    lstmfast.set_num_threads(n)
# Central differences with eps = 1e-6 in float64 are good to ~1e-9 here; a wrong term is off by
# 1e-3 or more.
RTOL, ATOL = 1e-6, 1e-7


def loss_and_gradients(args, kw, seed, give=("outputs", "h", "c")):
    """Analytic gradients from lstm_backward and a closure computing the loss from lstm_forward."""
    out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
    B, H = h.shape
    w_out, w_h, w_c = loss_weights(seed, out.shape, B, H)
    w_out = w_out if "outputs" in give else np.zeros_like(w_out)
    w_h = w_h if "h" in give else np.zeros_like(w_h)
    w_c = w_c if "c" in give else np.zeros_like(w_c)
    grads = ops.lstm_backward(cache, d_outputs=w_out if "outputs" in give else None,
                              d_h=w_h if "h" in give else None, d_c=w_c if "c" in give else None)

    def loss():
        o, hT, cT, none = ops.lstm_forward(*args, **kw)
        assert none is None
        return float(np.sum(w_out * o) + np.sum(w_h * hT) + np.sum(w_c * cT))

    return loss, grads


def assert_gradients_match_numeric(args, kw, seed=0, give=("outputs", "h", "c")):
    assert distance_to_kinks(args, kw) > 1e-4, "case too close to an activation's kink"
    x, kernel, recurrent_kernel, bias = args
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    # Give explicit zero states where none were given, so d_h0 and d_c0 can be checked too;
    # test_gradients_are_the_same_with_zero_or_absent_initial_states covers the absent case.
    kw = dict(kw)
    kw.setdefault("h0", np.zeros((B, H)))
    kw.setdefault("c0", np.zeros((B, H)))
    loss, grads = loss_and_gradients(args, kw, seed, give)
    assert len(grads) == 6
    wrt = (x, kernel, recurrent_kernel, bias, kw["h0"], kw["c0"])
    for name, a, g in zip(GRAD_NAMES, wrt, grads):
        if a is None:
            assert g is None, f"{name} must be None when the argument was None"
            continue
        assert g.shape == a.shape and g.dtype == np.float64, name
        np.testing.assert_allclose(g, numeric_gradient(loss, a), rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("activation,recurrent_activation",
                         list(itertools.product(("tanh", "relu", "sigmoid", "linear"), ("sigmoid", "hard_sigmoid"))))
def test_lstm_backward_matches_numeric_gradient_float64_for_each_activation(activation, recurrent_activation):
    args, kw = make_case(1, T=6, initial_state=True, activation=activation,
                         recurrent_activation=recurrent_activation)
    assert_gradients_match_numeric(args, kw)


@pytest.mark.parametrize("pattern", MASK_PATTERNS)
@pytest.mark.parametrize("go_backwards", (False, True))
@pytest.mark.parametrize("zero_output_for_mask", (False, True))
def test_lstm_backward_matches_numeric_gradient_with_masks(pattern, go_backwards, zero_output_for_mask):
    args, kw = make_case(2, B=3, T=7, initial_state=True, mask=pattern, go_backwards=go_backwards,
                         zero_output_for_mask=zero_output_for_mask)
    assert_gradients_match_numeric(args, kw)


@pytest.mark.parametrize("input_dropout,recurrent_dropout", ((True, False), (False, True), (True, True)))
@pytest.mark.parametrize("recurrent_activation", ("sigmoid", "hard_sigmoid"))
def test_lstm_backward_matches_numeric_gradient_with_dropout_masks(input_dropout, recurrent_dropout,
                                                                    recurrent_activation):
    args, kw = make_case(3, B=3, T=6, initial_state=True, input_dropout=input_dropout,
                         recurrent_dropout=recurrent_dropout, recurrent_activation=recurrent_activation)
    assert_gradients_match_numeric(args, kw)


@pytest.mark.parametrize("return_sequences", (True, False))
@pytest.mark.parametrize("go_backwards", (False, True))
@pytest.mark.parametrize("initial_state", (False, True))
def test_lstm_backward_matches_numeric_gradient_for_each_output_mode(return_sequences, go_backwards,
                                                                     initial_state):
    args, kw = make_case(4, T=5, initial_state=initial_state, return_sequences=return_sequences,
                         go_backwards=go_backwards)
    assert_gradients_match_numeric(args, kw)


@pytest.mark.parametrize("give", (("outputs",), ("h",), ("c",), ("h", "c")))
def test_lstm_backward_matches_numeric_gradient_with_only_some_cotangents_given(give):
    args, kw = make_case(5, T=6, initial_state=True)
    assert_gradients_match_numeric(args, kw, give=give)


def test_lstm_backward_matches_numeric_gradient_without_bias():
    args, kw = make_case(6, T=6, use_bias=False, initial_state=True)
    assert_gradients_match_numeric(args, kw)


@pytest.mark.parametrize("return_sequences", (True, False))
def test_lstm_backward_matches_numeric_gradient_with_every_option_at_once(return_sequences):
    args, kw = make_case(7, B=3, T=7, initial_state=True, mask="holes", input_dropout=True,
                         recurrent_dropout=True, activation="relu", recurrent_activation="hard_sigmoid",
                         go_backwards=True, return_sequences=return_sequences, zero_output_for_mask=True)
    assert_gradients_match_numeric(args, kw)


def test_lstm_backward_matches_numeric_gradient_over_a_long_sequence():
    args, kw = make_case(8, B=1, T=24, D=2, H=3, initial_state=True, scale=0.6)
    assert_gradients_match_numeric(args, kw)


def test_lstm_backward_matches_numeric_gradient_through_saturated_hard_sigmoid_gates():
    # z_f > 3 everywhere: f = 1 exactly and its gradient is zero; the other gates stay linear.
    args, kw = make_case(9, T=6, initial_state=True, recurrent_activation="hard_sigmoid", scale=0.1)
    bias = args[3]
    H = args[2].shape[0]
    bias[H:2 * H] = 4.5
    assert_gradients_match_numeric(args, kw)
    out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
    _, _, _, d_bias, _, _ = ops.lstm_backward(cache, d_outputs=np.ones_like(out))
    assert np.all(d_bias[H:2 * H] == 0.0)


def test_gradients_are_the_same_with_zero_or_absent_initial_states():
    args, kw = make_case(10, T=6)
    B, H = 2, 4
    _, g_absent = loss_and_gradients(args, kw, 0)
    _, g_zeros = loss_and_gradients(args, dict(kw, h0=np.zeros((B, H)), c0=np.zeros((B, H))), 0)
    for name, a, z in zip(GRAD_NAMES, g_absent, g_zeros):
        np.testing.assert_array_equal(a, z, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Closed forms. With W = U = 0 every step sees the same gates, fixed by the bias alone:
#   i = ρ(b_i), f = ρ(b_f), g = φ(b_c), o = ρ(b_o)
#   c_t = f·c_{t−1} + i·g  ⇒  c_t = fᵗ·c_0 + i·g·(1 − fᵗ)/(1 − f)   (c_t = c_0 + t·i·g when f = 1)
#   h_t = o·φ(c_t)
# ---------------------------------------------------------------------------------------------

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def hard_sigmoid(z):
    return min(max(z / 6.0 + 0.5, 0.0), 1.0)


PHI = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "sigmoid": sigmoid, "linear": lambda z: z}
RHO = {"sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid}


def bias_only(b_i, b_f, b_c, b_o, *, B=2, T=6, D=3, H=4, c0=None, **kw):
    """Run lstm_forward with zero weights and the given per-gate biases."""
    x = np.random.default_rng(0).uniform(-1, 1, (B, T, D))
    kernel, recurrent_kernel = np.zeros((D, 4 * H)), np.zeros((H, 4 * H))
    bias = np.repeat(np.array([b_i, b_f, b_c, b_o], float), H)
    if c0 is not None:
        kw["c0"] = np.full((B, H), c0)
    return ops.lstm_forward(x, kernel, recurrent_kernel, bias, **kw)


def closed_form(b_i, b_f, b_c, b_o, c0=0.0, T=6, activation="tanh", recurrent_activation="sigmoid"):
    """(h_t, c_t) for t = 1..T by the formula above."""
    rho, phi = RHO[recurrent_activation], PHI[activation]
    i, f, g, o = rho(b_i), rho(b_f), phi(b_c), rho(b_o)
    t = np.arange(1, T + 1, dtype=float)
    c = f ** t * c0 + (i * g * (1 - f ** t) / (1 - f) if f != 1.0 else t * i * g)
    return o * phi(c), c


def assert_closed_form(biases, c0=0.0, **kw):
    out, h, c, _ = bias_only(*biases, c0=c0 if c0 else None, **kw)
    want_h, want_c = closed_form(*biases, c0=c0, **kw)
    np.testing.assert_allclose(out, np.broadcast_to(want_h[None, :, None], out.shape), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, want_h[-1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, want_c[-1], rtol=1e-12, atol=1e-14)


def test_only_the_cell_bias_fills_the_cell_at_half_rate():
    # i = f = o = ½, g = tanh β:  c_t = tanh β·(1 − 2⁻ᵗ),  h_t = ½·tanh c_t
    beta = 1.3
    assert_closed_form((0.0, 0.0, beta, 0.0))
    t = np.arange(1, 7)
    np.testing.assert_allclose(closed_form(0, 0, beta, 0)[1], np.tanh(beta) * (1 - 0.5 ** t), rtol=1e-15)


def test_only_the_forget_bias_keeps_the_initial_cell_decaying_at_sigmoid_rate():
    # g = tanh 0 = 0:  c_t = σ(β)ᵗ·c_0,  h_t = ½·tanh c_t
    assert_closed_form((0.0, 2.5, 0.0, 0.0), c0=0.8)


def test_only_the_output_bias_scales_the_hidden_state():
    # c_t = 2⁻ᵗ·c_0,  h_t = σ(β)·tanh c_t
    assert_closed_form((0.0, 0.0, 0.0, -1.7), c0=0.8)


def test_only_the_input_gate_and_cell_kernel_write_the_input_into_the_cell():
    # W has only the cell block, a·I (D = H); b has only b_i = β:
    #   c_t = ½·c_{t−1} + σ(β)·tanh(a·x_t),  h_t = ½·tanh c_t
    B, T, H, a, beta = 2, 6, 3, 0.9, 1.1
    x = np.random.default_rng(1).uniform(-1, 1, (B, T, H))
    kernel = np.zeros((H, 4 * H))
    kernel[:, 2 * H:3 * H] = a * np.eye(H)
    bias = np.zeros(4 * H)
    bias[:H] = beta
    out, h, c, _ = ops.lstm_forward(x, kernel, np.zeros((H, 4 * H)), bias)
    c_t = np.zeros((B, H))
    for t in range(T):
        c_t = 0.5 * c_t + sigmoid(beta) * np.tanh(a * x[:, t])
        np.testing.assert_allclose(out[:, t], 0.5 * np.tanh(c_t), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, c_t, rtol=1e-12, atol=1e-14)


def test_only_the_recurrent_output_block_feeds_h_back_into_the_output_gate():
    # U has only the o block, u·I; b has only b_c = β, so i = f = ½, g = tanh β:
    #   c_t = ½·c_{t−1} + ½·tanh β,  o_t = σ(u·h_{t−1}),  h_t = o_t·tanh c_t
    B, T, D, H, u, beta = 2, 6, 3, 2, 1.5, 0.7
    x = np.random.default_rng(2).uniform(-1, 1, (B, T, D))
    recurrent_kernel = np.zeros((H, 4 * H))
    recurrent_kernel[:, 3 * H:] = u * np.eye(H)
    bias = np.zeros(4 * H)
    bias[2 * H:3 * H] = beta
    h0 = np.full((B, H), -0.4)
    out, h, c, _ = ops.lstm_forward(x, np.zeros((D, 4 * H)), recurrent_kernel, bias, h0=h0)
    h_t, c_t = h0, np.zeros((B, H))
    for t in range(T):
        c_t = 0.5 * c_t + 0.5 * np.tanh(beta)
        h_t = sigmoid(u * h_t) * np.tanh(c_t)
        np.testing.assert_allclose(out[:, t], h_t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, h_t, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ("tanh", "relu", "sigmoid", "linear"))
@pytest.mark.parametrize("recurrent_activation", ("sigmoid", "hard_sigmoid"))
def test_distinct_gate_biases_give_the_closed_form_for_each_activation(activation, recurrent_activation):
    assert_closed_form((0.3, -1.2, 0.7, 2.0), c0=0.5, activation=activation,
                       recurrent_activation=recurrent_activation)


def test_a_saturated_hard_sigmoid_forget_gate_keeps_the_cell_exactly():
    # b_f = 4 > 3: f = 1 exactly; b_i = −4 < −3: i = 0 exactly, so c_t = c_0 bit for bit
    out, h, c, _ = bias_only(-4.0, 4.0, 1.0, 0.0, c0=0.625, recurrent_activation="hard_sigmoid")
    assert np.all(c == 0.625)
    np.testing.assert_allclose(out, 0.5 * np.tanh(0.625), rtol=1e-14)


def test_the_gate_order_is_i_f_c_o():
    # Each of the 24 orders of the four bias blocks gives a different h_T in the closed form, so
    # a kernel that read the blocks in any other order than [i f c o] would fail here.
    biases = (0.3, -1.2, 0.7, 2.0)
    finals = {perm: closed_form(*[biases[k] for k in perm], c0=0.5)[0][-1]
              for perm in itertools.permutations(range(4))}
    values = sorted(finals.values())
    assert min(np.diff(values)) > 1e-4   # far above the 1e-12 tolerance below
    _, h, _, _ = bias_only(*biases, c0=0.5)
    np.testing.assert_allclose(h, finals[(0, 1, 2, 3)], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Masks, exactly: a masked step changes nothing and receives no gradient.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zero_output_for_mask", (False, True))
def test_a_fully_masked_sequence_keeps_its_initial_state_and_passes_gradients_straight_through(
        zero_output_for_mask):
    args, kw = make_case(11, B=3, T=6, initial_state=True, mask="row_fully_masked",
                         zero_output_for_mask=zero_output_for_mask)
    out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
    h0, c0 = kw["h0"], kw["c0"]
    assert np.array_equal(h[0], h0[0]) and np.array_equal(c[0], c0[0])
    # With no real step the outputs repeat the "previous output", which starts at zeros
    # (Keras's TensorFlow and torch backends), whatever zero_output_for_mask says.
    assert np.array_equal(out[0], np.zeros((6, 4)))
    w_out, w_h, w_c = loss_weights(0, out.shape, 3, 4)
    dx, _, _, _, d_h0, d_c0 = ops.lstm_backward(cache, d_outputs=w_out, d_h=w_h, d_c=w_c)
    assert np.all(dx[0] == 0.0)
    want_d_h0 = w_h[0]  # constant zero outputs send nothing back
    np.testing.assert_allclose(d_h0[0], want_d_h0, rtol=1e-14)
    assert np.array_equal(d_c0[0], w_c[0])


@pytest.mark.parametrize("initial_state", (False, True))
def test_the_initial_state_gradient_left_out_changes_no_other_gradient(initial_state):
    # initial_state_gradient=False skips d_h0 = dz_0·Uᵀ (a graph whose state is no variable)
    args, kw = make_case(13, B=5, T=6, initial_state=initial_state, mask="holes")
    runs = []
    for wanted in (True, False):
        out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
        w_out, w_h, w_c = loss_weights(1, out.shape, *h.shape)
        runs.append(ops.lstm_backward(cache, d_outputs=w_out, d_h=w_h, d_c=w_c, initial_state_gradient=wanted))
    full, part = runs
    assert part.d_h0 is None and part.d_c0 is None
    assert full.d_h0.shape == h.shape and np.abs(full.d_h0).max() > 0
    for name in ("dx", "d_kernel", "d_recurrent_kernel", "d_bias"):
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name), err_msg=name)


@pytest.mark.parametrize("pattern", MASK_PATTERNS)
def test_masked_steps_get_no_input_gradient(pattern):
    args, kw = make_case(12, B=3, T=7, mask=pattern)
    out, _, _, cache = ops.lstm_forward(*args, **kw, training=True)
    dx = ops.lstm_backward(cache, d_outputs=np.ones_like(out))[0]
    assert np.all(dx[~kw["mask"]] == 0.0)
    assert np.all(np.abs(dx[kw["mask"]]).sum(axis=-1) > 0.0)


# --- a time-constant input (what RepeatVector feeds a decoder) -----------------------------------

@pytest.mark.parametrize("seed,options", (
    (300, dict()),
    (301, dict(mask="holes", go_backwards=True, input_dropout=True, recurrent_dropout=True)),
    (300, dict(activation="relu", recurrent_activation="hard_sigmoid", return_sequences=False)),
), ids=("plain", "mask_dropout_backwards", "relu_last_output"))
def test_time_constant_input_matches_numeric_gradient_and_the_repeated_input(seed, options):
    # x (B, D) with timesteps=T is the same LSTM as x repeated T times: outputs and weight
    # gradients equal the repeated input's, dx is Σ_t of its dx_t, and all of them match
    # central differences of the (B, D) input.
    T = 6
    args, kw = make_case(seed, B=3, T=T, D=4, H=5, initial_state=True, scale=0.4, **options)
    x = args[0]
    x0 = np.ascontiguousarray(x[:, 0, :])
    repeated = (np.ascontiguousarray(np.broadcast_to(x0[:, None, :], x.shape)),) + args[1:]
    constant = (x0,) + args[1:]
    assert distance_to_kinks(repeated, kw) > 1e-4, "case too close to an activation's kink"
    full = ops.lstm_forward(*repeated, **kw, training=True)
    const = ops.lstm_forward(*constant, **kw, training=True, timesteps=T)
    naive = ops.lstm_forward(*constant, **kw, timesteps=T, naive=True)
    for got, want, name in zip(const[:3], full[:3], ("outputs", "h", "c")):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(naive.outputs, full.outputs, rtol=1e-13, atol=1e-14)
    assert const.cache.constant_input and not full.cache.constant_input

    w_out, w_h, w_c = loss_weights(7, full.outputs.shape, 3, 5)
    g_full = ops.lstm_backward(full.cache, w_out, w_h, w_c)
    g_const = ops.lstm_backward(const.cache, w_out, w_h, w_c)
    assert g_const[0].shape == x0.shape
    np.testing.assert_allclose(g_const[0], g_full[0].sum(axis=1), rtol=1e-12, atol=1e-13, err_msg="dx")
    for name, a, b in zip(GRAD_NAMES[1:], g_const[1:], g_full[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13, err_msg=name)

    def loss():
        o, hT, cT, _ = ops.lstm_forward(*constant, **kw, timesteps=T)
        return float(np.sum(w_out * o) + np.sum(w_h * hT) + np.sum(w_c * cT))

    np.testing.assert_allclose(g_const[0], numeric_gradient(loss, x0), rtol=RTOL, atol=ATOL, err_msg="dx")
    np.testing.assert_allclose(g_const[1], numeric_gradient(loss, args[1]), rtol=RTOL, atol=ATOL,
                               err_msg="d_kernel")


def test_time_constant_input_with_a_wrong_rank_or_timesteps_is_refused():
    args, kw = make_case(9, B=2, T=5, D=3, H=4)
    with pytest.raises(ValueError, match="`x` must be 2-D"):
        ops.lstm_forward(*args, timesteps=5)
    x0 = np.ascontiguousarray(args[0][:, 0, :])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="timesteps"):
            ops.lstm_forward(x0, *args[1:], timesteps=bad)
    with pytest.raises(ValueError, match=r"`mask` must have shape \(2, 4\)"):
        ops.lstm_forward(x0, *args[1:], timesteps=4, mask=np.ones((2, 5), bool))
