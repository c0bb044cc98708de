"""A naive LSTM in numpy, written for reading, never for speed: the oracle the fast path is tested against.

Dimensions: B batch, T steps, D input features, H units.
Keras layout and gate order [i f c o]: kernel W (D, 4H), recurrent_kernel U (H, 4H), bias b (4H,).

One step, in the names used below (Keras 3 LSTMCell; ⊙ is the element-wise product):
    x̃_t = x_t ⊙ m_x                 input dropout mask m_x (B, D), the same at every step
    h̃   = h_{t-1} ⊙ m_h             recurrent dropout mask m_h (B, H), the same at every step
    z   = x̃_t·W + h̃·U + b           (B, 4H), split into z_i, z_f, z_c, z_o
    i = ρ(z_i)   f = ρ(z_f)   g = φ(z_c)   o = ρ(z_o)      ρ recurrent_activation, φ activation
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ φ(c_t)
A step whose mask is False carries h and c through unchanged; its output repeats the
previous output: h_{t-1} after the row's first real step, zeros before it (Keras's
TensorFlow and torch backends), and always zeros with zero_output_for_mask.
go_backwards processes t = T-1, ..., 0 and the outputs stay in processing order, as Keras
returns them.
"""

import numpy as np

GATES = ("i", "f", "c", "o")  # column blocks of kernel, recurrent_kernel and bias, in this order


def mm(a, b):
    """a·b. Through einsum rather than BLAS: small products stay on one thread, so the reference
    stays quick when other processes keep the cores busy."""
    return np.einsum("ij,jk->ik", a, b)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _hard_sigmoid(z):
    # Keras 3: relu6(z + 3) / 6, i.e. clip(z/6 + 1/2, 0, 1)
    return np.clip(z / 6.0 + 0.5, 0.0, 1.0)


# name -> (function of z, derivative as a function of z)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
}
RECURRENT_ACTIVATIONS = {
    "sigmoid": ACTIVATIONS["sigmoid"],
    "hard_sigmoid": (_hard_sigmoid, lambda z: ((z > -3.0) & (z < 3.0)).astype(z.dtype) / 6.0),
}


def _defaults(x, kernel, bias, h0, c0, mask, input_dropout_mask, recurrent_dropout_mask):
    B, T, D = x.shape
    H = kernel.shape[1] // 4
    dt = x.dtype
    bias = np.zeros(4 * H, dt) if bias is None else bias
    h0 = np.zeros((B, H), dt) if h0 is None else h0
    c0 = np.zeros((B, H), dt) if c0 is None else c0
    mask = np.ones((B, T), bool) if mask is None else mask.astype(bool)
    mx = np.ones((B, D), dt) if input_dropout_mask is None else input_dropout_mask
    mh = np.ones((B, H), dt) if recurrent_dropout_mask is None else recurrent_dropout_mask
    return B, T, D, H, bias, h0, c0, mask, mx, mh


def lstm_forward_reference(x, kernel, recurrent_kernel, bias=None, *, h0=None, c0=None, mask=None,
                           input_dropout_mask=None, recurrent_dropout_mask=None,
                           activation="tanh", recurrent_activation="sigmoid", go_backwards=False,
                           return_sequences=True, zero_output_for_mask=False, keep_steps=False):
    """Returns (outputs, h_T, c_T), plus the per-step record for the backward if keep_steps."""
    B, T, D, H, b, h, c, mask, mx, mh = _defaults(x, kernel, bias, h0, c0, mask,
                                                  input_dropout_mask, recurrent_dropout_mask)
    phi, _ = ACTIVATIONS[activation]
    rho, _ = RECURRENT_ACTIVATIONS[recurrent_activation]
    W, U = kernel, recurrent_kernel
    outputs = np.zeros((B, T, H), x.dtype)
    steps = []
    seen = np.zeros((B, 1), bool)                      # has the row had a real step yet?
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    for s, t in enumerate(order):                      # s: processing position, t: time index in x
        x_t = x[:, t, :] * mx                          # x̃_t = x_t ⊙ m_x
        h_prev, c_prev = h, c
        h_rec = h_prev * mh                            # h̃ = h_{t-1} ⊙ m_h
        z = mm(x_t, W) + mm(h_rec, U) + b              # z = x̃_t·W + h̃·U + b
        z_i, z_f, z_c, z_o = (z[:, k * H:(k + 1) * H] for k in range(4))
        i, f, g, o = rho(z_i), rho(z_f), phi(z_c), rho(z_o)
        c_new = f * c_prev + i * g                     # c_t = f ⊙ c_{t-1} + i ⊙ g
        h_new = o * phi(c_new)                         # h_t = o ⊙ φ(c_t)
        m = mask[:, t][:, None]                        # a masked step carries h and c through
        h = np.where(m, h_new, h_prev)
        c = np.where(m, c_new, c_prev)
        seen = seen | m
        repeat = seen & (not zero_output_for_mask)     # a masked step repeats the previous output
        outputs[:, s, :] = np.where(m, h_new, np.where(repeat, h_prev, 0.0))
        steps.append(dict(t=t, x_t=x_t, h_prev=h_prev, c_prev=c_prev, h_rec=h_rec, z=z,
                          i=i, f=f, g=g, o=o, c_new=c_new, m=m, repeat=repeat))
    out = outputs if return_sequences else outputs[:, -1, :]
    if keep_steps:
        return out, h, c, steps
    return out, h, c


def lstm_backward_reference(x, kernel, recurrent_kernel, bias=None, *, h0=None, c0=None, mask=None,
                            input_dropout_mask=None, recurrent_dropout_mask=None,
                            activation="tanh", recurrent_activation="sigmoid", go_backwards=False,
                            return_sequences=True, zero_output_for_mask=False,
                            d_outputs=None, d_h=None, d_c=None):
    """Backpropagation through time, one step at a time.

    Returns (dx, d_kernel, d_recurrent_kernel, d_bias, d_h0, d_c0), the gradients of
    L = Σ d_outputs⊙outputs + Σ d_h⊙h_T + Σ d_c⊙c_T (d_bias is None when bias is None).
    """
    B, T, D, H, b, _, _, _, mx, mh = _defaults(x, kernel, bias, h0, c0, mask,
                                               input_dropout_mask, recurrent_dropout_mask)
    steps = lstm_forward_reference(
        x, kernel, recurrent_kernel, bias, h0=h0, c0=c0, mask=mask,
        input_dropout_mask=input_dropout_mask, recurrent_dropout_mask=recurrent_dropout_mask,
        activation=activation, recurrent_activation=recurrent_activation, go_backwards=go_backwards,
        return_sequences=True, zero_output_for_mask=zero_output_for_mask, keep_steps=True)[3]
    phi, dphi = ACTIVATIONS[activation]
    _, drho = RECURRENT_ACTIVATIONS[recurrent_activation]
    W, U = kernel, recurrent_kernel
    dt = x.dtype
    d_out = np.zeros((B, T, H), dt)
    if d_outputs is not None:
        if return_sequences:
            d_out[:] = d_outputs
        else:
            d_out[:, -1, :] = d_outputs                # the last output is output T-1 in processing order
    dh = np.zeros((B, H), dt) if d_h is None else d_h.copy()   # ∂L/∂h_s, carried from s+1
    dc = np.zeros((B, H), dt) if d_c is None else d_c.copy()   # ∂L/∂c_s, carried from s+1
    dx = np.zeros_like(x)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros(4 * H, dt)
    for s in range(T - 1, -1, -1):
        st = steps[s]
        m = st["m"]
        # output_s = h_new where the step is real; where masked, h_{t-1} once the row has had a real
        # step ("repeat") and a constant 0 before it or with zero_output_for_mask
        dh_new = np.where(m, dh + d_out[:, s], 0.0)
        dh_carry = np.where(m, 0.0, dh + np.where(st["repeat"], d_out[:, s], 0.0))
        dc_new = np.where(m, dc, 0.0)
        dc_carry = np.where(m, 0.0, dc)
        i, f, g, o, c_new = st["i"], st["f"], st["g"], st["o"], st["c_new"]
        z = st["z"]
        z_i, z_f, z_c, z_o = (z[:, k * H:(k + 1) * H] for k in range(4))
        # h_t = o ⊙ φ(c_t): term to o, and term to c_t added to the carry from t+1
        do = dh_new * phi(c_new)
        dc_new = dc_new + dh_new * o * dphi(c_new)
        # c_t = f ⊙ c_{t-1} + i ⊙ g
        di, df, dg = dc_new * g, dc_new * st["c_prev"], dc_new * i
        dz = np.concatenate([di * drho(z_i), df * drho(z_f), dg * dphi(z_c), do * drho(z_o)], axis=1)
        # z = x̃·W + h̃·U + b
        dW += mm(st["x_t"].T, dz)
        dU += mm(st["h_rec"].T, dz)
        db += dz.sum(axis=0)
        dx[:, st["t"], :] = mm(dz, W.T) * mx
        dh = mm(dz, U.T) * mh + dh_carry
        dc = dc_new * f + dc_carry
    return dx, dW, dU, (None if bias is None else db), dh, dc


def adam_update_reference(param, grad, m, v, *, learning_rate, beta_1, beta_2, epsilon, step):
    """Keras's Adam, in place (keras/src/optimizers/adam.py):
    lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ);  m += (g − m)(1 − β₁);  v += (g² − v)(1 − β₂);  θ −= lr_t·m/(√v + ε)."""
    lr_t = learning_rate * np.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
    m += (grad - m) * (1.0 - beta_1)
    v += (grad * grad - v) * (1.0 - beta_2)
    param -= lr_t * m / (np.sqrt(v) + epsilon)
