"""Attention over a sequence, as Keras defines it: `Attention` (Luong) and `AdditiveAttention`
(Bahdanau). Called on [query, value] or [query, value, key] (key = value when not given).

Shapes: query Q (B, Tq, D), value V (B, Tv, Dv), key K (B, Tv, D); output O (B, Tq, Dv); the
attention weights A (B, Tq, Tv). Every product is one batched matrix product over all steps:

    scores      S_ij = s · q_i·k_j                         Attention, score_mode="dot"
                S_ij = c · Σ_d tanh(s · (q_id + k_jd))     Attention, score_mode="concat"
                S_ij = Σ_d s_d · tanh(q_id + k_jd)         AdditiveAttention
                (s = 1, c = 1 without use_scale; s, c learned scalars, s_d a learned vector)
    masking     S_ij − 10⁹ where the value mask or the causal mask (j > i) hides k_j
    weights     A = softmax_j(S)            (dropout on A in training)
    output      O = A·V, zero at the steps the query mask hides

The dot score of float arrays runs forward and backward as one kernel call each
(ops.dot_attention, cpp/attention.h: sample by sample on the kernels' threads, and the C++
runtime's attention); the other scores are numpy expressions of the equations.

Backward, with dO given (and dA, when the weights are a model output too):
    dO' = dO where the query is unmasked, else 0
    dV = Aᵀ·dO'                   dA += dO'·Vᵀ
    dS = A ⊙ (dA − Σ_j dA ⊙ A)    (softmax)
    dot:      dQ = s·dS·K,  dK = s·dSᵀ·Q,  ds = Σ dS ⊙ Q·Kᵀ
    tanh sum: with t = tanh(u), u the tanh argument of S:  du = (∂S/∂t · dS) ⊙ (1 − t²), and
              dQ, dK the sums of du over the other sequence (times s in "concat").
"""

import numpy as np

from .. import _random
from .. import activations
from .. import graph
from .. import ops
from .layer import _check_rate
from .merging import Merge

_MASKED = 1.0e9  # Keras's large negative added to hidden scores


def _bmm(a, b, transpose_a=False, transpose_b=False):
    """op(a)·op(b) sample by sample (op swaps the last two axes where asked): on the kernels
    (ops.batched_matmul, which the C++ runtime shares) for 3-D float arrays of one dtype, else
    numpy."""
    if a.ndim == 3 and b.ndim == 3 and a.dtype == b.dtype and a.dtype in (np.float32, np.float64):
        return ops.batched_matmul(np.ascontiguousarray(a), np.ascontiguousarray(b),
                                  transpose_a=transpose_a, transpose_b=transpose_b)
    return np.matmul(np.swapaxes(a, 1, 2) if transpose_a else a, np.swapaxes(b, 1, 2) if transpose_b else b)


class Attention(Merge):
    """Keras's `Attention(use_scale=False, score_mode="dot", dropout=0.0, seed=None)`: Luong-style
    dot-product attention. Call options: `return_attention_scores`, `use_causal_mask`."""

    _min_inputs, _max_inputs = 2, 3
    graph_multi_output = True

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError("Invalid value for argument score_mode. Expected one of {'dot', 'concat'}. "
                             f"Received: score_mode={score_mode}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.dropout = _check_rate(dropout, "dropout")
        self.seed = seed
        self._gen = _random.SeedGenerator(seed)
        self.scale = self.concat_score_weight = None
        self._dot_cache = None  # what the dot score kernel's backward needs (_dot_forward)
        self._options = {}

    # ----- shapes and options -----
    def _scale_shape(self, dim):
        return ()

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        self.compute_output_shape(shapes)
        if self.use_scale:
            init = "glorot_uniform" if self._scale_shape(1) else "ones"
            self.scale = self.add_weight(self._scale_shape(shapes[0][-1]), init, "scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight((), "ones", "concat_score_weight")
        self._build_input_shape = shapes
        self.built = True

    def compute_output_shape(self, input_shape, return_attention_scores=False, **_):
        shapes = self._shapes(input_shape)
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) > 2 else v
        if len(q) != 3 or len(v) != 3 or len(k) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes 3-D query, value and key (batch, "
                             f"steps, features). Received: input_shape={shapes}")
        if q[-1] is not None and k[-1] is not None and q[-1] != k[-1]:
            raise ValueError(f"{type(self).__name__} {self.name!r}: query and key must have the same number of "
                             f"features. Received: query {q}, key {k}")
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError(f"{type(self).__name__} {self.name!r}: value and key must have the same number of "
                             f"steps. Received: value {v}, key {k}")
        out = (q[0], q[1], v[-1])
        return (out, (q[0], q[1], k[1])) if return_attention_scores else out

    def graph_options(self, kwargs):
        options = {"return_attention_scores": bool(kwargs.pop("return_attention_scores", False)),
                   "use_causal_mask": bool(kwargs.pop("use_causal_mask", False))}
        kwargs.pop("training", None)
        return options

    def graph_output_has_mask(self, input_has_masks):
        return input_has_masks[0]

    def graph_compute_mask(self, inputs, masks, return_attention_scores=False, **_):
        out = masks[0]
        return [out, None] if return_attention_scores else out

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def graph_forward(self, inputs, masks, training, **options):
        out = self.forward([self.receive(x) for x in inputs], masks, training, **options)
        return out if isinstance(out, tuple) else (out,)

    def graph_backward(self, d_outputs):
        return self.backward(d_outputs[0], d_outputs[1] if len(d_outputs) > 1 else None)

    def __call__(self, inputs, training=False, mask=None, return_attention_scores=False, use_causal_mask=False,
                 **kwargs):
        """[query, value(, key)] arrays -> the output (and the weights with
        return_attention_scores); on Input tensors, the output tensor(s) of a functional model."""
        options = dict(return_attention_scores=return_attention_scores, use_causal_mask=use_causal_mask)
        if graph.is_symbolic(inputs):
            if mask is not None:
                kwargs["mask"] = mask
            return self._symbolic_call(inputs, dict(kwargs, **options))
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{type(self).__name__} layer must be called on a list of inputs, namely "
                             f"[query, value] or [query, value, key]. Received: inputs={inputs!r}.")
        xs = [self._cast_input(x) for x in inputs]
        self._maybe_build([x.shape for x in xs])
        masks = [None] * len(xs) if mask is None else [None if m is None else np.asarray(m, bool) for m in mask]
        return self.forward(xs, masks, bool(training), **options)

    # ----- computation -----
    def _scores(self, q, k):
        """S (B, Tq, Tv) from Q and K; keeps what the backward needs."""
        if self.score_mode == "dot":
            raw = _bmm(q, k, transpose_b=True)  # q_i·k_j
            self._cache_scores = (q, k, raw)
            return raw * self.scale.value if self.scale is not None else raw
        base = q[:, :, None, :] + k[:, None, :, :]  # q_id + k_jd  (B, Tq, Tv, D)
        t = np.tanh(base * self.scale.value if self.scale is not None else base)  # t = tanh(u)
        total = t.sum(axis=-1)
        self._cache_scores = (base, t, total)
        return self.concat_score_weight.value * total

    def _on_kernels(self, q, k, v):
        """Whether the dot score runs as one kernel (ops.dot_attention): 3-D float arrays of one dtype."""
        return (type(self)._scores is Attention._scores and self.score_mode == "dot"
                and all(isinstance(x, np.ndarray) and x.ndim == 3 for x in (q, k, v))
                and q.dtype in (np.float32, np.float64) and q.dtype == k.dtype == v.dtype)

    def forward(self, xs, masks=None, training=False, return_attention_scores=False, use_causal_mask=False):
        q, v = xs[0], xs[1]
        k = xs[2] if len(xs) > 2 else v
        masks = masks or [None] * len(xs)
        q_mask, v_mask = masks[0], masks[1]
        if self._on_kernels(q, k, v):
            return self._dot_forward(q, k, v, len(xs), q_mask, v_mask, training, return_attention_scores,
                                     use_causal_mask)
        scores = self._scores(q, k)
        hide = None  # positions of S that are hidden
        if v_mask is not None:
            hide = ~np.asarray(v_mask, bool)[:, None, :]
        if use_causal_mask:
            tq, tv = scores.shape[1:]
            causal = np.arange(tv)[None, None, :] > np.arange(tq)[None, :, None]
            hide = causal if hide is None else (hide | causal)
        if hide is not None:
            scores = np.where(hide, scores - scores.dtype.type(_MASKED), scores)
        a = activations.softmax(scores)  # A = softmax_j(S)
        keep = None
        if training and self.dropout > 0:
            keep = self._dropout_keep(a.shape, a.dtype)
            a_d = a * keep
        else:
            a_d = a
        out = _bmm(a_d, v)  # O = A·V
        qm = None
        if q_mask is not None:
            qm = np.asarray(q_mask, bool)[:, :, None]
            out = np.where(qm, out, out.dtype.type(0))
        if training:
            self._cache, self._dot_cache = (v, a, keep, a_d, qm, len(xs)), None
        return (out, a_d) if return_attention_scores else out

    def _dropout_keep(self, shape, dtype):
        """Dropout's multipliers of A: 0, or 1/(1 − rate) for the weights kept."""
        return (self._gen.rng.random(shape) >= self.dropout).astype(dtype) / np.dtype(dtype).type(1 - self.dropout)

    def _dot_forward(self, q, k, v, n_inputs, q_mask, v_mask, training, return_attention_scores, use_causal_mask):
        """The dot score's forward in one kernel call (the equations at the top)."""
        q, k, v = (np.ascontiguousarray(x) for x in (q, k, v))
        keep = None
        if training and self.dropout > 0:
            keep = self._dropout_keep((q.shape[0], q.shape[1], v.shape[1]), q.dtype)
        scale = self.scale.value if self.scale is not None else None
        out, a, a_d, raw = ops.dot_attention(q, k, v, scale=scale, value_mask=v_mask, causal=use_causal_mask,
                                             keep=keep, query_mask=q_mask, keep_raw=training and scale is not None)
        a_d = a if a_d is None else a_d
        if training:
            self._cache, self._dot_cache = None, (q, k, v, a, keep, a_d, raw, q_mask, n_inputs)
        return (out, a_d) if return_attention_scores else out

    def _dot_backward(self, d_out, d_weights):
        q, k, v, a, keep, a_d, raw, q_mask, n_inputs = self._dot_cache
        self._dot_cache = None
        if d_out is None:  # only the weights reach the loss
            d_out = np.zeros(a.shape[:2] + v.shape[2:], dtype=v.dtype)
        elif d_out.dtype != v.dtype:
            d_out = d_out.astype(v.dtype)
        dq, dk, dv, d_scale = ops.dot_attention_backward(
            q, k, v, a, d_out, scale=None if self.scale is None else self.scale.value, keep=keep,
            dropped=a_d if keep is not None else None, raw=raw, query_mask=q_mask, d_weights=d_weights,
            separate_key=n_inputs > 2)
        if d_scale is not None:
            np.copyto(self.scale._ensure_grad(), d_scale)  # ∂L/∂s = Σ dS ⊙ Q·Kᵀ
        return [dq, dv, dk] if n_inputs > 2 else [dq, dv]  # key = value: dK is in dV

    def backward(self, d_out, d_weights=None):
        if self._dot_cache is not None:  # the forward ran the dot score's kernel
            return self._dot_backward(d_out, d_weights)
        v, a, keep, a_d, qm, n_inputs = self._cache
        self._cache = None
        if d_out is None:  # only the weights reach the loss
            d_out = np.zeros(a_d.shape[:2] + v.shape[2:], dtype=v.dtype)
        if qm is not None:
            d_out = np.where(qm, d_out, d_out.dtype.type(0))  # dO'
        dv = _bmm(a_d, d_out, transpose_a=True)  # dV = Aᵀ·dO'
        da = _bmm(d_out, v, transpose_b=True)  # dA = dO'·Vᵀ
        if d_weights is not None:
            da = da + d_weights
        if keep is not None:
            da = da * keep
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))  # softmax: dS = A ⊙ (dA − Σ dA ⊙ A)
        dq, dk = self._scores_backward(ds)
        if n_inputs > 2:
            return [dq, dv, dk]
        return [dq, dv + dk]  # key = value: both paths

    def _scores_backward(self, ds):
        if self.score_mode == "dot":
            q, k, raw = self._cache_scores
            self._cache_scores = None
            if self.scale is not None:
                s = self.scale.value
                np.copyto(self.scale._ensure_grad(), np.sum(ds * raw))  # ∂L/∂s = Σ dS ⊙ Q·Kᵀ
                ds = ds * s
            return _bmm(ds, k), _bmm(ds, q, transpose_a=True)  # dQ = dS·K, dK = dSᵀ·Q
        base, t, total = self._cache_scores
        self._cache_scores = None
        c = self.concat_score_weight.value
        np.copyto(self.concat_score_weight._ensure_grad(), np.sum(ds * total))  # ∂L/∂c = Σ dS ⊙ Σ_d t
        du = (c * ds)[..., None] * (1 - t * t)  # through t = tanh(u)
        if self.scale is not None:
            s = self.scale.value
            np.copyto(self.scale._ensure_grad(), np.sum(du * base))  # u = s·(q_i + k_j)
            du = du * s
        return du.sum(axis=2), du.sum(axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(use_scale=self.use_scale, score_mode=self.score_mode, dropout=self.dropout, seed=self.seed)
        return config


class AdditiveAttention(Attention):
    """Keras's `AdditiveAttention(use_scale=True, dropout=0.0)`: Bahdanau-style attention,
    S_ij = Σ_d s_d · tanh(q_id + k_jd) with a learned s (D,)."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def _scale_shape(self, dim):
        return (dim,)

    def _scores(self, q, k):
        t = np.tanh(q[:, :, None, :] + k[:, None, :, :])  # tanh(q_id + k_jd)  (B, Tq, Tv, D)
        self._cache_scores = t
        if self.scale is not None:
            return np.matmul(t, self.scale.value)  # Σ_d s_d t_d
        return t.sum(axis=-1)

    def _scores_backward(self, ds):
        t = self._cache_scores
        self._cache_scores = None
        if self.scale is not None:
            s = self.scale.value
            np.copyto(self.scale._ensure_grad(), np.einsum("bij,bijd->d", ds, t))  # ∂L/∂s_d = Σ dS t_d
            du = ds[..., None] * s * (1 - t * t)
        else:
            du = ds[..., None] * (1 - t * t)
        return du.sum(axis=2), du.sum(axis=1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
