"""A fuzz test the project owns: seeded random calls of every `lstmfast.ops` entry point and of
the layer constructors, with odd shapes (empty, one, mismatched), dtypes (float16, int, bool,
object), strides (non-contiguous views), NaN and ±inf, and sizes; each call must end in a clear
exception (TypeError, ValueError, MemoryError) or in a correct result, never a crash. The cases
run in a child process, so that a crash fails the test with the seed that caused it instead of
ending the test run; `LSTMFAST_FUZZ_CASES` sets how many (default 2000, about 10 s)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CLEAR = (TypeError, ValueError, MemoryError)


def _array(rng, shape, kind):
    """An array of `shape` of one of the awkward kinds."""
    if kind == "float32":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "float64":
        return rng.standard_normal(shape)
    if kind == "float16":
        return rng.standard_normal(shape).astype(np.float16)
    if kind == "int32":
        return rng.integers(-3, 3, shape).astype(np.int32)
    if kind == "bool":
        return rng.random(shape) > 0.5
    if kind == "object":
        return np.empty(shape, dtype=object)
    if kind == "strided":  # a non-contiguous float32 view
        full = rng.standard_normal(tuple(s * 2 if i == len(shape) - 1 else s for i, s in enumerate(shape)) or (2,))
        return full.astype(np.float32)[..., ::2] if shape else full.astype(np.float32)[0]
    if kind == "nan":
        a = rng.standard_normal(shape).astype(np.float32)
        if a.size:
            a.flat[rng.integers(a.size)] = rng.choice([np.nan, np.inf, -np.inf])
        return a
    raise AssertionError(kind)


KINDS = ["float32"] * 6 + ["float64"] * 2 + ["float16", "int32", "bool", "object", "strided", "nan"]


def _dim(rng):
    return int(rng.choice([0, 1, 1, 2, 3, 5, 8, 17]))


def one_case(seed):
    """One random call; returns a short description. Raises AssertionError on a wrong result or
    an unclear exception."""
    import lstmfast as lf
    from lstmfast import layers as L
    from lstmfast import ops

    rng = np.random.default_rng(seed)
    odd = rng.random() < 0.5  # half of the cases: every array well-formed float32, the other half any kind
    kind = lambda: str(rng.choice(KINDS)) if odd and rng.random() < 0.3 else "float32"  # noqa: E731
    what = int(rng.integers(8))
    B, T, D, H = _dim(rng), _dim(rng), _dim(rng), _dim(rng)
    try:
        if what == 0:  # lstm_forward with a random mix of arguments
            x = _array(rng, (B, T, D) if rng.random() > 0.1 else (B, D), kind())
            shape_k = (D, 4 * H) if rng.random() > 0.2 else (D + 1, 4 * H)
            kw = {}
            if rng.random() < 0.3:
                kw["mask"] = _array(rng, (B, T) if rng.random() > 0.2 else (T, B), str(rng.choice(["bool", "int32", "float32"])))
            if rng.random() < 0.3:
                kw["h0"] = _array(rng, (B, H), kind())
            if rng.random() < 0.2:
                kw["input_dropout_mask"] = _array(rng, (B, D), kind())
            for name in ("go_backwards", "return_sequences", "training"):
                kw[name] = bool(rng.random() < 0.5)
            res = ops.lstm_forward(x, _array(rng, shape_k, kind()), _array(rng, (H, 4 * H), kind()),
                                   _array(rng, (4 * H,), kind()) if rng.random() > 0.3 else None, **kw)
            assert np.isfinite(res.outputs).all() and res.outputs.shape[0] == B
            if kw["training"]:
                d = ops.lstm_backward(res.cache, d_outputs=_array(rng, res.outputs.shape, "float32"))
                assert all(g is None or np.isfinite(g).all() for g in d)
            return "lstm_forward: result"
        if what == 1:  # lstm_backward with gradients of random shapes
            x = rng.standard_normal((max(B, 1), max(T, 1), max(D, 1))).astype(np.float32)
            h = max(H, 1)
            res = ops.lstm_forward(x, rng.standard_normal((x.shape[2], 4 * h)).astype(np.float32),
                                   rng.standard_normal((h, 4 * h)).astype(np.float32), training=True)
            shape = res.outputs.shape if rng.random() > 0.4 else (_dim(rng), _dim(rng), _dim(rng))
            ops.lstm_backward(res.cache, d_outputs=_array(rng, shape, kind()),
                              d_h=_array(rng, (x.shape[0], h), kind()) if rng.random() < 0.3 else None)
            return "lstm_backward: result"
        if what == 2:
            a, b = _array(rng, (B, D), kind()), _array(rng, (D if rng.random() > 0.2 else H, H), kind())
            out = ops.matmul(a, b)
            np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4)
            return "matmul: result"
        if what == 3:
            x = _array(rng, (B, T, D) if rng.random() > 0.5 else (B, D), kind())
            y = ops.softmax(x)
            e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
            np.testing.assert_allclose(y, e / e.sum(axis=-1, keepdims=True), rtol=1e-4, atol=1e-6)
            return "softmax: result"
        if what == 4:
            ids = _array(rng, (B, T), str(rng.choice(["int32", "float32", "bool"])))
            if rng.random() < 0.5:
                ids = rng.integers(-1, D + 2, (B, T))
            table = _array(rng, (D, H), kind())
            out = ops.embedding_forward(ids, table)
            np.testing.assert_array_equal(out, table[ids])
            return "embedding_forward: result"
        if what == 5:
            n = _dim(rng)
            p, g, m, v = (_array(rng, (n if rng.random() > 0.1 else n + 1,), kind()) for _ in range(4))
            args = dict(learning_rate=float(rng.choice([1e-3, 0.0, -1.0, np.nan, np.inf])),
                        beta_1=float(rng.choice([0.9, 1.0, -0.1])), epsilon=float(rng.choice([1e-7, 0.0, -1.0])),
                        step=rng.choice([1, 0, 2.5, "3"]))
            before = p.copy()
            ops.adam_update(p, g, m, v, **args)
            assert np.isfinite(p).all() or not np.isfinite(before).all(), "Adam wrote non-finite weights"
            return "adam_update: result"
        if what == 6:  # layer constructors with odd arguments, built and called once
            value = rng.choice([0, -1, 1, 3, 2.5, 2 ** 40, "4", None, True])
            make = [lambda: L.LSTM(value), lambda: L.Dense(value), lambda: L.Embedding(value, 3),
                    lambda: L.Embedding(5, value), lambda: L.Dropout(value), lambda: L.RepeatVector(value),
                    lambda: L.Conv1D(value, 3), lambda: L.MultiHeadAttention(value, 2),
                    lambda: L.LayerNormalization(epsilon=value)][int(rng.integers(9))]
            layer = make()
            lf.Sequential([lf.Input((4,), dtype="int32") if isinstance(layer, L.Embedding) else
                           lf.Input((4, 3)) if not isinstance(layer, (L.RepeatVector, L.Dense)) else lf.Input((3,)),
                           *([layer] if not isinstance(layer, L.MultiHeadAttention) else [])])
            return "layer: built"
        # a small model fed odd data
        model = lf.Sequential([lf.Input((max(T, 1), max(D, 1))), L.LSTM(max(H, 1)), L.Dense(1)])
        model.compile("adam", "mse")
        x = _array(rng, (B, T, D), kind())
        y = _array(rng, (B, 1) if rng.random() > 0.2 else (B + 1, 1), kind())
        model.fit(x, y, epochs=1, verbose=0)
        assert all(np.isfinite(w).all() for w in model.get_weights())
        return "fit: result"
    except CLEAR as e:
        assert str(e), f"{type(e).__name__} without a message"
        return f"clear {type(e).__name__}"


CHILD = textwrap.dedent("""
    import sys, warnings
    warnings.simplefilter("ignore")
    sys.path.insert(0, {tests!r})
    from test_fuzz import one_case
    import lstmfast
    lstmfast.set_num_threads(2)
    for seed in range({start}, {stop}):
        print(seed, flush=True)
        one_case(seed)
    print("done", flush=True)
""")


def test_random_calls_end_in_a_clear_error_or_a_correct_result():
    cases = int(os.environ.get("LSTMFAST_FUZZ_CASES", "2000"))
    code = CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)), start=0, stop=cases)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    lines = proc.stdout.split()
    last = lines[-2] if len(lines) >= 2 else "?"
    assert proc.returncode == 0 and lines[-1:] == ["done"], (
        f"the fuzz run ended with status {proc.returncode} at seed {lines[-1] if lines else '?'} "
        f"(after {last}):\n{proc.stderr[-3000:]}")


@pytest.mark.parametrize("seed", range(40))
def test_a_sample_of_the_cases_in_process(seed):
    # the same cases, in this process, so that a wrong result shows its traceback here
    one_case(10_000 + seed)
