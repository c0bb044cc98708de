"""Training steps and predictions on shared cores: how much slower lstmfast gets when the cores
are not its own — beside busy processes, and beside a second lstmfast process — against the same
work on a quiet machine, for each thread policy.

    python bench/bench_shared.py                      # LSTM(32), batch 32, T = 20; 4 s windows
    python bench/bench_shared.py --units 128 --batch 64 --timesteps 50
    python bench/bench_shared.py --policies adaptive,fixed,fixed+passive --json out.json
    python bench/bench_shared.py --ab            # alone: adaptive and fixed in turns, one process

Every case runs in fresh processes (OpenMP reads its wait policy when it loads). Each lstmfast
process builds its model, warms up, says it is ready and waits; when all are ready they start
together and each times its steps for the same wall-clock window (`--seconds`), so that the
processes overlap for the whole window. Cases:

- `alone`: one lstmfast process;
- `beside 1 busy` / `beside 2 busy`: beside one or two Python processes spinning on a core each
  (started before and stopped after the window);
- `two at once`: two lstmfast processes, each on all cores (the times of the slower one).

The slowdown is that of the mean step time over the window (the window divided by the steps it
held: the throughput), which counts the steps a descheduled process loses; the median shows the
typical step. Work: `train` (`train_on_batch` of LSTM → Dense with Adam) and `predict` (`predict_on_batch`).
Policies: `adaptive` (lstmfast's default: the team shrinks while the cores are contended),
`fixed` (`LSTMFAST_THREAD_POLICY=fixed`: always the set number of threads), and `+passive` /
`+spinN` (OpenMP's `OMP_WAIT_POLICY=passive` / libgomp's `GOMP_SPINCOUNT=N`). Reported: the
mean, median and 90th percentile step time, the slowdown of each shared case over `alone` (two
processes sharing the cores fairly: about 2x), and the mean team size.

`--ab` measures what the adaptive policy costs on a quiet machine instead: one process switches
between the adaptive and the fixed policy every 0.5 s for `--rounds` rounds and reports the
median step time under each (and the median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from machine import cpu_model, load_average_warning

WORKER = r"""
import json, sys, time
import numpy as np
import lstmfast as lf
work, units, batch, T, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, T, 8)).astype(np.float32)
y = rng.standard_normal((batch, 1)).astype(np.float32)
m = lf.Sequential([lf.Input((T, 8)), lf.layers.LSTM(units), lf.layers.Dense(1)])
m.compile("adam", "mse")
step = (lambda: m.train_on_batch(x, y)) if work == "train" else (lambda: m.predict_on_batch(x))
for _ in range(30):
    step()
print("ready", flush=True)
sys.stdin.readline()
times, threads = [], []
end = time.perf_counter() + seconds
while True:
    t = time.perf_counter()
    if t >= end:
        break
    step()
    times.append(time.perf_counter() - t)
    threads.append(lf.threads_in_use())
print(json.dumps({"times": times, "threads": threads}), flush=True)
"""

BUSY = "while True:\n    pass\n"


def run(env, args, work, copies=1, busy=0):
    """Step times (s) and team sizes of each of `copies` lstmfast processes run at once."""
    cmd = [sys.executable, "-c", WORKER, work, str(args.units), str(args.batch), str(args.timesteps),
           str(args.seconds)]
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    procs = []
    try:
        procs = [subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for _ in range(copies)]
        for p in procs:  # all built and warmed up
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a benchmark process failed before it was ready")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.communicate()[0]) for p in procs]
    finally:
        for p in spinners + procs:
            p.kill()
            p.wait()
    return outs


def stats(out):
    times = sorted(out["times"])
    threads = out["threads"]
    return {"mean_ms": 1e3 * sum(times) / len(times), "median_ms": 1e3 * times[len(times) // 2],
            "p90_ms": 1e3 * times[int(len(times) * 0.9)], "steps": len(times),
            "mean_threads": sum(threads) / max(1, len(threads))}


def policy_env(policy):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "LSTMFAST_THREAD_POLICY")}
    base, *extra = policy.split("+")
    env["LSTMFAST_THREAD_POLICY"] = base
    env["LSTMFAST_NUM_THREADS"] = str(env.get("LSTMFAST_NUM_THREADS") or os.cpu_count() or 2)
    for e in extra:
        if e.startswith("spin"):  # libgomp's spin count before a waiting thread sleeps
            env["GOMP_SPINCOUNT"] = e[4:]
        else:
            env["OMP_WAIT_POLICY"] = e
    return env


CASES = (("alone", {}), ("beside 1 busy", {"busy": 1}), ("beside 2 busy", {"busy": 2}),
         ("two at once", {"copies": 2}))


def ab(args):
    """Alone, in one process: the adaptive and the fixed policy in turns."""
    import statistics

    import numpy as np

    import lstmfast as lf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.timesteps, 8)).astype(np.float32)
    y = rng.standard_normal((args.batch, 1)).astype(np.float32)
    m = lf.Sequential([lf.Input((args.timesteps, 8)), lf.layers.LSTM(args.units), lf.layers.Dense(1)])
    m.compile("adam", "mse")
    out = {}
    for work in args.work.split(","):
        step = (lambda: m.train_on_batch(x, y)) if work == "train" else (lambda: m.predict_on_batch(x))
        for _ in range(30):
            step()
        t = {"adaptive": [], "fixed": []}
        for _ in range(args.rounds):
            for policy in t:
                lf.set_thread_policy(policy)
                start = time.perf_counter()
                end, n = start + 0.5, 0
                while time.perf_counter() < end:
                    step()
                    n += 1
                t[policy].append((time.perf_counter() - start) / n)
        lf.set_thread_policy("adaptive")
        med = {k: 1e3 * statistics.median(v) for k, v in t.items()}
        per_round = statistics.median(a / f for a, f in zip(t["adaptive"], t["fixed"]))
        out[work] = {"adaptive_ms": med["adaptive"], "fixed_ms": med["fixed"], "ratio": med["adaptive"] / med["fixed"],
                     "per_round_ratio": per_round}
        print(f"  {work:7s} alone: adaptive {med['adaptive']:.3f} ms, fixed {med['fixed']:.3f} ms per step; "
              f"adaptive / fixed {med['adaptive'] / med['fixed']:.3f} (per-round median {per_round:.3f})")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0, help="timed window of every case")
    p.add_argument("--work", default="train,predict", help="train, predict or both")
    p.add_argument("--policies", default="adaptive,fixed,fixed+passive",
                   help="thread policies to compare: adaptive or fixed, each optionally with "
                        "+passive (OMP_WAIT_POLICY) or +spinN (GOMP_SPINCOUNT=N)")
    p.add_argument("--ab", action="store_true",
                   help="alone, in one process: the adaptive and the fixed policy in 0.5 s turns")
    p.add_argument("--rounds", type=int, default=20, help="rounds of --ab (default 20)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()

    _, warning = load_average_warning()
    if warning:
        print(warning)
    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "units": args.units, "batch": args.batch,
               "timesteps": args.timesteps, "seconds": args.seconds, "runs": {}}
    print(f"LSTM({args.units}) -> Dense(1), batch {args.batch}, T = {args.timesteps}, "
          f"{os.cpu_count()} cores, {cpu_model()}")
    if args.ab:
        results["ab"] = ab(args)
        args.work = ""
    for work in filter(None, args.work.split(",")):
        for policy in args.policies.split(","):
            env = policy_env(policy)
            row = {}
            for name, kw in CASES:
                outs = [stats(o) for o in run(env, args, work, **kw)]
                row[name] = max(outs, key=lambda s: s["mean_ms"])  # the slower process
                time.sleep(0.5)
            alone = row["alone"]["mean_ms"]
            for name, s in row.items():
                s["slowdown"] = s["mean_ms"] / alone
                print(f"  {work:7s} {policy:15s} {name:14s} mean {s['mean_ms']:7.2f} ms  x{s['slowdown']:5.2f}  "
                      f"median {s['median_ms']:6.2f}  p90 {s['p90_ms']:6.2f}  threads {s['mean_threads']:.2f}")
            results["runs"][f"{work}/{policy}"] = row
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
