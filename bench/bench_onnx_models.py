"""The seed's three Keras models, exported with `model.export(path, format="onnx")`: ONNX Runtime
on the exported file against lstmfast's `predict`, same weights and inputs, in turns in one
process.

    python bench/bench_onnx_models.py                      # batch 1 and 256, 2 threads
    python bench/bench_onnx_models.py --batches 32 --threads 1

For each model and batch: the median time of one call over --repeats calls in each of --rounds
rounds, the frameworks taking turns, each turn opened by 50 ms of warm-up calls, and lstmfast /
ONNX Runtime. The outputs
are checked first (within 1e-5).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from machine import cpu_model, load_average_warning


def seed_models(lf):
    """The seed's three models at the sizes of its snippets' typical use."""
    L = lf.layers
    rng = np.random.default_rng(0)
    seq2seq = lf.Sequential([L.Input((20, 40)), L.LSTM(256), L.RepeatVector(12), L.LSTM(256, return_sequences=True),
                             L.Dense(40, activation="softmax")])
    forecast = lf.Sequential([L.Input((30, 1)), L.LSTM(50, activation="relu"), L.Dense(1)])
    sentiment = lf.Sequential([L.Input((200,)), L.Embedding(20000, 128), L.LSTM(128), L.Dense(1, activation="sigmoid")])

    def one_hot(b):
        return np.eye(40, dtype=np.float32)[rng.integers(0, 40, (b, 20))]

    return [("seq2seq (20×40 one-hot → 256 → 12×40)", seq2seq, one_hot),
            ("forecast (30×1 → relu LSTM 50 → 1)", forecast, lambda b: rng.standard_normal((b, 30, 1)).astype(np.float32)),
            ("sentiment (200 ids → 128 → LSTM 128 → 1)", sentiment,
             lambda b: rng.integers(1, 20000, (b, 200)).astype(np.float32))]


def median_call(fn, repeats, warmup_seconds=0.05):
    """Median seconds of fn() over `repeats` calls, after warm-up calls for `warmup_seconds`
    (at least one): they also let the other framework's idle threads, which spin for a while
    after its last call, stop competing for the cores."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < warmup_seconds:
        fn()
    times = []
    for _ in range(repeats):
        s = time.perf_counter()
        fn()
        times.append(time.perf_counter() - s)
    return float(np.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="1,256")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    import onnxruntime as ort

    import lstmfast as lf

    _, warning = load_average_warning()
    if warning:
        print(warning)
    lf.set_num_threads(args.threads)
    print(f"{cpu_model()}; {args.threads} thread(s); median ms per call")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, make in seed_models(lf):
            path = os.path.join(tmp, "model.onnx")
            model.export(path, format="onnx", verbose=False)
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = sess.get_inputs()[0].name
            feed_type = np.int64 if "int64" in sess.get_inputs()[0].type else np.float32
            for batch in (int(b) for b in args.batches.split(",")):
                x = make(batch)
                xo = x.astype(feed_type)
                want = model.predict(x, batch_size=batch, verbose=0)
                got = sess.run(None, {feed: xo})[0]
                assert np.allclose(got, want, atol=1e-5), (name, np.abs(got - want).max())
                fns = {"lstmfast": lambda: model.predict(x, batch_size=batch, verbose=0),
                       "ONNX Runtime": lambda: sess.run(None, {feed: xo})}
                times = {k: [] for k in fns}
                for _ in range(args.rounds):
                    for k, fn in fns.items():
                        times[k].append(median_call(fn, args.repeats))
                med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
                print(f"{name}, batch {batch}: lstmfast {med['lstmfast']:.3f}, ONNX Runtime {med['ONNX Runtime']:.3f}; "
                      f"lstmfast / ONNX Runtime {med['lstmfast'] / med['ONNX Runtime']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
