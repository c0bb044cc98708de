"""The fast path against the naive numpy LSTM of reference_lstm.py (itself checked against
central differences and against Keras), against the C++ naive path, on every instruction-set
build this CPU runs, and whatever the thread count; the vectorised activations' error; Adam
against Keras's formula.

Tolerances against the float64 reference, |Δ| ≤ tol·(1 + max|reference|):
    float64: 1e-12 (forward and gradients)
    float32: 3e-6 forward, 1e-5 gradients (float32 rounding over T steps, and the vectorised
             tanh/sigmoid, whose error is bounded below)
"""

import importlib.util
import itertools
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lstm_cases import MASK_PATTERNS, distance_to_kinks, loss_weights, make_case, numeric_gradient
from reference_lstm import adam_update_reference, lstm_backward_reference, lstm_forward_reference

ops = pytest.importorskip("lstmfast.ops", reason="the lstmfast extension is not built")
import lstmfast  # noqa: E402

TOL = {np.float64: (1e-12, 1e-12), np.float32: (3e-6, 1e-5)}
GRAD_NAMES = ("dx", "d_kernel", "d_recurrent_kernel", "d_bias", "d_h0", "d_c0")
HERE = os.path.dirname(os.path.abspath(__file__))


def assert_close(got, want, tol, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.max(np.abs(got.astype(np.float64) - want)) if got.size else 0.0
    bound = tol * (1.0 + np.max(np.abs(want)))
    assert err <= bound, f"{what}: max |fast − reference| = {err:.3g} > {bound:.3g}"


def as64(args, kw):
    """The same case in float64, for the reference (float32 values are exact in float64)."""
    cast = lambda a: a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32 else a
    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kw.items()}


def fast_forward_backward(args, kw, seed=0):
    out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
    B, H = h.shape
    w = tuple(a.astype(out.dtype) for a in loss_weights(seed, out.shape, B, H))
    return (out, h, c), ops.lstm_backward(cache, *w), w


def check_against_reference(args, kw, dtype):
    tol_fwd, tol_grad = TOL[dtype]
    (out, h, c), grads, (w_out, w_h, w_c) = fast_forward_backward(args, kw)
    args64, kw64 = as64(args, kw)
    r_out, r_h, r_c = lstm_forward_reference(*args64, **kw64)
    for name, got, want in (("outputs", out, r_out), ("h_T", h, r_h), ("c_T", c, r_c)):
        assert got.dtype == dtype, name
        assert_close(got, want, tol_fwd, name)
    r_grads = lstm_backward_reference(*args64, **kw64, d_outputs=w_out.astype(np.float64),
                                      d_h=w_h.astype(np.float64), d_c=w_c.astype(np.float64))
    for name, got, want in zip(GRAD_NAMES, grads, r_grads):
        if want is None:
            assert got is None, name
            continue
        assert got.dtype == dtype, name
        assert_close(got, want, tol_grad, name)


# --- the reference itself ---------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    dict(activation="relu", recurrent_activation="hard_sigmoid", mask="holes", go_backwards=True,
         input_dropout=True, recurrent_dropout=True, zero_output_for_mask=True),
    dict(activation="sigmoid", mask="pre_padding", return_sequences=False),
    dict(activation="linear", mask="row_fully_masked", go_backwards=True, return_sequences=False,
         zero_output_for_mask=True),
], ids=("everything", "pre_padding_last_output", "fully_masked_row"))
def test_reference_backward_matches_numeric_gradient_of_reference_forward(options):
    args, kw = make_case(20, B=3, T=5, initial_state=True, **options)
    assert distance_to_kinks(args, kw) > 1e-4
    out, _, _ = lstm_forward_reference(*args, **kw)
    w_out, w_h, w_c = loss_weights(0, out.shape, 3, 4)

    def loss():
        o, hT, cT = lstm_forward_reference(*args, **kw)
        return float(np.sum(w_out * o) + np.sum(w_h * hT) + np.sum(w_c * cT))

    grads = lstm_backward_reference(*args, **kw, d_outputs=w_out, d_h=w_h, d_c=w_c)
    for name, a, g in zip(GRAD_NAMES, args + (kw["h0"], kw["c0"]), grads):
        np.testing.assert_allclose(g, numeric_gradient(loss, a), rtol=1e-6, atol=1e-7, err_msg=name)


# --- the fast path against the reference ---------------------------------------------------------

SHAPES = [(2, 6, 3, 4), (1, 9, 5, 7), (5, 8, 12, 70), (37, 6, 9, 13), (40, 5, 16, 130), (3, 5, 20, 600),
          (33, 4, 8, 770), (2, 3, 1100, 501)]
# B = 37, 40 cut the batch into tiles; H = 70, 130, 600 with B < 32 cut the units, and so
# does H = 770 (from 768 on) with B = 33, in two tiles of 392 and 378 units. Packed weights
# from 8 MB on are written around the caches: U at H = 770, W at D = 1100 (whose 4H = 2004
# columns end in a tail panel), in float32 and float64.


def for_each_shape_and_dtype(test):
    test = pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))(test)
    return pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}_T{}_D{}_H{}".format(*s))(test)


def shape_case(seed, shape, dtype):
    B, T, D, H = shape
    # Weights at a Glorot-like scale keep z = O(1), where float32 rounding is what it is in use.
    return make_case(seed + H, B=B, T=T, D=D, H=H, dtype=dtype, initial_state=True,
                     scale=min(0.5, 3.0 / np.sqrt(D + H)))


@for_each_shape_and_dtype
def test_fast_path_matches_reference_for_each_shape(shape, dtype):
    args, kw = shape_case(40, shape, dtype)
    check_against_reference(args, kw, dtype)


@for_each_shape_and_dtype
def test_inference_forward_equals_training_forward(shape, dtype):
    # Without a training cache the weights are packed straight from Keras's layout (through a
    # column map when the units are cut into tiles); the arithmetic is the same, bit for bit.
    args, kw = shape_case(50, shape, dtype)
    inference = ops.lstm_forward(*args, **kw)
    training = ops.lstm_forward(*args, **kw, training=True)
    assert inference.cache is None and training.cache is not None
    for name, a, b in zip(("outputs", "h_T", "c_T"), inference[:3], training[:3]):
        np.testing.assert_array_equal(a, b, err_msg=name)


@for_each_shape_and_dtype
def test_backward_without_the_input_gradient_gives_the_same_weight_gradients(shape, dtype):
    # input_gradient=False skips dx = dZ·Wᵀ only: every other gradient is the same, bit for bit.
    args, kw = shape_case(60, shape, dtype)
    out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
    B, H = h.shape
    w = tuple(a.astype(out.dtype) for a in loss_weights(3, out.shape, B, H))
    full = ops.lstm_backward(cache, *w)
    lean = ops.lstm_backward(cache, *w, input_gradient=False)
    assert full.dx is not None and full.dx.shape == args[0].shape
    assert lean.dx is None
    for name in GRAD_NAMES[1:]:
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name), err_msg=name)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("shape", SHAPES + [(70, 5, 7, 9), (300, 3, 5, 8), (4, 1, 3, 5)],
                         ids=lambda s: "B{}_T{}_D{}_H{}".format(*s))
def test_without_an_initial_state_the_recurrent_gradient_leaves_out_step_0_with_the_same_bits(shape, dtype):
    # h_{-1} = 0 adds nothing to dU = H_prevᵀ·dZ, so the backward of a forward without an
    # initial state starts that product at step 1's rows: within the first chunk of the packed
    # dZ (B = 70), or in a later one (B = 300, past the first 256 rows); T = 1 leaves nothing
    # out. Its gradients are those of a forward given zeros as the initial state, bit for bit.
    args, kw = shape_case(75, shape, dtype)
    kw = {k: v for k, v in kw.items() if k not in ("h0", "c0")}
    B, T, D, H = shape
    zeros = np.zeros((B, H), dtype)
    without = ops.lstm_forward(*args, **kw, training=True)
    given = ops.lstm_forward(*args, **kw, h0=zeros, c0=zeros, training=True)
    for name, a, b in zip(("outputs", "h_T", "c_T"), without[:3], given[:3]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    w = tuple(a.astype(dtype) for a in loss_weights(4, without.outputs.shape, B, H))
    got = ops.lstm_backward(without.cache, *w, initial_state_gradient=False)
    want = ops.lstm_backward(given.cache, *w, initial_state_gradient=False)
    for name in GRAD_NAMES[:4]:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@for_each_shape_and_dtype
def test_a_forward_told_no_input_gradient_keeps_no_transposed_kernel_until_backward_is_given_it(shape, dtype):
    # input_gradient=False in the forward skips packing Wᵀ; the backward then computes dx only
    # from the kernel it is given, the same bits as a forward that kept Wᵀ.
    args, kw = shape_case(65, shape, dtype)
    full = ops.lstm_forward(*args, **kw, training=True)
    lean = ops.lstm_forward(*args, **kw, training=True, input_gradient=False)
    for name, a, b in zip(("outputs", "h_T", "c_T"), full[:3], lean[:3]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    B, H = full.h.shape
    w = tuple(a.astype(full.outputs.dtype) for a in loss_weights(3, full.outputs.shape, B, H))
    want = ops.lstm_backward(full.cache, *w)
    without_dx = ops.lstm_backward(lean.cache, *w, input_gradient=False)
    assert without_dx.dx is None
    for name in GRAD_NAMES[1:]:
        np.testing.assert_array_equal(getattr(without_dx, name), getattr(want, name), err_msg=name)
    with pytest.raises(ValueError, match=r"input_gradient=False.*pass the forward's kernel"):
        ops.lstm_backward(lean.cache, *w)
    with pytest.raises(ValueError, match="`kernel` must have shape"):
        ops.lstm_backward(lean.cache, *w, kernel=args[1][:, :-1].copy())
    got = ops.lstm_backward(lean.cache, *w, kernel=args[1])
    for name in GRAD_NAMES:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


OPTION_SETS = {
    **{f"{a}_{r}": dict(activation=a, recurrent_activation=r)
       for a, r in itertools.product(("tanh", "relu", "sigmoid", "linear"), ("sigmoid", "hard_sigmoid"))},
    **{f"mask_{p}_{'zero' if z else 'carry'}_{'back' if g else 'fwd'}":
       dict(mask=p, zero_output_for_mask=z, go_backwards=g)
       for p, z, g in itertools.product(MASK_PATTERNS, (False, True), (False, True))},
    "dropout": dict(input_dropout=True, recurrent_dropout=True),
    "last_output": dict(return_sequences=False),
    "last_output_masked_backwards": dict(return_sequences=False, mask="post_padding", go_backwards=True),
    "no_bias_no_state": dict(use_bias=False, initial_state=False),
    "everything": dict(activation="relu", recurrent_activation="hard_sigmoid", mask="holes",
                       input_dropout=True, recurrent_dropout=True, go_backwards=True,
                       zero_output_for_mask=True, return_sequences=False),
}


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("B", (37, 9), ids=("batch_tiles", "unit_tiles"))
@pytest.mark.parametrize("name", OPTION_SETS)
def test_fast_path_matches_reference_for_each_option(name, B, dtype):
    options = {"initial_state": True, **OPTION_SETS[name]}
    # H = 70 with B = 37: two batch tiles (19 + 18 rows); with B = 9: two unit tiles (40 + 30
    # units) and a barrier per step. Masks and dropout cross the tiles' edges either way.
    args, kw = make_case(50 + len(name), B=B, T=7, D=6, H=70, dtype=dtype, scale=0.4, **options)
    check_against_reference(args, kw, dtype)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("B", (37, 9), ids=("batch_tiles", "unit_tiles"))
@pytest.mark.parametrize("name", OPTION_SETS)
def test_inference_forward_equals_training_forward_for_each_option(name, B, dtype):
    # Inference projects x as it lies (Z batch-major) and, without a mask, writes h straight
    # into the outputs; training keeps everything time-major for the backward. Same bits.
    args, kw = make_case(70 + len(name), B=B, T=7, D=6, H=70, dtype=dtype, scale=0.4,
                         **{"initial_state": True, **OPTION_SETS[name]})
    inference = ops.lstm_forward(*args, **kw)
    training = ops.lstm_forward(*args, **kw, training=True)
    for what, a, b in zip(("outputs", "h_T", "c_T"), inference[:3], training[:3]):
        np.testing.assert_array_equal(a, b, err_msg=what)


def batch_rows(kw, rows):
    """The keyword arguments of a make_case() call for the samples `rows` (per-sample arrays)."""
    return {k: v[rows] if isinstance(v, np.ndarray) else v for k, v in kw.items()}


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("name", OPTION_SETS)
def test_packed_weights_give_the_same_forward_bit_for_bit(name, dtype):
    # One pack serves every batch size: 37 rows (batch tiles), 9 rows (unit tiles), each layout
    # packed on first use, then 37 rows again from the pack's store; and a training forward.
    args, kw = make_case(90 + len(name), B=37, T=7, D=6, H=70, dtype=dtype, scale=0.4,
                         **{"initial_state": True, **OPTION_SETS[name]})
    x, kernel, recurrent_kernel, bias = args
    packed = ops.pack_lstm_weights(kernel, recurrent_kernel, bias)
    for rows in (slice(None), slice(3, 12), slice(None)):
        kw_rows = batch_rows(kw, rows)
        want = ops.lstm_forward(x[rows], kernel, recurrent_kernel, bias, **kw_rows)
        got = ops.lstm_forward(np.ascontiguousarray(x[rows]), packed, **kw_rows)
        for what, a, b in zip(("outputs", "h_T", "c_T"), got[:3], want[:3]):
            np.testing.assert_array_equal(a, b, err_msg=f"{what}, rows {rows}")
    trained = ops.lstm_forward(x, packed, **kw, training=True)
    for what, a, b in zip(("outputs", "h_T", "c_T"), trained[:3], want[:3]):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}, training")


@for_each_shape_and_dtype
def test_packed_weights_give_the_same_forward_on_every_shape(shape, dtype):
    # Shapes with several K chunks, tail panels and weights larger than L2 (H = 600); a
    # time-constant input (timesteps=), projected once.
    args, kw = shape_case(80, shape, dtype)
    x, kernel, recurrent_kernel, bias = args
    x0 = np.ascontiguousarray(x[:, 0])
    packed = ops.pack_lstm_weights(kernel, recurrent_kernel, bias)
    for got, want in ((ops.lstm_forward(x, packed, **kw), ops.lstm_forward(*args, **kw)),
                      (ops.lstm_forward(x0, packed, **kw, timesteps=x.shape[1]),
                       ops.lstm_forward(x0, kernel, recurrent_kernel, bias, **kw, timesteps=x.shape[1]))):
        for what, a, b in zip(("outputs", "h_T", "c_T"), got[:3], want[:3]):
            np.testing.assert_array_equal(a, b, err_msg=what)


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
def test_packed_weights_keep_a_layout_for_each_column_tiling(dtype):
    # The projection of 200 rows cuts its columns in tiles of 16 panels; that of a constant
    # input's 40 rows in two halves, so that two threads share it: with D = 300 (two K
    # chunks) the two layouts differ, and the pack keeps both.
    args, kw = make_case(9, B=40, T=5, D=300, H=20, dtype=dtype, initial_state=True)
    x, kernel, recurrent_kernel, bias = args
    x0 = np.ascontiguousarray(x[:, 0])
    packed = ops.pack_lstm_weights(kernel, recurrent_kernel, bias)
    for _ in range(2):
        for got, want in ((ops.lstm_forward(x, packed, **kw), ops.lstm_forward(*args, **kw)),
                          (ops.lstm_forward(x0, packed, **kw, timesteps=5),
                           ops.lstm_forward(x0, kernel, recurrent_kernel, bias, **kw, timesteps=5))):
            for what, a, b in zip(("outputs", "h_T", "c_T"), got[:3], want[:3]):
                np.testing.assert_array_equal(a, b, err_msg=what)


def test_packed_weights_are_a_copy_that_later_changes_to_the_arrays_do_not_reach():
    args, kw = make_case(7, B=5, T=6, D=4, H=40, dtype=np.float32, initial_state=True)
    x, kernel, recurrent_kernel, bias = args
    packed = ops.pack_lstm_weights(kernel, recurrent_kernel, bias)
    before = ops.lstm_forward(x, packed, **kw).outputs
    for a in (kernel, recurrent_kernel, bias):
        a *= 2
    np.testing.assert_array_equal(ops.lstm_forward(x, packed, **kw).outputs, before)
    np.testing.assert_array_equal(packed.kernel * 2, kernel)
    assert not ops.lstm_forward(*args, **kw).outputs.tolist() == before.tolist()
    for a in (packed.kernel, packed.recurrent_kernel, packed.bias):
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 1.0
    assert ops.pack_lstm_weights(kernel, recurrent_kernel).bias is None


def test_one_pack_shared_by_threads_gives_each_the_same_result():
    # The layouts are packed on first use under a lock: threads that ask at once for one get
    # the same panels.
    import threading

    args, kw = make_case(8, B=40, T=5, D=16, H=130, dtype=np.float32, initial_state=True)
    x, kernel, recurrent_kernel, bias = args
    want = {b: ops.lstm_forward(x[:b], kernel, recurrent_kernel, bias, **batch_rows(kw, slice(0, b)))
            for b in (40, 7)}
    packed = ops.pack_lstm_weights(kernel, recurrent_kernel, bias)
    errors = []

    def work(b):
        try:
            for _ in range(5):
                got = ops.lstm_forward(x[:b], packed, **batch_rows(kw, slice(0, b)))
                for a, w in zip(got[:3], want[b][:3]):
                    np.testing.assert_array_equal(a, w)
        except Exception as e:  # reported below, from the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(b,)) for b in (40, 7, 40, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
def test_fast_path_matches_the_naive_cpp_path(dtype):
    for k, options in enumerate([dict(), dict(mask="holes", go_backwards=True, activation="relu"),
                                 dict(recurrent_activation="hard_sigmoid", input_dropout=True,
                                      recurrent_dropout=True, return_sequences=False)]):
        args, kw = make_case(60 + k, B=9, T=8, D=7, H=70, dtype=dtype, initial_state=True, **options)
        fast = ops.lstm_forward(*args, **kw)
        naive = ops.lstm_forward(*args, **kw, naive=True)
        assert naive.cache is None
        for name, f, n in zip(("outputs", "h_T", "c_T"), fast[:3], naive[:3]):
            assert_close(f, n.astype(np.float64), TOL[dtype][0], name)


# --- instruction sets and threads ----------------------------------------------------------------

ISA_SCRIPT = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import lstmfast
    from lstmfast import ops
    cases = pickle.load(open(sys.argv[1], "rb"))
    results = {"isa": lstmfast.cpu_isa(), "runs": []}
    for args, kw, w in cases:
        out, h, c, cache = ops.lstm_forward(*args, **kw, training=True)
        results["runs"].append(((out, h, c), tuple(ops.lstm_backward(cache, *w))))
    pickle.dump(results, open(sys.argv[2], "wb"))
""")


def isa_cases():
    cases = []
    for k, dtype in enumerate((np.float32, np.float64)):
        args, kw = make_case(70 + k, B=35, T=6, D=9, H=70, dtype=dtype, initial_state=True,
                             mask="holes", input_dropout=True, recurrent_dropout=True)
        out_shape = (35, 6, 70)
        w = tuple(a.astype(dtype) for a in loss_weights(0, out_shape, 35, 70))
        cases.append((args, kw, w))
    return cases


@pytest.mark.parametrize("isa", ("baseline", "avx2", "avx512"))
def test_each_instruction_set_build_matches_the_reference(isa, tmp_path):
    from lstmfast._core import built, core

    if not built(isa):
        pytest.skip(f"lstmfast was built without the {isa} module")
    if not core.cpu_supports(isa):
        pytest.skip(f"this CPU does not run {isa}")
    cases = isa_cases()
    with open(tmp_path / "in.pkl", "wb") as f:
        pickle.dump(cases, f)
    pkg_root = os.path.dirname(os.path.dirname(lstmfast.__file__))
    env = dict(os.environ, LSTMFAST_ISA=isa,
               PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", ISA_SCRIPT, str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "out.pkl", "rb") as f:
        res = pickle.load(f)
    assert res["isa"] == isa
    for (args, kw, w), ((out, h, c), grads) in zip(cases, res["runs"]):
        dtype = args[0].dtype.type
        args64, kw64 = as64(args, kw)
        r_fwd = lstm_forward_reference(*args64, **kw64)
        r_grads = lstm_backward_reference(*args64, **kw64, **dict(zip(("d_outputs", "d_h", "d_c"),
                                                                      (a.astype(np.float64) for a in w))))
        for name, got, want in zip(("outputs", "h_T", "c_T") + GRAD_NAMES, (out, h, c) + grads, r_fwd + r_grads):
            assert got.dtype == dtype
            assert_close(got, want, TOL[dtype][0 if name in ("outputs", "h_T", "c_T") else 1], f"{isa} {name}")


# float64 once gave different last bits depending on where a buffer started (Eigen's packet and
# scalar sigmoid differ by an ulp, and alignment decided which elements took which path).
DTYPES = (np.float32, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_results_are_bitwise_reproducible_from_call_to_call(dtype):
    args, kw = make_case(80, B=4, T=3, D=5, H=7, dtype=dtype)
    runs = []
    for _ in range(40):
        fresh = tuple(np.array(a, copy=True) for a in args)   # new buffers, wherever they land
        # results and caches are kept, so that the kernel's own buffers land elsewhere each time
        runs.append(ops.lstm_forward(*fresh, **kw, training=True))
    differ = sum(not np.array_equal(r.outputs, runs[0].outputs) for r in runs)
    assert differ == 0, f"{differ} of {len(runs)} calls on the same inputs gave other bits"


@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_results_are_bitwise_identical_for_one_or_two_threads(dtype, restore_threads):
    # B = 70: two batch tiles; B = 20: two unit tiles. Either way two threads split the work.
    for B in (70, 20):
        args, kw = make_case(80 + B, B=B, T=6, D=40, H=140, dtype=dtype, initial_state=True,
                             mask="holes", scale=0.3)
        runs = []
        for n in (1, 2, 1):
            lstmfast.set_num_threads(n)
            assert lstmfast.get_num_threads() == n
            fwd, grads, _ = fast_forward_backward(args, kw)
            runs.append(fwd + tuple(grads))
        for name, one, two, again in zip(("outputs", "h_T", "c_T") + GRAD_NAMES, *runs):
            assert np.array_equal(one, two), f"B={B}: {name} differs between 1 and 2 threads"
            assert np.array_equal(one, again), f"B={B}: {name} differs between two runs on 1 thread"


@pytest.mark.parametrize("H", [3, 17, 50])
@pytest.mark.parametrize("training", [False, True], ids=("inference", "training"))
def test_a_unit_gives_the_same_bits_wherever_it_lies_in_its_row(H, training):
    # The cell runs over a row of units a packet at a time; a row that is not whole packets
    # ends in a packet that overlaps the one before it (or, shorter than a packet, in a padded
    # copy). Units appended to a layer without coupling to it (zero blocks in W's and U's
    # cross terms) must leave the first H units' outputs bit for bit as they were, although
    # their places in packets change.
    rng = np.random.default_rng(H)
    B, T, D, extra = 40, 6, 5, 23
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    W, U, b = (rng.standard_normal(s).astype(np.float32) * 0.5 for s in ((D, 4 * H), (H, 4 * H), (4 * H,)))
    H2 = H + extra
    W2, U2, b2 = (rng.standard_normal(s).astype(np.float32) * 0.5 for s in ((D, 4 * H2), (H2, 4 * H2), (4 * H2,)))
    for q in range(4):  # gate block q: the first H columns are the small layer's
        W2[:, q * H2:q * H2 + H] = W[:, q * H:(q + 1) * H]
        b2[q * H2:q * H2 + H] = b[q * H:(q + 1) * H]
        U2[:, q * H2:(q + 1) * H2] = 0.0
        U2[:H, q * H2:q * H2 + H] = U[:, q * H:(q + 1) * H]
        U2[H:, q * H2 + H:(q + 1) * H2] = rng.standard_normal((extra, extra)) * 0.5
    small = ops.lstm_forward(x, W, U, b, training=training)
    large = ops.lstm_forward(x, W2, U2, b2, training=training)
    assert np.array_equal(large.outputs[..., :H], small.outputs)
    assert np.array_equal(large.c[:, :H], small.c)


# --- matmul (Dense's products) ------------------------------------------------------------------

# Sizes around the kernel's blocks: one value, a row, tails of panels and row blocks, K above
# one K chunk (256), two row tiles, and N wide enough for two column tiles.
MATMUL_SIZES = [(1, 1, 1), (1, 7, 33), (7, 3, 5), (100, 33, 257), (64, 1000, 17), (250, 40, 600)]


@pytest.mark.parametrize("m,k,n", MATMUL_SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_matmul_matches_numpy_for_every_transpose_bias_and_accumulate(m, k, n, dtype):
    rng = np.random.default_rng(m * 7 + n)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    bias, start = rng.standard_normal(n), rng.standard_normal((m, n))
    want = a @ b  # float64
    tol = 1e-12 if dtype == np.float64 else 2e-6
    scale = np.sqrt(k) * (1 + np.abs(want).max())
    cast = lambda x: np.ascontiguousarray(x, dtype)  # noqa: E731
    for ta, tb in itertools.product((False, True), repeat=2):
        ua, ub = cast(a.T if ta else a), cast(b.T if tb else b)
        got = ops.matmul(ua, ub, transpose_a=ta, transpose_b=tb)
        assert got.dtype == dtype and got.shape == (m, n)
        assert np.abs(got - want).max() <= tol * scale, (ta, tb)
        got = ops.matmul(ua, ub, bias=cast(bias), transpose_a=ta, transpose_b=tb)
        assert np.abs(got - (want + bias)).max() <= tol * scale, (ta, tb, "bias")
        out = start.astype(dtype)  # a copy: start stays as it was
        assert ops.matmul(ua, ub, out=out, accumulate=True, transpose_a=ta, transpose_b=tb) is out
        assert np.abs(out - (start + want)).max() <= tol * scale, (ta, tb, "accumulate")


# A's rows read where they lie (few panels, rows not 4 KB apart), packed (many panels; rows
# 4 KB apart), and a transposed A (packed): the same values in the same order, the same bits.
@pytest.mark.parametrize("k,n", [(700, 90), (700, 300), (1024, 90)], ids=["direct", "many_panels", "4kb_rows"])
@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_matmul_gives_the_same_bits_for_one_or_two_threads(dtype, k, n, restore_threads):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((300, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    runs = []
    for n in (1, 2, 1):
        lstmfast.set_num_threads(n)
        runs.append((ops.matmul(a, b), ops.matmul(a.T.copy(), b, transpose_a=True)))
    for run in runs[1:]:
        for x, y in zip(runs[0], run):
            assert np.array_equal(x, y)


@pytest.mark.parametrize("batch,m,k,n", [(1, 1, 1, 1), (3, 20, 256, 20), (5, 7, 300, 33), (64, 2, 0, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_batched_matmul_matches_numpy_for_every_transpose_and_thread_count(batch, m, k, n, dtype, restore_threads):
    rng = np.random.default_rng(m + n)
    a, b = rng.standard_normal((batch, m, k)), rng.standard_normal((batch, k, n))
    want = a @ b
    tol = (1e-12 if dtype == np.float64 else 2e-6) * np.sqrt(max(k, 1)) * (1 + np.abs(want).max(initial=0))
    for ta, tb in itertools.product((False, True), repeat=2):
        ua = np.ascontiguousarray(np.swapaxes(a, 1, 2) if ta else a, dtype)
        ub = np.ascontiguousarray(np.swapaxes(b, 1, 2) if tb else b, dtype)
        runs = []
        for threads in (1, 2):
            lstmfast.set_num_threads(threads)
            runs.append(ops.batched_matmul(ua, ub, transpose_a=ta, transpose_b=tb))
        assert runs[0].dtype == dtype and runs[0].shape == (batch, m, n)
        assert np.abs(runs[0] - want).max(initial=0) <= tol, (ta, tb)
        assert np.array_equal(runs[0], runs[1])  # the same bits for any thread count


@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_softmax_matches_numpy_row_by_row_for_any_thread_count(dtype, restore_threads):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((37, 3, 501)) * 20).astype(dtype)  # 111 rows: tiles and a tail
    x[0, 0, :] = 0.0  # a flat row
    x[1, 0, 7] = 1e4 if dtype == np.float64 else 80.0  # one dominant entry, exp far past overflow unshifted
    z = x.astype(np.float64)
    want = np.exp(z - z.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    runs = []
    for n in (1, 2):
        lstmfast.set_num_threads(n)
        runs.append(ops.softmax(x))
    assert np.array_equal(runs[0], runs[1]) and runs[0].dtype == dtype
    tol = 1e-14 if dtype == np.float64 else 5e-7  # float32: a few ulp of 1
    assert np.abs(runs[0] - want).max() <= tol
    np.testing.assert_allclose(runs[0].sum(-1), 1.0, rtol=10 * tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
@pytest.mark.parametrize("sparse", (True, False), ids=("sparse", "one_hot"))
def test_crossentropy_on_softmax_matches_the_formula_for_any_thread_count(sparse, dtype, restore_threads):
    # value = −log clip(q_y), ∂L/∂z = g·(q − onehot) with q = p/Σp; rows clipped on either side,
    # a zero weight and smoothed targets included
    rng = np.random.default_rng(11)
    z = rng.standard_normal((23, 3, 131)) * 4
    z[0, 0, 5] = 60.0  # q_y above 1 − ε: clipped, no gradient
    z[0, 1, 5] = 60.0  # q_y below ε for a label elsewhere
    p = ops.softmax(z.astype(dtype))
    labels = rng.integers(0, 131, (23, 3))
    labels[0, 0], labels[0, 1] = 5, 9
    g = rng.uniform(0.1, 2.0, (23, 3)).astype(dtype)
    g[1, 2] = 0.0
    eps = 1e-7
    q = p.astype(np.float64) / p.astype(np.float64).sum(-1, keepdims=True)
    onehot = np.eye(131)[labels]
    if sparse:
        targets = labels
        qy = np.take_along_axis(q, labels[..., None], -1)[..., 0]
        want_v = -np.log(np.clip(qy, eps, 1 - eps))
        inside = (qy >= eps) & (qy <= 1 - eps)
        want_g = (q - onehot) * (g * inside)[..., None]
    else:
        targets = (onehot * 0.9 + 0.1 / 131).astype(dtype)
        t = targets.astype(np.float64)
        want_v = -np.sum(t * np.log(np.clip(q, eps, 1 - eps)), -1)
        kept = t * ((q >= eps) & (q <= 1 - eps))
        want_g = (q * kept.sum(-1, keepdims=True) - kept) * g[..., None]
    runs = []
    for n in (1, 2):
        lstmfast.set_num_threads(n)
        runs.append(ops.crossentropy_on_softmax(p, targets, g, epsilon=eps, sparse=sparse))
    (values, grad), (values2, grad2) = runs
    assert values.shape == (23, 3) and grad.shape == p.shape and grad.dtype == dtype
    assert np.array_equal(values, values2) and np.array_equal(grad, grad2)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(values, want_v, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, want_g, rtol=tol, atol=tol * 1e-2)
    assert not grad[1, 2].any()  # zero weight
    if sparse:
        assert not grad[0, 0].any() and not grad[0, 1].any()  # clipped rows


@pytest.mark.parametrize("dtype", DTYPES, ids=("float32", "float64"))
def test_softmax_and_crossentropy_give_a_row_the_same_bits_wherever_it_lies(dtype):
    # the rows of a (rows, 60) array start at every alignment; each must come out as it does
    # alone, from an aligned array and from one a value off alignment
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((24, 60)) * 3).astype(dtype)
    labels = rng.integers(0, 60, 24)
    targets = np.eye(60, dtype=dtype)[labels]
    g = np.ones(24, dtype)
    p = ops.softmax(x)
    values, grad = ops.crossentropy_on_softmax(p, targets, g)
    sv, sg = ops.crossentropy_on_softmax(p, labels, g, sparse=True)
    for r in range(24):
        for offset in (0, 1):
            row = np.empty(61, dtype)[offset:offset + 60]
            row[:] = x[r]
            pr = ops.softmax(row[None])
            assert np.array_equal(pr[0], p[r]), (r, offset)
            v, gr = ops.crossentropy_on_softmax(pr, targets[r:r + 1], g[:1])
            assert np.array_equal(v[0], values[r]) and np.array_equal(gr[0], grad[r]), (r, offset)
            v, gr = ops.crossentropy_on_softmax(pr, labels[r:r + 1], g[:1], sparse=True)
            assert np.array_equal(v[0], sv[r]) and np.array_equal(gr[0], sg[r]), (r, offset)


# --- the vectorised activations ----------------------------------------------------------------

def activation_probe(xs, dtype, probe, naive=False):
    """Values of the kernel's own φ = tanh or σ = sigmoid at xs, read off c_T after one step:
    with W = [0 | 0 | I | 0] and c_0 = 0, c_1 = σ(0)·tanh(x) = tanh(x)/2 (exact halving);
    with W = [0 | I | 0 | 0], c_0 = 1 and relu's φ(0) = 0, c_1 = σ(x)·1 + σ(0)·0 = σ(x)."""
    n = 64
    x = xs.astype(dtype).reshape(-1, 1, n).copy()
    W, U = np.zeros((n, 4 * n), dtype), np.zeros((n, 4 * n), dtype)
    if probe == "tanh":
        W[:, 2 * n:3 * n] = np.eye(n)
        res = ops.lstm_forward(x, W, U, naive=naive)
        return 2.0 * res.c.reshape(-1).astype(np.float64)
    W[:, n:2 * n] = np.eye(n)
    res = ops.lstm_forward(x, W, U, c0=np.ones((x.shape[0], n), dtype), activation="relu", naive=naive)
    return res.c.reshape(-1).astype(np.float64)


# Largest error against the exact value, measured on x in [−20, 20] (256,000 points) with the
# AVX2 build: float32 tanh 2.6e-7 (4.4 ulp), sigmoid 1.5e-7 absolute (σ(−9) ≈ 1.2e-4 is off
# by 7e-4 relative); float64 both ≤ 3 ulp. The bounds leave a margin for other builds.
ACTIVATION_BOUNDS = {np.float32: {"tanh": 4e-7, "sigmoid": 2.5e-7}, np.float64: {"tanh": 1e-15, "sigmoid": 1e-15}}


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("probe", ("tanh", "sigmoid"))
def test_vectorised_activations_stay_within_their_documented_error(probe, dtype):
    xs = np.linspace(-20.0, 20.0, 4000 * 64).astype(dtype).astype(np.float64)
    exact = np.tanh(xs) if probe == "tanh" else 1.0 / (1.0 + np.exp(-xs))
    got = activation_probe(xs, dtype, probe)
    err = np.max(np.abs(got - exact))
    assert err <= ACTIVATION_BOUNDS[dtype][probe], f"{probe} {dtype.__name__}: max error {err:.3g}"
    # Saturation is exact where it must be: no gate leaks above 1 or below −1.
    assert np.all(got <= 1.0) and np.all(got >= (-1.0 if probe == "tanh" else 0.0))


# --- Adam against Keras's formula in numpy --------------------------------------------------------

@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
def test_adam_update_matches_keras_formula_over_several_steps(dtype):
    rng = np.random.default_rng(90)
    n = 1001   # not a multiple of any vector width
    p, m, v = rng.standard_normal(n).astype(dtype), np.zeros(n, dtype), np.zeros(n, dtype)
    rp, rm, rv = p.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    hyper = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    for step in range(1, 8):
        g = (rng.standard_normal(n) * 10.0 ** rng.integers(-5, 2)).astype(dtype)
        ops.adam_update(p, g, m, v, step=step, **hyper)
        adam_update_reference(rp, g.astype(np.float64), rm, rv, step=step, **hyper)
    tol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(p, rp, rtol=tol, atol=tol)
    np.testing.assert_allclose(m, rm, rtol=tol, atol=tol * 1e-3)
    np.testing.assert_allclose(v, rv, rtol=tol, atol=tol * 1e-6)


def test_adam_update_on_views_of_one_flat_buffer_updates_each_slice_in_place():
    # The training loop keeps kernel, recurrent kernel and bias in one buffer and updates views.
    p = np.ones(30)
    m, v = np.zeros(30), np.zeros(30)
    ops.adam_update(p[10:20], np.full(10, 0.5), m[10:20], v[10:20], learning_rate=0.1, step=1)
    assert np.all(p[:10] == 1.0) and np.all(p[20:] == 1.0)
    # step 1: m = 0.05, v = 0.00025, lr_t = 0.1·√0.001/0.1 → p = 1 − lr_t·m/(√v + ε)
    lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(p[10:20], 1.0 - lr_t * 0.05 / (np.sqrt(0.00025) + 1e-7), rtol=1e-14)


# --- Keras itself: the reference's semantics and Adam (tests last: Keras loads meanwhile) ------

KERAS_SCRIPT = textwrap.dedent("""
    import os, pickle, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras

    cases = pickle.load(open(sys.argv[1], "rb"))
    results = {"lstm": {}, "adam": {}}
    for name, (x, W, U, b, kw) in cases["lstm"].items():
        B, T, D = x.shape
        H = U.shape[0]
        mx, mh = kw.get("input_dropout_mask"), kw.get("recurrent_dropout_mask")
        layer = keras.layers.LSTM(
            H, activation=kw.get("activation", "tanh"),
            recurrent_activation=kw.get("recurrent_activation", "sigmoid"),
            go_backwards=kw.get("go_backwards", False), return_sequences=kw.get("return_sequences", True),
            return_state=True, zero_output_for_mask=kw.get("zero_output_for_mask", False),
            use_bias=b is not None, dropout=0.25 if mx is not None else 0.0,
            recurrent_dropout=0.25 if mh is not None else 0.0, use_cudnn=False, dtype="float64")
        layer.build((B, T, D))
        layer.set_weights([W, U] + ([b] if b is not None else []))
        # Keras samples its dropout masks once per call: hand it ours instead. With recurrent
        # dropout Keras's cell takes one mask per gate (implementation 1): give the same four.
        per_gate = layer.cell.implementation == 1
        def fixed(m):
            t = keras.ops.convert_to_tensor(m)
            return keras.ops.stack([t] * 4) if per_gate else t
        if mx is not None:
            layer.cell.get_dropout_mask = lambda step_input, t=fixed(mx): t
        if mh is not None:
            layer.cell.get_recurrent_dropout_mask = lambda step_input, t=fixed(mh): t
        init = [kw["h0"], kw["c0"]] if "h0" in kw else None
        res = layer(x, mask=kw.get("mask"), initial_state=init,
                    training=mx is not None or mh is not None)
        results["lstm"][name] = [keras.ops.convert_to_numpy(r) for r in res]
    for name, (p0, grads, hyper) in cases["adam"].items():
        var = keras.Variable(p0.copy(), dtype=p0.dtype.name)
        opt = keras.optimizers.Adam(**hyper)
        for g in grads:
            opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
        results["adam"][name] = keras.ops.convert_to_numpy(var.value)
    pickle.dump(results, open(sys.argv[2], "wb"))
""")

KERAS_LSTM_CASES = {
    "defaults": dict(),
    "initial_state": dict(initial_state=True),
    "relu_hard_sigmoid": dict(activation="relu", recurrent_activation="hard_sigmoid", initial_state=True),
    "sigmoid_no_bias": dict(activation="sigmoid", use_bias=False),
    "linear": dict(activation="linear", go_backwards=True),
    "go_backwards_last": dict(go_backwards=True, return_sequences=False, initial_state=True),
    "post_padding": dict(mask="post_padding", initial_state=True),
    "pre_padding_backwards": dict(mask="pre_padding", go_backwards=True),
    "pre_padding_initial_state": dict(mask="pre_padding", initial_state=True),
    "holes_zero_output": dict(mask="holes", zero_output_for_mask=True, initial_state=True),
    "holes_zero_output_last": dict(mask="holes", zero_output_for_mask=True, return_sequences=False),
    "fully_masked_row_last": dict(mask="row_fully_masked", return_sequences=False, initial_state=True),
    "dropout": dict(input_dropout=True, recurrent_dropout=True, initial_state=True),
    "everything": dict(mask="holes", input_dropout=True, recurrent_dropout=True, go_backwards=True,
                       activation="relu", recurrent_activation="hard_sigmoid"),
}
ADAM_CASES = {
    "keras_defaults": dict(learning_rate=0.001),
    "custom": dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-4),
}


@pytest.fixture(scope="module", autouse=True)
def keras_process(request, tmp_path_factory):
    """Keras 3 on the torch backend, in a subprocess (a fresh interpreter, so the backend choice
    cannot clash with anything imported here). Its import takes seconds, so it starts with this
    module's first test and runs while the tests before the Keras ones do; keras_results reads it."""
    wanted = any("keras_results" in getattr(item, "fixturenames", ()) for item in request.session.items)
    if not wanted or importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        yield None
        return
    lstm = {name: (*args, kw) for name, (args, kw) in
            ((n, make_case(30 + k, B=3, T=7, **o)) for k, (n, o) in enumerate(KERAS_LSTM_CASES.items()))}
    rng = np.random.default_rng(31)
    adam = {}
    for name, hyper in ADAM_CASES.items():
        for dt in (np.float32, np.float64):
            grads = [(rng.standard_normal(50) * 10.0 ** rng.integers(-4, 2)).astype(dt) for _ in range(6)]
            adam[f"{name}_{dt.__name__}"] = (rng.standard_normal(50).astype(dt), grads, hyper)
    d = tmp_path_factory.mktemp("keras")
    with open(d / "in.pkl", "wb") as f:
        pickle.dump({"lstm": lstm, "adam": adam}, f)
    proc = subprocess.Popen([sys.executable, "-c", KERAS_SCRIPT, str(d / "in.pkl"), str(d / "out.pkl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, d / "out.pkl", {"lstm": lstm, "adam": adam}
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def keras_results(keras_process):
    if keras_process is None:
        pytest.skip("Keras 3 with the torch backend is a test-only extra: pip install 'lstmfast[test]'")
    proc, out_path, cases = keras_process
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    with open(out_path, "rb") as f:
        return {"cases": cases, **pickle.load(f)}


@pytest.mark.parametrize("name", KERAS_LSTM_CASES)
def test_reference_and_fast_path_match_keras_lstm(keras_results, name):
    x, W, U, b, kw = keras_results["cases"]["lstm"][name]
    k_out, k_h, k_c = keras_results["lstm"][name]
    r_out, r_h, r_c = lstm_forward_reference(x, W, U, b, **kw)
    f_out, f_h, f_c, _ = ops.lstm_forward(x, W, U, b, **kw)
    # Masked steps before a row's first real step output zeros, as on Keras's torch (and
    # TensorFlow) backend, also when an initial state is given.
    out_k = np.array(k_out)
    # Keras 3 on the torch backend loses float64 precision somewhere in its loop (it agrees with
    # the reference to ~1e-8 only, where torch.nn.LSTM in float64 agrees to 1e-15), so the bound
    # is 1e-7: a wrong mask, step order or gate is off by 1e-3 or more.
    for what, got in (("reference", (r_out, r_h, r_c)), ("lstmfast", (f_out, f_h, f_c))):
        for part, g, k in zip(("outputs", "h_T", "c_T"), got, (out_k, k_h, k_c)):
            np.testing.assert_allclose(g, k, rtol=0, atol=1e-7, err_msg=f"{what} {part}")
    # ...and the fast path agrees with the reference to float64 precision.
    for part, g, r in zip(("outputs", "h_T", "c_T"), (f_out, f_h, f_c), (r_out, r_h, r_c)):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13, err_msg=part)


@pytest.mark.parametrize("name", [f"{n}_{d}" for n in ADAM_CASES for d in ("float32", "float64")])
def test_adam_update_matches_keras_adam(keras_results, name):
    p0, grads, hyper = keras_results["cases"]["adam"][name]
    hyper = dict(dict(beta_1=0.9, beta_2=0.999, epsilon=1e-7), **hyper)
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for step, g in enumerate(grads, start=1):
        ops.adam_update(p, g, m, v, step=step, **hyper)
    # Keras keeps learning_rate and the β powers in float32 variables even for float64 weights,
    # so float64 agrees to ~1e-8 relative only (against the formula in float64 it is 1e-14, below).
    tol = 1e-6 if p0.dtype == np.float32 else 1e-7
    np.testing.assert_allclose(p, keras_results["adam"][name], rtol=tol, atol=tol)


# --- one-hot inputs ---------------------------------------------------------------------------

def one_hot_case(seed, B, T, D, H, dtype, **options):
    """make_case with x replaced by unit vectors, and all-zero steps where the mask hides them."""
    args, kw = make_case(seed, B=B, T=T, D=D, H=H, dtype=dtype, initial_state=True,
                         scale=min(0.5, 3.0 / np.sqrt(D + H)), **options)
    ids = np.random.default_rng(seed).integers(0, D, (B, T))
    x = np.eye(D, dtype=dtype)[ids]
    if "mask" in kw:
        x[~np.asarray(kw["mask"], bool)] = 0
    return (x,) + args[1:], kw


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("B,T,D,H,options", [
    (5, 7, 20, 6, {}),
    (37, 5, 61, 70, dict(mask="pre_padding", go_backwards=True)),  # batch and unit tiles
    (3, 6, 33, 130, dict(mask="holes", return_sequences=False, activation="relu")),
])
def test_one_hot_inputs_pick_rows_of_the_kernel_and_match_the_reference(B, T, D, H, options, dtype):
    args, kw = one_hot_case(70 + H, B, T, D, H, dtype, **options)
    check_against_reference(args, kw, dtype)
    assert ops.lstm_forward(*args, **kw, training=True).cache.one_hot_input
    # The same products through the dense path: x·2 and kernel/2 are exact, and not one-hot.
    x, kernel = args[0], args[1]
    fast = ops.lstm_forward(*args, **kw, training=True)
    dense = ops.lstm_forward(x * 2, kernel / 2, *args[2:], **kw, training=True)
    assert not dense.cache.one_hot_input
    for name, a, b in zip(("outputs", "h_T", "c_T"), fast[:3], dense[:3]):
        np.testing.assert_array_equal(a, b, err_msg=name)  # W[id] + b is what the product gives
    d_out = np.ones_like(fast.outputs)
    g_fast = ops.lstm_backward(fast.cache, d_outputs=d_out)
    g_dense = ops.lstm_backward(dense.cache, d_outputs=d_out)
    np.testing.assert_allclose(g_fast[1], g_dense[1] / 2, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-13)
    for i in (2, 3, 4, 5):
        np.testing.assert_array_equal(g_fast[i], g_dense[i], err_msg=GRAD_NAMES[i])
    np.testing.assert_allclose(g_fast[0], g_dense[0] * 2, rtol=1e-5, atol=1e-6)  # dx = dZ·Wᵀ
    # Without dx the loop keeps two steps of dZ only (one unit tile): the same gradients, bit for bit.
    lean = ops.lstm_backward(fast.cache, d_outputs=d_out, input_gradient=False)
    assert lean.dx is None
    for name in GRAD_NAMES[1:]:
        np.testing.assert_array_equal(getattr(lean, name), getattr(g_fast, name), err_msg=name)


def test_inputs_that_are_almost_one_hot_take_the_dense_path():
    args, kw = one_hot_case(90, 4, 5, 24, 8, np.float32)
    for change in (lambda x: x.__setitem__((0, 0, 0), 0.5), lambda x: x.__setitem__((1, 2), 1.0),
                   lambda x: x.__setitem__((2, 3, 1), np.float32(np.nan))):
        x = args[0].copy()
        change(x)
        out = ops.lstm_forward(x, *args[1:], **kw, training=True, check_finite=False)
        assert not out.cache.one_hot_input
    small = one_hot_case(91, 4, 5, 8, 8, np.float32)[0]  # below 16 features the product is cheap
    assert not ops.lstm_forward(*small, training=True).cache.one_hot_input


def test_the_core_loads_from_the_package_and_from_lstmfast_core_dir(tmp_path):
    # LSTMFAST_CORE_DIR (how .ci/sanitize loads its build) and the package's own modules
    base_env = {k: v for k, v in os.environ.items() if k != "LSTMFAST_CORE_DIR"}

    def core_file(**env):
        return subprocess.run([sys.executable, "-c", "from lstmfast._core import core; print(core.__file__)"],
                              env=dict(base_env, **env), capture_output=True, text=True, timeout=60)

    own = core_file()
    assert own.returncode == 0, own.stderr[-2000:]
    directory = os.path.dirname(own.stdout.strip())  # the package's own modules
    again = core_file(LSTMFAST_CORE_DIR=directory)
    assert again.returncode == 0 and os.path.dirname(again.stdout.strip()) == directory, again.stderr[-2000:]
    empty = core_file(LSTMFAST_CORE_DIR=str(tmp_path))
    assert empty.returncode != 0 and "no _core_baseline module in LSTMFAST_CORE_DIR" in empty.stderr
