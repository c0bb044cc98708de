"""lstmfast's own file format: one zip archive (stored, not compressed) holding

    lstmfast.json        {"format": "lstmfast", "format_version": 1, "kind": "model" | "weights",
                          "config": <Keras-style Sequential config>, "compile_config": ...,
                          "weights": [{"path", "shape", "dtype"}, ...], "optimizer": {...}}
    weights/00000.npy    one .npy per weight, in `model.get_weights()` order
    optimizer/<k>.npy    the optimizer's state (moments, iteration count)

It is written to a temporary file in the target directory, flushed to disk, then moved over the
target with `os.replace`, so a crash never leaves a half-written file under the final name. On
load, the zip's CRCs, the format name and version, and every weight's shape are checked; anything
else gives a ValueError that names the file and what is wrong.
"""

import io
import json
import os
import warnings
import zipfile

import numpy as np

from .. import _files
from .._threads import physical_memory
from .registry import model_class

FORMAT_NAME = "lstmfast"
FORMAT_VERSION = 1
HEADER = "lstmfast.json"


def _version():
    try:
        from importlib.metadata import version

        return version("lstmfast")
    except Exception:  # not installed as a distribution (e.g. running from a source tree)
        return "unknown"


# ---------------------------------------------------------------------------- writing

def _npy_bytes(array):
    buf = io.BytesIO()
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _atomic_write_zip(filepath, members, overwrite):
    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members:
                zf.writestr(name, data)

    _files.atomic_write(filepath, write, overwrite)


def _weights_header(model):
    return [{"path": v.path, "shape": list(v.value.shape), "dtype": str(v.value.dtype)}
            for v in model.weights]


def save_model(model, filepath, overwrite=True, include_optimizer=True, **kwargs):
    """Write `model` (architecture, weights, compile settings, optimizer state) to `filepath`."""
    if kwargs.pop("save_format", None) not in (None, "keras", "lstmfast"):
        raise ValueError("lstmfast writes its own format only.")
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments passed to save: {sorted(kwargs)}")
    if not model.built:
        raise ValueError("The model must be built (given an input shape, or called on data) before saving.")
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "lstmfast_version": _version(),
        "kind": "model",
        "config": {"module": "keras", "class_name": type(model).__name__, "config": model.get_config()},
        "compile_config": model.get_compile_config(),
        "weights": _weights_header(model),
        "optimizer": None,
    }
    members = [(f"weights/{i:05d}.npy", _npy_bytes(w)) for i, w in enumerate(model.get_weights())]
    opt = model.optimizer
    if include_optimizer and opt is not None and opt.built:
        state = opt.get_state()
        header["optimizer"] = {"class_name": type(opt).__name__, "keys": sorted(state)}
        members += [(f"optimizer/{k}.npy", _npy_bytes(np.asarray(v))) for k, v in sorted(state.items())]
    members.insert(0, (HEADER, json.dumps(header, indent=1, default=_json_default).encode()))
    _atomic_write_zip(filepath, members, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Write only the weights of `model` to `filepath`."""
    if not model.built:
        raise ValueError("The model must be built before its weights can be saved.")
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "lstmfast_version": _version(),
              "kind": "weights", "weights": _weights_header(model)}
    members = [(HEADER, json.dumps(header, indent=1).encode())]
    members += [(f"weights/{i:05d}.npy", _npy_bytes(w)) for i, w in enumerate(model.get_weights())]
    _atomic_write_zip(filepath, members, overwrite)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"Cannot serialise {obj!r}")


def member_size_problem(info):
    """Why a zip member must not be read, or None. Sizes are checked before anything is
    inflated: a member may not claim more bytes than half this machine's memory, nor inflate
    beyond 1000 times its compressed size (a zip bomb)."""
    if info.file_size > physical_memory() // 2 or (info.compress_type != zipfile.ZIP_STORED
                                                   and info.file_size > 1000 * info.compress_size + (1 << 20)):
        return (f"member {info.filename!r} claims {info.file_size:,} bytes from {info.compress_size:,} "
                "compressed, more than a model file can hold")
    return None


class _Archive:
    """Read an lstmfast archive, turning every low-level failure into a clear ValueError."""

    def __init__(self, filepath):
        self.filepath = os.fspath(filepath)
        try:
            self.zf = zipfile.ZipFile(self.filepath)
            self.header = json.loads(self._read(HEADER).decode())
        except json.JSONDecodeError as e:
            raise self._bad(f"its header is not valid JSON ({e})") from None
        except ValueError:
            raise
        except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, EOFError) as e:
            raise self._bad(f"cannot read its header ({e})") from None
        if not isinstance(self.header, dict) or self.header.get("format") != FORMAT_NAME:
            raise self._bad("its header does not name the lstmfast format")
        version = self.header.get("format_version")
        if not isinstance(version, int):
            raise self._bad("its header has no format version")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{self.filepath} was written in lstmfast format version {version} (by lstmfast "
                f"{self.header.get('lstmfast_version')}); this lstmfast reads versions up to "
                f"{FORMAT_VERSION}. Upgrade lstmfast to load it."
            )

    def _bad(self, why):
        return ValueError(f"{self.filepath} is not a valid lstmfast file: {why}.")

    def _read(self, name):
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise self._bad(f"member {name!r} is missing") from None
        problem = member_size_problem(info)
        if problem:
            raise self._bad(problem)
        try:
            return self.zf.read(name)
        except KeyError:
            raise self._bad(f"member {name!r} is missing") from None
        except (zipfile.BadZipFile, OSError, EOFError, Exception) as e:
            raise self._bad(f"member {name!r} is corrupted ({e})") from None

    def array(self, name):
        data = self._read(name)
        try:
            f = io.BytesIO(data)
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            count = 1
            for d in shape:
                count *= int(d)
            if dtype.hasobject or count * dtype.itemsize != len(data) - f.tell():
                # the header's shape must match the bytes that follow it, before any allocation
                raise ValueError(f"its header claims shape {shape} of {dtype}, {count * dtype.itemsize:,} bytes, "
                                 f"but {len(data) - f.tell():,} follow")
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as e:
            raise self._bad(f"member {name!r} is not a valid array ({e})") from None

    def weights(self):
        specs = self.header.get("weights")
        if not isinstance(specs, list):
            raise self._bad("its header lists no weights")
        out = []
        for i, spec in enumerate(specs):
            a = self.array(f"weights/{i:05d}.npy")
            if list(a.shape) != list(spec.get("shape", [])) or str(a.dtype) != spec.get("dtype"):
                raise self._bad(
                    f"weight {i} ({spec.get('path')}) has shape {a.shape} / {a.dtype}, its header says "
                    f"{tuple(spec.get('shape', []))} / {spec.get('dtype')}"
                )
            out.append(a)
        return out

    def close(self):
        self.zf.close()


def load_model(filepath, compile=True):
    """Load a model from an lstmfast file: architecture, weights, compile settings, optimizer."""
    arc = _Archive(filepath)
    try:
        if arc.header.get("kind") != "model":
            raise ValueError(
                f"{filepath} holds only weights (written by save_weights); build the model and call "
                "`model.load_weights(path)` instead of `load_model`."
            )
        config = arc.header.get("config") or {}
        try:
            model = model_class(config.get("class_name", "Sequential")).from_config(config.get("config", config))
        except (KeyError, TypeError) as e:
            raise arc._bad(f"its architecture cannot be rebuilt ({e})") from None
        weights = arc.weights()
        set_weights_checked(model, weights, filepath)
        if compile and arc.header.get("compile_config"):
            cc = arc.header["compile_config"]
            if not isinstance(cc, dict) or "optimizer" not in cc or "loss" not in cc:
                raise arc._bad("its compile settings lack the optimizer or the loss")
            try:
                model.compile(optimizer=cc["optimizer"], loss=cc["loss"],
                              metrics=[m for m in cc.get("metrics") or [] if m])
            except ValueError as e:  # a loss written as the user's own function is not in the file
                warnings.warn(f"{filepath}: the model is loaded uncompiled, its compile settings cannot be "
                              f"restored ({e}); call compile() again.", stacklevel=3)
                return model
            opt = arc.header.get("optimizer")
            if opt:
                if not isinstance(opt, dict) or not isinstance(opt.get("keys"), list):
                    raise arc._bad("its optimizer entry lists no state")
                state = {k: arc.array(f"optimizer/{k}.npy") for k in opt["keys"]}
                model._ensure_optimizer()
                try:
                    model.optimizer.set_state(state)
                except ValueError as e:
                    raise arc._bad(f"its optimizer state does not fit the model ({e})") from None
        return model
    finally:
        arc.close()


def set_weights_checked(model, weights, filepath):
    current = model.weights
    if len(current) != len(weights):
        raise ValueError(
            f"{filepath} holds {len(weights)} weights, but the model has {len(current)} "
            f"({[v.path for v in current]})."
        )
    for v, w in zip(current, weights):
        if v.value.shape != w.shape:
            raise ValueError(
                f"{filepath}: weight for {v.path!r} has shape {w.shape}, but the model expects "
                f"{v.value.shape}."
            )
    model.set_weights(weights)


def read_weights(filepath):
    """The weights stored in an lstmfast file (model or weights), in `get_weights()` order."""
    arc = _Archive(filepath)
    try:
        return arc.weights()
    finally:
        arc.close()
