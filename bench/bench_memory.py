"""Times training steps of the translation pipeline's attention model with malloc keeping freed
memory for the next step (lstmfast's default) and with malloc left alone
(LSTMFAST_KEEP_FREED_MEMORY=0): ms and page faults a step, each setting in its own process, the
processes taking turns.

    python bench/bench_memory.py                 # B=64, 10 source and 12 target steps, 6,000 subwords
    python bench/bench_memory.py --rounds 5 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from machine import cpu_model

CHILD = r"""
import json, resource, sys, time
import numpy as np, lstmfast
from lstmfast.pipelines.seq2seq import build_attention_model
b, s, t, v, steps, threads = map(int, sys.argv[1:7])
lstmfast.set_num_threads(threads)
rng = np.random.default_rng(0)
src, tgt, y = (rng.integers(1, v, (b, n)).astype(np.int32) for n in (s, t, t))
model = build_attention_model(v, v, v, 128, 256, 1e-3)
for _ in range(3):
    model.train_on_batch([src, tgt], y)
times, r0 = [], resource.getrusage(resource.RUSAGE_SELF)
for _ in range(steps):
    t0 = time.perf_counter()
    model.train_on_batch([src, tgt], y)
    times.append(time.perf_counter() - t0)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ms": [x * 1e3 for x in times], "faults": (r1.ru_minflt - r0.ru_minflt) / steps,
                  "system_ms": (r1.ru_stime - r0.ru_stime) / steps * 1e3}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--source-steps", type=int, default=10)
    p.add_argument("--target-steps", type=int, default=12)
    p.add_argument("--vocab", type=int, default=6000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    settings = {"kept (default)": "1", "left alone": "0"}
    runs = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, flag in settings.items():
            env = dict(os.environ, LSTMFAST_KEEP_FREED_MEMORY=flag)
            out = subprocess.run([sys.executable, "-c", CHILD, *map(str, (
                args.batch, args.source_steps, args.target_steps, args.vocab, args.steps, args.threads))],
                env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"translation model, one training step: B={args.batch}, S={args.source_steps}, T={args.target_steps}, "
          f"V={args.vocab}, {args.threads} threads, {cpu_model()}; {args.rounds} rounds of {args.steps} steps")
    summary = {}
    for name, rs in runs.items():
        ms = statistics.median(x for r in rs for x in r["ms"])
        faults = statistics.median(r["faults"] for r in rs)
        system = statistics.median(r["system_ms"] for r in rs)
        summary[name] = {"median_ms": ms, "faults_per_step": faults, "system_ms_per_step": system}
        print(f"  malloc {name:15s} {ms:7.2f} ms a step   {faults:7.0f} page faults   {system:6.2f} ms system time")
    kept, left = (summary[n]["median_ms"] for n in settings)
    print(f"  kept / left alone {kept / left:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "cpu": cpu_model()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
