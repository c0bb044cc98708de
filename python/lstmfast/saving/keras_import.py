"""Keras files imported: the Keras 3 `.keras` archive (config.json + model.weights.h5) and the
legacy HDF5 `.h5` (Keras 2 layout, also written by Keras 3's `model.save("x.h5")`), for Sequential
models of the layers lstmfast provides. Reading HDF5 needs the optional `h5py`.
"""

import io
import json
import os
import warnings
import zipfile

import numpy as np

from ..layers import Bidirectional, LSTM, MultiHeadAttention, TimeDistributed
from ..layers.layer import _snake_case
from .native import member_size_problem, set_weights_checked
from .registry import model_class


def require_h5py():
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
    if isinstance(model_config, (bytes, str)):
        model_config = json.loads(model_config)
    kind = model_config.get("class_name")
    if kind not in ("Sequential", "Functional", "Model"):
        raise ValueError(
            f"{source} holds a Keras {kind!r} model; lstmfast imports Sequential and functional models "
            "(a subclassed Model has no config to rebuild it from)."
        )
    config = dict(model_config["config"])
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = (config["dtype"].get("config") or {}).get("name")
    if kind != "Sequential":
        # Keras records the operations that carry masks between layers (NotEqual of a masked
        # Embedding, and so on) as nodes of the graph and hands their results to layers as `mask`;
        # lstmfast's graph passes each layer's mask itself, so both are left out.
        config["layers"] = [l for l in config["layers"] if not str(l.get("module", "")).startswith("keras.src.ops")]
        for entry in config["layers"]:
            entry["inbound_nodes"] = [dict(node, kwargs={k: v for k, v in (node.get("kwargs") or {}).items()
                                                         if k != "mask"})
                                      for node in entry.get("inbound_nodes") or []]
    layers = [_clean_layer_config(l, keras_version) for l in config["layers"]]
    if kind != "Sequential":
        if not keras_version.startswith("3"):
            raise ValueError(f"{source}: functional models are imported from Keras 3 files; this one was "
                             f"written by Keras {keras_version}.")
        for cleaned, original in zip(layers, config["layers"]):  # the graph: who calls whom
            cleaned["name"] = original.get("name", (original.get("config") or {}).get("name"))
            cleaned["inbound_nodes"] = original.get("inbound_nodes") or []
    try:
        return model_class("Sequential" if kind == "Sequential" else "Functional").from_config(
            {**config, "layers": layers})
    except (TypeError, ValueError, KeyError) as e:
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
    if isinstance(layer, MultiHeadAttention):  # one sub-group per projection
        return [w for part in ("query_dense", "key_dense", "value_dense", "output_dense") if part in group
                for w in vars_of(group[part])]
    return vars_of(group)


def keras3_weights(f, model):
    """Weights from Keras 3's `layers/<snake_class_name[_n]>/...` HDF5 layout, in model order."""
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


def legacy_h5_weights(f, model):
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


def load_keras_zip(filepath, compile):
    h5py = require_h5py()
    try:
        with zipfile.ZipFile(filepath) as zf:
            for info in zf.infolist():
                problem = member_size_problem(info)
                if problem:
                    raise ValueError(problem)
            config = json.loads(zf.read("config.json").decode())
            metadata = json.loads(zf.read("metadata.json").decode()) if "metadata.json" in zf.namelist() else {}
            weights_bytes = zf.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise ValueError(f"{filepath} is not a valid Keras .keras file: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{filepath} is not a valid Keras .keras file: its config.json is not a mapping")
    model = _model_from_keras_config(config, filepath, str(metadata.get("keras_version", "3")))
    if not model.built:
        build = (config.get("config") or {}).get("build_input_shape")
        if build:
            model.build(tuple(build))
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as f:
            weights = keras3_weights(f, model)
    except (OSError, KeyError) as e:  # h5py's errors on a damaged file, named
        raise ValueError(f"{filepath}: its weights (model.weights.h5) cannot be read: {e}") from None
    set_weights_checked(model, weights, filepath)
    if compile:
        _keras_compile(model, config.get("compile_config"))
    return model


def load_keras_h5(filepath, compile):
    h5py = require_h5py()
    try:
        return _load_keras_h5(h5py, filepath, compile)
    except (OSError, KeyError) as e:  # h5py's errors on a damaged file, named
        raise ValueError(f"{filepath} is not a readable Keras HDF5 file: {e}") from None


def _load_keras_h5(h5py, filepath, compile):
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
        weights = legacy_h5_weights(f, model)
        set_weights_checked(model, weights, filepath)
        if compile:
            tc = f.attrs.get("training_config")
            if tc is not None:
                tc = json.loads(tc.decode() if isinstance(tc, bytes) else tc)
                _keras_compile(model, {"loss": tc.get("loss"), "optimizer": tc.get("optimizer_config"),
                                       "metrics": tc.get("metrics")})
    return model


