"""What the benchmarks share: what they print about the machine they ran on (the CPU model and
whether other processes were busy when they started: threads that wait for each other at every
time step suffer most from a shared core), and the timing of calls taking turns."""

from __future__ import annotations

import os
import platform
import statistics
import time

BUSY_LOAD = 0.5


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average_warning() -> tuple[float | None, str | None]:
    """(1-minute load average or None, a warning line when it is above BUSY_LOAD)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is None or load <= BUSY_LOAD:
        return load, None
    return load, (f"WARNING: load average {load:.1f} before the run: other processes are busy, and "
                  "threads that wait for each other at every step suffer most; timings are unreliable")


def median_ms(fn, repeats):
    """Median milliseconds of `repeats` calls of fn, after one call that is not timed."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def in_turns(fns, repeats, rounds=3):
    """Per function, the median over `rounds` rounds of median_ms, the functions taking turns in
    each round (so that a slow spell of the machine hits all of them alike)."""
    runs = [[] for _ in fns]
    for _ in range(rounds):
        for r, fn in zip(runs, fns):
            r.append(median_ms(fn, repeats))
    return [statistics.median(r) for r in runs]
