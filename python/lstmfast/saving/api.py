"""The saving API: `save_model` / `save_weights` write lstmfast's format (`native`);
`load_model` / `load_weights` read it, or import Keras files (`keras_import`), whichever the file
is. `torch_lstm_weights` converts a PyTorch `nn.LSTM` state_dict (it lives beside the LSTM)."""

import io
import os
import zipfile

from ..layers.lstm import torch_lstm_weights
from . import keras_import, native
from .native import save_model, save_weights

__all__ = ["load_model", "load_weights", "save_model", "save_weights", "torch_lstm_weights"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _sniff(filepath):
    """'lstmfast', 'keras_zip', 'hdf5', 'onnx' (by its name) — or raise ValueError for anything else."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No file or directory found at {filepath}")
    if os.path.isdir(filepath):
        raise ValueError(f"{filepath} is a directory; expected a file saved by lstmfast or Keras.")
    if not os.path.isfile(filepath):  # opening a FIFO would wait for a writer forever
        raise ValueError(f"{filepath} is not a regular file (a FIFO, device or socket); expected a file saved "
                         "by lstmfast or Keras.")
    with open(filepath, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        return "hdf5"
    if filepath.lower().endswith(".onnx"):
        return "onnx"
    if zipfile.is_zipfile(filepath):
        try:
            with zipfile.ZipFile(filepath) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile as e:
            raise ValueError(f"{filepath} is not a valid lstmfast or Keras file: {e}") from None
        if native.HEADER in names:
            return "lstmfast"
        if "config.json" in names and "model.weights.h5" in names:
            return "keras_zip"
        raise ValueError(
            f"{filepath} is a zip archive but neither an lstmfast file (no {native.HEADER}) nor a Keras "
            f".keras file (no config.json + model.weights.h5). Members: {sorted(names)[:5]}"
        )
    raise ValueError(
        f"{filepath} is not an lstmfast file, a Keras .keras archive or an HDF5 (.h5) file "
        f"(it starts with {head!r})."
    )


def load_model(filepath, compile=True):
    """Load an lstmfast model file, import a Keras `.keras` / `.h5` model, or import an ONNX LSTM
    model (`.onnx`: saving.onnx_import; returned uncompiled)."""
    kind = _sniff(filepath)
    if kind == "onnx":
        from .onnx_import import load_onnx

        return load_onnx(filepath)
    if kind == "keras_zip":
        return keras_import.load_keras_zip(filepath, compile)
    if kind == "hdf5":
        return keras_import.load_keras_h5(filepath, compile)
    return native.load_model(filepath, compile)


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights into `model` from an lstmfast file or a Keras weights / model file."""
    kind = _sniff(filepath)
    if kind == "lstmfast":
        weights = native.read_weights(filepath)
    elif kind == "keras_zip":
        import zipfile as _z

        h5py = keras_import.require_h5py()
        with _z.ZipFile(filepath) as zf:
            data = zf.read("model.weights.h5")
        with h5py.File(io.BytesIO(data), "r") as f:
            weights = keras_import.keras3_weights(f, model)
    else:
        h5py = keras_import.require_h5py()
        with h5py.File(os.fspath(filepath), "r") as f:
            weights = keras_import.legacy_h5_weights(f, model) if "layers" not in f else keras_import.keras3_weights(f, model)
    if not model.built:
        raise ValueError("Build the model (give it an input shape) before loading weights into it.")
    if skip_mismatch:
        current = model.weights
        if len(current) == len(weights):
            weights = [w if w.shape == v.value.shape else v.value for v, w in zip(current, weights)]
    native.set_weights_checked(model, weights, filepath)


