"""Thread count of the C++ kernels."""

from __future__ import annotations

import functools
import os
import sys

from ._core import core
from ._memory import keep_freed_memory


@functools.lru_cache(maxsize=1)
def physical_memory() -> int:
    """Bytes of memory of this machine (2⁴⁰ where the system does not say), asked once."""
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


THREAD_POLICIES = ("adaptive", "fixed")


def set_thread_policy(policy: str) -> None:
    """How many of the set threads a kernel runs on.

    ``"adaptive"`` (the default): all of them while the cores are free; fewer while other
    processes contend for the cores (threads that meet at the end of every parallel region would
    otherwise keep waiting, spinning, for a team mate taken off its core), more again once cores
    fall idle. ``"fixed"``: always all of them. Results are bitwise identical either way. The
    environment variable ``LSTMFAST_THREAD_POLICY`` sets it at import."""
    if policy not in THREAD_POLICIES:
        raise ValueError(f"Unknown thread policy {policy!r}: expected one of {', '.join(THREAD_POLICIES)}")
    core.set_adaptive_threads(policy == "adaptive")


def get_thread_policy() -> str:
    """``"adaptive"`` or ``"fixed"`` (see :func:`set_thread_policy`)."""
    return "adaptive" if core.adaptive_threads() else "fixed"


def threads_in_use() -> int:
    """The threads the kernels run on now: ``get_num_threads()``, or fewer while the adaptive
    thread policy finds the cores contended."""
    return core.threads_in_use()


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


def _default_policy() -> str:
    policy = os.environ.get("LSTMFAST_THREAD_POLICY", "").strip().lower() or "adaptive"
    if policy not in THREAD_POLICIES:
        import warnings

        warnings.warn(f"LSTMFAST_THREAD_POLICY={policy!r} is not one of {', '.join(THREAD_POLICIES)}; "
                      "using 'adaptive'", RuntimeWarning, stacklevel=3)
        policy = "adaptive"
    return policy


set_thread_policy(_default_policy())


# numpy's BLAS (OpenBLAS, MKL) keeps its worker threads spinning for a while after each call;
# between two LSTM kernels they would fight the kernels' own threads for the cores (measured:
# the translation seed model trained 1.7x slower). The model loops therefore run numpy's BLAS
# (Dense, losses) on one thread and give the cores to the kernels; the previous setting is
# restored on return. The first loop also has malloc keep freed blocks for the next step
# (`_memory`).
try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - a declared dependency
    ThreadpoolController = None

_blas = []  # threadpoolctl's controllers of the loaded BLAS libraries
_modules_seen = -1  # len(sys.modules) when they were last looked for


def _blas_libraries():
    """The loaded BLAS libraries' controllers, looked for again only when a module was imported
    since the last look (an import may have loaded another BLAS)."""
    global _blas, _modules_seen
    if len(sys.modules) != _modules_seen:
        _modules_seen = len(sys.modules)
        _blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return _blas


def model_loop(fn):
    """Decorator of a model's loops (fit, evaluate, predict, …): run ``fn`` with every loaded
    BLAS (numpy's, and scipy's when it brings its own) limited to one thread, and with freed
    memory kept for reuse (`_memory.keep_freed_memory`, set once per process). The libraries'
    own setters are called directly (threadpoolctl's, through its controllers): a one-batch
    loop such as ``train_on_batch`` runs once per step, and threadpoolctl's ``limit`` context
    costs more than the setters."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        keep_freed_memory()
        if ThreadpoolController is None:
            return fn(*args, **kwargs)
        # each library and its caller's setting, unless already 1 (as a loop inside a loop finds it)
        libs = [(lib, n) for lib in _blas_libraries() if (n := lib.get_num_threads()) not in (None, 1)]
        for lib, _ in libs:
            lib.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            for lib, n in libs:
                lib.set_num_threads(n)

    return wrapper
