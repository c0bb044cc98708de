"""Training steps on shared cores: how much slower an lstmfast training step gets when the cores
are not its own — beside a busy process, and beside a second lstmfast training — against the
same steps on a quiet machine, for each OpenMP wait policy (and libgomp spin count).

    python bench/bench_shared.py                 # LSTM(32), batch 32, T = 20; 300 steps per run
    python bench/bench_shared.py --units 128 --steps 200
    python bench/bench_shared.py --json out.json

Each configuration runs in fresh processes (the wait policy is read when the OpenMP runtime
loads): `alone`, `beside a busy loop` (a Python process spinning on one core), and `two
trainings` (two lstmfast processes at once, each on all cores). Reported: median and 90th
percentile of the step time, and the slowdown of each shared case over `alone` (the fair share
of two processes on the cores is 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from machine import cpu_model

STEP = r"""
import json, sys, time
import numpy as np
import lstmfast as lf
units, steps, batch, T = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, T, 8)).astype(np.float32)
y = rng.standard_normal((batch, 1)).astype(np.float32)
m = lf.Sequential([lf.Input((T, 8)), lf.layers.LSTM(units), lf.layers.Dense(1)])
m.compile("adam", "mse")
for _ in range(20):
    m.train_on_batch(x, y)
times = []
for _ in range(steps):
    t = time.perf_counter()
    m.train_on_batch(x, y)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""

BUSY = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def run(env, args, copies=1, busy=False):
    """Step times (s) of the first of `copies` simultaneous trainings."""
    cmd = [sys.executable, "-c", STEP, str(args.units), str(args.steps), str(args.batch), str(args.timesteps)]
    spinner = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
        outs = [p.communicate()[0] for p in procs]
    finally:
        if spinner:
            spinner.kill()
    return json.loads(outs[0])


def stats(times):
    times = sorted(times)
    return {"median_ms": 1e3 * times[len(times) // 2], "p90_ms": 1e3 * times[int(len(times) * 0.9)]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--policies", default="default,passive,spin10000",
                   help="OMP_WAIT_POLICY values (or spinN: GOMP_SPINCOUNT=N) to compare")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()

    results = {"cpu": cpu_model(), "units": args.units, "batch": args.batch, "timesteps": args.timesteps,
               "runs": {}}
    print(f"LSTM({args.units}) training step, batch {args.batch}, T = {args.timesteps}, {cpu_model()}")
    for policy in args.policies.split(","):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        if policy.startswith("spin"):  # libgomp's spin count before a waiting thread sleeps
            env["GOMP_SPINCOUNT"] = policy[4:]
        elif policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        row = {}
        for name, kw in (("alone", {}), ("beside a busy loop", {"busy": True}), ("two trainings", {"copies": 2})):
            row[name] = stats(run(env, args, **kw))
            time.sleep(1)
        alone = row["alone"]["median_ms"]
        for name, s in row.items():
            s["slowdown"] = s["median_ms"] / alone
            print(f"  {policy:8s} {name:20s} median {s['median_ms']:7.2f} ms  p90 {s['p90_ms']:7.2f} ms  "
                  f"x{s['slowdown']:.2f}")
        results["runs"][policy] = row
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
