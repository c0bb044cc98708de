"""Parity with torch.nn.LSTM on converted weights: forward outputs, final states, every gradient,
and a few Adam steps.

Conversion (torch's gate order i, f, g, o is Keras's i, f, c, o):
    weight_ih_l0 = kernelᵀ (4H, D)   weight_hh_l0 = recurrent_kernelᵀ (4H, H)
    bias_ih_l0 = bias                bias_hh_l0 = 0

Tolerances, float32 (both sides sum in a different order, and lstmfast's vectorised sigmoid and
tanh differ from std:: by a few ulp):
    outputs, h_T, c_T          |Δ| ≤ 3e-6 · (1 + max|torch|)     largest seen: 5e-7
    every gradient             |Δ| ≤ 1e-5 · (1 + max|torch|)     largest seen: 9e-7
    weights after 5 Adam steps |Δ| ≤ 5e-7 · (1 + max|torch|)     largest seen: 6e-8
float64: 1e-13 for forward and gradients (largest seen: 2e-15).
"""

import numpy as np
import pytest

from lstm_cases import loss_weights, make_case

torch = pytest.importorskip(
    "torch", reason="parity with torch.nn.LSTM needs torch, a test-only extra: pip install 'lstmfast[test]'")
ops = pytest.importorskip("lstmfast.ops", reason="the lstmfast extension is not built")

@pytest.fixture(autouse=True, scope="module")
def torch_on_one_thread():
    """Small problems: one thread is as fast, and stays fast when other processes are busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TOL = {np.float32: (3e-6, 1e-5), np.float64: (1e-13, 1e-13)}   # (forward, gradients)

SHAPES = [  # (B, T, D, H): B = 1, H not a multiple of 8 or 16, H large enough to be cut in tiles
    (1, 7, 3, 5),
    (4, 10, 16, 13),
    (3, 6, 33, 17),
    (2, 12, 8, 24),
    (5, 9, 20, 70),
    (16, 8, 64, 130),
]


def assert_close(got, want, tol, what):
    err = np.max(np.abs(got - want)) if got.size else 0.0
    bound = tol * (1.0 + np.max(np.abs(want)))
    assert err <= bound, f"{what}: max |lstmfast − torch| = {err:.3g} > {bound:.3g}"


def torch_lstm(kernel, recurrent_kernel, bias):
    D, G = kernel.shape
    H = G // 4
    dtype = torch.float64 if kernel.dtype == np.float64 else torch.float32
    lstm = torch.nn.LSTM(D, H, batch_first=True).to(dtype)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        lstm.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(recurrent_kernel.T)))
        lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
        lstm.bias_hh_l0.zero_()
    return lstm


def torch_forward_backward(args, kw, w_out, w_h, w_c):
    """torch's outputs, final states and gradients, in lstmfast's conventions."""
    x, kernel, recurrent_kernel, bias = args
    lstm = torch_lstm(kernel, recurrent_kernel, bias)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    B, H = x.shape[0], recurrent_kernel.shape[0]
    h0 = torch.from_numpy(kw.get("h0", np.zeros((B, H), x.dtype)).copy()).unsqueeze(0).requires_grad_(True)
    c0 = torch.from_numpy(kw.get("c0", np.zeros((B, H), x.dtype)).copy()).unsqueeze(0).requires_grad_(True)
    # go_backwards = torch on the time-reversed input; outputs stay in processing order
    inp = xt.flip(1) if kw.get("go_backwards") else xt
    y, (hT, cT) = lstm(inp, (h0, c0))
    out = y if kw.get("return_sequences", True) else y[:, -1]
    loss = (out * torch.from_numpy(w_out)).sum() + (hT[0] * torch.from_numpy(w_h)).sum() \
        + (cT[0] * torch.from_numpy(w_c)).sum()
    loss.backward()
    grads = (xt.grad, lstm.weight_ih_l0.grad.T, lstm.weight_hh_l0.grad.T, lstm.bias_ih_l0.grad,
             h0.grad[0], c0.grad[0])
    return (out.detach().numpy(), hT[0].detach().numpy(), cT[0].detach().numpy()), \
        [g.detach().numpy() for g in grads]


def check_parity(args, kw, dtype):
    tol_fwd, tol_grad = TOL[dtype]
    out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
    B, H = h.shape
    w_out, w_h, w_c = (w.astype(dtype) for w in loss_weights(0, out.shape, B, H))
    grads = ops.lstm_backward(cache, d_outputs=w_out, d_h=w_h, d_c=w_c)
    (t_out, t_h, t_c), t_grads = torch_forward_backward(args, kw, w_out, w_h, w_c)
    for name, got, want in (("outputs", out, t_out), ("h_T", h, t_h), ("c_T", c, t_c)):
        assert got.dtype == dtype and got.shape == want.shape, name
        assert_close(got, want, tol_fwd, name)
    names = ("dx", "d_kernel", "d_recurrent_kernel", "d_bias", "d_h0", "d_c0")
    for name, got, want in zip(names, grads, t_grads):
        assert got.dtype == dtype and got.shape == want.shape, name
        assert_close(got, want, tol_grad, name)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}_T{}_D{}_H{}".format(*s))
@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
def test_forward_and_every_gradient_match_torch_lstm(shape, dtype):
    B, T, D, H = shape
    args, kw = make_case(B * 100 + H, B=B, T=T, D=D, H=H, dtype=dtype, initial_state=True, scale=0.5)
    check_parity(args, kw, dtype)


@pytest.mark.parametrize("go_backwards", (False, True))
@pytest.mark.parametrize("return_sequences", (True, False))
@pytest.mark.parametrize("initial_state", (False, True))
def test_output_modes_match_torch_lstm_float32(go_backwards, return_sequences, initial_state):
    args, kw = make_case(3, B=4, T=9, D=6, H=11, dtype=np.float32, initial_state=initial_state,
                         go_backwards=go_backwards, return_sequences=return_sequences, scale=0.5)
    check_parity(args, kw, np.float32)


def test_a_long_sequence_matches_torch_lstm_float32():
    args, kw = make_case(4, B=2, T=200, D=5, H=9, dtype=np.float32, initial_state=True, scale=0.5)
    check_parity(args, kw, np.float32)


def test_five_adam_steps_match_torch_float32():
    # Keras's Adam, lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε), is torch's m̂/(√v̂ + ε') with ε' = ε/√(1−β₂ᵗ):
    # with ε = 0 on both sides the two are the same update.
    B, T, D, H, lr = 4, 8, 5, 7, 0.01
    (x, kernel, recurrent_kernel, bias), _ = make_case(5, B=B, T=T, D=D, H=H, dtype=np.float32, scale=0.5)
    target = np.random.default_rng(5).uniform(-0.5, 0.5, (B, T, H)).astype(np.float32)
    lstm = torch_lstm(kernel, recurrent_kernel, bias)
    lstm.bias_hh_l0.requires_grad_(False)
    opt = torch.optim.Adam([lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0], lr=lr, eps=0.0)
    params = [kernel.copy(), recurrent_kernel.copy(), bias.copy()]
    moments = [(np.zeros(p.size, np.float32), np.zeros(p.size, np.float32)) for p in params]
    for step in range(1, 6):
        out, _, _, cache = ops.lstm_forward(x, *params, training=True)
        d_out = (2.0 / out.size * (out - target)).astype(np.float32)
        _, *grads, _, _ = ops.lstm_backward(cache, d_outputs=d_out)
        for p, g, (m, v) in zip(params, grads, moments):
            ops.adam_update(p.reshape(-1), g.reshape(-1), m, v, learning_rate=lr, beta_1=0.9,
                            beta_2=0.999, epsilon=0.0, step=step)
        opt.zero_grad()
        torch.nn.functional.mse_loss(lstm(torch.from_numpy(x))[0], torch.from_numpy(target)).backward()
        opt.step()
    want = (lstm.weight_ih_l0.detach().numpy().T, lstm.weight_hh_l0.detach().numpy().T,
            lstm.bias_ih_l0.detach().numpy())
    for name, got, w, start in zip(("kernel", "recurrent_kernel", "bias"), params, want,
                                   (kernel, recurrent_kernel, bias)):
        assert np.max(np.abs(got - start)) > 0.02, f"{name} did not move"   # 5 steps of ~lr each
        assert_close(got, w, 5e-7, f"{name} after 5 Adam steps")
