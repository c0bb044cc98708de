"""Test inputs for the LSTM ops: seeded random cases, mask patterns and central differences."""

import numpy as np

from reference_lstm import RECURRENT_ACTIVATIONS, lstm_forward_reference

MASK_PATTERNS = ("pre_padding", "post_padding", "holes", "row_fully_masked")


def make_mask(pattern, B, T, rng):
    """A (B, T) bool mask; True marks a real step. Every pattern keeps some real and some masked steps."""
    mask = np.ones((B, T), bool)
    if pattern == "pre_padding":          # sequences padded at the front: [0 0 1 1 1 ...]
        for r in range(B):
            mask[r, : (r % (T - 1)) + 1] = False
    elif pattern == "post_padding":       # padded at the end: [... 1 1 1 0 0]
        for r in range(B):
            mask[r, T - 1 - (r % (T - 1)):] = False
    elif pattern == "holes":              # masked steps scattered inside the sequence
        mask = rng.random((B, T)) > 0.35
        mask[:, 0] = ~mask[:, 0] if B > 1 else mask[:, 0]
        mask[0, 1] = False
    elif pattern == "row_fully_masked":   # one sequence with no real step at all
        mask[0, :] = False
        mask[-1, 2] = False
    else:
        raise ValueError(pattern)
    return mask


def make_case(seed, B=2, T=6, D=3, H=4, dtype=np.float64, *, use_bias=True, initial_state=False,
              mask=None, input_dropout=False, recurrent_dropout=False, scale=0.3, **options):
    """Arguments for ops.lstm_forward: (args, kwargs). Inputs are drawn in [-1, 1], weights in
    [-scale, scale]; dropout masks hold 0 or 1/(1 - 0.25) as Keras samples them."""
    rng = np.random.default_rng(seed)

    def u(*shape, s=1.0):
        return np.ascontiguousarray(rng.uniform(-s, s, shape).astype(dtype))

    x = u(B, T, D)
    kernel, recurrent_kernel = u(D, 4 * H, s=scale), u(H, 4 * H, s=scale)
    bias = u(4 * H, s=scale) if use_bias else None
    kw = dict(options)
    if initial_state:
        kw["h0"], kw["c0"] = u(B, H), u(B, H)
    if mask is not None:
        kw["mask"] = make_mask(mask, B, T, rng) if isinstance(mask, str) else mask
    keep = 1.0 / (1.0 - 0.25)
    if input_dropout:
        kw["input_dropout_mask"] = (np.where(rng.random((B, D)) < 0.25, 0.0, keep)).astype(dtype)
    if recurrent_dropout:
        kw["recurrent_dropout_mask"] = (np.where(rng.random((B, H)) < 0.25, 0.0, keep)).astype(dtype)
    return (x, kernel, recurrent_kernel, bias), kw


def distance_to_kinks(args, kw):
    """The smallest distance of any pre-activation to a point where an activation is not
    differentiable (±3 for hard_sigmoid, 0 for relu): central differences need it well above eps."""
    _, _, _, steps = lstm_forward_reference(*args, **kw, keep_steps=True)
    H = args[1].shape[1] // 4
    dist = np.inf
    for st in steps:
        z = st["z"]
        gates = np.concatenate([z[:, :2 * H], z[:, 3 * H:]], axis=1)   # z_i, z_f, z_o
        if kw.get("recurrent_activation", "sigmoid") == "hard_sigmoid":
            dist = min(dist, np.min(np.abs(np.abs(gates) - 3.0)))
        if kw.get("activation", "tanh") == "relu":
            # c_t = 0 exactly only where c_{t-1} = 0 and g = relu(z_c) = 0: no perturbation moves it
            c_moving = np.abs(st["c_new"][st["c_new"] != 0.0])
            dist = min(dist, np.min(np.abs(z[:, 2 * H:3 * H])), np.min(c_moving, initial=np.inf))
    assert set(RECURRENT_ACTIVATIONS) == {"sigmoid", "hard_sigmoid"}
    return dist


def loss_weights(seed, out_shape, B, H, dtype=np.float64):
    """Random cotangents for L = Σ w_out⊙outputs + Σ w_h⊙h_T + Σ w_c⊙c_T."""
    rng = np.random.default_rng(seed + 1000)
    return (rng.standard_normal(out_shape).astype(dtype), rng.standard_normal((B, H)).astype(dtype),
            rng.standard_normal((B, H)).astype(dtype))


def numeric_gradient(f, a, eps=1e-6):
    """∂f/∂a by central differences, perturbing a in place one element at a time."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        fp = f()
        flat[k] = old - eps
        fm = f()
        flat[k] = old
        gflat[k] = (fp - fm) / (2 * eps)
    return g
