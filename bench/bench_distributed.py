"""Data-parallel training over MPI (lstmfast.distribute): epoch time of the seed's translation and
sentiment models on N ranks against one process, the allreduce's share of a step, and a cost
model of the scaling beyond this machine.

    python bench/bench_distributed.py                    # both models; 1x1, 1x2, 2x1 and 4x1
    python bench/bench_distributed.py --models sentiment --epochs 3 --json out.json
    python bench/bench_distributed.py --plot docs/distributed_scaling.png

Configurations (processes x kernel threads each), each in fresh processes on the same data:
`1x1` one process on one thread, `1x2` one process on two threads, `2x1` `mpiexec -n 2` with one
thread per rank, `4x1` `mpiexec -n 4` (on two cores: oversubscribed, for the allreduce's share
at N = 4 only); and two independent `1x1` processes at once, whose epoch time against `1x1`
alone bounds any two-way speed-up on this machine (2 · t_alone / t_both: 2 only where two busy
cores run as fast as one). The models are bench_models.py's (the seed's sizes, random data, 2,048 samples,
global batch 64); each run times --epochs epochs after a warm-up epoch (median), and the
distributed runs also time each step's exchange: the allreduce of the gradient buffer, or, with
the update shared out (the default), its reduce-scatter and the allgather of the updated weights;
its time includes waiting for the slower rank. `2x1w` is `2x1` with every rank updating all the
weights (`init(shard_optimizer=False)`). `2x1o` measures overlapping the exchange with the
backward, as DDP's buckets do: as `2x1w`, but each layer's gradients are summed by an
`MPI_Iallreduce` posted as soon as that layer's backward ends (MPI moving data whenever the step
tests its requests between layers), and the step waits for all of them where it would allreduce. The configurations take turns for --rounds rounds
and the medians pool all rounds.

The cost model (docs/distributed.md): per step, a rank computes for t_c(N) and then sums the
gradients (b bytes) over N machines with a ring allreduce,

    t_ar(N) = 2(N−1)/N · b / bandwidth + 2(N−1) · latency

so the scaling efficiency is E(N) = t_c(N) / (t_c(N) + t_ar(N)). t_c is measured here (one
process, one thread, its step time); with the global batch fixed, t_c(N) = t_c(1)/N (strong
scaling); with 64 samples per rank, t_c(N) = t_c(1) (weak scaling). Links: 10 Gbit/s Ethernet
(latency 20 µs) and 100 Gbit/s InfiniBand (2 µs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from machine import cpu_model, load_average_warning

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("translation", "sentiment")
LINKS = {"10 Gbit/s Ethernet": (10e9 / 8, 20e-6), "100 Gbit/s InfiniBand": (100e9 / 8, 2e-6)}
SIZES = (2, 4, 8, 16, 32, 64)

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import lstmfast
from bench_models import BATCH, build_keras_like, make_data

name, samples, epochs, distributed, out = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6]
threads, whole, overlap = int(sys.argv[7]), sys.argv[8] == "1", sys.argv[9] == "1"
if distributed:
    strategy = lstmfast.distribute.init(threads=threads, shard_optimizer=not (whole or overlap))
    # The step's exchange of gradients: one allreduce, or a reduce-scatter and the allgather of
    # the updated weights that follows it (not the gathers of the optimizer's state at an epoch's end).
    ar = {"s": 0.0, "n": 0, "scattered": False}
    def timed(inner, kind):
        def call(array, *rest):
            t = time.perf_counter()
            inner(array, *rest)
            if array.size <= 16:  # the step's loss and flag
                return
            if kind != "gather":
                ar["s"] += time.perf_counter() - t
                ar["n"] += 1
            elif ar["scattered"]:
                ar["s"] += time.perf_counter() - t
            ar["scattered"] = kind == "scatter"
        return call
    if overlap:  # DDP's buckets, a layer each: its gradients summed while earlier layers run backward
        MPI, pending = strategy._MPI, []
        def overlapped(array):
            if array.size <= 16:
                strategy.comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
                return
            MPI.Request.Waitall(pending)  # the layers' sums, posted during the backward
            pending.clear()
            strategy.comm.Allreduce(MPI.IN_PLACE, array[-2:], op=MPI.SUM)  # the step's loss and flag
        strategy.allreduce_sum = overlapped
    strategy.allreduce_sum = timed(strategy.allreduce_sum, "allreduce")
    strategy.reduce_scatter_sum = timed(strategy.reduce_scatter_sum, "scatter")
    strategy.allgather_parts = timed(strategy.allgather_parts, "gather")
else:
    lstmfast.set_num_threads(threads)
lstmfast.utils.set_random_seed(0)
x, y = make_data(name, samples)
model = build_keras_like(name, lstmfast)
if distributed and overlap:
    def posting(layer, inner):
        def backward(dy):
            out = inner(dy)
            for v in layer.trainable_weights:  # final now: start their sum over the ranks
                pending.append(strategy.comm.Iallreduce(MPI.IN_PLACE, v.grad, op=MPI.SUM))
            MPI.Request.Testall(pending)  # let MPI move what it can
            return out
        return backward
    for layer in model.layers:
        layer.backward = posting(layer, layer.backward)
marks = []
cb = lstmfast.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs=None: marks.append(time.perf_counter()),
                                       on_epoch_end=lambda e, logs=None: marks.append(time.perf_counter()))
model.fit(x[:BATCH * 4], y[:BATCH * 4], batch_size=BATCH, epochs=1, verbose=0)  # warm-up
if distributed:
    ar.update(s=0.0, n=0)
model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[cb])
epoch_s = [marks[i + 1] - marks[i] for i in range(0, len(marks), 2)]
res = {"epoch_s": epoch_s, "params": int(model.count_params()), "steps": -(-samples // BATCH) * epochs}
if distributed:
    res.update(allreduce_s=ar["s"], allreduces=ar["n"], rank=strategy.rank, size=strategy.size)
if not distributed or strategy.rank == 0:
    with open(out, "w") as f:
        json.dump(res, f)
"""


def run_two_alone(name, args, tmp):
    """Two independent one-thread processes at once (no MPI): how fast each core is while the
    other is busy too, which bounds any 2-way parallel speed-up on this machine."""
    outs = [os.path.join(tmp, f"{name}-alone{i}.json") for i in range(2)]
    env = {k: v for k, v in os.environ.items() if k not in ("LSTMFAST_NUM_THREADS", "OMP_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, HERE, name, str(args.samples), str(args.epochs), "0",
                               out, "1", "0", "0"], env=env) for out in outs]
    for p in procs:
        if p.wait(timeout=args.timeout) != 0:
            raise RuntimeError("a benchmark process failed")
    epochs = []
    for out in outs:
        with open(out) as f:
            epochs += json.load(f)["epoch_s"]
    return {"epoch_s": epochs}


def mpiexec():
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


def run(name, procs, threads, args, tmp, mode=""):
    out = os.path.join(tmp, f"{name}-{procs}x{threads}{mode}.json")
    cmd = [sys.executable, "-c", WORKER, HERE, name, str(args.samples), str(args.epochs), "1" if procs > 1 else "0",
           out, str(threads), "1" if mode == "w" else "0", "1" if mode == "o" else "0"]
    if procs > 1:
        cmd = [mpiexec(), "-n", str(procs)] + cmd
    env = {k: v for k, v in os.environ.items() if k not in ("LSTMFAST_NUM_THREADS", "OMP_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    subprocess.run(cmd, check=True, env=env, timeout=args.timeout)
    with open(out) as f:
        r = json.load(f)
    r["epoch_median_s"] = statistics.median(r["epoch_s"])
    if "allreduce_s" in r:
        r["allreduce_share"] = r["allreduce_s"] / sum(r["epoch_s"])
        r["allreduce_ms_per_step"] = 1e3 * r["allreduce_s"] / max(1, r["allreduces"])
    return r


def allreduce_time(n, nbytes, bandwidth, latency):
    """Ring allreduce of `nbytes` over n machines: 2(n−1)/n · b/bandwidth + 2(n−1)·latency."""
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def cost_model(step_s, nbytes):
    """Predicted scaling efficiency per link and N, strong (global batch fixed) and weak."""
    table = {}
    for link, (bw, lat) in LINKS.items():
        for n in SIZES:
            t_ar = allreduce_time(n, nbytes, bw, lat)
            table[(link, n)] = {"allreduce_ms": 1e3 * t_ar,
                                "strong": (step_s / n) / (step_s / n + t_ar),
                                "weak": step_s / (step_s + t_ar)}
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per run (after a warm-up)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds in which the configurations take turns; the medians pool them (default 3)")
    p.add_argument("--configs", default="1x1,1x2,2x1,4x1",
                   help="processes x threads, comma-separated; a final w (2x1w): every rank updates all the "
                        "weights (shard_optimizer=False) instead of its part; a final o (2x1o): as w, with each "
                        "layer's gradients summed by an MPI_Iallreduce posted as soon as its backward ends")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--plot", metavar="PNG", help="draw the cost model's scaling efficiency (needs matplotlib)")
    args = p.parse_args()
    if mpiexec() is None:
        raise SystemExit("no mpiexec: pip install \"lstmfast[mpi]\"")
    _, warning = load_average_warning()
    if warning:
        print(warning)
    configs = [(int(c.split("x")[0]), int(c.split("x")[1].rstrip("wo")), c.split("x")[1].lstrip("0123456789"))
               for c in args.configs.split(",")]
    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "samples": args.samples, "epochs": args.epochs,
               "models": {}}
    print(f"{cpu_model()}, {os.cpu_count()} cores; {args.samples} samples, global batch 64, "
          f"median of {args.epochs} epochs after a warm-up in each of {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows = {}
            for _ in range(args.rounds):  # the configurations take turns, so that a slow spell hits all
                for pr, th, mode in configs + [("two", "alone", "")]:
                    r = run(name, pr, th, args, tmp, mode) if pr != "two" else run_two_alone(name, args, tmp)
                    key = f"{pr}x{th}{mode}"
                    prev = rows.setdefault(key, dict(r, epoch_s=[], allreduce_s=0.0, allreduces=0)
                                           if "allreduce_s" in r else dict(r, epoch_s=[]))
                    prev["epoch_s"] += r["epoch_s"]
                    if "allreduce_s" in r:
                        prev["allreduce_s"] += r["allreduce_s"]
                        prev["allreduces"] += r["allreduces"]
            for r in rows.values():
                r["epoch_median_s"] = statistics.median(r["epoch_s"])
                if "allreduce_s" in r:
                    r["allreduce_share"] = r["allreduce_s"] / sum(r["epoch_s"])
                    r["allreduce_ms_per_step"] = 1e3 * r["allreduce_s"] / max(1, r["allreduces"])
            results["models"][name] = rows
            base = rows.get("1x1")
            for key, r in rows.items():
                if key == "twoxalone":
                    if base:
                        r["speedup_ceiling"] = 2 * base["epoch_median_s"] / r["epoch_median_s"]
                        print(f"  {name:12s} two 1x1 processes at once: epoch {r['epoch_median_s']:.2f} s each, "
                              f"so no 2-way split can beat x{r['speedup_ceiling']:.2f} here")
                    continue
                speedup = base["epoch_median_s"] / r["epoch_median_s"] if base else float("nan")
                extra = (f"  exchange {r['allreduce_ms_per_step']:.2f} ms/step, {100 * r['allreduce_share']:.1f}% "
                         f"of the epoch" if "allreduce_s" in r else "")
                print(f"  {name:12s} {key:5s} epoch {r['epoch_median_s']:7.2f} s  speed-up over 1x1 "
                      f"x{speedup:.2f}{extra}", flush=True)
            if base:
                step_s = base["epoch_median_s"] * args.epochs / base["steps"]
                nbytes = 4 * base["params"]
                model = cost_model(step_s, nbytes)
                results["models"][name]["cost_model"] = {
                    "step_s_1x1": step_s, "gradient_bytes": nbytes,
                    "predicted": {f"{link} N={n}": v for (link, n), v in model.items()}}
                print(f"  {name}: {base['params']:,} parameters ({nbytes / 1e6:.1f} MB of gradients), "
                      f"one-thread step {1e3 * step_s:.1f} ms; predicted efficiency (strong / weak scaling):")
                for link in LINKS:
                    print(f"    {link:22s} " + "  ".join(
                        f"N={n}: {model[(link, n)]['strong']:.2f}/{model[(link, n)]['weak']:.2f}" for n in SIZES))
                for key, r in rows.items():
                    if "allreduce_s" in r:
                        shm = allreduce_time(r["size"], nbytes, 10e9, 1e-6)
                        print(f"    measured exchange ({key}) at N={r['size']} on this machine "
                              f"{r['allreduce_ms_per_step']:.2f} ms (the formula at 10 GB/s, 1 µs: "
                              f"{1e3 * shm:.2f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, mode in zip(axes, ("strong", "weak")):
        for name, rows in results["models"].items():
            cm = rows.get("cost_model")
            if not cm:
                continue
            for link, style in zip(LINKS, ("-", "--")):
                eff = [cm["predicted"][f"{link} N={n}"][mode] for n in SIZES]
                ax.plot(SIZES, eff, style, marker="o", label=f"{name}, {link}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_xlabel("machines N")
        ax.set_title("global batch 64 (strong scaling)" if mode == "strong" else "batch 64 per machine (weak scaling)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("predicted scaling efficiency")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
