"""What the benchmarks print about the machine they ran on: the CPU model and whether other
processes were busy when they started (threads that wait for each other at every time step
suffer most from a shared core)."""

from __future__ import annotations

import os
import platform

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
