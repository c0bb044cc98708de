"""MultiHeadAttention, as Keras defines it: N heads of scaled dot-product attention over the
steps of 3-D inputs, each with its own projections, joined by one output projection.

Called as `mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
use_causal_mask=False)` (key = value when not given). Shapes: query X_q (B, T, D_q), value X_v
(B, S, D_v), key X_k (B, S, D_k); per head n: Q_n (B, T, d_k), K_n (B, S, d_k), V_n (B, S, d_v);
output O (B, T, D_out) with D_out = D_q unless `output_shape` says otherwise.

    projections  Q_n = X_q·Wq_n + bq_n    K_n = X_k·Wk_n + bk_n    V_n = X_v·Wv_n + bv_n
    scores       S_n = (Q_n / √d_k)·K_nᵀ                                   (B, N, T, S)
    mask         M = query mask_i ∧ value mask_j ∧ key mask_j ∧ attention_mask_ij
                     ∧ (j ≤ i with use_causal_mask) ∧ (|i − j| < w with sliding_window=w)
    weights      A_n = softmax_j(S_n where M, else −10⁹), then 0 where ¬M   (dropout on A in training)
    heads        C_n = A_n·V_n                                              (B, T, d_v)
    output       O = Σ_n C_n·Wo_n + bo

Backward, with dO given (and dA when the weights are a model output too):
    dWo_n = Σ C_nᵀ·dO     dbo = Σ dO     dC_n = dO·Wo_nᵀ
    dV_n = A_nᵀ·dC_n      dA_n = dC_n·V_nᵀ (+ dA), 0 where ¬M
    dS_n = A_n ⊙ (dA_n − Σ_j dA_n ⊙ A_n)                                    (softmax)
    dQ_n = dS_n·K_n / √d_k      dK_n = dS_nᵀ·Q_n / √d_k
    then through each projection as through a Dense: dW = Xᵀ·dY, db = Σ dY, dX = dY·Wᵀ.

Every product runs over all steps at once (batched over B·N); nothing loops over time.
"""

import math

import numpy as np

from .. import _random
from .. import graph
from .. import initializers
from .dense import _set_weight_options, _weight_options_config, column_sums, product
from .layer import Layer, _check_rate, _fmt_shape

_MASKED = 1.0e9  # Keras's large negative for hidden scores


class MultiHeadAttention(Layer):
    """Keras's `MultiHeadAttention(num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
    output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
    bias_initializer="zeros", ...)` on 3-D inputs (attention over the steps axis). The output
    carries the query's mask. Weights, in Keras's order: query, key, value and output kernels
    (D, N, d) / (N, d_v, D_out), each followed by its bias."""

    graph_multi_output = True

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 use_gate=False, seed=None, **kwargs):
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Received an invalid value for argument `{name}`, expected a positive "
                                 f"integer. Received: {name}={value!r}")
        if value_dim is not None and (isinstance(value_dim, bool) or not isinstance(value_dim, int) or value_dim <= 0):
            raise ValueError("Received an invalid value for argument `value_dim`, expected a positive integer "
                             f"or `None`. Received: value_dim={value_dim!r}")
        if use_gate:
            raise ValueError("MultiHeadAttention(use_gate=True) is not supported by lstmfast.")
        axes = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
        if axes is not None and tuple(a if a >= 0 else a + 3 for a in axes) != (1,):
            raise ValueError("lstmfast's MultiHeadAttention attends over the steps of 3-D inputs (batch, steps, "
                             f"features): attention_axes must be None or (1,). Received: attention_axes={attention_axes}")
        if sliding_window is not None and (isinstance(sliding_window, bool) or not isinstance(sliding_window, int)
                                           or sliding_window <= 0):
            raise ValueError(f"`sliding_window` must be `None` or a positive integer. Received: "
                             f"sliding_window={sliding_window!r}")
        if output_shape is not None and not isinstance(output_shape, int):
            output_shape = tuple(output_shape)
            if len(output_shape) != 1:
                raise ValueError("lstmfast's MultiHeadAttention projects to one feature axis: output_shape must "
                                 f"be an int or a 1-tuple. Received: output_shape={output_shape}")
            output_shape = output_shape[0]
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = _check_rate(dropout, "dropout")
        self.use_bias = bool(use_bias)
        self.output_dim = output_shape
        self.attention_axes = None if axes is None else tuple(axes)
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.seed = seed
        self._gen = _random.SeedGenerator(seed)
        self.supports_masking = True
        self._cache = None

    # ----- shapes -----
    @staticmethod
    def _split(input_shape):
        """(query, value, key, attention_mask or None) shapes from the list the layer is built on."""
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) not in (3, 4):
            raise ValueError(f"MultiHeadAttention takes query, value and key shapes (and an attention mask's). "
                             f"Received: {shapes}")
        return shapes[0], shapes[1], shapes[2], (shapes[3] if len(shapes) == 4 else None)

    def compute_output_shape(self, input_shape, return_attention_scores=False, **_):
        q, v, k, m = self._split(input_shape)
        for what, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3:
                raise ValueError(f"MultiHeadAttention {self.name!r} takes 3-D {what} tensors (batch, steps, "
                                 f"features). Received: {what} shape {_fmt_shape(s)}")
        if v[1] is not None and k[1] is not None and v[1] != k[1]:
            raise ValueError("All dimensions of `value` and `key`, except the last one, must be equal. "
                             f"Received: value_shape={v} and key_shape={k}")
        if m is not None and (len(m) != 3 or any(a is not None and b is not None and a != b
                                                 for a, b in zip(m[1:], (q[1], v[1])))):
            raise ValueError(f"MultiHeadAttention {self.name!r}: attention_mask must be shaped (batch, query "
                             f"steps, value steps) = {(q[0], q[1], v[1])}. Received: {m}")
        out = (q[0], q[1], self.output_dim or q[2])
        return (out, (q[0], self.num_heads, q[1], v[1])) if return_attention_scores else out

    def build(self, input_shape):
        q, v, k, _ = self._split(input_shape)
        self.compute_output_shape(input_shape)
        if any(s[-1] is None for s in (q, v, k)):
            raise ValueError(f"MultiHeadAttention {self.name!r} needs a known feature axis on query, value and key. "
                             f"Received: {input_shape}")
        n, dk, dv = self.num_heads, self.key_dim, self.value_dim

        def dense(name, shape, bias_shape):
            kernel = self.add_weight(shape, self.kernel_initializer, f"{name}/kernel",
                                     regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
            bias = (self.add_weight(bias_shape, self.bias_initializer, f"{name}/bias",
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint)
                    if self.use_bias else None)
            return kernel, bias

        self._wq = dense("query", (q[-1], n, dk), (n, dk))
        self._wk = dense("key", (k[-1], n, dk), (n, dk))
        self._wv = dense("value", (v[-1], n, dv), (n, dv))
        self._wo = dense("attention_output", (n, dv, self.output_dim or q[-1]), (self.output_dim or q[-1],))
        self._build_input_shape = [q, v, k] + ([] if len(input_shape) == 3 else [tuple(input_shape[3])])
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)
        if self._output_shape is None:
            self._output_shape = self.compute_output_shape(input_shape)

    def _check_input_shape(self, shape):
        expected = self._build_input_shape[:3]
        if any(len(s) != len(e) or (e[-1] is not None and s[-1] != e[-1]) for s, e in zip(shape[:3], expected)):
            raise ValueError(f'Input of layer "{self.name}" is incompatible with the layer: expected query, value '
                             f"and key shapes {[_fmt_shape(e) for e in expected]}, found "
                             f"{[_fmt_shape(tuple(s)) for s in shape[:3]]}")

    # ----- calls -----
    def __call__(self, query, value=None, key=None, query_mask=None, value_mask=None, key_mask=None,
                 attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False, **kwargs):
        """Arrays in: the output array (and the (B, N, T, S) weights with return_attention_scores);
        Input tensors in: the output tensor(s) of a functional model."""
        if value is None:
            raise TypeError("MultiHeadAttention is called as layer(query, value, key=None, ...): `value` is missing.")
        options = {"return_attention_scores": bool(return_attention_scores),
                   "use_causal_mask": bool(use_causal_mask)}
        if graph.is_symbolic(query):
            tensors = [query, value, key, attention_mask]
            if not all(t is None or isinstance(t, graph.KerasTensor) for t in tensors):
                raise TypeError("MultiHeadAttention in a functional model takes symbolic query, value, key and "
                                "attention_mask (or None for key and attention_mask).")
            if kwargs.pop("mask", None) is not None or any(m is not None for m in (query_mask, value_mask, key_mask)):
                raise TypeError("In a functional model the masks of query, value and key come with the tensors "
                                "(Embedding(mask_zero=True), Masking); pass attention_mask for any other mask.")
            if kwargs:
                raise TypeError(f"Unsupported arguments in a call of layer {self.name!r}: {sorted(kwargs)}")
            call_kwargs = {k: v for k, v in (("key", key), ("attention_mask", attention_mask)) if v is not None}
            call_kwargs.update({k: v for k, v in options.items() if v})
            return self._symbolic_call([query, value, key, attention_mask], options,
                                       call=(graph.Positional((query, value)), call_kwargs))
        if kwargs:
            raise TypeError(f"Unsupported arguments in a call of layer {self.name!r}: {sorted(kwargs)}")
        xs = [self._cast_input(query), self._cast_input(value), self._cast_input(value if key is None else key)]
        if attention_mask is not None:
            xs.append(np.asarray(attention_mask))
        self._maybe_build([x.shape for x in xs])
        self._check_input_shape([x.shape for x in xs])
        masks = [None if m is None else np.asarray(m, bool) for m in
                 (query_mask, value_mask, None if key is None else key_mask)]
        return self.forward(xs, masks, bool(training), **options)

    def graph_options(self, kwargs):
        return kwargs  # return_attention_scores, use_causal_mask: taken by __call__

    def graph_inputs(self, inputs, kwargs):
        query, value, key, attention_mask = inputs
        tensors = [query, value, value if key is None else key]
        return tensors + ([] if attention_mask is None else [attention_mask])

    def _graph_input_shape(self, inbound):
        return [tuple(t.shape) for t in inbound]

    def graph_output_has_mask(self, input_has_masks):
        return input_has_masks[0]

    def graph_compute_mask(self, inputs, masks, return_attention_scores=False, **_):
        return [masks[0], None] if return_attention_scores else masks[0]

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def graph_forward(self, inputs, masks, training, **options):
        xs = [self.receive(x) for x in inputs[:3]] + list(inputs[3:])
        out = self.forward(xs, list(masks[:3]), training, **options)
        return out if isinstance(out, tuple) else (out,)

    def graph_backward(self, d_outputs):
        grads = self.backward(d_outputs[0], d_outputs[1] if len(d_outputs) > 1 else None)
        return grads + [None] * (len(self._build_input_shape) - 3)

    # ----- computation -----
    def _project(self, x, weights, d):
        """(B, L, D) -> (B, N, L, d): X·W_n + b_n for every head n at once."""
        kernel, bias = weights
        b, steps = x.shape[:2]
        y = product(x.reshape(b * steps, -1), kernel.value.reshape(kernel.value.shape[0], -1),
                    None if bias is None else bias.value.reshape(-1))
        return y.reshape(b, steps, self.num_heads, d).transpose(0, 2, 1, 3)

    def _visible(self, xs, masks, use_causal_mask):
        """M (B or 1, T, S) as Keras combines it, or None when nothing is hidden."""
        tq, tv = xs[0].shape[1], xs[1].shape[1]
        q_mask, v_mask, k_mask = (list(masks) + [None] * 3)[:3]
        parts = []
        if q_mask is not None:
            parts.append(np.asarray(q_mask, bool)[:, :, None])
        if v_mask is not None:
            parts.append(np.asarray(v_mask, bool)[:, None, :])
        if k_mask is not None:
            parts.append(np.asarray(k_mask, bool)[:, None, :])
        i, j = np.arange(tq)[:, None], np.arange(tv)[None, :]
        if use_causal_mask:
            parts.append((j <= i)[None])
        if self.sliding_window is not None:
            parts.append((np.abs(i - j) < self.sliding_window)[None])
        if len(xs) > 3:
            m = np.asarray(xs[3])
            parts.append(m if m.dtype == bool else m > 0.5)
        if not parts:
            return None
        visible = parts[0]
        for p in parts[1:]:
            visible = visible & p
        return visible

    def forward(self, xs, masks=None, training=False, return_attention_scores=False, use_causal_mask=False):
        xq, xv, xk = xs[0], xs[1], xs[2]
        masks = masks or [None] * 3
        dt = xq.dtype.type
        scale = dt(1.0 / math.sqrt(self.key_dim))
        q = self._project(xq, self._wq, self.key_dim) * scale  # Q_n / √d_k   (B, N, T, d_k)
        k = self._project(xk, self._wk, self.key_dim)  # K_n   (B, N, S, d_k)
        v = self._project(xv, self._wv, self.value_dim)  # V_n   (B, N, S, d_v)
        s = np.matmul(q, k.transpose(0, 1, 3, 2))  # S_n = (Q_n/√d_k)·K_nᵀ   (B, N, T, S)
        visible = self._visible(xs, masks, use_causal_mask)
        if visible is not None:
            visible = visible[:, None]  # one mask for every head
            s = np.where(visible, s, dt(-_MASKED))
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        a = e / e.sum(axis=-1, keepdims=True)  # A_n = softmax_j(S_n)
        if visible is not None:
            a = np.where(visible, a, dt(0))  # a row hidden entirely gives zeros, not a uniform average
        keep = None
        a_d = a
        if training and self.dropout > 0:
            keep = (self._gen.rng.random(a.shape) >= self.dropout).astype(a.dtype) / dt(1 - self.dropout)
            a_d = a * keep
        c = np.matmul(a_d, v)  # C_n = A_n·V_n   (B, N, T, d_v)
        b, tq = xq.shape[:2]
        c2 = c.transpose(0, 2, 1, 3).reshape(b * tq, -1)  # [C_1 | … | C_N] per step
        wo, bo = self._wo
        out = product(c2, wo.value.reshape(-1, wo.value.shape[-1]), None if bo is None else bo.value)
        out = out.reshape(b, tq, -1)  # O = Σ_n C_n·Wo_n + bo
        if training:
            self._cache = (xs[:3], q, k, v, a, a_d, keep, visible, c2, scale)
        return (out, a) if return_attention_scores else out

    def _project_backward(self, x, weights, dy):
        """Gradients of Y = X·W + b with dY (B, N, L, d): fills ∂L/∂W, ∂L/∂b; returns ∂L/∂X."""
        kernel, bias = weights
        b, steps = x.shape[:2]
        dy2 = np.ascontiguousarray(dy.transpose(0, 2, 1, 3)).reshape(b * steps, -1)
        w2 = kernel.value.reshape(kernel.value.shape[0], -1)
        if self.trainable:
            product(x.reshape(b * steps, -1), dy2, out=kernel._ensure_grad().reshape(w2.shape), transpose_a=True)
            if bias is not None:
                column_sums(dy2, bias._ensure_grad().reshape(-1))
        return product(dy2, w2, transpose_b=True).reshape(x.shape)

    def backward(self, d_out, d_weights=None):
        (xq, xv, xk), q, k, v, a, a_d, keep, visible, c2, scale = self._cache
        self._cache = None
        b, tq = xq.shape[:2]
        wo, bo = self._wo
        wo2 = wo.value.reshape(-1, wo.value.shape[-1])
        if d_out is None:  # only the weights reach the loss
            d_out = np.zeros((b, tq, wo2.shape[1]), dtype=xq.dtype)
        do2 = np.ascontiguousarray(d_out).reshape(b * tq, -1)
        if self.trainable:
            product(c2, do2, out=wo._ensure_grad().reshape(wo2.shape), transpose_a=True)  # dWo = Cᵀ·dO
            if bo is not None:
                column_sums(do2, bo._ensure_grad())  # dbo = Σ dO
        dc = product(do2, wo2, transpose_b=True)  # dC = dO·Woᵀ
        dc = dc.reshape(b, tq, self.num_heads, self.value_dim).transpose(0, 2, 1, 3)
        dv = np.matmul(a_d.transpose(0, 1, 3, 2), dc)  # dV_n = A_nᵀ·dC_n
        da = np.matmul(dc, v.transpose(0, 1, 3, 2))  # dA_n = dC_n·V_nᵀ
        if keep is not None:
            da *= keep
        if d_weights is not None:
            da += d_weights
        if visible is not None:
            da = np.where(visible, da, da.dtype.type(0))
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))  # softmax: dS = A ⊙ (dA − Σ dA ⊙ A)
        dq = np.matmul(ds, k) * scale  # dQ_n = dS_n·K_n / √d_k
        dk = np.matmul(ds.transpose(0, 1, 3, 2), q)  # dK_n = dS_nᵀ·(Q_n/√d_k)
        dxq = self._project_backward(xq, self._wq, dq)
        dxk = self._project_backward(xk, self._wk, dk)
        dxv = self._project_backward(xv, self._wv, dv)
        return [dxq, dxv, dxk]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim, dropout=self.dropout,
            use_bias=self.use_bias, use_gate=False,
            output_shape=None if self.output_dim is None else (self.output_dim,),
            attention_axes=None if self.attention_axes is None else list(self.attention_axes),
            sliding_window=self.sliding_window,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            **_weight_options_config(self, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                     "kernel_constraint", "bias_constraint"),
            seed=self.seed,
        )
        return config
