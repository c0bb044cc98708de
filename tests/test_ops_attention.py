"""The dot-product attention kernel (ops.dot_attention, cpp/attention.h): its forward is the
products and softmax the C++ runtime also computes attention with, bit for bit; its backward
matches the equations written out in numpy (float64); bad shapes are refused with a reason."""

import numpy as np
import pytest

from lstmfast import ops

OPTIONS = {
    "plain": {},
    "scaled": {"scale": True},
    "value_mask": {"value_mask": True},
    "causal": {"causal": True},
    "query_mask": {"query_mask": True},
    "dropout": {"keep": True},
    "all": {"scale": True, "value_mask": True, "causal": True, "query_mask": True, "keep": True},
}


def _inputs(dtype, b=3, tq=5, tv=4, d=6, dv=6, seed=0, **opts):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((b, tq, d), (b, tv, d), (b, tv, dv)))
    kw = {}
    if opts.get("scale"):
        kw["scale"] = np.array(0.7, dtype)
    if opts.get("value_mask"):
        vm = np.ones((b, tv), bool)
        vm[0, -1] = vm[-1, -2:] = False
        kw["value_mask"] = vm
    if opts.get("query_mask"):
        qm = np.ones((b, tq), bool)
        qm[0, -2:] = qm[-1, 0] = False
        kw["query_mask"] = qm
    if opts.get("causal"):
        kw["causal"] = True
    if opts.get("keep"):
        kw["keep"] = ((rng.random((b, tq, tv)) >= 0.3) / 0.7).astype(dtype)
    return q, k, v, kw


def _composed(q, k, v, scale=None, value_mask=None, causal=False, keep=None, query_mask=None):
    """The forward from the separate kernels (batched_matmul, softmax) and numpy's element-wise
    steps, as Python's Attention computed it and the C++ runtime still composes it."""
    raw = ops.batched_matmul(q, k, transpose_b=True)
    s = raw * scale if scale is not None else raw
    hide = np.zeros(s.shape, bool)
    if value_mask is not None:
        hide |= ~value_mask[:, None, :]
    if causal:
        hide |= np.arange(s.shape[2])[None, None, :] > np.arange(s.shape[1])[None, :, None]
    s = np.where(hide, s - s.dtype.type(1e9), s)
    a = ops.softmax(np.ascontiguousarray(s))
    a_d = a * keep if keep is not None else a
    out = ops.batched_matmul(a_d, v)
    if query_mask is not None:
        out = np.where(query_mask[:, :, None], out, out.dtype.type(0))
    return out, a, a_d, raw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("shape", [(3, 5, 4, 6, 6), (2, 1, 1, 3, 5), (4, 20, 20, 300, 260)],
                         ids=["small", "one_step", "long_rows"])
def test_the_forward_gives_the_bits_of_the_separate_kernels(dtype, name, shape):
    b, tq, tv, d, dv = shape
    q, k, v, kw = _inputs(dtype, b, tq, tv, d, dv, **OPTIONS[name])
    out, a, a_d, raw = ops.dot_attention(q, k, v, keep_raw=True, **kw)
    want = _composed(q, k, v, **kw)
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(a, want[1])
    np.testing.assert_array_equal(raw, want[3])
    if "keep" in kw:
        np.testing.assert_array_equal(a_d, want[2])
    else:
        assert a_d is None
    np.testing.assert_allclose(a.sum(-1), 1, rtol=1e-6)


def _numpy_backward(q, k, v, d_out, scale=None, value_mask=None, causal=False, keep=None, query_mask=None,
                    d_weights=None, separate_key=True):
    """The backward's equations (cpp/attention.h) in numpy, float64."""
    _, a, a_d, raw = _composed(q, k, v, scale, value_mask, causal, keep, query_mask)
    d_o = d_out if query_mask is None else np.where(query_mask[:, :, None], d_out, 0)
    dv = np.einsum("bij,bid->bjd", a_d, d_o)  # A_dᵀ·dO'
    da = np.einsum("bid,bjd->bij", d_o, v)  # dO'·Vᵀ
    if d_weights is not None:
        da = da + d_weights
    if keep is not None:
        da = da * keep
    ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))
    d_scale = None
    if scale is not None:
        d_scale = np.sum(ds * raw)
        ds = ds * scale
    dq = np.einsum("bij,bjd->bid", ds, k)
    dk = np.einsum("bij,bid->bjd", ds, q)
    return dq, (dk if separate_key else None), (dv if separate_key else dv + dk), d_scale


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("separate_key", [True, False], ids=["key", "key_is_value"])
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "column_slice"])
def test_the_backward_follows_its_equations_float64(name, separate_key, strided):
    q, k, v, kw = _inputs(np.float64, seed=1, **OPTIONS[name])
    if not separate_key:
        k = v
    out, a, a_d, raw = ops.dot_attention(q, k, v, keep_raw=True, **kw)
    rng = np.random.default_rng(2)
    if strided:  # ∂L/∂O as Concatenate's backward hands it on: a slice of a wider gradient
        d_out = rng.standard_normal(out.shape[:2] + (2 * out.shape[2],))[:, :, out.shape[2]:]
        assert not d_out.flags.c_contiguous
    else:
        d_out = rng.standard_normal(out.shape)
    d_weights = rng.standard_normal(a.shape) if name in ("plain", "all") else None
    got = ops.dot_attention_backward(q, k, v, a, d_out, scale=kw.get("scale"), keep=kw.get("keep"),
                                     dropped=a_d, raw=raw, query_mask=kw.get("query_mask"), d_weights=d_weights,
                                     separate_key=separate_key)
    want = _numpy_backward(q, k, v, d_out, d_weights=d_weights, separate_key=separate_key, **kw)
    for g, w, what in zip(got, want, ("dq", "dk", "dv", "d_scale")):
        if w is None:
            assert g is None, what
        else:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=what)
    if "query_mask" in kw and d_weights is None:  # a hidden query passes nothing back
        assert np.all(got[0][0, -2:] == 0) and np.all(got[0][-1, 0] == 0)


def test_the_backward_gives_the_same_bits_on_every_thread_count():
    import lstmfast

    q, k, v, kw = _inputs(np.float32, b=7, tq=9, tv=8, d=40, dv=40, seed=3, **OPTIONS["all"])
    out, a, a_d, raw = ops.dot_attention(q, k, v, keep_raw=True, **kw)
    d_out = np.random.default_rng(4).standard_normal(out.shape).astype(np.float32)
    kept = lstmfast.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            lstmfast.set_num_threads(n)
            results.append(ops.dot_attention_backward(q, k, v, a, d_out, scale=kw["scale"], keep=kw["keep"],
                                                      dropped=a_d, raw=raw, query_mask=kw["query_mask"],
                                                      separate_key=False))
    finally:
        lstmfast.set_num_threads(kept)
    for r in results[1:]:
        for x, y in zip(r, results[0]):
            if x is not None:
                np.testing.assert_array_equal(x, y)


def test_bad_shapes_are_refused_with_what_was_expected():
    q, k, v, _ = _inputs(np.float32)
    with pytest.raises(ValueError, match=r"key must have shape \(3, 4, 6\)"):
        ops.dot_attention(q, k[:, :3].copy(), v)
    with pytest.raises(ValueError, match=r"value_mask.*\(3, 4\)"):
        ops.dot_attention(q, k, v, value_mask=np.ones((3, 5), bool))
    with pytest.raises(TypeError, match="float32"):
        ops.dot_attention(q, k.astype(np.float64), v)
    with pytest.raises(ValueError, match="3-D"):
        ops.dot_attention(q[0], k, v)
