"""`Sequential`: a linear stack of layers, each feeding the next (Keras's `keras.Sequential`)."""

from ..layers import InputLayer, KerasTensor, Layer
from ..layers import serialize as serialize_layer, deserialize as deserialize_layer
from ..layers.dense import softmax_output
from ..layers.layer import _auto_name, _warn_mask_dropped
from ..saving.registry import register_model_class
from ..trainers import data
from .model import Model, activity_gradient


@register_model_class
class Sequential(Model):
    """A linear stack of layers, as `keras.Sequential`.

    Build it with a list, or `add()` layers one at a time; give the input shape with
    `Input(shape)` first or `input_shape=` on the first layer (or let the first `fit`/`predict`
    infer it from the data).
    """

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self.name = name or _auto_name("sequential")
        self._layers = []
        self._input_layer = None
        self._output_shape = None
        self._uses_mask = False
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._input_layer is not None and self._layers:
            self.build()

    # ------------------------------------------------------------------ structure
    def add(self, layer, rebuild=True):
        """Append a layer (or an `Input(...)` as the first element)."""
        if isinstance(layer, KerasTensor):
            layer = layer._input_layer
        if not isinstance(layer, Layer):
            raise TypeError(
                "Only instances of `lstmfast.layers.Layer` can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(
                    "An `Input`/`InputLayer` can only be the first element of a Sequential model."
                )
            self._input_layer = layer
            return
        names = {l.name for l in self._layers}
        if layer.name in names:
            raise ValueError(
                "All layers added to a Sequential model should have unique names. Name "
                f"'{layer.name}' is already the name of a layer in this model. Update the `name` "
                "argument to pass a unique name."
            )
        if not self._layers and self._input_layer is None and layer._batch_input_shape is not None:
            self._input_layer = InputLayer(batch_shape=layer._batch_input_shape)
        self._layers.append(layer)
        self._layers_changed()
        if rebuild and self._input_layer is not None:
            self.build()

    def pop(self, rebuild=True):
        """Remove and return the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self._layers_changed()
        if rebuild and self._layers and self._input_layer is not None:
            self.build()
        return layer

    def get_layer(self, name=None, index=None):
        """Return a layer by `name` or `index`."""
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self._layers]}.")

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of `input_shape` (batch axis included)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError(
                    "You must provide an `input_shape` argument, or start the model with "
                    "`Input(shape=...)`, before building it."
                )
            input_shape = self._input_layer.batch_shape
        else:
            input_shape = tuple(None if d is None else int(d) for d in input_shape)
            if self._input_layer is None:
                self._input_layer = InputLayer(batch_shape=(None,) + input_shape[1:])
        if not self._layers:
            raise ValueError("The Sequential model has no layers: add some before building it.")
        shape = tuple(input_shape)
        has_mask = False
        # A layer owes its input a gradient only when some layer before it has weights: the
        # first layers of a model, fed with data, skip computing it.
        need_dx = False
        for layer in self._layers:
            layer._maybe_build(shape)
            layer._check_input_shape(shape)
            if has_mask and not layer.supports_masking:
                _warn_mask_dropped(layer)
            has_mask = layer.output_has_mask(has_mask)
            out = layer._output_shape
            if isinstance(out, tuple) and out and isinstance(out[0], tuple):
                raise ValueError(
                    f"Layer {layer.name!r} returns several tensors (return_state=True), which a "
                    "Sequential model cannot pass on. Use return_state=False inside Sequential."
                )
            layer.needs_input_gradient = need_dx
            need_dx = need_dx or bool(layer.weights)
            shape = out
        self._uses_mask = has_mask
        self._output_shape = shape
        self.built = True

    @property
    def input_shape(self):
        if self._input_layer is None:
            raise AttributeError("The model has no defined input shape yet.")
        return self._input_layer.batch_shape

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError("The model has not been built yet.")
        return self._output_shape

    def output_shapes(self):
        """The shape of each output (one for a Sequential)."""
        return [self._output_shape]

    # ------------------------------------------------------------------ forward / backward
    def prepare_inputs(self, x, arg="x"):
        """x checked and converted once for the first layer (building the model on first use)."""
        x = data.unwrap_single(x, arg)
        if not self._layers:
            raise ValueError("The Sequential model has no layers.")
        x = data.coerce_array(x, arg)
        if not self.built:
            if self._input_layer is not None:
                self.build()
            else:
                self.build((None,) + x.shape[1:])
        first = self._layers[0]
        return data.prepare_array(x, arg, first, first.dtype, self._input_layer.batch_shape, first.name)

    def forward(self, x, training):
        """y = layer_n(… layer_1(x)), each layer's mask handed to the next; returns (y, mask)."""
        mask = None
        self._activity = []
        for layer in self._layers:
            y = layer.forward(layer.receive(x), mask, training)
            if mask is not None or layer.supports_masking:
                mask = layer.compute_mask(x, mask) if layer.supports_masking else None
            if layer.activity_regularizer is not None:
                self._activity.append((layer, y))
            x = y
        return x, mask

    def _softmax_output_layer(self):
        """The layer making a softmax output that takes ∂L/∂z from the loss (dense.softmax_output)."""
        return softmax_output(self._layers[-1]) if self._layers else None

    def backward(self, dy):
        """∂L/∂x of each layer from the last to the first; stops where no gradient is owed."""
        outputs = dict((id(layer), y) for layer, y in self._activity) if self._activity else None
        for layer in reversed(self._layers):
            if outputs is not None and id(layer) in outputs:
                dy = dy + activity_gradient(layer, outputs[id(layer)])
            dy = layer.backward(dy)
            if dy is None:
                break

    # ------------------------------------------------------------------ config
    def get_config(self):
        layers = []
        if self._input_layer is not None:
            layers.append(serialize_layer(self._input_layer))
        layers.extend(serialize_layer(l) for l in self._layers)
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype, "layers": layers}
        if self._input_layer is not None:
            config["build_input_shape"] = list(self._input_layer.batch_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config["layers"]:
            model.add(deserialize_layer(layer_config), rebuild=False)
        if model._input_layer is None and config.get("build_input_shape"):
            model._input_layer = InputLayer(batch_shape=tuple(config["build_input_shape"]))
        if model._input_layer is not None and model._layers:
            model.build()
        return model

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"
