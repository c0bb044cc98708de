"""What the three pipelines share: the model directory, seeding, reports and plots.

A model directory holds everything ``predict`` needs::

    MODEL_DIR/
        pipeline.json     marker: which pipeline made it, its configuration
                          and preprocessing (vocabulary, scaler, window length)
        model.lstmfast    the trained network (lstmfast.models.load_model)
        history.json      loss and metrics per epoch
        metrics.json      the last evaluation, beside the baselines
        *.png             plots from ``evaluate --plot``
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np

from .. import _files

__all__ = [
    "PipelineError", "MARKER", "MODEL_FILE", "save_pipeline", "read_marker", "load_pipeline_model", "check_out_dir",
    "fit_or_stop", "Interrupted",
    "seed_everything", "set_threads", "format_table", "write_json", "Stopwatch", "plot_history",
    "resolve_out", "default_model_dir", "setting", "option", "options",
]

MARKER = "pipeline.json"
MODEL_FILE = "model.lstmfast"
FORMAT_VERSION = 1


class PipelineError(ValueError):
    """A user-facing error of a pipeline (bad model directory, bad option)."""


# The pipelines: command name -> module of lstmfast.pipelines (the registry PIPELINES is made
# from this list; a pipeline module imports this one, so the list lives here).
PIPELINE_MODULES = {"translate": "translation", "forecast": "forecasting", "sentiment": "sentiment"}


def default_model_dir(pipeline):
    """The model directory a pipeline uses when none is given: ``lstmfast-<pipeline>``."""
    return f"lstmfast-{pipeline}"


def resolve_out(out, pipeline):
    """The model directory to write, as an absolute path: ``out`` or the default."""
    return os.path.abspath(out or default_model_dir(pipeline))


# ---------------------------------------------------------------------------
# Settings: each pipeline's configuration is a dataclass whose fields say what
# they mean; the ``lstmfast`` command makes its flags from the fields declared
# with ``option``.

def setting(default, help):
    """A field of a pipeline configuration, with its meaning."""
    return dataclasses.field(default=default, metadata={"help": help})


def at_least(n):
    """An argparse type for an integer of at least ``n``."""
    import argparse

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {n}, got {text!r}") from None
        if value < n:
            raise argparse.ArgumentTypeError(f"expected an integer >= {n}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {n}"
    return parse


def a_rate(text):
    """An argparse type for a probability in [0, 1) (a dropout rate)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


a_rate.__name__ = "number in [0, 1)"


def option(default, help, *, every_command=False, commands=None, **flag):
    """A setting that is also a flag of the command (``max_vocab`` -> ``--max-vocab``).

    The flag's type comes from the field's annotation: ``bool`` is a switch
    that turns the setting on (its default is False), ``int`` a positive
    integer, ``float`` and ``str`` as written; ``flag`` passes other argparse
    arguments (``choices``, ``metavar``, ``type``). A default other than
    ``None`` is shown in the help; for ``None`` the help says what it means.
    The flag belongs to ``train`` only, unless ``every_command`` (then
    ``evaluate`` and ``predict`` take it too) or ``commands`` names the
    commands that take it.
    """
    if default is True:
        raise ValueError(f"a switch turns its setting on, so its default must be False; got {default!r}")
    if commands is None:
        commands = ("train", "evaluate", "predict") if every_command else ("train",)
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "commands": tuple(commands)})


def options(config_class):
    """The fields of ``config_class`` declared with :func:`option`, in their order."""
    return [f for f in dataclasses.fields(config_class) if "flag" in f.metadata]


def save_pipeline(out, pipeline, model, marker, history=None, extra=None):
    """Write ``model``, its ``marker`` (a JSON-able dict), ``history`` and whatever ``extra(dir)``
    writes as the model directory ``out``, replacing an existing one as a whole.

    Everything is written into a new directory beside ``out``, which then takes the place of
    ``out``: a kill leaves either the old directory or the new one, never files of two runs
    together (at worst, between the two renames, the old one under a hidden name beside it).
    Directories left by an interrupted save are removed at the next save of ``out``. Under
    `lstmfast.distribute`, rank 0 writes it and the other ranks do nothing."""
    from .. import distribute

    if not distribute.is_chief():
        distribute.barrier()  # until rank 0 has written it
        return os.path.abspath(out)
    out = _save_pipeline(out, pipeline, model, marker, history, extra)
    distribute.barrier()
    return out


def _save_pipeline(out, pipeline, model, marker, history, extra):
    out = os.path.abspath(out)
    parent, name = os.path.dirname(out), os.path.basename(out)
    os.makedirs(parent, exist_ok=True)
    _remove_stale(parent, name)
    staging = tempfile.mkdtemp(prefix=_files.temporary_prefix(out), suffix=".new", dir=parent)
    try:
        model.save(os.path.join(staging, MODEL_FILE))
        doc = {"pipeline": pipeline, "format_version": FORMAT_VERSION, **marker}
        write_json(os.path.join(staging, MARKER), doc)
        if history is not None:
            write_json(os.path.join(staging, "history.json"), history)
        if extra is not None:
            extra(staging)
        os.chmod(staging, 0o777 & ~_umask())
        if os.path.isdir(out):
            old = tempfile.mkdtemp(prefix=_files.temporary_prefix(out), suffix=".old", dir=parent)
            os.rename(out, os.path.join(old, name))  # the old directory out of the way (one rename) ...
            os.rename(staging, out)  # ... and the new one in its place
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale(parent, name):
    """Remove the ``.new`` / ``.old`` directories of saves of ``name`` whose process is gone; an
    old directory set aside by a save killed between its two renames comes back first."""
    for path in _files.stale_leftovers(parent, name, (".new", ".old")):
        kept = os.path.join(path, name)
        if path.endswith(".old") and os.path.isdir(kept) and not os.path.exists(os.path.join(parent, name)):
            os.rename(kept, os.path.join(parent, name))
        _files.remove(path)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C ended training; the message says what was kept."""


def fit_or_stop(model, kept, **fit_args):
    """``model.fit(**fit_args)``, raising :class:`Interrupted` with ``kept`` (what stays on
    disk) when Ctrl-C ended it, so that nothing half-trained is saved or evaluated."""
    h = model.fit(**fit_args)
    if getattr(model, "training_interrupted", False):
        raise Interrupted(kept() if callable(kept) else kept)
    return h


# What each pipeline's marker must hold for evaluate and predict.
MARKER_KEYS = {
    "forecast": ("config", "columns", "preprocessing", "target"),
    "sentiment": ("config", "class_names", "data", "split"),
    "translate": ("config", "source_vocab", "target_vocab"),
}


def read_marker(model_dir, pipeline):
    """Read ``pipeline.json`` of ``model_dir``, checking it was made by ``pipeline``."""
    path = os.path.join(model_dir, MARKER)
    if not os.path.isdir(model_dir):
        raise PipelineError(f"{model_dir}: no such model directory; train one first with "
                            f"`lstmfast {pipeline} train --out {model_dir}`")
    if not os.path.exists(path):
        raise PipelineError(f"{model_dir}: not an lstmfast model directory (it has no {MARKER})")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"{path}: cannot read the pipeline marker: {e}") from None
    made_by = doc.get("pipeline")
    if made_by != pipeline:
        known = isinstance(made_by, str) and made_by in PIPELINE_MODULES
        hint = f"; use `lstmfast {made_by} ...` with it" if known else ""
        raise PipelineError(f"{model_dir}: this model directory was made by the {made_by!r} pipeline, "
                            f"not {pipeline!r}{hint}")
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise PipelineError(f"{path}: made by a newer lstmfast (format {doc['format_version']}); upgrade lstmfast")
    missing = [k for k in MARKER_KEYS.get(pipeline, ("config",)) if k not in doc]
    if missing or not isinstance(doc.get("config"), dict):
        what = ", ".join(repr(k) for k in missing) if missing else "'config' as a mapping"
        raise PipelineError(f"{path}: the pipeline marker lacks {what}: it is damaged or was not written by "
                            f"lstmfast; train the model again")
    return doc


def load_pipeline_model(model_dir, pipeline):
    """Return ``(model, marker)`` of a model directory made by ``pipeline``."""
    doc = read_marker(model_dir, pipeline)
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise PipelineError(f"{model_dir}: the model file {MODEL_FILE} is missing")
    if not os.path.isfile(path):
        raise PipelineError(f"{path}: not a regular file (the model file should be there)")
    from ..models import load_model

    try:
        return load_model(path, compile=False), doc  # inference only: no optimizer state needed
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise PipelineError(f"{path}: cannot load the model: {e}") from None


def check_out_dir(out):
    """Refuse, before any work, a model directory that could not be written: a file in its place
    or above it, or a parent without write permission."""
    out = os.fspath(out)
    if not out:
        raise PipelineError("--out: expected the path of a model directory, got an empty string")
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise PipelineError(f"--out {out}: not a directory (a file is there)")
        if not os.access(out, os.W_OK):
            raise PipelineError(f"--out {out}: the directory is not writable")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise PipelineError(f"--out {out}: not a directory: {parent} is a file")
    if not os.access(parent, os.W_OK):
        raise PipelineError(f"--out {out}: cannot create it: {parent} is not writable")


def seed_everything(seed):
    """Seed Python's, NumPy's and lstmfast's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        from ..utils import set_random_seed
    except ImportError:  # older API without the helper
        return
    set_random_seed(seed)


def set_threads(n):
    """Use ``n`` threads for the kernels (``None`` keeps the default)."""
    if n is None:
        return
    if n < 1:
        raise PipelineError(f"--threads must be a positive integer, got {n}")
    import lstmfast

    lstmfast.set_num_threads(int(n))


def format_table(rows, headers):
    """A plain-text table; floats get 4 decimals."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return "-" if v is None else str(v)

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in cells:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def write_json(path, obj):
    """Write `obj` as JSON (on rank 0 only under `lstmfast.distribute`: the ranks share the files)."""
    from .. import distribute

    if not distribute.is_chief():
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=_jsonable)
        f.write("\n")


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def log(verbose, *args):
    if verbose:
        print(*args, file=sys.stdout, flush=True)


def history_dict(history):
    """The ``history`` attribute of what ``fit`` returns, as plain lists of floats."""
    h = getattr(history, "history", history) or {}
    return {k: [float(v) for v in vals] for k, vals in h.items()}


def plot_history(history, path, title):
    """Draw loss (and any metric) per epoch to a PNG (on rank 0 only under
    `lstmfast.distribute`); returns the path."""
    from .. import distribute

    if not distribute.is_chief():
        return path
    plt = _pyplot()
    keys = [k for k in history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
    for ax, k in zip(axes[0], keys):
        epochs = np.arange(1, len(history[k]) + 1)
        ax.plot(epochs, history[k], marker="o", label="training")
        if "val_" + k in history:
            ax.plot(epochs, history["val_" + k], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(k)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_saved_history(model_dir, title, drop_prefix=None):
    """Plot the model directory's history.json to history.png; the path, or None without one."""
    hist_path = os.path.join(model_dir, "history.json")
    if not os.path.exists(hist_path):
        return None
    with open(hist_path, encoding="utf-8") as f:
        hist = json.load(f)
    if drop_prefix:
        hist = {k: v for k, v in hist.items() if not k.startswith(drop_prefix)}
    return plot_history(hist, os.path.join(model_dir, "history.png"), title)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PipelineError("--plot needs matplotlib: pip install 'lstmfast[pipelines]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
