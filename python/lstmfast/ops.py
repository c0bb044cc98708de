"""Low-level LSTM operations on numpy arrays: the C++ kernels behind a checked door.

Shapes: B batch, T time steps, D input features, H units. Weights use Keras's layout and
gate order ``[i | f | c | o]``: ``kernel`` (D, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,).

One step (σ = ``recurrent_activation``, φ = ``activation``)::

    z_t = (x_t ⊙ m_x)·W + (h_{t-1} ⊙ m_h)·U + b
    i, f, o = σ(z_i), σ(z_f), σ(z_o);   g = φ(z_c)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ φ(c_t)

Every argument is checked here, before the kernel runs: a wrong shape, dtype, layout or a
non-finite value raises ``ValueError`` / ``TypeError`` saying what was expected and what came.
Nothing is converted silently: float32 and float64 are both supported, but one call uses one.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ._core import core
from ._threads import physical_memory

__all__ = [
    "LSTMCache",
    "LSTMForward",
    "LSTMGradients",
    "PackedLSTMWeights",
    "ACTIVATIONS",
    "RECURRENT_ACTIVATIONS",
    "pack_lstm_weights",
    "lstm_forward",
    "lstm_backward",
    "adam_update",
    "embedding_forward",
    "embedding_backward",
    "add",
    "column_sums",
    "concatenate",
    "dropout",
    "dropout_mask",
    "matmul",
    "softmax",
    "crossentropy_on_softmax",
]

# Names as Keras spells them -> codes of cpp/lstm.h.
ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2, "linear": 3}
RECURRENT_ACTIVATIONS = {"sigmoid": 0, "hard_sigmoid": 1}

# Refuse work whose buffers could never fit (the kernel keeps about T·B·(D + 6H) values).
_MAX_BYTES = 1 << 40


class LSTMForward(NamedTuple):
    outputs: np.ndarray  # (B, T, H) if return_sequences else (B, H)
    h: np.ndarray  # (B, H) final hidden state
    c: np.ndarray  # (B, H) final cell state
    cache: "LSTMCache | None"  # for lstm_backward, when training=True


class LSTMGradients(NamedTuple):
    dx: "np.ndarray | None"  # (B, T, D), or None when input_gradient=False
    d_kernel: np.ndarray  # (D, 4H)
    d_recurrent_kernel: np.ndarray  # (H, 4H)
    d_bias: "np.ndarray | None"  # (4H,) or None when the forward had no bias
    d_h0: "np.ndarray | None"  # (B, H), or None when initial_state_gradient=False
    d_c0: "np.ndarray | None"  # (B, H), or None likewise


class LSTMCache:
    """What :func:`lstm_backward` needs from one ``lstm_forward(..., training=True)`` call.

    It may be used for several backward passes (for instance two different losses).
    """

    __slots__ = ("_impl", "dtype", "batch", "timesteps", "features", "units", "return_sequences",
                 "constant_input", "one_hot_input")

    def __init__(self, impl, dtype):
        self._impl = impl
        self.dtype = np.dtype(dtype)
        self.batch = impl.batch
        self.timesteps = impl.timesteps
        self.features = impl.features
        self.units = impl.units
        self.return_sequences = impl.return_sequences
        self.constant_input = impl.constant_input
        self.one_hot_input = impl.one_hot_input  # x was one-hot: its rows of W were picked, not multiplied

    def __repr__(self):
        return (
            f"LSTMCache(batch={self.batch}, timesteps={self.timesteps}, features={self.features}, "
            f"units={self.units}, dtype={self.dtype.name})"
        )


class PackedLSTMWeights:
    """An LSTM's ``kernel``, ``recurrent_kernel`` and ``bias``, copied and packed once for many
    inference forwards; made by :func:`pack_lstm_weights`, passed to :func:`lstm_forward` in
    place of the weights.

    A forward packs the weights into the layout its matrix products read on every call (about
    5-10 % of a forward at 512 units and more, where the weights no longer fit in cache); a
    predict loop over many batches with fixed weights need not. The weights are copied when
    packed: changing the arrays afterwards does not change the packed copy, which its
    ``kernel``, ``recurrent_kernel`` and ``bias`` attributes show (read-only).
    """

    __slots__ = ("_impl", "dtype", "features", "units", "kernel", "recurrent_kernel", "bias")

    def __init__(self, impl, dtype):
        self._impl = impl
        self.dtype = np.dtype(dtype)
        self.features = impl.features
        self.units = impl.units
        self.kernel = impl.kernel
        self.recurrent_kernel = impl.recurrent_kernel
        self.bias = impl.bias

    def __repr__(self):
        return (f"PackedLSTMWeights(features={self.features}, units={self.units}, "
                f"bias={self.bias is not None}, dtype={self.dtype.name})")


def _shape(a) -> str:
    return "(" + ", ".join(str(s) for s in a.shape) + ("," if a.ndim == 1 else "") + ")"


def _array(name: str, a, dtype=None, shape=None, ndim=None, check_finite=True) -> np.ndarray:
    """Checks one float array: ndarray, dtype, rank/shape, C order, finite values."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray; got {type(a).__name__}")
    if dtype is None:
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"`{name}` must be float32 or float64; got dtype {a.dtype}")
    elif a.dtype != dtype:
        raise TypeError(
            f"`{name}` must have dtype {np.dtype(dtype).name} like `x`; got {a.dtype} "
            f"(convert it once with .astype(np.{np.dtype(dtype).name}))"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D; got {a.ndim}-D array of shape {_shape(a)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        want = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"`{name}` must have shape {want}; got {_shape(a)}")
    if not a.flags.c_contiguous:
        raise ValueError(
            f"`{name}` must be C-contiguous; got a strided view of shape {_shape(a)} "
            "(pass np.ascontiguousarray(...))"
        )
    if check_finite and not all_finite(a):
        raise _non_finite(name, a)
    return a


def _recurrent_kernel(a, dtype, check_finite) -> np.ndarray:
    """Checks a recurrent kernel: an array of shape (units, 4*units), units ≥ 1."""
    a = _array("recurrent_kernel", a, dtype, ndim=2, check_finite=check_finite)
    if a.shape[0] == 0 or a.shape[1] != 4 * a.shape[0]:
        raise ValueError(f"`recurrent_kernel` must have shape (units, 4*units); got {_shape(a)}")
    return a


def _non_finite(name: str, a: np.ndarray) -> ValueError:
    bad = "NaN" if np.isnan(a).any() else "inf"
    return ValueError(f"`{name}` contains {bad} values; every value must be finite")


def all_finite(a) -> bool:
    """True when no value of the array `a` is NaN or ±inf (in C++ for float32/float64: one
    pass without temporaries; numpy's isfinite for other dtypes and layouts)."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or not a.size:
        return True
    if a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
        return _core_fn("all_finite", a.dtype)(a)
    return bool(np.isfinite(a).all())


@functools.lru_cache(maxsize=None)
def _core_fn(name: str, dtype: np.dtype):
    return getattr(core, f"{name}_{'f32' if dtype == np.float32 else 'f64'}")


def _resolve(name: str, value, table: dict) -> int:
    if not isinstance(value, str) or value.lower() not in table:
        raise ValueError(
            f"Argument `{name}` must be one of {sorted(table)}. Received: {name}={value!r}"
        )
    return table[value.lower()]


def pack_lstm_weights(kernel, recurrent_kernel, bias=None) -> PackedLSTMWeights:
    """Copies and packs an LSTM's weights once, for many calls of :func:`lstm_forward` with
    ``training=False`` (``lstm_forward(x, packed)``); the checks for shape, dtype and finite
    values run here once instead of at every call.

    Args:
        kernel: (D, 4H); recurrent_kernel: (H, 4H); bias: (4H,) or None — float32 or float64.
    """
    recurrent_kernel = _recurrent_kernel(recurrent_kernel, None, check_finite=True)
    dt, H = recurrent_kernel.dtype, recurrent_kernel.shape[0]
    kernel = _array("kernel", kernel, dt, ndim=2)
    if kernel.shape[0] == 0 or kernel.shape[1] != 4 * H:
        raise ValueError(f"`kernel` must have shape (features, {4 * H}) for {H} units; got {_shape(kernel)}")
    if bias is not None:
        bias = _array("bias", bias, dt, shape=(4 * H,))
    return PackedLSTMWeights(_core_fn("pack_lstm_weights", dt)(kernel, recurrent_kernel, bias), dt)


def lstm_forward(
    x,
    kernel,
    recurrent_kernel=None,
    bias=None,
    *,
    h0=None,
    c0=None,
    mask=None,
    input_dropout_mask=None,
    recurrent_dropout_mask=None,
    activation="tanh",
    recurrent_activation="sigmoid",
    go_backwards=False,
    return_sequences=True,
    zero_output_for_mask=False,
    training=False,
    check_finite=True,
    naive=False,
    timesteps=None,
    input_gradient=True,
) -> LSTMForward:
    """Runs an LSTM over whole sequences.

    Args:
        x: (B, T, D) float32 or float64, C-contiguous; or (B, D) with ``timesteps=T``: the
            same input at every step (what ``RepeatVector`` feeds a decoder), projected once
            instead of T times; :func:`lstm_backward` then returns dx (B, D) = Σ_t ∂L/∂x_t.
        kernel: (D, 4H); recurrent_kernel: (H, 4H); bias: (4H,) or None. Or ``kernel`` a
            :class:`PackedLSTMWeights` (from :func:`pack_lstm_weights`), which holds all three:
            recurrent_kernel and bias are then left out.
        h0, c0: (B, H) initial state, or None for zeros.
        mask: (B, T) bool (or 0/1 integers); a masked step carries h and c through unchanged
            and repeats the previous step's output: zeros before the row's first real step,
            as Keras's TensorFlow and torch backends do (always zeros with
            ``zero_output_for_mask``, as Keras's Bidirectional asks).
        input_dropout_mask: (B, D) multiplier of every x_t (0 or 1/(1-rate)), or None.
        recurrent_dropout_mask: (B, H) multiplier of h_{t-1} in the recurrent product, or None.
        activation: 'tanh' | 'relu' | 'sigmoid' | 'linear' (φ).
        recurrent_activation: 'sigmoid' | 'hard_sigmoid' (σ, Keras 3's clip(x/6 + 1/2, 0, 1)).
        go_backwards: process t = T-1, ..., 0; outputs stay in processing order (Keras).
        return_sequences: outputs of every step (B, T, H), else of the last (B, H).
        training: keep a cache for :func:`lstm_backward`.
        check_finite: reject NaN/inf in the inputs (one pass over x and the other arrays;
            kernel and recurrent_kernel are tested while the kernel packs them).
        naive: run the slow reference implementation instead (for testing).
        timesteps: T for a 2-D, time-constant ``x``; None (default) for a 3-D ``x``.
        input_gradient: with ``training``, whether the backward will be asked for dx: False
            (a model's first layer, fed with data) skips keeping the kernel's transpose for
            dx = dZ·Wᵀ; :func:`lstm_backward` then computes dx only when given ``kernel``.

    A one-hot ``x`` (each step a unit vector or zeros, as characters or words are fed to a
    seq2seq model) with 16 features or more is recognised in one pass over it: the projection
    then takes each step's row of ``kernel`` instead of a (B·T, D)·(D, 4H) product, and the
    backward adds the steps' gradients into those rows (``cache.one_hot_input``).

    Returns:
        ``LSTMForward(outputs, h, c, cache)``.
    """
    if timesteps is None:
        x = _array("x", x, ndim=3, check_finite=check_finite)
        B, T, D = x.shape
    else:
        if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) or timesteps < 1:
            raise ValueError(f"Argument `timesteps` must be a positive integer or None. Received: {timesteps!r}")
        x = _array("x", x, ndim=2, check_finite=check_finite)
        (B, D), T = x.shape, int(timesteps)
    dt = x.dtype
    if B == 0 or T == 0 or D == 0:
        raise ValueError(
            f"`x` must have at least one sample, one time step and one feature; got shape {_shape(x)}"
        )
    packed = None
    if isinstance(kernel, PackedLSTMWeights):
        if recurrent_kernel is not None or bias is not None:
            raise TypeError("packed weights hold `recurrent_kernel` and `bias` too: leave them out "
                            "(lstm_forward(x, packed, ...))")
        packed = kernel
        if packed.dtype != dt:
            raise TypeError(f"`x` must have dtype {packed.dtype.name} like the packed weights; got {dt}")
        if packed.features != D:
            raise ValueError(f"`x` has {D} features but the packed weights were built for "
                             f"{packed.features}: expected x of shape ({B}, {T}, {packed.features})")
        # Checked when packed, and read-only since.
        kernel, recurrent_kernel, bias = packed.kernel, packed.recurrent_kernel, packed.bias
        weights_check = False
    elif recurrent_kernel is None:
        raise TypeError("lstm_forward() needs `recurrent_kernel` (units, 4*units), or packed "
                        "weights from pack_lstm_weights() in place of `kernel`")
    else:
        weights_check = check_finite
    # The kernels test kernel and recurrent_kernel for NaN and inf while packing them, which
    # reads every value anyway (the naive reference packs nothing: checked here for it).
    recurrent_kernel = _recurrent_kernel(recurrent_kernel, dt, check_finite=weights_check and naive)
    H = recurrent_kernel.shape[0]
    if not isinstance(kernel, np.ndarray) or kernel.ndim != 2 or kernel.shape[0] != D:
        got = _shape(kernel) if isinstance(kernel, np.ndarray) else type(kernel).__name__
        if isinstance(kernel, np.ndarray) and kernel.ndim == 2 and kernel.shape[1] == 4 * H:
            raise ValueError(
                f"`x` has {D} features but `kernel` was built for {kernel.shape[0]}: "
                f"expected kernel of shape ({D}, {4 * H}), got {got}"
            )
    kernel = _array("kernel", kernel, dt, shape=(D, 4 * H), check_finite=weights_check and naive)
    if bias is not None:
        bias = _array("bias", bias, dt, shape=(4 * H,), check_finite=weights_check)
    if h0 is not None:
        h0 = _array("h0", h0, dt, shape=(B, H), check_finite=check_finite)
    if c0 is not None:
        c0 = _array("c0", c0, dt, shape=(B, H), check_finite=check_finite)
    if input_dropout_mask is not None:
        input_dropout_mask = _array("input_dropout_mask", input_dropout_mask, dt, shape=(B, D),
                                    check_finite=check_finite)
    if recurrent_dropout_mask is not None:
        recurrent_dropout_mask = _array("recurrent_dropout_mask", recurrent_dropout_mask, dt,
                                        shape=(B, H), check_finite=check_finite)
    if mask is not None:
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"`mask` must be a numpy.ndarray of bool; got {type(mask).__name__}")
        if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
            raise TypeError(f"`mask` must be bool (or 0/1 integers); got dtype {mask.dtype}")
        if mask.shape != (B, T):
            raise ValueError(f"`mask` must have shape ({B}, {T}) like x's (batch, timesteps); got {_shape(mask)}")
        mask = np.ascontiguousarray(mask != 0).view(np.uint8)
    act = _resolve("activation", activation, ACTIVATIONS)
    ract = _resolve("recurrent_activation", recurrent_activation, RECURRENT_ACTIVATIONS)
    need = dt.itemsize * (B * T * (2 * D + 7 * H) + (D + H) * 8 * H)
    have = physical_memory()
    if need > min(_MAX_BYTES, have):
        raise MemoryError(
            f"LSTM of batch={B}, timesteps={T}, features={D}, units={H} would need about "
            f"{need / 2**30:,.1f} GiB of buffers, more than this machine's {have / 2**30:,.1f} GiB; "
            "split the batch or the sequence"
        )
    try:
        out, h, c, cache = _core_fn("lstm_forward", dt)(
            x, kernel, recurrent_kernel, bias, h0, c0, mask, input_dropout_mask,
            recurrent_dropout_mask, act, ract, bool(go_backwards), bool(return_sequences),
            bool(zero_output_for_mask), bool(training) and not naive, bool(naive),
            0 if timesteps is None else T, None if packed is None else packed._impl,
            bool(weights_check), bool(input_gradient),
        )
    except core.NonFiniteWeightsError as e:  # names the array: "kernel" or "recurrent_kernel"
        name = str(e)
        raise _non_finite(name, kernel if name == "kernel" else recurrent_kernel) from None
    if training and naive:
        raise ValueError("the naive reference path does not keep a cache: use training=False")
    return LSTMForward(out, h, c, LSTMCache(cache, dt) if cache is not None else None)


def lstm_backward(cache: LSTMCache, d_outputs=None, d_h=None, d_c=None, *,
                  input_gradient=True, initial_state_gradient=True, check_finite=True, out=None,
                  kernel=None) -> LSTMGradients:
    """Backward through time for one :func:`lstm_forward` call made with ``training=True``.

    Args:
        cache: the ``cache`` that call returned.
        d_outputs: gradient of the loss w.r.t. ``outputs`` (same shape), or None for zeros.
        d_h, d_c: (B, H) gradients w.r.t. the final states, or None.
        input_gradient: compute dx. Pass False when x is data that needs no gradient (the
            first layer of a model): dx = dZ·Wᵀ is then skipped, a quarter of the backward's
            products when D = H, and ``dx`` is None.
        initial_state_gradient: compute d_h0 and d_c0. Pass False when the initial state is
            no variable (zeros, or a stateful layer's carried state): d_h0 = dz_0·Uᵀ, one
            step's product, is then skipped, and both are None.
        check_finite: reject NaN/inf in the incoming gradients (a training loop that handles
            divergence itself passes False).
        out: None, or (d_kernel, d_recurrent_kernel, d_bias) C-contiguous arrays of the
            forward's dtype and the weights' shapes (d_bias None without a bias) that receive
            the weight gradients, which are then returned in them (a model's gradient buffer,
            written without a copy).
        kernel: the forward's kernel (D, 4H), needed for dx only after a forward told
            ``input_gradient=False`` (which kept no transpose of it); ignored otherwise.

    Returns:
        ``LSTMGradients(dx, d_kernel, d_recurrent_kernel, d_bias, d_h0, d_c0)``; dx is (B, T, D),
        or (B, D) = Σ_t ∂L/∂x_t after a forward with a time-constant x (``timesteps=``).
    """
    if not isinstance(cache, LSTMCache):
        raise TypeError(
            "`cache` must be the LSTMCache returned by lstm_forward(..., training=True); "
            f"got {type(cache).__name__}"
        )
    dt, B, T, H = cache.dtype, cache.batch, cache.timesteps, cache.units
    if d_outputs is not None:
        shape = (B, T, H) if cache.return_sequences else (B, H)
        d_outputs = _array("d_outputs", d_outputs, dt, shape=shape, check_finite=check_finite)
    if d_h is not None:
        d_h = _array("d_h", d_h, dt, shape=(B, H), check_finite=check_finite)
    if d_c is not None:
        d_c = _array("d_c", d_c, dt, shape=(B, H), check_finite=check_finite)
    outs = (None, None, None)
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise TypeError("`out` must be (d_kernel, d_recurrent_kernel, d_bias) arrays, d_bias None without a bias")
        D = cache.features
        shapes = ((D, 4 * H), (H, 4 * H), (4 * H,))
        outs = tuple(None if a is None else _array(n, a, dt, shape=s, check_finite=False)
                     for a, n, s in zip(out, ("out d_kernel", "out d_recurrent_kernel", "out d_bias"), shapes))
        if any(not a.flags.writeable for a in outs if a is not None):
            raise ValueError("`out` arrays must be writeable")
    if kernel is not None:
        kernel = _array("kernel", kernel, dt, shape=(cache.features, 4 * H), check_finite=False)
    return LSTMGradients(*_core_fn("lstm_backward", dt)(cache._impl, d_outputs, d_h, d_c,
                                                        bool(input_gradient), bool(initial_state_gradient), *outs,
                                                        kernel))


def adam_update(param, grad, m, v, *, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step):
    """One Adam step in place, Keras's formula, over flat 1-D buffers of one dtype::

        α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ);  m += (g−m)(1−β₁);  v += (g²−v)(1−β₂);  p −= α_t·m/(√v+ε)
    """
    param = _array("param", param, ndim=1, check_finite=False)
    n = param.shape
    grad = _array("grad", grad, param.dtype, shape=n, check_finite=False)
    m = _array("m", m, param.dtype, shape=n, check_finite=False)
    v = _array("v", v, param.dtype, shape=n, check_finite=False)
    if not param.flags.writeable or not m.flags.writeable or not v.flags.writeable:
        raise ValueError("`param`, `m` and `v` must be writeable: they are updated in place")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"Argument `step` must be an integer >= 1 (the 1-based iteration). Received: step={step!r}")
    for name, value, ok, want in (
            ("learning_rate", learning_rate, lambda a: a >= 0, "a finite number >= 0"),
            ("beta_1", beta_1, lambda a: 0 <= a < 1, "in [0, 1)"),
            ("beta_2", beta_2, lambda a: 0 <= a < 1, "in [0, 1)"),
            ("epsilon", epsilon, lambda a: a >= 0, "a finite number >= 0")):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value) or not ok(value):
            raise ValueError(f"Argument `{name}` must be {want}. Received: {name}={value!r}")
    if epsilon == 0 and np.any((grad == 0) & (v == 0)):
        raise ValueError("Argument `epsilon` = 0 with a zero gradient where `v` is 0 would write 0/0 = NaN into "
                         "`param`; use epsilon > 0")
    step = int(step)
    _core_fn("adam_update", param.dtype)(
        param, grad, m, v, float(learning_rate), float(beta_1), float(beta_2), float(epsilon), step
    )


def _ids(name: str, ids, vocabulary: int) -> np.ndarray:
    """Integer ids as C-contiguous int64, each in [0, vocabulary)."""
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray of integer ids; got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integer ids; got dtype {ids.dtype}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= vocabulary:
            bad = lo if lo < 0 else hi
            raise ValueError(f"`{name}` must be in [0, {vocabulary}) (input_dim={vocabulary}); got {bad}")
    return ids


def embedding_forward(ids, embeddings) -> np.ndarray:
    """Row gather: ``out[..., :] = embeddings[ids[...], :]``; ids of any shape, out ids.shape + (E,)."""
    embeddings = _array("embeddings", embeddings, ndim=2, check_finite=False)
    ids = _ids("ids", ids, embeddings.shape[0])
    return _core_fn("embedding_forward", embeddings.dtype)(ids, embeddings)


def embedding_backward(ids, d_out, grad, *, clear_ids=None) -> None:
    """Scatter-add in place: ``grad[ids[n]] += d_out[n]`` in the order of n (deterministic).

    ``clear_ids`` (optional) names rows zeroed first, for instance the previous step's ids, so
    that a reused gradient buffer is cleared in O(touched rows) instead of O(vocabulary).
    """
    grad = _array("grad", grad, ndim=2, check_finite=False)
    V, E = grad.shape
    ids = _ids("ids", ids, V)
    d_out = _array("d_out", d_out, grad.dtype, check_finite=False)
    if d_out.shape != ids.shape + (E,):
        want = "(" + ", ".join(str(s) for s in ids.shape + (E,)) + ")"
        raise ValueError(f"`d_out` must have shape {want} (ids.shape + (output_dim,)); got {_shape(d_out)}")
    if not grad.flags.writeable:
        raise ValueError("`grad` must be writeable: it is updated in place")
    if clear_ids is not None:
        clear_ids = _ids("clear_ids", clear_ids, V)
    _core_fn("embedding_backward", grad.dtype)(ids, d_out, grad, clear_ids)


def matmul(a, b, *, bias=None, out=None, transpose_a=False, transpose_b=False, accumulate=False) -> np.ndarray:
    """``out = op(a)·op(b) [+ bias] [+ out]`` on the kernels' threads (op(x) is x, or xᵀ where
    ``transpose_a`` / ``transpose_b`` say), 2-D C-contiguous float32 or float64 arrays.

    Dense's forward ``x·kernel + bias`` and backward ``xᵀ·∂z`` and ``∂z·kernelᵀ`` are calls of it.
    ``out`` (optional; M × N, not overlapping ``a`` or ``b``) receives the result, added to its
    contents with ``accumulate=True``. The order of every sum depends on the sizes only, so the
    result is the same for every thread count. Values are not checked for NaN.
    """
    a = _array("a", a, ndim=2, check_finite=False)
    b = _array("b", b, a.dtype, ndim=2, check_finite=False)
    m, k = a.shape[::-1] if transpose_a else a.shape
    kb, n = b.shape[::-1] if transpose_b else b.shape
    if k != kb:
        raise ValueError(f"matmul: op(a) is {m} x {k} and op(b) is {kb} x {n}; the inner sizes must agree")
    if bias is not None:
        bias = _array("bias", bias, a.dtype, shape=(n,), check_finite=False)
    if out is None:
        if accumulate:
            raise ValueError("matmul: `accumulate=True` adds to `out`, which must then be given")
        out = np.empty((m, n), a.dtype)
    else:
        out = _array("out", out, a.dtype, shape=(m, n), check_finite=False)
        if not out.flags.writeable:
            raise ValueError("`out` must be writeable")
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError("`out` must not overlap `a` or `b`")
    _core_fn("matmul", a.dtype)(a, b, bias, out, bool(transpose_a), bool(transpose_b), bool(accumulate))
    return out


def batched_matmul(a, b, *, transpose_a=False, transpose_b=False) -> np.ndarray:
    """``C[i] = op(a[i])·op(b[i])`` for every i of 3-D C-contiguous float32 or float64 arrays of
    one dtype (op(x) is x, or its last two axes swapped where ``transpose_a`` / ``transpose_b``
    say): attention's scores and context, sample by sample, on the kernels' threads. Each
    product's sums depend on the sizes alone (the same bits for every thread count, and in the
    C++ runtime). Values are not checked for NaN."""
    a = _array("a", a, ndim=3, check_finite=False)
    b = _array("b", b, a.dtype, ndim=3, check_finite=False)
    return _core_fn("batched_matmul", a.dtype)(a, b, bool(transpose_a), bool(transpose_b))


def _mask(name, mask, shape):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}; got {_shape(mask)}")
    return np.ascontiguousarray(mask, dtype=np.uint8)


def _attention_inputs(q, k, v, scale):
    """q, k, v checked as 3-D C-contiguous arrays of one float dtype, and the scale as one value of it."""
    q = _array("q", q, ndim=3, check_finite=False)
    k = _array("k", k, q.dtype, ndim=3, check_finite=False)
    v = _array("v", v, q.dtype, ndim=3, check_finite=False)
    if scale is not None:
        scale = _array("scale", np.reshape(scale, (1,)), q.dtype, check_finite=False)
    return q, k, v, scale


def dot_attention(q, k, v, *, scale=None, value_mask=None, causal=False, keep=None, query_mask=None,
                  keep_raw=False):
    """Luong's dot-product attention (Keras's ``Attention``, score_mode ``"dot"``) on the
    kernels' threads, sample by sample::

        R = Q·Kᵀ;  S = s·R;  S_ij − 10⁹ where hidden;  A = softmax_j(S);  A_d = A ⊙ keep;
        O = A_d·V, zero at hidden queries

    q (B, Tq, D), k (B, Tv, D), v (B, Tv, Dv): 3-D C-contiguous arrays of one float dtype;
    ``scale`` s: a one-value array or None; ``value_mask`` (B, Tv) and ``query_mask`` (B, Tq):
    truthy where visible, or None; ``causal``: hide k_j from q_i for j > i; ``keep``
    (B, Tq, Tv): dropout multipliers, or None. Returns (O, A, A_d or None, R or None; R with
    ``keep_raw``). The products and the softmax are those of :func:`batched_matmul` and
    :func:`softmax`, so the values are theirs, bit for bit. Values are not checked for NaN."""
    q, k, v, scale = _attention_inputs(q, k, v, scale)
    b, tq, tv = q.shape[0], q.shape[1], v.shape[1]
    if keep is not None:
        keep = _array("keep", keep, q.dtype, shape=(b, tq, tv), check_finite=False)
    return _core_fn("dot_attention_forward", q.dtype)(
        q, k, v, scale, _mask("value_mask", value_mask, (b, tv)), bool(causal), keep,
        _mask("query_mask", query_mask, (b, tq)), bool(keep_raw))


def dot_attention_backward(q, k, v, weights, d_out, *, scale=None, keep=None, dropped=None, raw=None,
                           query_mask=None, d_weights=None, separate_key=True):
    """The backward of :func:`dot_attention`: (dQ, dK or None, dV, ∂L/∂s or None) from
    ∂L/∂O (``d_out``; it may be a slice of a wider array's last axis) and ∂L/∂A_d
    (``d_weights``, or None)::

        dO' = ∂L/∂O, zero at hidden queries;  dV = A_dᵀ·dO';  dA = (dO'·Vᵀ + ∂L/∂A_d) ⊙ keep
        dS = A ⊙ (dA − Σ_j dA ⊙ A);  ∂L/∂s = Σ dS ⊙ R;  dQ = s·dS·K;  dK = s·dSᵀ·Q

    ``weights`` A, ``dropped`` A_d (with ``keep``) and ``raw`` R (with ``scale``) are the
    forward's. Without ``separate_key`` the key is the value: dK is added into dV."""
    q, k, v, scale = _attention_inputs(q, k, v, scale)
    b, tq, tv = q.shape[0], q.shape[1], v.shape[1]
    if not isinstance(d_out, np.ndarray) or d_out.dtype != q.dtype:
        got = f"dtype {d_out.dtype}" if isinstance(d_out, np.ndarray) else type(d_out).__name__
        raise TypeError(f"`d_out` must be a numpy.ndarray of dtype {q.dtype.name}; got {got}")
    if d_out.ndim != 3 or d_out.strides[2] != d_out.itemsize or d_out.strides[0] != tq * d_out.strides[1] \
            or d_out.strides[1] < d_out.shape[2] * d_out.itemsize:
        d_out = np.ascontiguousarray(d_out)  # rows a fixed stride apart are taken as they lie
    scores = (b, tq, tv)  # the shape of A, A_d, R, keep and ∂L/∂A_d
    weights = _array("weights", weights, q.dtype, shape=scores, check_finite=False)
    keep, dropped, raw = (None if a is None else _array(n, a, q.dtype, shape=scores, check_finite=False)
                          for a, n in ((keep, "keep"), (dropped, "dropped"), (raw, "raw")))
    if d_weights is not None:
        d_weights = _array("d_weights", np.ascontiguousarray(d_weights, dtype=q.dtype), q.dtype, shape=scores,
                           check_finite=False)
    grads = _core_fn("dot_attention_backward", q.dtype)(
        q, k, v, scale, keep, _mask("query_mask", query_mask, (b, tq)), weights, dropped, raw, d_out,
        d_weights, bool(separate_key))
    dq, dk, dv, d_scale = grads
    return dq, dk, dv, (None if d_scale is None else np.sum(d_scale))


# Codes of the element-wise functions `activation` computes.
ELEMENTWISE_ACTIVATIONS = {**ACTIVATIONS, "hard_sigmoid": 4}


def activation(x, name) -> np.ndarray:
    """``f(x)`` element-wise for f one of tanh, relu, sigmoid, linear, hard_sigmoid (Keras 3's
    clip(x/6 + 1/2, 0, 1)), on the kernels' threads: the vectorised functions of the LSTM's
    gates, which the C++ runtime uses as well, so that the two give the same bits. ``x``: a
    float32 or float64 array."""
    x = _array("x", x, check_finite=False)
    return _core_fn("activation", x.dtype)(x, _resolve("activation", name, ELEMENTWISE_ACTIVATIONS))


def crossentropy_on_softmax(p, targets, g, *, epsilon=1e-7, sparse=False):
    """Crossentropy of softmax probabilities ``p`` (..., n) and its gradient with respect to the
    softmax's logits, each row's scaled by ``g`` (...,): ``(values, grad)`` as Keras computes
    them on probabilities (cpp/softmax.h), with q = p / Σp clipped to [ε, 1 − ε]:

    - ``sparse``: integer labels (...,); value = −log q_y, grad = g·(q − onehot(y)) (0 where
      q_y was clipped);
    - otherwise one-hot (or smoothed) targets like ``p``; value = −Σ t log q, grad =
      g·(q·Σ_k t_k − t) over the classes not clipped.
    """
    p = _array("p", p, check_finite=False)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"`p` must have a last (class) axis of size >= 1; got shape {_shape(p)}")
    g = _array("g", g, p.dtype, shape=p.shape[:-1], check_finite=False)
    if sparse:
        targets = _ids("labels", targets, p.shape[-1])
        if targets.shape != p.shape[:-1]:
            raise ValueError(f"`labels` must have shape {tuple(p.shape[:-1])} (one per row of `p`); "
                             f"got {_shape(targets)}")
        return _core_fn("xent_softmax_sparse", p.dtype)(p, targets, g, float(epsilon))
    targets = _array("targets", np.ascontiguousarray(targets, p.dtype), p.dtype, shape=p.shape, check_finite=False)
    return _core_fn("xent_softmax_dense", p.dtype)(p, targets, g, float(epsilon))


def _dropout_rate(rate):
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`rate` must be in [0, 1); got {rate!r}")
    return rate


def concatenate(xs, axis=-1) -> np.ndarray:
    """``numpy.concatenate(xs, axis)`` of C-contiguous arrays of one dtype, the rows copied on
    the kernels' threads for float32 and float64 (by numpy otherwise)."""
    xs = list(xs)
    if not xs:
        raise ValueError("`xs` must hold at least one array")
    first = xs[0]
    n = first.ndim if isinstance(first, np.ndarray) else 0
    a = axis + n if isinstance(axis, (int, np.integer)) and axis < 0 else axis
    # The kernel's case: non-empty C-contiguous float arrays of one dtype that differ only along
    # a valid axis; numpy does (or refuses) everything else.
    if not (n and isinstance(a, (int, np.integer)) and 0 <= a < n and first.dtype in (np.float32, np.float64)
            and all(isinstance(x, np.ndarray) and x.dtype == first.dtype and x.flags.c_contiguous and x.size
                    and x.shape[:a] == first.shape[:a] and x.shape[a + 1:] == first.shape[a + 1:] for x in xs)):
        return np.concatenate(xs, axis=axis)
    shape = first.shape[:a] + (sum(x.shape[a] for x in xs),) + first.shape[a + 1:]
    outer = math.prod(first.shape[:a])
    return _core_fn("concat", first.dtype)(xs, outer).reshape(shape)  # y = [x_0 | x_1 | …] along axis


def _rows(a):
    """(rows, row stride in values) of an array whose last axis is contiguous and whose
    leading axes step through rows evenly (a C-contiguous array, or a slice of its last
    axis), else None."""
    if a.ndim < 2 or a.strides[-1] != a.itemsize or min(a.strides) < 0 or a.strides[-2] % a.itemsize:
        return None
    for i in range(a.ndim - 2):
        if a.strides[i] != a.shape[i + 1] * a.strides[i + 1]:
            return None
    return math.prod(a.shape[:-1]), a.strides[-2] // a.itemsize


def add(a, b) -> np.ndarray:
    """``a + b`` as a new C-contiguous array: on the kernels' threads for float32 and float64
    arrays of one shape and dtype whose rows each lie contiguously (views such as a slice of
    the last axis included), by numpy otherwise."""
    same = (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64) and a.size > 0)
    ra, rb = (_rows(a), _rows(b)) if same else (None, None)
    if ra is None or rb is None:
        return np.ascontiguousarray(a + b)
    return _core_fn("add_rows", a.dtype)(a, ra[1], b, rb[1], ra[0], a.shape[-1]).reshape(a.shape)  # y = a + b


def column_sums(a, out=None) -> np.ndarray:
    """``a.sum(axis=tuple(range(a.ndim - 1)))``: the sum over every axis but the last of a
    C-contiguous float32 or float64 array (a bias's gradient, Σ ∂L/∂z over the batch and time),
    written to ``out`` (1-D, C-contiguous, of a's dtype) when given. The rows are added in
    blocks of fixed size on the kernels' threads, so the bits do not depend on the thread
    count. Values are not checked for NaN."""
    a = _array("a", a, check_finite=False)
    if a.ndim < 1 or a.shape[-1] < 1:
        raise ValueError(f"`a` must have a last axis of size >= 1; got shape {_shape(a)}")
    if out is None:
        out = np.empty(a.shape[-1], a.dtype)
    else:
        out = _array("out", out, a.dtype, shape=(a.shape[-1],), check_finite=False)
        if not out.flags.writeable:
            raise ValueError("`out` must be writeable")
    _core_fn("column_sums", a.dtype)(a, out)  # y_c = Σ_r a_rc
    return out


def dropout(x, rate, key) -> np.ndarray:
    """Inverted dropout of a C-contiguous float32 or float64 array: ``x · keep / (1 − rate)``,
    element i kept when its draw ``u_i = hash(key, i) / 2³²`` is at least ``rate``
    (cpp/dropout.h). The draws depend on ``key`` (an integer in [0, 2⁶⁴)) and the index alone,
    so the same call on ∂L/∂y gives the backward ∂L/∂x, and no thread count changes a bit."""
    x = _array("x", x, check_finite=False)
    return _core_fn("dropout", x.dtype)(x, _dropout_rate(rate), int(key))


def dropout_mask(n, rate, key, dtype=np.float32) -> np.ndarray:
    """``keep / (1 − rate)`` for elements 0..n−1: the mask :func:`dropout` multiplies by."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"`dtype` must be float32 or float64; got {dt}")
    return _core_fn("dropout_mask", dt)(int(n), _dropout_rate(rate), int(key))


def softmax(x) -> np.ndarray:
    """``exp(x − max) / Σ exp(x − max)`` over the last axis of a C-contiguous float32 or float64
    array, rows on the kernels' threads (the same bits for every thread count)."""
    x = _array("x", x, check_finite=False)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"`x` must have a last axis of size >= 1; got shape {_shape(x)}")
    return _core_fn("softmax", x.dtype)(x)
