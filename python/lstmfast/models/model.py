"""`Model`: the base of `Sequential` and `Functional` — its layers' weights, summary and saving,
with training inherited from the `Trainer`.

    Model(inputs, outputs)  ->  a `Functional` model (Keras's functional API)

What a subclass provides: `layers`, `forward(x, training)` -> (outputs, mask), `backward(dy)`,
`prepare_inputs(x, arg)`, `output_shapes()`, `get_config()`.
"""

import contextlib

import numpy as np

from .. import distribute, saving
from ..parameters import FlatParameters
from ..trainers import Trainer
from .summary import print_summary


class Model(Trainer):
    """Keras's `Model`: `Model(inputs, outputs, name=None)` builds a functional model; the base of
    `Sequential` too."""

    def __new__(cls, *args, **kwargs):
        if cls is Model:  # Keras's `Model(inputs, outputs)` is the functional API
            from .functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name=None, trainable=True):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name
        self.trainable = trainable
        self.built = False
        self._flat_params = None
        self._activity = []  # (layer, output) of the last forward, for activity regularizers
        super().__init__()

    # ------------------------------------------------------------------ weights
    @property
    def layers(self):
        return list(self._layers)

    @property
    def dtype(self):
        return self._layers[0].dtype if self._layers else None

    def _unique_variables(self, attribute):
        """Each layer's `attribute` (weights / trainable_weights), shared variables once."""
        out, seen = [], set()
        for layer in self._layers:
            for v in getattr(layer, attribute):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def weights(self):
        return self._unique_variables("weights")

    variables = weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return self._unique_variables("trainable_weights")

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        train = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in train]

    def get_weights(self):
        """Copies of all weights, layer by layer, in Keras's order."""
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights):
        """Set all weights from a list of arrays in `get_weights()` order."""
        params = self.weights
        weights = list(weights)
        if len(params) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on model {self.name!r} with a weight list of length "
                f"{len(weights)}, but the model was expecting {len(params)} weights."
            )
        arrays = []
        for v, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != v.value.shape:
                raise ValueError(
                    f"Weight {v.path!r} has shape {v.value.shape}, but the array given for it has "
                    f"shape {w.shape}."
                )
            arrays.append(w)
        for v, w in zip(params, arrays):
            v.value[...] = w

    def count_params(self):
        if not self.built:
            raise ValueError(
                "You tried to call `count_params` on this model, but the model isn't built. You can "
                "build it manually via: `model.build(batch_input_shape)`."
            )
        return int(sum(v.value.size for v in self.weights))

    def _softmax_output_layer(self):
        """The layer whose softmax makes the output and that takes ∂L/∂z from a crossentropy
        loss instead of ∂L/∂y (Sequential and Functional find it), or None."""
        return None

    def flat_parameters(self):
        """The trainable weights in one flat buffer (`lstmfast.parameters.FlatParameters`),
        packed now unless they still live in this model's buffer: another model that shares
        layers with this one may have moved them into its own since."""
        variables = self.trainable_weights
        if self._flat_params is None or not self._flat_params.holds(variables):
            dtypes = {v.value.dtype for v in self.weights}
            if len(dtypes) > 1:
                raise ValueError(
                    f"All layers of a model must share one dtype; this model mixes {sorted(map(str, dtypes))}."
                )
            self._flat_params = FlatParameters(variables, dtypes.pop() if dtypes else np.dtype(np.float32))
            for layer in self._layers:
                layer.weights_moved()
        return self._flat_params

    def regularization_loss(self):
        """Σ R(w) over the trainable weights that have a regularizer, plus Σ R(y) / batch size
        over the outputs of the last forward pass of the layers that have an activity
        regularizer: what Keras adds to the loss."""
        total = 0.0
        for v in self.trainable_weights:
            if v.regularizer is not None:
                total += v.regularizer(v.value)
        for layer, y in self._activity:
            for out in (y if isinstance(y, tuple) else (y,)):
                total += layer.activity_regularizer(out) / out.shape[0]
        return total

    def _layers_changed(self):
        self.built = False
        self._flat_params = None

    def reset_states(self):
        """Zero the carried states of every stateful layer."""
        for layer in self._layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()

    @contextlib.contextmanager
    def weights_held(self, batches, callbacks):
        """For predict() and evaluate(), which change no weight: over several batches the
        layers may keep work that depends on the weights (packed LSTM weights) from batch to
        batch. Not with a caller's callbacks, which could change weights between batches."""
        held = batches > 1 and not callbacks
        if held:
            for layer in self._layers:
                layer.hold_weights(True)
        try:
            yield
        finally:
            if held:
                for layer in self._layers:
                    layer.hold_weights(False)

    def __call__(self, x, training=False):
        """Run the model on a numpy array and return the output (inference by default)."""
        return self.forward(self.prepare_inputs(x), bool(training))[0]

    # ------------------------------------------------------------------ summary and saving
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the layers, their output shapes and parameter counts (Keras's layout and counts,
        thousands separated by commas as Keras prints them)."""
        print_summary(self, print_fn or print)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Save architecture, weights, compile settings and optimizer state to one file
        (lstmfast's format, written atomically). Under `lstmfast.distribute`, rank 0 writes it and
        the other ranks do nothing."""
        if distribute.is_chief():
            saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def stream(self, batch=1):
        """A `Stream` of this model: `stream.step(x_t)` runs one time step of `batch`
        sequences, keeping each LSTM's state between calls (models/streaming.py)."""
        from .streaming import Stream

        return Stream(self, batch)

    def export(self, filepath, format="onnx", verbose=True, **kwargs):
        """Export the model for inference elsewhere (Keras 3's method): `format="onnx"` writes an
        ONNX model with one ONNX LSTM node per LSTM (`saving.onnx_export`). On rank 0 only under
        `lstmfast.distribute`."""
        if format != "onnx":
            raise ValueError(f"Unrecognized format={format!r}: lstmfast exports 'onnx'.")
        if kwargs:
            raise TypeError(f"export() got unexpected arguments: {', '.join(sorted(kwargs))}")
        if distribute.is_chief():
            from ..saving.onnx_export import export_onnx

            export_onnx(self, filepath)
            if verbose:
                print(f"Saved the ONNX model to {filepath}")
        return filepath

    def save_weights(self, filepath, overwrite=True):
        """Save only the weights (lstmfast's format, written atomically; on rank 0 only under
        `lstmfast.distribute`)."""
        if distribute.is_chief():
            saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights saved by `save_weights`/`save`, or from a Keras `.weights.h5`/`.keras`/`.h5`."""
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)


def activity_gradient(layer, y):
    """∂(R(y) / batch size)/∂y of a layer's activity regularizer (a tuple for several outputs)."""
    if isinstance(y, tuple):
        return tuple(layer.activity_regularizer.gradient(o) / o.dtype.type(o.shape[0]) for o in y)
    return layer.activity_regularizer.gradient(y) / y.dtype.type(y.shape[0])
