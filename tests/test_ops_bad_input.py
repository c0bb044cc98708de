"""Bad input to the ops raises ValueError or TypeError naming the argument, what was expected
and what came; it never crashes, converts silently or tries to allocate the impossible."""

import numpy as np
import pytest

ops = pytest.importorskip("lstmfast.ops", reason="the lstmfast extension is not built")

B, T, D, H = 2, 5, 3, 4


def arrays(dtype=np.float32):
    rng = np.random.default_rng(0)
    return dict(x=rng.standard_normal((B, T, D)).astype(dtype),
                kernel=rng.standard_normal((D, 4 * H)).astype(dtype) * 0.3,
                recurrent_kernel=rng.standard_normal((H, 4 * H)).astype(dtype) * 0.3,
                bias=np.zeros(4 * H, dtype))


def call(**changes):
    a = arrays()
    a.update(changes)
    return ops.lstm_forward(a.pop("x"), a.pop("kernel"), a.pop("recurrent_kernel"), a.pop("bias"), **a)


def raises(exc, fn, *fragments):
    """fn() raises exc, and its message contains every fragment."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in the message {msg!r}"
    return msg


# --- ranks and sizes -------------------------------------------------------------------------------

def test_x_of_the_wrong_rank_is_refused_with_its_shape():
    raises(ValueError, lambda: call(x=np.zeros((B, D), np.float32)), "`x`", "3-D", "2-D", "(2, 3)")
    raises(ValueError, lambda: call(x=np.zeros((1, B, T, D), np.float32)), "`x`", "3-D", "4-D", "(1, 2, 5, 3)")


def test_a_kernel_built_for_other_features_names_both_feature_counts():
    raises(ValueError, lambda: call(x=np.zeros((B, T, 7), np.float32)),
           "`x` has 7 features", "`kernel` was built for 3", "(7, 16)", "(3, 16)")


def test_kernel_and_recurrent_kernel_of_mismatched_units_are_refused():
    raises(ValueError, lambda: call(kernel=np.zeros((D, 12), np.float32)), "`kernel`", "(3, 16)", "(3, 12)")
    raises(ValueError, lambda: call(recurrent_kernel=np.zeros((H, 12), np.float32)),
           "`recurrent_kernel`", "(units, 4*units)", "(4, 12)")
    raises(ValueError, lambda: call(recurrent_kernel=np.zeros((4 * H,), np.float32)),
           "`recurrent_kernel`", "2-D", "1-D")


def test_bias_and_initial_states_of_the_wrong_shape_are_refused():
    raises(ValueError, lambda: call(bias=np.zeros(4 * H + 1, np.float32)), "`bias`", "(16,)", "(17,)")
    raises(ValueError, lambda: call(bias=np.zeros((1, 4 * H), np.float32)), "`bias`", "(16,)", "(1, 16)")
    raises(ValueError, lambda: call(h0=np.zeros((B, H + 1), np.float32)), "`h0`", "(2, 4)", "(2, 5)")
    raises(ValueError, lambda: call(c0=np.zeros((B + 1, H), np.float32)), "`c0`", "(2, 4)", "(3, 4)")


def test_dropout_masks_of_the_wrong_shape_or_dtype_are_refused():
    raises(ValueError, lambda: call(input_dropout_mask=np.ones((B, H), np.float32)),
           "`input_dropout_mask`", "(2, 3)", "(2, 4)")
    raises(ValueError, lambda: call(recurrent_dropout_mask=np.ones((B, D), np.float32)),
           "`recurrent_dropout_mask`", "(2, 4)", "(2, 3)")
    raises(TypeError, lambda: call(recurrent_dropout_mask=np.ones((B, H), np.float64)),
           "`recurrent_dropout_mask`", "float32", "float64")


def test_a_mask_of_the_wrong_shape_or_dtype_is_refused():
    raises(ValueError, lambda: call(mask=np.ones((B, T + 1), bool)), "`mask`", "(2, 5)", "(2, 6)")
    raises(ValueError, lambda: call(mask=np.ones((B,), bool)), "`mask`", "(2, 5)", "(2,)")
    raises(TypeError, lambda: call(mask=np.ones((B, T), np.float32)), "`mask`", "bool", "float32")
    raises(TypeError, lambda: call(mask=[[True] * T] * B), "`mask`", "numpy.ndarray", "list")


def test_an_integer_mask_of_zeros_and_ones_works_like_a_bool_mask():
    m = np.array([[1, 1, 0, 1, 1], [0, 0, 1, 1, 1]])
    a, b = call(mask=m), call(mask=m.astype(bool))
    assert np.array_equal(a.outputs, b.outputs)


# --- dtypes and layouts ----------------------------------------------------------------------------

def test_float64_weights_with_float32_inputs_are_refused_not_converted():
    a64 = arrays(np.float64)
    for name in ("kernel", "recurrent_kernel", "bias"):
        raises(TypeError, lambda: call(**{name: a64[name]}), f"`{name}`", "float32 like `x`", "float64")
    raises(TypeError, lambda: call(h0=np.zeros((B, H))), "`h0`", "float32", "float64")
    a32 = arrays(np.float32)
    raises(TypeError, lambda: ops.lstm_forward(a64["x"], a32["kernel"], a64["recurrent_kernel"]),
           "`kernel`", "float64 like `x`", "float32")


def test_non_float_arrays_and_non_arrays_are_refused():
    raises(TypeError, lambda: call(x=np.zeros((B, T, D), np.int64)), "`x`", "float32 or float64", "int64")
    raises(TypeError, lambda: call(x=np.zeros((B, T, D), np.float16)), "`x`", "float32 or float64", "float16")
    raises(TypeError, lambda: call(x=np.zeros((B, T, D)).tolist()), "`x`", "numpy.ndarray", "list")
    raises(TypeError, lambda: call(kernel=None), "`kernel`")


def test_non_contiguous_arrays_are_refused_with_a_hint():
    wide = np.zeros((B, 2 * T, D), np.float32)
    raises(ValueError, lambda: call(x=wide[:, ::2]), "`x`", "C-contiguous", "(2, 5, 3)", "ascontiguousarray")
    k = arrays()["kernel"]
    raises(ValueError, lambda: call(kernel=np.asfortranarray(k)), "`kernel`", "C-contiguous")
    raises(ValueError, lambda: call(recurrent_kernel=np.zeros((4 * H, H), np.float32).T),
           "`recurrent_kernel`", "C-contiguous")


# --- values --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0"))
@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf), ids=("nan", "inf", "-inf"))
def test_nan_or_inf_in_any_input_is_refused(name, bad):
    a = arrays()
    a["h0"], a["c0"] = np.zeros((B, H), np.float32), np.zeros((B, H), np.float32)
    a[name].reshape(-1)[3] = bad
    x = a.pop("x")
    kind = "NaN" if np.isnan(bad) else "inf"
    raises(ValueError, lambda: ops.lstm_forward(x, a["kernel"], a["recurrent_kernel"], a["bias"],
                                                h0=a["h0"], c0=a["c0"]), f"`{name}`", kind)


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("where", ("first", "middle", "last"))
def test_one_nan_or_inf_anywhere_in_a_large_kernel_is_found(dtype, where):
    # Large arrays are scanned in blocks on all threads, the tail of each one value at a time.
    D, H = 301, 256  # 301 · 1024 values: several blocks and a ragged end
    x = np.zeros((2, 3, D), dtype)
    u = np.zeros((H, 4 * H), dtype)
    for bad, kind in ((np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")):
        k = np.zeros((D, 4 * H), dtype)
        k.reshape(-1)[{"first": 0, "middle": k.size // 2 + 5, "last": k.size - 1}[where]] = bad
        raises(ValueError, lambda: ops.lstm_forward(x, k, u), "`kernel`", kind)
    ops.lstm_forward(x, np.zeros((D, 4 * H), dtype), u)  # all finite: accepted


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("batch, units", ((2, 70), (40, 13), (3, 600)),
                         ids=("units_cut_unevenly", "batch_cut", "three_k_chunks"))
def test_the_weights_are_tested_for_nan_while_packed_at_every_place(dtype, batch, units):
    # kernel and recurrent_kernel are tested while the kernels pack them: panels copied whole,
    # panels whose columns a unit tiling scatters (H = 70 in tiles of 40 and 30 units), tail
    # panels, several K chunks (H = 600), training or not. Every column of one row, every row
    # of one column (a stride of them at H = 600).
    rng = np.random.default_rng(3)
    D = 5
    x = rng.standard_normal((batch, 2, D)).astype(dtype)
    w = {"kernel": rng.standard_normal((D, 4 * units)).astype(dtype) * 0.1,
         "recurrent_kernel": rng.standard_normal((units, 4 * units)).astype(dtype) * 0.1}
    step = 1 if units < 100 else 37
    for name, a in w.items():
        rows, cols = a.shape
        places = [(rows // 2, j) for j in range(0, cols, step)] + [(i, cols - 1) for i in range(0, rows, step)]
        places += [(0, 0), (rows - 1, cols - 1)]
        for n, (i, j) in enumerate(places):
            bad = a.copy()
            bad[i, j] = (np.nan, np.inf, -np.inf)[n % 3]
            kind = "NaN" if n % 3 == 0 else "inf"
            args = dict(w, **{name: bad})
            raises(ValueError, lambda: ops.lstm_forward(x, args["kernel"], args["recurrent_kernel"],
                                                        training=n % 2 == 1), f"`{name}`", kind)
    ops.lstm_forward(x, w["kernel"], w["recurrent_kernel"])  # all finite: accepted


def test_the_largest_finite_weights_are_accepted():
    # The test sums x·0 over the values: 0 for any finite x, however large, never inf.
    big = np.finfo(np.float32).max
    k = np.full((D, 4 * H), big, np.float32)
    k[0, ::2] = -big
    u = np.full((H, 4 * H), -big, np.float32)
    ops.lstm_forward(arrays()["x"], k, u)


def test_check_finite_false_skips_the_weights_test():
    a = arrays()
    a["recurrent_kernel"][1, 2] = np.nan
    out = ops.lstm_forward(a["x"], a["kernel"], a["recurrent_kernel"], check_finite=False).outputs
    # h_0·U reaches unit 2's input gate: NaN from the second step on (the first has h = 0).
    assert np.isfinite(out[:, 0]).all() and np.isnan(out[:, 1:, 2]).all()


def test_check_finite_false_skips_the_scan():
    x = arrays()["x"]
    x[0, 0, 0] = np.nan
    out = call(x=x, check_finite=False).outputs
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()   # NaN stays in its own sequence


@pytest.mark.parametrize("shape", ((0, T, D), (B, 0, D)), ids=("empty_batch", "no_steps"))
def test_an_empty_batch_or_sequence_is_refused(shape):
    raises(ValueError, lambda: call(x=np.zeros(shape, np.float32)), "`x`", "at least one",
           "(" + ", ".join(map(str, shape)) + ")")


def test_zero_features_or_zero_units_are_refused():
    raises(ValueError, lambda: call(x=np.zeros((B, T, 0), np.float32)), "`x`", "(2, 5, 0)")
    raises(ValueError, lambda: call(recurrent_kernel=np.zeros((0, 0), np.float32)), "`recurrent_kernel`", "(0, 0)")


def test_a_size_that_could_never_fit_is_refused_before_any_allocation():
    # 40 million one-step sequences into 1024 units would need > 1 TiB of buffers. x is all
    # zeros from calloc: untouched pages, so the test itself needs little memory.
    x = np.zeros((40_000_000, 1, 1), np.float32)
    kernel, recurrent_kernel = np.zeros((1, 4096), np.float32), np.zeros((1024, 4096), np.float32)
    raises(MemoryError, lambda: ops.lstm_forward(x, kernel, recurrent_kernel),
           "batch=40000000", "units=1024", "GiB", "split the batch")
    # Below 1 TiB, the machine's memory is the bound: 10,000 sequences of 1,000 steps into 1,000
    # units need about 260 GiB.
    x = np.zeros((10_000, 1_000, 1), np.float32)
    kernel, recurrent_kernel = np.zeros((1, 4000), np.float32), np.zeros((1000, 4000), np.float32)
    if ops.physical_memory() < 200 * 2**30:
        raises(MemoryError, lambda: ops.lstm_forward(x, kernel, recurrent_kernel), "units=1000", "this machine")


def test_layers_refuse_weights_larger_than_the_machine_before_allocating_them():
    import lstmfast as lf
    from lstmfast import layers as L

    for make, words in ((lambda: lf.Sequential([lf.Input((3, 2)), L.LSTM(2**31)]), ("LSTM", "kernel")),
                        (lambda: lf.Sequential([lf.Input((3,)), L.Dense(2**40)]), ("Dense", "(3, 1099511627776)")),
                        (lambda: lf.Sequential([lf.Input((3,)), L.Embedding(2**40, 4)]), ("Embedding", "GiB"))):
        raises(MemoryError, make, *words, "this machine has")


@pytest.mark.parametrize("argument,value", [("learning_rate", float("nan")), ("learning_rate", float("inf")),
                                            ("learning_rate", -1.0), ("beta_1", 1.0), ("beta_2", -0.1),
                                            ("epsilon", -1e-7), ("epsilon", 0.0), ("step", "x"), ("step", 0)])
def test_adam_update_refuses_values_that_would_write_nan_into_the_weights(argument, value):
    p, g, m, v = (np.ones(4, np.float32) for _ in range(4))
    g[1] = v[1] = 0  # epsilon = 0 would divide 0 by 0 here
    args = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    args[argument] = value
    raises(ValueError, lambda: ops.adam_update(p, g, m, v, **args), f"`{argument}`")
    np.testing.assert_array_equal(p, 1)  # nothing written


@pytest.mark.parametrize("argument,value", (("activation", "tanhh"), ("activation", None),
                                            ("recurrent_activation", "tanh"), ("recurrent_activation", "softmax")))
def test_unknown_activation_names_list_the_known_ones(argument, value):
    raises(ValueError, lambda: call(**{argument: value}), f"Argument `{argument}`", "sigmoid",
           f"Received: {argument}={value!r}")


# --- lstm_backward ---------------------------------------------------------------------------------

def test_packed_weights_refuse_bad_weights_and_mismatched_inputs():
    a = arrays()
    raises(ValueError, lambda: ops.pack_lstm_weights(a["kernel"], np.zeros((H, 12), np.float32)),
           "`recurrent_kernel`", "(units, 4*units)", "(4, 12)")
    raises(ValueError, lambda: ops.pack_lstm_weights(np.zeros((D, 12), np.float32), a["recurrent_kernel"]),
           "`kernel`", "(features, 16)", "(3, 12)")
    raises(TypeError, lambda: ops.pack_lstm_weights(a["kernel"].astype(np.float64), a["recurrent_kernel"]),
           "`kernel`", "float32", "float64")
    bad = a["recurrent_kernel"].copy()
    bad[1, 2] = np.nan
    raises(ValueError, lambda: ops.pack_lstm_weights(a["kernel"], bad), "`recurrent_kernel`", "NaN", "finite")
    packed = ops.pack_lstm_weights(a["kernel"], a["recurrent_kernel"], a["bias"])
    raises(TypeError, lambda: ops.lstm_forward(a["x"], packed, a["recurrent_kernel"]),
           "leave them out", "lstm_forward(x, packed")
    raises(TypeError, lambda: ops.lstm_forward(a["x"], packed, bias=a["bias"]), "leave them out")
    raises(TypeError, lambda: ops.lstm_forward(a["x"].astype(np.float64), packed), "float32", "float64")
    raises(ValueError, lambda: ops.lstm_forward(np.zeros((B, T, 7), np.float32), packed),
           "`x` has 7 features", "built for 3", f"({B}, {T}, 3)")
    raises(TypeError, lambda: ops.lstm_forward(a["x"], a["kernel"]), "`recurrent_kernel`", "pack_lstm_weights")
    # Initial states and masks are checked against the packed weights' units as ever.
    raises(ValueError, lambda: ops.lstm_forward(a["x"], packed, h0=np.zeros((B, H + 1), np.float32)),
           "`h0`", "(2, 4)", "(2, 5)")


def test_backward_without_a_training_cache_says_how_to_get_one():
    res = call()
    assert res.cache is None
    raises(TypeError, lambda: ops.lstm_backward(res.cache), "`cache`", "training=True", "NoneType")
    raises(TypeError, lambda: ops.lstm_backward(res), "`cache`", "LSTMForward")


def test_backward_cotangents_of_the_wrong_shape_are_refused():
    res = call(training=True)
    raises(ValueError, lambda: ops.lstm_backward(res.cache, d_outputs=np.ones((B, H), np.float32)),
           "`d_outputs`", "(2, 5, 4)", "(2, 4)")
    last = call(training=True, return_sequences=False)
    raises(ValueError, lambda: ops.lstm_backward(last.cache, d_outputs=np.ones((B, T, H), np.float32)),
           "`d_outputs`", "(2, 4)", "(2, 5, 4)")
    raises(ValueError, lambda: ops.lstm_backward(res.cache, d_h=np.ones((B, H + 1), np.float32)),
           "`d_h`", "(2, 4)", "(2, 5)")
    raises(ValueError, lambda: ops.lstm_backward(res.cache, d_c=np.ones((H,), np.float32)),
           "`d_c`", "(2, 4)", "(4,)")


def test_backward_cotangents_of_another_dtype_or_with_nan_are_refused():
    res = call(training=True)
    raises(TypeError, lambda: ops.lstm_backward(res.cache, d_outputs=np.ones((B, T, H))),
           "`d_outputs`", "float32", "float64")
    d = np.ones((B, H), np.float32)
    d[1, 1] = np.nan
    raises(ValueError, lambda: ops.lstm_backward(res.cache, d_h=d), "`d_h`", "NaN")


def test_a_cache_from_another_call_is_refused_when_the_shapes_differ():
    other = ops.lstm_forward(np.zeros((3, 6, D), np.float32), arrays()["kernel"], arrays()["recurrent_kernel"],
                             training=True)
    d_out = np.ones((B, T, H), np.float32)   # made for call(), handed with other's cache
    raises(ValueError, lambda: ops.lstm_backward(other.cache, d_outputs=d_out), "`d_outputs`", "(3, 6, 4)",
           "(2, 5, 4)")


def test_a_cache_used_twice_gives_the_same_gradients():
    res = call(training=True, h0=np.zeros((B, H), np.float32))
    d = np.random.default_rng(1).standard_normal(res.outputs.shape).astype(np.float32)
    first, second = ops.lstm_backward(res.cache, d), ops.lstm_backward(res.cache, d)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_the_cache_holds_copies_so_later_changes_to_the_inputs_do_not_leak_in():
    a = arrays()
    res = ops.lstm_forward(a["x"], a["kernel"], a["recurrent_kernel"], a["bias"], training=True)
    d = np.ones_like(res.outputs)
    before = ops.lstm_backward(res.cache, d)
    a["x"][:] = 0.0
    a["kernel"][:] = 0.0
    a["recurrent_kernel"][:] = 0.0
    after = ops.lstm_backward(res.cache, d)
    for g0, g1 in zip(before, after):
        assert np.array_equal(g0, g1)


# --- adam_update -----------------------------------------------------------------------------------

def adam(**changes):
    a = dict(param=np.zeros(10, np.float32), grad=np.ones(10, np.float32), m=np.zeros(10, np.float32),
             v=np.zeros(10, np.float32), learning_rate=0.01, step=1)
    a.update(changes)
    return ops.adam_update(a.pop("param"), a.pop("grad"), a.pop("m"), a.pop("v"), **a)


def test_adam_update_refuses_mismatched_buffers():
    raises(ValueError, lambda: adam(param=np.zeros((2, 5), np.float32)), "`param`", "1-D", "2-D", "(2, 5)")
    raises(ValueError, lambda: adam(grad=np.ones(9, np.float32)), "`grad`", "(10,)", "(9,)")
    raises(ValueError, lambda: adam(v=np.zeros(11, np.float32)), "`v`", "(10,)", "(11,)")
    raises(TypeError, lambda: adam(m=np.zeros(10)), "`m`", "float32", "float64")
    raises(ValueError, lambda: adam(param=np.zeros(20, np.float32)[::2]), "`param`", "C-contiguous")


def test_adam_update_refuses_a_step_below_one_and_read_only_buffers():
    raises(ValueError, lambda: adam(step=0), "Argument `step`", ">= 1", "Received: step=0")
    ro = np.zeros(10, np.float32)
    ro.flags.writeable = False
    raises(ValueError, lambda: adam(param=ro), "`param`", "writeable")


# --- matmul ----------------------------------------------------------------------------------------

def test_matmul_refuses_what_it_cannot_multiply_with_both_shapes():
    a, b = np.zeros((3, 4), np.float32), np.zeros((5, 2), np.float32)
    raises(ValueError, lambda: ops.matmul(a, b), "3 x 4", "5 x 2", "inner sizes")
    raises(TypeError, lambda: ops.matmul(a, b.astype(np.float64)), "`b`", "float32", "float64")
    raises(ValueError, lambda: ops.matmul(np.zeros(4, np.float32), b), "`a`", "2-D", "1-D")
    raises(ValueError, lambda: ops.matmul(a, np.zeros((4, 2), np.float32), bias=np.zeros(3, np.float32)),
           "`bias`", "(2,)", "(3,)")
    raises(ValueError, lambda: ops.matmul(a, np.zeros((4, 2), np.float32), out=np.zeros((2, 3), np.float32)),
           "`out`", "(3, 2)", "(2, 3)")
    raises(ValueError, lambda: ops.matmul(a, np.zeros((4, 2), np.float32), accumulate=True), "`out`")
    raises(ValueError, lambda: ops.matmul(np.zeros((8, 4), np.float32)[::2], np.zeros((4, 2), np.float32)),
           "`a`", "C-contiguous")
    sq = np.zeros((3, 3), np.float32)
    raises(ValueError, lambda: ops.matmul(sq, sq, out=sq), "overlap")


def test_batched_matmul_refuses_what_it_cannot_multiply():
    a, b = np.zeros((2, 3, 4), np.float32), np.zeros((2, 5, 2), np.float32)
    raises(ValueError, lambda: ops.batched_matmul(a, b), "inner sizes", "4", "5")
    raises(ValueError, lambda: ops.batched_matmul(a, np.zeros((3, 4, 2), np.float32)), "2 matrices", "3")
    raises(TypeError, lambda: ops.batched_matmul(a, b.astype(np.float64)), "`b`", "float32", "float64")
    raises(ValueError, lambda: ops.batched_matmul(a[0], b), "`a`", "3-D", "2-D")
    raises(ValueError, lambda: ops.batched_matmul(np.zeros((2, 3, 8), np.float32)[:, :, ::2], b), "C-contiguous")


def test_crossentropy_on_softmax_refuses_labels_out_of_range_and_mismatched_shapes():
    p, g = np.full((4, 3), 1 / 3, np.float32), np.ones(4, np.float32)
    raises(ValueError, lambda: ops.crossentropy_on_softmax(p, np.array([0, 1, 3, 0]), g, sparse=True),
           "labels", "[0, 3)", "3")
    raises(ValueError, lambda: ops.crossentropy_on_softmax(p, np.array([0, 1, 2]), g, sparse=True),
           "labels", "(4,)", "(3,)")
    raises(TypeError, lambda: ops.crossentropy_on_softmax(p, np.array([0.5, 1, 2, 0]), g, sparse=True),
           "labels", "integer")
    raises(ValueError, lambda: ops.crossentropy_on_softmax(p, np.ones((4, 2), np.float32), g), "targets", "(4, 3)")
    raises(ValueError, lambda: ops.crossentropy_on_softmax(p, np.ones((4, 3), np.float32), g[:3]), "`g`", "(4,)")
    raises(TypeError, lambda: ops.crossentropy_on_softmax(p, np.ones((4, 3), np.float32), g.astype(np.float64)),
           "`g`", "float32")


def test_softmax_refuses_an_empty_last_axis_and_other_dtypes():
    raises(ValueError, lambda: ops.softmax(np.zeros((3, 0), np.float32)), "last axis", "(3, 0)")
    raises(TypeError, lambda: ops.softmax(np.zeros((3, 4), np.int32)), "`x`", "float32 or float64")
