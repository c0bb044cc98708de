"""Layers with Keras's names, arguments, weight shapes and weight order.

Each layer module pairs a forward pass with its backward pass (see `layer.Layer`). `serialize` and
`deserialize` convert layers to and from Keras-style config dicts
`{"module": "keras.layers", "class_name": ..., "config": {...}}`.
"""

from .activation import Activation
from .attention import AdditiveAttention, Attention
from .convolutional import Conv1D, MaxPooling1D
from .dense import Dense
from .dropout import Dropout, SpatialDropout1D
from .embedding import Embedding
from .input_layer import Input, InputLayer, KerasTensor
from .layer import Layer, Variable
from .lstm import LSTM
from .masking import Masking
from .multi_head_attention import MultiHeadAttention
from .normalization import LayerNormalization
from .merging import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from .pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from .reshaping import Flatten, Permute, RepeatVector, Reshape
from .wrappers import Bidirectional, TimeDistributed

ALL_OBJECTS = {
    cls.__name__: cls
    for cls in (Activation, AdditiveAttention, Attention, Add, Average, Bidirectional, Concatenate, Conv1D, Dense, Dot, Dropout, Embedding,
                Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D, InputLayer, LayerNormalization, LSTM, Masking, Maximum,
                MaxPooling1D, Minimum, Multiply, MultiHeadAttention, Permute, RepeatVector, Reshape, SpatialDropout1D, Subtract,
                TimeDistributed)
}
# Keras's other names of the same layers.
Convolution1D, MaxPool1D = Conv1D, MaxPooling1D
GlobalAvgPool1D, GlobalMaxPool1D = GlobalAveragePooling1D, GlobalMaxPooling1D
ALL_OBJECTS.update(Convolution1D=Conv1D, MaxPool1D=MaxPooling1D, GlobalAvgPool1D=GlobalAvgPool1D,
                   GlobalMaxPool1D=GlobalMaxPool1D)



# Keras's functional forms of the merge layers: add([a, b]) is Add()([a, b]).
def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)


# Keras config keys that describe features lstmfast does not model and can safely drop on import.
_IGNORED_CONFIG_KEYS = ("build_config", "compile_config", "registered_name", "module", "shared_object_id")


def serialize(layer):
    """Return Keras's config dict for `layer`."""
    return {"module": "keras.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(), "registered_name": None}


def deserialize(config):
    """Build a layer from a config dict as `serialize` (or Keras 2/3) writes it."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Expected a layer config dict with a 'class_name'. Received: {config!r}")
    name = config["class_name"]
    cls = ALL_OBJECTS.get(name)
    if cls is None:
        raise ValueError(
            f"Unknown layer type {name!r}. lstmfast supports: {sorted(ALL_OBJECTS)}."
        )
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """Return a layer from a layer instance or a config dict."""
    if isinstance(identifier, Layer):
        return identifier
    return deserialize(identifier)


__all__ = [
    "Activation", "AdditiveAttention", "Attention", "Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
    "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply", "subtract", "Bidirectional", "Conv1D", "Convolution1D", "Dense", "Dropout", "Embedding", "Flatten",
    "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D", "GlobalMaxPooling1D", "Input",
    "InputLayer", "KerasTensor", "LSTM", "LayerNormalization", "Layer", "Masking", "MaxPool1D", "MaxPooling1D", "MultiHeadAttention", "Permute",
    "RepeatVector", "Reshape", "SpatialDropout1D", "TimeDistributed", "Variable", "deserialize", "get",
    "serialize",
]
