"""Loads the C++ kernels built for the best instruction set this CPU runs.

The package ships one extension module per instruction set (``_core_baseline``,
``_core_avx2``, ``_core_avx512``; ``_core_native`` when built with ``LSTMFAST_NATIVE=ON``).
``LSTMFAST_ISA=baseline|avx2|avx512|native`` forces one. ``LSTMFAST_CORE_DIR`` loads the
modules from another directory instead (a sanitizer build: ``.ci/sanitize``).
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import sys

_PREFERENCE = ("native", "avx512", "avx2", "baseline")


def _import(isa):
    name = f"lstmfast._core_{isa}"
    directory = os.environ.get("LSTMFAST_CORE_DIR")
    if not directory:
        return importlib.import_module(name)
    paths = sorted(glob.glob(os.path.join(directory, f"_core_{isa}.*so")))
    if not paths:
        raise ImportError(f"no _core_{isa} module in LSTMFAST_CORE_DIR={directory}")
    spec = importlib.util.spec_from_file_location(name, paths[0])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def built(isa):
    """Whether the module for ``isa`` was built (in LSTMFAST_CORE_DIR when that is set)."""
    directory = os.environ.get("LSTMFAST_CORE_DIR")
    if directory:
        return bool(glob.glob(os.path.join(directory, f"_core_{isa}.*so")))
    return importlib.util.find_spec(f"lstmfast._core_{isa}") is not None


def _load():
    base = _import("baseline")
    forced = os.environ.get("LSTMFAST_ISA", "").strip().lower()
    if forced:
        if forced not in _PREFERENCE:
            raise ImportError(
                f"LSTMFAST_ISA must be one of {', '.join(_PREFERENCE)}; got {forced!r}"
            )
        if forced not in ("baseline", "native") and not base.cpu_supports(forced):
            raise ImportError(f"LSTMFAST_ISA={forced} but this CPU does not support {forced}")
        return _import(forced)
    for isa in _PREFERENCE:
        if isa != "native" and not base.cpu_supports(isa):
            continue
        try:
            return _import(isa)
        except ImportError:
            continue
    return base


core = _load()
