"""Saving and loading models and weights, and importing Keras and PyTorch weights.

lstmfast's own format is one zip archive (stored, not compressed) holding:

    lstmfast.json        {"format": "lstmfast", "format_version": 1, "kind": "model" | "weights",
                          "config": <Keras-style Sequential config>, "compile_config": ...,
                          "weights": [{"path", "shape", "dtype"}, ...], "optimizer": {...}}
    weights/00000.npy    one .npy per weight, in `model.get_weights()` order
    optimizer/<k>.npy    the optimizer's state (moments, iteration count)

It is written to a temporary file in the target directory, flushed to disk, then moved over the
target with `os.replace`, so a crash never leaves a half-written file under the final name. On
load, the zip's CRCs, the format name and version, and every weight's shape are checked; anything
else gives a ValueError that names the file and what is wrong.

`load_model` also imports Keras files: the Keras 3 `.keras` archive (config.json +
model.weights.h5) and the legacy HDF5 `.h5` (Keras 2 layout, also written by Keras 3's
`model.save("x.h5")`), for Sequential models of the layers lstmfast provides. HDF5 reading needs
the optional `h5py`. `torch_lstm_weights` converts a PyTorch `nn.LSTM` state_dict.
"""

import io
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

FORMAT_NAME = "lstmfast"
FORMAT_VERSION = 1
_HEADER = "lstmfast.json"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} already exists; pass overwrite=True to replace it.")
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(filepath) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
                for name, data in members:
                    zf.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
        "config": {"module": "keras", "class_name": "Sequential", "config": model.get_config()},
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
    members.insert(0, (_HEADER, json.dumps(header, indent=1, default=_json_default).encode()))
    _atomic_write_zip(filepath, members, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Write only the weights of `model` to `filepath`."""
    if not model.built:
        raise ValueError("The model must be built before its weights can be saved.")
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "lstmfast_version": _version(),
              "kind": "weights", "weights": _weights_header(model)}
    members = [(_HEADER, json.dumps(header, indent=1).encode())]
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


# ---------------------------------------------------------------------------- reading

def _sniff(filepath):
    """'lstmfast', 'keras_zip', 'hdf5' — or raise ValueError for anything else."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No file or directory found at {filepath}")
    if os.path.isdir(filepath):
        raise ValueError(f"{filepath} is a directory; expected a file saved by lstmfast or Keras.")
    with open(filepath, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        return "hdf5"
    if zipfile.is_zipfile(filepath):
        try:
            with zipfile.ZipFile(filepath) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile as e:
            raise ValueError(f"{filepath} is not a valid lstmfast or Keras file: {e}") from None
        if _HEADER in names:
            return "lstmfast"
        if "config.json" in names and "model.weights.h5" in names:
            return "keras_zip"
        raise ValueError(
            f"{filepath} is a zip archive but neither an lstmfast file (no {_HEADER}) nor a Keras "
            f".keras file (no config.json + model.weights.h5). Members: {sorted(names)[:5]}"
        )
    raise ValueError(
        f"{filepath} is not an lstmfast file, a Keras .keras archive or an HDF5 (.h5) file "
        f"(it starts with {head!r})."
    )


class _Archive:
    """Read an lstmfast archive, turning every low-level failure into a clear ValueError."""

    def __init__(self, filepath):
        self.filepath = os.fspath(filepath)
        try:
            self.zf = zipfile.ZipFile(self.filepath)
            self.header = json.loads(self._read(_HEADER).decode())
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
            return self.zf.read(name)
        except KeyError:
            raise self._bad(f"member {name!r} is missing") from None
        except (zipfile.BadZipFile, OSError, EOFError, Exception) as e:
            raise self._bad(f"member {name!r} is corrupted ({e})") from None

    def array(self, name):
        data = self._read(name)
        try:
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
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
    """Load an lstmfast model file, or import a Keras `.keras` / `.h5` Sequential model."""
    kind = _sniff(filepath)
    if kind == "keras_zip":
        return _load_keras_zip(filepath, compile)
    if kind == "hdf5":
        return _load_keras_h5(filepath, compile)
    from .models import Sequential

    arc = _Archive(filepath)
    try:
        if arc.header.get("kind") != "model":
            raise ValueError(
                f"{filepath} holds only weights (written by save_weights); build the model and call "
                "`model.load_weights(path)` instead of `load_model`."
            )
        config = arc.header.get("config") or {}
        try:
            model = Sequential.from_config(config.get("config", config))
        except (KeyError, TypeError) as e:
            raise arc._bad(f"its architecture cannot be rebuilt ({e})") from None
        weights = arc.weights()
        _set_weights_checked(model, weights, filepath)
        if compile and arc.header.get("compile_config"):
            cc = arc.header["compile_config"]
            model.compile(optimizer=cc["optimizer"], loss=cc["loss"],
                          metrics=[m for m in cc.get("metrics") or [] if m])
            opt = arc.header.get("optimizer")
            if opt:
                state = {k: arc.array(f"optimizer/{k}.npy") for k in opt["keys"]}
                model._pack()
                try:
                    model.optimizer.set_state(state)
                except ValueError as e:
                    raise arc._bad(f"its optimizer state does not fit the model ({e})") from None
        return model
    finally:
        arc.close()


def _set_weights_checked(model, weights, filepath):
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


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights into `model` from an lstmfast file or a Keras weights / model file."""
    kind = _sniff(filepath)
    if kind == "lstmfast":
        arc = _Archive(filepath)
        try:
            weights = arc.weights()
        finally:
            arc.close()
    elif kind == "keras_zip":
        import zipfile as _z

        h5py = _require_h5py()
        with _z.ZipFile(filepath) as zf:
            data = zf.read("model.weights.h5")
        with h5py.File(io.BytesIO(data), "r") as f:
            weights = _keras3_weights(f, model)
    else:
        h5py = _require_h5py()
        with h5py.File(os.fspath(filepath), "r") as f:
            weights = _legacy_h5_weights(f, model) if "layers" not in f else _keras3_weights(f, model)
    if not model.built:
        raise ValueError("Build the model (give it an input shape) before loading weights into it.")
    if skip_mismatch:
        current = model.weights
        if len(current) == len(weights):
            weights = [w if w.shape == v.value.shape else v.value for v, w in zip(current, weights)]
    _set_weights_checked(model, weights, filepath)


# ---------------------------------------------------------------------------- Keras import

def _require_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "Reading Keras HDF5 files (.h5, .keras) needs the optional dependency h5py: "
            "pip install h5py"
        ) from None
    return h5py


_BENIGN_NONE_KEYS = ("quantization_config", "lora_rank", "lora_alpha", "kernel_regularizer",
                     "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
                     "recurrent_regularizer", "recurrent_constraint", "embeddings_regularizer",
                     "embeddings_constraint")


def _clean_layer_config(layer_config, keras_version="3"):
    """Drop Keras bookkeeping that lstmfast does not model from a layer config, recursively."""
    if not isinstance(layer_config, dict):
        return layer_config
    out = {k: v for k, v in layer_config.items()
           if k not in ("build_config", "registered_name", "module", "shared_object_id", "inbound_nodes")}
    config = dict(out.get("config") or {})
    for key in ("ragged", "optional", "implementation", "time_major", "input_axes", "output_axes"):
        config.pop(key, None)
    for key in _BENIGN_NONE_KEYS:
        if key in config and config[key] is None:
            config.pop(key)
    for key in ("layer", "backward_layer"):
        if isinstance(config.get(key), dict):
            config[key] = _clean_layer_config(config[key], keras_version)
    for key, value in list(config.items()):
        if key.endswith("_initializer") and isinstance(value, dict):
            inner = dict(value.get("config") or {})
            inner.pop("input_axes", None)
            inner.pop("output_axes", None)
            config[key] = {"class_name": value.get("class_name"), "config": inner}
    if keras_version.startswith("2") and config.get("recurrent_activation") == "hard_sigmoid":
        warnings.warn(
            f"Layer {config.get('name')!r} was saved by Keras {keras_version} with "
            "recurrent_activation='hard_sigmoid'; Keras 2 defined it as clip(0.2x + 0.5, 0, 1), "
            "lstmfast (like Keras 3) uses clip(x/6 + 0.5, 0, 1), so outputs will differ.",
            stacklevel=3,
        )
    if out.get("class_name") == "InputLayer" and "batch_input_shape" in config:
        config["batch_shape"] = config.pop("batch_input_shape")
    out["config"] = config
    return out


def _model_from_keras_config(model_config, source, keras_version="3"):
    from .models import Sequential

    if isinstance(model_config, (bytes, str)):
        model_config = json.loads(model_config)
    if model_config.get("class_name") != "Sequential":
        raise ValueError(
            f"{source} holds a Keras {model_config.get('class_name')!r} model; lstmfast imports "
            "Sequential models only."
        )
    config = dict(model_config["config"])
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = (config["dtype"].get("config") or {}).get("name")
    layers = [_clean_layer_config(l, keras_version) for l in config["layers"]]
    try:
        return Sequential.from_config({**config, "layers": layers})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: cannot rebuild the Keras model in lstmfast: {e}") from None


def _keras_compile(model, training_config):
    """Compile from a Keras compile/training config where lstmfast knows the pieces; else skip."""
    if not training_config:
        return
    try:
        loss = training_config.get("loss")
        if isinstance(loss, dict) and "config" in loss and "class_name" in loss:
            loss = {"class_name": loss["class_name"],
                    "config": {k: v for k, v in loss["config"].items() if k in ("name", "reduction",
                               "from_logits", "label_smoothing")}}
        opt = training_config.get("optimizer") or training_config.get("optimizer_config")
        if isinstance(opt, dict):
            cfg = {k: v for k, v in (opt.get("config") or {}).items()
                   if k in ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "momentum", "nesterov",
                            "rho", "centered", "clipnorm", "clipvalue", "global_clipnorm", "weight_decay")}
            opt = {"class_name": opt.get("class_name"), "config": cfg}
        metrics = training_config.get("metrics") or []
        flat = []
        for m in metrics:
            if isinstance(m, list):
                flat.extend(m)
            else:
                flat.append(m)
        metrics = [m if isinstance(m, str) else (m or {}).get("config", {}).get("name") for m in flat]
        model.compile(optimizer=opt or "rmsprop", loss=loss, metrics=[m for m in metrics if m])
    except (ValueError, TypeError, KeyError) as e:
        warnings.warn(f"The Keras compile settings could not be restored ({e}); the model is loaded "
                      "uncompiled.", stacklevel=3)


def _keras3_layer_weights(group, layer, path):
    from .layers import Bidirectional, LSTM, TimeDistributed

    def vars_of(g):
        if "vars" not in g:
            return []
        v = g["vars"]
        return [np.asarray(v[str(i)]) for i in range(len(v.keys()))]

    if isinstance(layer, LSTM):
        return vars_of(group["cell"]) if "cell" in group else vars_of(group)
    if isinstance(layer, Bidirectional):
        return (_keras3_layer_weights(group["forward_layer"], layer.forward_layer, path)
                + _keras3_layer_weights(group["backward_layer"], layer.backward_layer, path))
    if isinstance(layer, TimeDistributed):
        return _keras3_layer_weights(group["layer"], layer.layer, path)
    return vars_of(group)


def _keras3_weights(f, model):
    """Weights from Keras 3's `layers/<snake_class_name[_n]>/...` HDF5 layout, in model order."""
    from .layers.layer import _snake_case

    if "layers" not in f:
        raise ValueError("The HDF5 weights have no 'layers' group: not a Keras 3 weights file.")
    groups = f["layers"]
    by_name = {}
    for key in groups.keys():
        g = groups[key]
        if "vars" in g and "name" in g["vars"].attrs:
            by_name[str(g["vars"].attrs["name"])] = g
    counts, out = {}, []
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        n = counts.get(base, 0)
        counts[base] = n + 1
        key = base if n == 0 else f"{base}_{n}"
        group = by_name.get(layer.name)
        if group is None:
            group = groups.get(key)
        if group is None:
            if layer.weights:
                raise ValueError(f"The Keras weights hold no entry for layer {layer.name!r}.")
            continue
        out.extend(_keras3_layer_weights(group, layer, key))
    return out


def _legacy_h5_weights(f, model):
    """Weights from the legacy HDF5 layout: model_weights/<layer>/ with `weight_names`."""
    root = f["model_weights"] if "model_weights" in f else f
    out = []
    for layer in model.layers:
        if layer.name not in root:
            if layer.weights:
                raise ValueError(f"The HDF5 file holds no weights for layer {layer.name!r}.")
            continue
        g = root[layer.name]
        names = g.attrs.get("weight_names", [])
        for name in names:
            name = name.decode() if isinstance(name, bytes) else str(name)
            out.append(np.asarray(g[name]))
    return out


def _load_keras_zip(filepath, compile):
    h5py = _require_h5py()
    try:
        with zipfile.ZipFile(filepath) as zf:
            config = json.loads(zf.read("config.json").decode())
            metadata = json.loads(zf.read("metadata.json").decode()) if "metadata.json" in zf.namelist() else {}
            weights_bytes = zf.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise ValueError(f"{filepath} is not a valid Keras .keras file: {e}") from None
    model = _model_from_keras_config(config, filepath, str(metadata.get("keras_version", "3")))
    if not model.built:
        build = (config.get("config") or {}).get("build_input_shape")
        if build:
            model.build(tuple(build))
    with h5py.File(io.BytesIO(weights_bytes), "r") as f:
        weights = _keras3_weights(f, model)
    _set_weights_checked(model, weights, filepath)
    if compile:
        _keras_compile(model, config.get("compile_config"))
    return model


def _load_keras_h5(filepath, compile):
    h5py = _require_h5py()
    with h5py.File(os.fspath(filepath), "r") as f:
        model_config = f.attrs.get("model_config")
        if model_config is None:
            raise ValueError(
                f"{filepath} is an HDF5 file without a model config (a weights-only file?); build "
                "the model and use `model.load_weights(path)`."
            )
        version = f.attrs.get("keras_version", "2")
        version = version.decode() if isinstance(version, bytes) else str(version)
        model = _model_from_keras_config(model_config, filepath, version)
        if not model.built:
            raise ValueError(f"{filepath}: the Keras model has no input shape, so it cannot be rebuilt.")
        weights = _legacy_h5_weights(f, model)
        _set_weights_checked(model, weights, filepath)
        if compile:
            tc = f.attrs.get("training_config")
            if tc is not None:
                tc = json.loads(tc.decode() if isinstance(tc, bytes) else tc)
                _keras_compile(model, {"loss": tc.get("loss"), "optimizer": tc.get("optimizer_config"),
                                       "metrics": tc.get("metrics")})
    return model


# ---------------------------------------------------------------------------- PyTorch

def _to_numpy(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def torch_lstm_weights(state_dict, layer=0, reverse=False, use_bias=True, prefix=None):
    """[kernel, recurrent_kernel, bias] for a Keras-layout LSTM from a PyTorch `nn.LSTM` state_dict.

    kernel = weight_ih_l{layer}ᵀ (D, 4H); recurrent_kernel = weight_hh_l{layer}ᵀ (H, 4H);
    bias = bias_ih + bias_hh (4H,). PyTorch's gate order i, f, g, o is Keras's i, f, c, o, so no
    column permutation is needed. `prefix` selects a submodule ("encoder.lstm."); when None, the
    single `weight_ih_l{layer}` key in the dict is found automatically.
    """
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    keys = list(state_dict.keys())
    if prefix is None:
        matches = [k for k in keys if k.endswith("weight_ih" + suffix)]
        if len(matches) != 1:
            raise ValueError(
                f"Expected exactly one 'weight_ih{suffix}' entry in the state_dict (pass `prefix=` to "
                f"choose). Found: {matches or 'none'}; keys: {keys[:8]}"
            )
        prefix = matches[0][: -len("weight_ih" + suffix)]
    if any(k.startswith(prefix + "weight_hr") for k in keys):
        raise ValueError("PyTorch LSTMs with proj_size > 0 have no Keras equivalent.")

    def get(name):
        key = prefix + name + suffix
        if key not in state_dict:
            raise ValueError(f"The state_dict has no {key!r} entry. Keys: {keys[:8]}")
        return _to_numpy(state_dict[key])

    w_ih, w_hh = get("weight_ih"), get("weight_hh")
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_ih.shape[0] % 4 or w_hh.shape != (w_ih.shape[0], w_ih.shape[0] // 4):
        raise ValueError(
            f"Unexpected PyTorch LSTM weight shapes: weight_ih {w_ih.shape}, weight_hh {w_hh.shape} "
            "(expected (4H, D) and (4H, H))."
        )
    out = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    has_bias = (prefix + "bias_ih" + suffix) in state_dict
    if use_bias:
        if has_bias:
            out.append(get("bias_ih") + get("bias_hh"))
        else:
            out.append(np.zeros(w_ih.shape[0], dtype=w_ih.dtype))
    elif has_bias:
        b = get("bias_ih") + get("bias_hh")
        if np.any(b != 0):
            raise ValueError("The PyTorch LSTM has biases but the lstmfast LSTM has use_bias=False.")
    return out
