"""Thread count of the C++ kernels."""

from __future__ import annotations

import os

from ._core import core


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
        try:
            with open(path) as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def set_num_threads(n: int) -> None:
    """Set the number of threads every lstmfast kernel uses (results do not depend on it)."""
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"Argument `n` must be a positive integer. Received: n={n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"Argument `n` must be a positive integer. Received: n={n}")
    core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads lstmfast kernels use."""
    return core.get_num_threads()


def cpu_isa() -> str:
    """The instruction set the loaded kernels were compiled for."""
    return core.isa


def _default_threads() -> int:
    env = os.environ.get("LSTMFAST_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if env:
        try:
            return max(1, int(env.split(",")[0]))
        except ValueError:
            pass
    return physical_cores()


core.set_num_threads(_default_threads())
