"""Thread count of the C++ kernels."""

from __future__ import annotations

import functools
import os
import sys

from ._core import core


def physical_memory() -> int:
    """Bytes of memory of this machine (2⁴⁰ where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 1 << 40


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


# numpy's BLAS (OpenBLAS, MKL) keeps its worker threads spinning for a while after each call;
# between two LSTM kernels they would fight the kernels' own threads for the cores (measured:
# the translation seed model trained 1.7x slower). The model loops therefore run numpy's BLAS
# (Dense, losses) on one thread and give the cores to the kernels; the previous setting is
# restored on return.
try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - a declared dependency
    ThreadpoolController = None

_controller = None
_modules_seen = 0  # len(sys.modules) when the controller last looked for BLAS libraries


def blas_single_threaded(fn):
    """Decorator: run ``fn`` with every loaded BLAS (numpy's, and scipy's when it brings its
    own) limited to one thread."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _controller, _modules_seen
        if ThreadpoolController is None:
            return fn(*args, **kwargs)
        if _controller is None or len(sys.modules) != _modules_seen:  # an import may have loaded a BLAS
            _controller, _modules_seen = ThreadpoolController(), len(sys.modules)
        with _controller.limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper
