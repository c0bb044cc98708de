"""Loads the C++ kernels built for the best instruction set this CPU runs.

The package ships one extension module per instruction set (``_core_baseline``,
``_core_avx2``, ``_core_avx512``; ``_core_native`` when built with ``LSTMFAST_NATIVE=ON``).
``LSTMFAST_ISA=baseline|avx2|avx512|native`` forces one.
"""

from __future__ import annotations

import importlib
import os

_PREFERENCE = ("native", "avx512", "avx2", "baseline")


def _load():
    base = importlib.import_module("lstmfast._core_baseline")
    forced = os.environ.get("LSTMFAST_ISA", "").strip().lower()
    if forced:
        if forced not in _PREFERENCE:
            raise ImportError(
                f"LSTMFAST_ISA must be one of {', '.join(_PREFERENCE)}; got {forced!r}"
            )
        if forced not in ("baseline", "native") and not base.cpu_supports(forced):
            raise ImportError(f"LSTMFAST_ISA={forced} but this CPU does not support {forced}")
        return importlib.import_module(f"lstmfast._core_{forced}")
    for isa in _PREFERENCE:
        if isa != "native" and not base.cpu_supports(isa):
            continue
        try:
            return importlib.import_module(f"lstmfast._core_{isa}")
        except ImportError:
            continue
    return base


core = _load()
