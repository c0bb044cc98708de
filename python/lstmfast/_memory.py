"""Freed memory kept for the next training step (glibc's malloc only).

A training step allocates its large arrays afresh (a Dense(6000) output over 768 rows is 18 MB;
its softmax and its gradient as much again) and frees them when the step ends. glibc gives
blocks above its mmap threshold back to the system when they are freed, and trims the top of
the heap when more than twice that threshold lies free there; the next step then takes every
page again from the kernel, zero-filled, one page fault at a time (docs/benchmarks.md, "Memory
between steps", has what it costs). Frameworks keep such memory in a caching
allocator of their own; lstmfast asks glibc to do the same, once, when a model's first loop
(fit, evaluate, predict, …) starts:

    M_MMAP_THRESHOLD = 32 MiB    blocks up to 32 MiB come from the heap and are reused
                                 (glibc's largest threshold; larger blocks are still mapped)
    M_TRIM_THRESHOLD = 512 MiB   free memory at the heap's top is kept up to 512 MiB

The process then keeps up to that much freed memory instead of returning it to the system.
``LSTMFAST_KEEP_FREED_MEMORY=0`` leaves the allocator alone, and so do the glibc settings a
user gave (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES`` with
``glibc.malloc``). Elsewhere (macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 512 << 20

_done = False
applied = False  # whether this process's malloc was set


def _left_to_user() -> bool:
    """Whether the user asked for the allocator to be left alone, or set it up themselves."""
    return (os.environ.get("LSTMFAST_KEEP_FREED_MEMORY", "").strip().lower() in ("0", "false", "no", "off")
            or any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
            or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""))


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks for reuse (see the module's text), once per
    process. Returns whether this process's malloc is so set."""
    global _done, applied
    if _done:
        return applied
    _done = True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or _left_to_user():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))  # mallopt returns 1 on success
    applied = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and mmap_set
    return applied
