"""Times the three seed models end to end: lstmfast against Keras 3 and hand-written PyTorch.

    python bench/bench_models.py                       # all three models, a few minutes on 2 cores
    python bench/bench_models.py --quick               # fewer samples and epochs: a smoke run
    python bench/bench_models.py --models timeseries,sentiment --json out.json

The models are the seed's, at the seed's sizes (inputs are random, labels too):
  translation  LSTM(256) on (20, 60) one-hot rows -> RepeatVector(20)
               -> LSTM(256, return_sequences=True) -> Dense(60, softmax); categorical_crossentropy
  timeseries   LSTM(50, activation='relu') on (30, 1) -> Dense(1); mse
  sentiment    Embedding(20000, 128) on 200 tokens -> LSTM(128, dropout=0.2, recurrent_dropout=0.2)
               -> Dense(1, sigmoid); binary_crossentropy
compiled as the seed compiles them (Adam with Keras's defaults; metrics=['accuracy'] for
translation and sentiment), and trained on the same 2,048 samples with batch size 64, shuffle on.

Each framework runs in its own process, one after the other, on the same data and the same number
of threads (--threads, default 2): lstmfast; Keras 3 on its torch backend; a hand-written PyTorch
model (nn.LSTM, nn.Linear, torch.optim.Adam); and Keras on TensorFlow where `tensorflow` imports
(in this Python, or in the one --tf-python names: TensorFlow may live in its own environment).
They take turns for --rounds rounds per model (default 2), so that a slow spell of a shared
machine does not fall on one framework only; the medians pool every round. For each it measures
  epoch    seconds per epoch: the median of --epochs epochs of one fit() per round, each after
           one warm-up epoch that is not counted (PyTorch: the same loop written by hand); fewer
           where the timed epochs run past --budget seconds (marked * in the table);
  predict  samples per second of predict(x, batch_size=64) over the training samples: the
           median of a few calls per round after a warm-up call (Keras's default predict batch
           is 32; every framework here gets 64).
Denormal floats are flushed to zero everywhere: lstmfast in its kernels, torch (PyTorch and
Keras's torch backend) through torch.set_flush_denormal(True).

The hand-written PyTorch models are what a PyTorch user would write, and they give PyTorch the
easier path where the seed asks for something nn.LSTM lacks: the time-series LSTM uses nn.LSTM's
tanh (no relu), the sentiment LSTM has dropout on its inputs but no recurrent dropout, and no
accuracy is computed during training. Translation trains on logits with cross_entropy; predict
returns probabilities (softmax / sigmoid) as the Keras models do.

It also measures lstmfast's Python overhead: on the time-series model at batch 64, the share of a
training step spent outside the C++ kernels (lstm_forward, lstm_backward, adam_update, timed by
wrapping them), for steps inside fit() and for train_on_batch() calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from machine import cpu_model, load_average_warning

MODELS = ("translation", "timeseries", "sentiment")
ALIASES = {"time_series": "timeseries", "time-series": "timeseries", "ts": "timeseries", "seq2seq": "translation"}
FRAMEWORKS = ("lstmfast", "keras-torch", "pytorch", "keras-tf")
# lstmfast under its fixed thread policy: an A/B of the default adaptive policy on a quiet machine.
EXTRA_FRAMEWORKS = ("lstmfast-fixed",)
LABELS = {"lstmfast": "lstmfast", "keras-torch": "Keras-torch", "pytorch": "PyTorch",
          "keras-tf": "Keras-TF", "lstmfast-fixed": "lstmfast-fixed"}
BATCH = 64            # training batch size, and the predict batch size of every framework
SEED = 1234

# Sizes from the seed.
TR_STEPS, TR_VOCAB, TR_UNITS = 20, 60, 256          # input_length = output_length, vocab, units
TS_STEPS, TS_UNITS = 30, 50                         # n_steps (n_features = 1), units
SE_VOCAB, SE_DIM, SE_LEN, SE_UNITS = 20000, 128, 200, 128   # max_features, embedding_dim, maxlen


# ---------------------------------------------------------------------------- data
def make_data(name: str, n: int):
    """The same random samples in every process: (x, y) as numpy arrays."""
    import numpy as np

    rng = np.random.default_rng(SEED + MODELS.index(name))
    if name == "translation":
        eye = np.eye(TR_VOCAB, dtype=np.float32)
        x = eye[rng.integers(0, TR_VOCAB, (n, TR_STEPS))]
        y = eye[rng.integers(0, TR_VOCAB, (n, TR_STEPS))]
    elif name == "timeseries":
        x = rng.standard_normal((n, TS_STEPS, 1)).astype(np.float32)
        y = (x[:, -5:, 0].mean(axis=1, keepdims=True) + 0.1 * rng.standard_normal((n, 1))).astype(np.float32)
    else:
        x = rng.integers(1, SE_VOCAB, (n, SE_LEN)).astype(np.int32)
        y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    return x, y


def median(values):
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------- Keras-like APIs
def build_keras_like(name: str, K):
    """The seed's model in a Keras-like API `K` (lstmfast or keras), compiled as the seed does."""
    L = K.layers
    if name == "translation":
        model = K.Sequential([L.Input((TR_STEPS, TR_VOCAB)), L.LSTM(TR_UNITS), L.RepeatVector(TR_STEPS),
                              L.LSTM(TR_UNITS, return_sequences=True), L.Dense(TR_VOCAB, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    elif name == "timeseries":
        model = K.Sequential([L.Input((TS_STEPS, 1)), L.LSTM(TS_UNITS, activation="relu"), L.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
    else:
        model = K.Sequential([L.Input((SE_LEN,), dtype="int32"), L.Embedding(SE_VOCAB, SE_DIM),
                              L.LSTM(SE_UNITS, dropout=0.2, recurrent_dropout=0.2),
                              L.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def time_keras_like(name, K, x, y, epochs, predict_repeats, budget):
    """Seconds of each epoch of one fit() (the first is the warm-up), and predict timings. Once
    the timed epochs (or predict calls) have taken `budget` seconds, no further one starts."""
    model = build_keras_like(name, K)
    marks = []

    def epoch_end(epoch, logs=None):
        marks.append(time.perf_counter())
        if epoch >= 1 and marks[-1] - marks[2] > budget:    # marks[2]: first timed epoch's start
            model.stop_training = True

    cb = K.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: marks.append(time.perf_counter()),
                                    on_epoch_end=epoch_end)
    hist = model.fit(x, y, batch_size=BATCH, epochs=1 + epochs, shuffle=True, verbose=0, callbacks=[cb])
    epoch_s = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    predict_s = timed_calls(lambda: model.predict(x, batch_size=BATCH, verbose=0), predict_repeats, budget)
    return {"epoch_s_all": epoch_s, "predict_s_all": predict_s,
            "final_loss": float(hist.history["loss"][-1])}


def timed_calls(fn, repeats, budget):
    """Seconds of a warm-up call and then of up to `repeats` calls, until they take `budget` s."""
    times = []
    while len(times) < 1 + repeats and (len(times) < 2 or sum(times[1:]) <= budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------------------- PyTorch
def build_torch(name: str, torch):
    nn = torch.nn

    class Translation(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(TR_VOCAB, TR_UNITS, batch_first=True)
            self.decoder = nn.LSTM(TR_UNITS, TR_UNITS, batch_first=True)
            self.out = nn.Linear(TR_UNITS, TR_VOCAB)

        def forward(self, x):                       # logits (B, T, vocab)
            _, (h, _) = self.encoder(x)
            repeated = h[-1].unsqueeze(1).expand(-1, TR_STEPS, -1)   # RepeatVector
            return self.out(self.decoder(repeated)[0])

    class TimeSeries(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, TS_UNITS, batch_first=True)        # tanh: nn.LSTM has no relu
            self.out = nn.Linear(TS_UNITS, 1)

        def forward(self, x):
            return self.out(self.lstm(x)[1][0][-1])

    class Sentiment(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(SE_VOCAB, SE_DIM)
            self.dropout = nn.Dropout(0.2)                              # on the LSTM's inputs
            self.lstm = nn.LSTM(SE_DIM, SE_UNITS, batch_first=True)   # no recurrent dropout
            self.out = nn.Linear(SE_UNITS, 1)

        def forward(self, x):                       # logits (B, 1)
            return self.out(self.lstm(self.dropout(self.embedding(x)))[1][0][-1])

    F = torch.nn.functional
    if name == "translation":
        return (Translation(), lambda logits, y: F.cross_entropy(logits.reshape(-1, TR_VOCAB), y.reshape(-1)),
                lambda logits: torch.softmax(logits, -1))
    if name == "timeseries":
        return TimeSeries(), F.mse_loss, lambda out: out
    return Sentiment(), F.binary_cross_entropy_with_logits, torch.sigmoid


def time_torch(name, torch, x, y, epochs, predict_repeats, budget):
    model, loss_fn, activate = build_torch(name, torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)  # Keras's defaults
    xt = torch.from_numpy(x).long() if name == "sentiment" else torch.from_numpy(x)
    yt = torch.from_numpy(y.argmax(-1)) if name == "translation" else torch.from_numpy(y)
    n = xt.shape[0]
    epoch_s, loss = [], float("nan")
    for _ in range(1 + epochs):
        if len(epoch_s) >= 2 and sum(epoch_s[1:]) > budget:
            break
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n)
        total = 0.0
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            batch_loss = loss_fn(model(xt[idx]), yt[idx])
            batch_loss.backward()
            opt.step()
            total += batch_loss.item() * idx.shape[0]
        epoch_s.append(time.perf_counter() - t0)
        loss = total / n
    model.eval()

    def predict():
        with torch.inference_mode():
            return torch.cat([activate(model(xt[s:s + BATCH])) for s in range(0, n, BATCH)]).numpy()
    predict_s = timed_calls(predict, predict_repeats, budget)
    return {"epoch_s_all": epoch_s, "predict_s_all": predict_s, "final_loss": loss}


# ---------------------------------------------------------------------------- Python overhead
def python_overhead(lstmfast, steps: int):
    """Share of a training step of the time-series model (batch 64) spent outside the C++ kernels.

    Every call into the kernels goes through three functions of the compiled module
    (lstm_forward_*, lstm_backward_*, adam_update_*); they are wrapped with timers. The ops-level
    functions (their argument checks included) are timed the same way."""
    import numpy as np
    from lstmfast import ops
    from lstmfast._core import core

    lstmfast.utils.set_random_seed(SEED)
    n = steps * BATCH
    x, y = make_data("timeseries", n)
    model = build_keras_like("timeseries", lstmfast)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)              # warm-up
    xb, yb = np.ascontiguousarray(x[:BATCH]), np.ascontiguousarray(y[:BATCH])
    for _ in range(10):
        model.train_on_batch(xb, yb)

    spent = {"core": 0.0, "ops": 0.0}
    originals = []

    def wrap(module, attr, bucket):
        fn = getattr(module, attr)
        originals.append((module, attr, fn))

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[bucket] += time.perf_counter() - t0
        setattr(module, attr, timed)

    for kernel in ("lstm_forward", "lstm_backward", "adam_update"):
        wrap(core, kernel + "_f32", "core")
        wrap(ops, kernel, "ops")
    try:
        def share(run):
            spent["core"] = spent["ops"] = 0.0
            t0 = time.perf_counter()
            run()
            total = time.perf_counter() - t0
            return {"step_ms": total / steps * 1e3, "kernel_ms": spent["core"] / steps * 1e3,
                    "outside_kernels": 1.0 - spent["core"] / total,
                    "outside_ops_calls": 1.0 - spent["ops"] / total}

        def tob():
            for _ in range(steps):
                model.train_on_batch(xb, yb)

        in_fit = [share(lambda: model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0))
                  for _ in range(3)]
        on_batch = [share(tob) for _ in range(3)]
    finally:
        for module, attr, fn in reversed(originals):
            setattr(module, attr, fn)

    def med(rows):     # the run with the median step time
        return sorted(rows, key=lambda r: r["step_ms"])[len(rows) // 2]
    return {"steps": steps, "fit": med(in_fit), "train_on_batch": med(on_batch)}


def profile_step(lstmfast, steps: int, top: int = 18) -> str:
    """cProfile of `steps` train_on_batch calls on the time-series model, by own time."""
    import cProfile
    import io
    import pstats

    import numpy as np

    x, y = make_data("timeseries", BATCH)
    model = build_keras_like("timeseries", lstmfast)
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    for _ in range(10):
        model.train_on_batch(x, y)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        model.train_on_batch(x, y)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------------------- workers
def worker(args) -> dict:
    """Runs in its own process: one framework, the selected models."""
    import numpy as np

    fw, threads = args.worker, args.threads
    info = {"framework": fw, "threads": threads}
    if fw.startswith("keras"):
        os.environ["KERAS_BACKEND"] = "torch" if fw == "keras-torch" else "tensorflow"
    if fw in ("keras-torch", "pytorch"):
        import torch
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        torch.manual_seed(SEED)
        info["torch"] = torch.__version__
    if fw == "keras-tf":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        info["tensorflow"] = tf.__version__
    if fw.startswith("keras"):
        import keras
        keras.utils.set_random_seed(SEED)
        info["keras"], info["backend"] = keras.__version__, keras.backend.backend()
    if fw.startswith("lstmfast"):
        import lstmfast
        lstmfast.set_num_threads(threads)
        lstmfast.set_thread_policy("fixed" if fw == "lstmfast-fixed" else "adaptive")
        lstmfast.utils.set_random_seed(SEED)
        info["lstmfast"], info["isa"] = lstmfast.__version__, lstmfast.cpu_isa()
    info["numpy"] = np.__version__

    results = {}
    for name in args.models.split(","):
        x, y = make_data(name, args.samples)
        if fw == "pytorch":
            r = time_torch(name, torch, x, y, args.epochs, args.predict_repeats, args.budget)
        else:
            r = time_keras_like(name, keras if fw.startswith("keras") else lstmfast, x, y,
                                args.epochs, args.predict_repeats, args.budget)
        r["epoch_s"] = median(r["epoch_s_all"][1:])
        r["timed_epochs"], r["timed_predicts"] = len(r["epoch_s_all"]) - 1, len(r["predict_s_all"]) - 1
        r["predict_samples_per_s"] = args.samples / median(r["predict_s_all"][1:])
        results[name] = r
        print(f"  {LABELS[fw]:<12} {name:<12} {r['epoch_s']:8.3f} s/epoch "
              f"{r['predict_samples_per_s']:10,.0f} samples/s", file=sys.stderr, flush=True)
    out = {"info": info, "models": results}
    if fw == "lstmfast" and not args.no_overhead:
        out["python_overhead"] = python_overhead(lstmfast, steps=8 if args.quick else 32)
        if args.profile:
            out["profile"] = profile_step(lstmfast, steps=200)
    return out


def run_worker(fw: str, args, models: list[str], tmpdir: str, overhead: bool) -> dict:
    path = os.path.join(tmpdir, f"{fw}-{'-'.join(models)}.json")
    python = args.tf_python if fw == "keras-tf" else sys.executable
    cmd = [python, os.path.abspath(__file__), "--worker", fw, "--out", path,
           "--models", ",".join(models), "--samples", str(args.samples), "--epochs", str(args.epochs),
           "--predict-repeats", str(args.predict_repeats), "--threads", str(args.threads),
           "--budget", str(args.budget)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--profile"] if args.profile else []
    cmd += [] if overhead else ["--no-overhead"]
    env = dict(os.environ)
    # numpy's BLAS (lstmfast's Dense) and any OpenMP pool get the same thread count.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        proc = subprocess.run(cmd, env=env, timeout=args.worker_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.worker_timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": f"worker exited with status {proc.returncode}"}
    with open(path) as f:
        return json.load(f)


def pool_rounds(results: dict, new: dict, model: str, samples: int) -> None:
    """Adds one round's result of a model to `results`: the timed epochs and predict calls of
    every round so far (each round's warm-up excluded) and their medians."""
    r = results.setdefault(model, {"epoch_s_rounds": [], "predict_s_rounds": []})
    r.update({k: v for k, v in new.items() if k not in ("epoch_s", "predict_samples_per_s")})
    r["epoch_s_rounds"].append(new["epoch_s_all"][1:])
    r["predict_s_rounds"].append(new["predict_s_all"][1:])
    epochs = [t for rnd in r["epoch_s_rounds"] for t in rnd]
    predicts = [t for rnd in r["predict_s_rounds"] for t in rnd]
    r["rounds"] = len(r["epoch_s_rounds"])
    r["epoch_s"] = statistics.median(epochs)
    r["timed_epochs"], r["timed_predicts"] = len(epochs), len(predicts)
    r["predict_samples_per_s"] = samples / statistics.median(predicts)


def tensorflow_imports(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import tensorflow"], capture_output=True,
                              timeout=300).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def parse_models(text: str) -> list[str]:
    models = []
    for m in text.split(","):
        m = ALIASES.get(m.strip().lower(), m.strip().lower())
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
        if m not in models:
            models.append(m)
    return models


# ---------------------------------------------------------------------------- report
def verdict(ok):
    return "" if ok is None else (" ok" if ok else " MISS")


def report(models, runs, missing, args):
    cols = list(FRAMEWORKS) + [fw for fw in EXTRA_FRAMEWORKS if fw in runs]

    def value(fw, m, key):
        run = runs.get(fw)
        if run is None:
            return missing.get(fw, "n/a")
        r = run["models"].get(m, {})
        if "error" in r:
            return "timed out" if "timed out" in r["error"] else "failed"
        return r.get(key, "n/a")

    def shown(fw, m, key, spec):
        v = value(fw, m, key)
        if not isinstance(v, float):
            return v
        r = runs[fw]["models"][m]
        n = r.get("rounds", 1)
        fewer = (r["timed_epochs"] < args.epochs * n if key == "epoch_s"
                 else r["timed_predicts"] < args.predict_repeats * n)
        return format(v, spec) + ("*" if fewer else "")

    w = 15
    print(f"\nseconds per epoch ({args.samples} samples, batch {BATCH}; median of {args.epochs} "
          f"after a warm-up epoch, in each of {args.rounds} rounds)")
    print(f"{'model':<13}" + "".join(f"{LABELS[fw]:>{w}}" for fw in cols))
    for m in models:
        print(f"{m:<13}" + "".join(f"{shown(fw, m, 'epoch_s', '.3f'):>{w}}" for fw in cols))
    print(f"\npredict throughput (samples/s, predict(x, batch_size={BATCH}) for every framework; "
          "Keras's default would be 32)")
    print(f"{'model':<13}" + "".join(f"{LABELS[fw]:>{w}}" for fw in cols))
    for m in models:
        print(f"{m:<13}" + "".join(f"{shown(fw, m, 'predict_samples_per_s', ',.0f'):>{w}}" for fw in cols))
    print(f"(*: fewer timed epochs or predict calls than asked: they ran past --budget {args.budget:.0f} s)")

    print("\nratios, lstmfast / other (bars: epoch time <= 0.5x Keras's and <= 0.7x PyTorch's; "
          "predict throughput >= 1.5x Keras's)")
    head = ["epoch/Keras-torch", "epoch/PyTorch", "predict/Keras-torch", "predict/PyTorch"]
    if "keras-tf" in runs:
        head += ["epoch/Keras-TF", "predict/Keras-TF"]
    print(f"{'model':<13}" + "".join(f"{h:>22}" for h in head))
    ratios = {}
    for m in models:
        r, row = {}, []

        def ratio(fw, key, invert, bar, label):
            a, b = value("lstmfast", m, key), value(fw, m, key)
            if not isinstance(a, float) or not isinstance(b, float):
                row.append(f"{'n/a':>22}")
                return
            q = a / b
            ok = None if bar is None else (q <= bar if not invert else q >= bar)
            r[label] = {"ratio": q, "bar": bar, "met": ok}
            row.append(f"{format(q, '.2f') + 'x' + verdict(ok):>22}")

        ratio("keras-torch", "epoch_s", False, 0.5, "epoch_vs_keras_torch")
        ratio("pytorch", "epoch_s", False, 0.7, "epoch_vs_pytorch")
        ratio("keras-torch", "predict_samples_per_s", True, 1.5, "predict_vs_keras_torch")
        ratio("pytorch", "predict_samples_per_s", True, None, "predict_vs_pytorch")
        if len(head) > 4:
            ratio("keras-tf", "epoch_s", False, 0.5, "epoch_vs_keras_tf")
            ratio("keras-tf", "predict_samples_per_s", True, 1.5, "predict_vs_keras_tf")
        ratios[m] = r
        print(f"{m:<13}" + "".join(row))
    print("(epoch ratios below 1 and predict ratios above 1 mean lstmfast is faster)")
    if "lstmfast-fixed" in runs:
        print("\nthread policy A/B: lstmfast (adaptive, the default) / lstmfast-fixed, same rounds")
        for m in models:
            a = [value(fw, m, "epoch_s") for fw in ("lstmfast", "lstmfast-fixed")]
            b = [value(fw, m, "predict_samples_per_s") for fw in ("lstmfast", "lstmfast-fixed")]
            if all(isinstance(v, float) for v in a + b):
                ratios.setdefault(m, {})["policy_ab"] = {"epoch": a[0] / a[1], "predict_throughput": b[0] / b[1]}
                print(f"{m:<13} epoch time {a[0] / a[1]:.3f}   predict throughput {b[0] / b[1]:.3f}")
    return ratios


def report_overhead(ov):
    print(f"\nPython overhead, time-series model, batch {BATCH} (bar: under 20% of a step outside the "
          "C++ kernels)")
    for label, key in (("steps inside fit()", "fit"), ("train_on_batch() calls", "train_on_batch")):
        r = ov[key]
        ok = r["outside_kernels"] < 0.20
        print(f"  {label:<24} {r['step_ms']:.3f} ms/step, {r['kernel_ms']:.3f} ms in the C++ kernels: "
              f"{100 * r['outside_kernels']:.0f}% outside them{verdict(ok)} "
              f"({100 * r['outside_ops_calls']:.0f}% outside lstmfast.ops calls, whose argument checks "
              "are Python)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="512 samples, 2 timed epochs: a smoke run")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ",".join(MODELS))
    p.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    p.add_argument("--samples", type=int, help="training samples (default 2048; 512 with --quick)")
    p.add_argument("--epochs", type=int, help="timed epochs after the warm-up (default 3; 2 with --quick)")
    p.add_argument("--predict-repeats", type=int, help="timed predict calls (default 5; 2 with --quick)")
    p.add_argument("--budget", type=float, default=120.0,
                   help="seconds of timed epochs (and of timed predict calls) per framework and model "
                        "after which no further one starts; at least one always runs (default 120)")
    p.add_argument("--worker-timeout", type=float, default=3600.0,
                   help="seconds after which one framework's run of one model is stopped (default 3600)")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                   help="comma-separated: " + ",".join(FRAMEWORKS + EXTRA_FRAMEWORKS)
                        + " (lstmfast-fixed: lstmfast under its fixed thread policy, for an A/B)")
    p.add_argument("--tf-python", default=sys.executable, metavar="PYTHON",
                   help="the Python that runs Keras on TensorFlow (default: this one); it needs "
                        "tensorflow, keras and numpy")
    p.add_argument("--profile", action="store_true", help="also print a cProfile of lstmfast's train step")
    p.add_argument("--no-overhead", action="store_true", help="skip the Python-overhead measurement")
    p.add_argument("--rounds", type=int,
                   help="rounds in which the frameworks take turns on each model; the medians pool "
                        "all rounds (default 2; 1 with --quick)")
    p.add_argument("--worker", choices=FRAMEWORKS + EXTRA_FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.samples is None:
        args.samples = 512 if args.quick else 2048
    if args.epochs is None:
        args.epochs = 2 if args.quick else 3
    if args.predict_repeats is None:
        args.predict_repeats = 2 if args.quick else 5
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if min(args.samples, args.epochs, args.predict_repeats, args.threads, args.rounds) < 1:
        raise SystemExit("--samples, --epochs, --predict-repeats, --threads and --rounds must be at least 1")

    if args.worker:
        out = worker(args)
        with open(args.out, "w") as f:
            json.dump(out, f)
        return 0

    # A stopped benchmark stops its worker too (subprocess.run kills it on the way out).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    models = parse_models(args.models)
    frameworks = [f.strip() for f in args.frameworks.split(",")]
    for f in frameworks:
        if f not in FRAMEWORKS + EXTRA_FRAMEWORKS:
            raise SystemExit(f"unknown framework {f!r}; choose from {', '.join(FRAMEWORKS + EXTRA_FRAMEWORKS)}")
    machine = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": args.threads,
               "budget_s": args.budget, "worker_timeout_s": args.worker_timeout,
               "python": platform.python_version()}
    machine["load_average_at_start"], busy = load_average_warning()
    print(f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical CPUs), {args.threads} threads per "
          f"framework; models: {', '.join(models)}")
    if busy:
        print(busy)

    missing = {}
    if "keras-tf" in frameworks and not tensorflow_imports(args.tf_python):
        frameworks.remove("keras-tf")
        missing["keras-tf"] = f"not installed (tensorflow does not import in {args.tf_python})"
    # One process per model and framework, the frameworks in turn for each model: a framework
    # that fails or runs past --worker-timeout costs only its own cells.
    # The frameworks take turns for --rounds rounds per model, so that a slow spell of a shared
    # machine hits each of them; the medians pool the timed epochs and calls of all rounds.
    runs = {fw: {"info": {}, "models": {}} for fw in frameworks}
    with tempfile.TemporaryDirectory() as tmpdir:
        for i, m in enumerate(models):
            for rnd in range(args.rounds):
                for fw in frameworks:
                    if "error" in runs[fw]["models"].get(m, {}):
                        continue
                    got = run_worker(fw, args, [m], tmpdir, overhead=fw == "lstmfast" and i == 0 and rnd == 0
                                     and not args.no_overhead)
                    if "error" in got:
                        print(f"  {LABELS[fw]:<12} {m:<12} {got['error']}", file=sys.stderr, flush=True)
                        runs[fw]["models"][m] = {"error": got["error"]}
                        continue
                    runs[fw]["info"].update(got["info"])
                    pool_rounds(runs[fw]["models"], got["models"][m], m, args.samples)
                    for key in ("python_overhead", "profile"):
                        if key in got:
                            runs[fw][key] = got[key]
    lf = runs.get("lstmfast", {}).get("info", {})
    versions = "; ".join(f"{k} {run['info'].get(k)}" for k in ("torch", "keras", "tensorflow")
                         for run in runs.values() if k in run.get("info", {}))
    versions = "; ".join(dict.fromkeys(versions.split("; ")))
    print(f"lstmfast {lf.get('lstmfast', '?')} running instruction set: {lf.get('isa', '?')}; {versions}")
    if missing:
        print("Keras on TensorFlow: " + missing.get("keras-tf", "run"))
    ratios = report(models, runs, missing, args)
    ov = runs.get("lstmfast", {}).get("python_overhead")
    if ov:
        report_overhead(ov)
    if args.profile and runs.get("lstmfast", {}).get("profile"):
        print("\ncProfile of 200 train_on_batch() steps of the time-series model (own time):")
        print(runs["lstmfast"]["profile"])
    if args.json:
        doc = {"machine": machine, "quick": args.quick, "samples": args.samples, "batch_size": BATCH,
               "timed_epochs": args.epochs, "predict_repeats": args.predict_repeats, "rounds": args.rounds,
               "predict_batch_size": BATCH, "statistic": "median, warm-up excluded",
               "denormals": "flushed: lstmfast in its kernels, torch.set_flush_denormal(True)",
               "frameworks": {fw: runs.get(fw) or missing.get(fw) for fw in FRAMEWORKS
                              if fw in runs or fw in missing},
               "ratios": ratios}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
