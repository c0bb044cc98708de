"""`Sequential`: a stack of layers with Keras's compile / fit / evaluate / predict.

A training step is: forward through the layers (each keeps what its backward pass needs), the
loss and its gradient in numpy, backward through the layers in reverse (each writes its weight
gradients into one flat gradient buffer), and one optimizer update of the flat parameter buffer.
Per step the Python work is a handful of calls per layer; the arithmetic is in the C++ kernels
and in whole-array numpy operations.

Data are checked once at the door (shapes against the model, NaN/inf, label ranges) and converted
once to the model's dtype, so batches are plain slices with no conversion inside the loop.
"""

import contextlib
import math
import signal
import sys
import threading

import numpy as np

from ._threads import blas_single_threaded
from .ops import all_finite
from . import _random
from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .layers import LSTM, Embedding, InputLayer, KerasTensor, Layer, RepeatVector
from .layers import serialize as serialize_layer, deserialize as deserialize_layer
from .layers.layer import _auto_name, _fmt_shape, _warn_mask_dropped

_ALIGN = 16  # flat-buffer slices start on 64-byte boundaries (float32)


def aligned_zeros(n, dtype, alignment=64):
    """A zeroed 1-D array whose data start on an `alignment`-byte boundary.

    Vectorised kernels treat a buffer's unaligned head element by element; where that path
    rounds differently from the vector path, results would depend on where malloc put the
    buffer. Aligning every parameter, gradient and optimizer buffer keeps runs bit-identical.
    """
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + n * dtype.itemsize].view(dtype)


class _InterruptGuard:
    """Turn the first Ctrl-C during `fit` into a request to stop after the current step.

    The step in progress (forward, backward, optimizer update) finishes, so the model holds the
    weights of the last finished step; a second Ctrl-C interrupts at once.
    """

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self._old = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):
                self._old = None
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
        return False


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"Argument `verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)


def _check_batch_size(batch_size, default=32):
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    return int(batch_size)


def _unwrap_single(a, arg):
    if isinstance(a, (list, tuple)) and len(a) == 1 and hasattr(a[0], "shape"):
        return a[0]
    if isinstance(a, dict):
        raise TypeError(f"`{arg}` must be a numpy array, or a list of arrays for a model with several "
                        "inputs; inputs given by name (a dict) are not supported.")
    return a


class Sequential:
    """A linear stack of layers, as `keras.Sequential`.

    Build it with a list, or `add()` layers one at a time; give the input shape with
    `Input(shape)` first or `input_shape=` on the first layer (or let the first `fit`/`predict`
    infer it from the data).
    """

    def __init__(self, layers=None, trainable=True, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name or _auto_name("sequential")
        self._layers = []
        self._input_layer = None
        self.built = False
        self.trainable = trainable
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._packed = False
        self._flat = None
        self._gflat = None
        self._metric_ids = []
        self._metrics = None
        self._compile_config = None
        self._output_shape = None
        self._uses_mask = False
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._input_layer is not None and self._layers:
            self.build()

    # ------------------------------------------------------------------ structure
    @property
    def layers(self):
        """The layers, without the InputLayer (as in Keras)."""
        return list(self._layers)

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
        self._link_repeat_vectors()
        self.built = False
        self._packed = False
        if rebuild and self._input_layer is not None:
            self.build()

    def _link_repeat_vectors(self):
        """RepeatVector → LSTM: the LSTM takes the repeated vector as one time-constant input
        (see RepeatVector._feeds_lstm); any other neighbour gets ordinary arrays."""
        for i, layer in enumerate(self._layers):
            if isinstance(layer, RepeatVector):
                layer._feeds_lstm = i + 1 < len(self._layers) and isinstance(self._layers[i + 1], LSTM)
            if isinstance(layer, LSTM):
                layer._after_repeat_vector = i > 0 and isinstance(self._layers[i - 1], RepeatVector)

    def pop(self, rebuild=True):
        """Remove and return the last layer."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self._link_repeat_vectors()
        self.built = False
        self._packed = False
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
            has_mask = layer._output_has_mask(has_mask)
            out = layer._output_shape
            if isinstance(out, tuple) and out and isinstance(out[0], tuple):
                raise ValueError(
                    f"Layer {layer.name!r} returns several tensors (return_state=True), which a "
                    "Sequential model cannot pass on. Use return_state=False inside Sequential."
                )
            layer._need_dx = need_dx
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

    @property
    def dtype(self):
        return self._layers[0].dtype if self._layers else None

    # ------------------------------------------------------------------ weights
    def _unique_variables(self, attribute):
        """Each layer's `attribute` (weights / trainable_weights), shared variables once."""
        out, seen = [], set()
        for layer in self._layers:
            for v in getattr(layer, attribute):
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def _all_variables(self):
        return self._unique_variables("weights")

    @property
    def weights(self):
        return self._all_variables()

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
        return [v for v in self._all_variables() if id(v) not in train]

    def get_weights(self):
        """Copies of all weights, layer by layer, in Keras's order."""
        return [v.value.copy() for v in self._all_variables()]

    def set_weights(self, weights):
        """Set all weights from a list of arrays in `get_weights()` order."""
        params = self._all_variables()
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
        return int(sum(v.value.size for v in self._all_variables()))

    def _ensure_packed(self):
        """Pack the weights unless they still live in this model's flat buffer: another model
        that shares layers with this one may have moved them into its own since."""
        if not self._packed or not all(np.may_share_memory(v.value, self._flat) for v in self.trainable_weights):
            self._pack()

    def _pack(self):
        """Move every trainable weight (and its gradient) into one flat buffer."""
        variables = self.trainable_weights
        dtypes = {v.value.dtype for v in self._all_variables()}
        if len(dtypes) > 1:
            raise ValueError(
                f"All layers of a model must share one dtype; this model mixes {sorted(map(str, dtypes))}."
            )
        dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        segments, offset = [], 0
        for v in variables:
            segments.append((offset, offset + v.value.size))
            offset += -(-v.value.size // _ALIGN) * _ALIGN
        flat = aligned_zeros(max(offset, 1), dtype)
        gflat = aligned_zeros(flat.size, dtype)
        for v, (a, b) in zip(variables, segments):
            view = flat[a:b].reshape(v.value.shape)
            view[...] = v.value
            v.value = view
            v.grad = gflat[a:b].reshape(view.shape)
        for layer in self._layers:
            for sub in [layer] + layer._sublayers():
                if hasattr(sub, "_on_repack"):
                    sub._on_repack()
        old = self._flat
        self._flat, self._gflat, self._segments = flat, gflat, segments
        self._packed = True
        if self.optimizer is not None and (not self.optimizer.built or old is None or old.size != flat.size):
            self.optimizer.build(flat, segments)
        elif self.optimizer is not None:
            self.optimizer._segments = segments

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: optimizer (name or instance), loss (name or instance), metrics."""
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("`loss_weights` and `weighted_metrics` need several outputs; a Sequential "
                             "model has one. Pass `sample_weight` to `fit` instead.")
        if steps_per_execution not in (1, None):
            raise ValueError("Argument `steps_per_execution` is not supported by lstmfast (only 1).")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = None if loss is None else losses_module.get(loss)
        if self.loss is not None and self.loss.reduction in (None, "none"):
            raise ValueError("A loss used for training must reduce to a scalar; received reduction=None.")
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            metrics = [metrics]
        elif isinstance(metrics, dict):
            raise ValueError("Dict `metrics` need named outputs; a Sequential model has one output.")
        for m in metrics:
            if isinstance(m, str) and m.lower() not in ("accuracy", "acc"):
                metrics_module.get(m)  # fail now on an unknown name
        self._metric_ids = list(metrics)
        self._metrics = None
        self._compile_config = {
            "optimizer": optimizers_module.serialize(self.optimizer),
            "loss": None if self.loss is None else losses_module.serialize(self.loss),
            "metrics": [m if isinstance(m, str) else getattr(m, "name", None) for m in metrics],
        }
        self._loss_arg = loss
        self.compiled = True
        self._packed = False
        self._flat = None

    @property
    def metrics_names(self):
        names = ["loss"]
        if self._metrics is not None:
            names += [m.name for m in self._metrics]
        return names

    def _ensure_metrics(self, y, y_pred_shape):
        if self._metrics is None:
            self._metrics = [metrics_module.get(m, np.shape(y), y_pred_shape) for m in self._metric_ids]
        return self._metrics

    def reset_metrics(self):
        if self._metrics:
            for m in self._metrics:
                m.reset_state()
        self._loss_total = 0.0
        self._loss_count = 0

    def reset_states(self):
        """Zero the carried states of every stateful layer."""
        for layer in self._layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()

    # ------------------------------------------------------------------ data at the door
    def _prepare_x(self, x, arg="x"):
        x = _unwrap_single(x, arg)
        if not self._layers:
            raise ValueError("The Sequential model has no layers.")
        x = _coerce_array(x, arg)
        if not self.built:
            if self._input_layer is not None:
                self.build()
            else:
                self.build((None,) + x.shape[1:])
        first = self._layers[0]
        return _prepare_array(x, arg, first, first.dtype, self._input_layer.batch_shape, first.name)

    def _prepare_y(self, y, n, arg="y"):
        y = _unwrap_single(y, arg)
        if y is None:
            raise ValueError(f"Argument `{arg}` (the targets) is required for training and evaluation.")
        if type(y).__module__.startswith("torch"):
            y = y.detach().cpu().numpy()
        y = np.asarray(y)
        if y.dtype == object or y.dtype.kind not in "biuf":
            raise TypeError(f"`{arg}` must be a numeric array. Received dtype {y.dtype}.")
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(
                "Data cardinality is ambiguous. Make sure all arrays contain the same number of "
                f"samples. 'x' sizes: {n} 'y' sizes: {y.shape[0] if y.ndim else 'scalar'}"
            )
        if not isinstance(self.loss, losses_module.SparseCategoricalCrossentropy):
            y = y.astype(self.dtype, copy=False)
        # validate the targets against the model output once, before any step
        shape = (n,) + tuple(self._output_shape[1:])
        if None not in shape:  # an axis of unknown size (time) is checked batch by batch
            self.loss._prepare(y, np.broadcast_to(np.zeros((), self.dtype), shape))
        return np.ascontiguousarray(y)

    def _prepare_sample_weight(self, sample_weight, class_weight, y, n):
        sw = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            if sw.shape[0] != n:
                raise ValueError(f"`sample_weight` has {sw.shape[0]} entries but there are {n} samples.")
            if not np.isfinite(sw).all():
                raise ValueError("`sample_weight` contains NaN or infinite values; every weight must be finite.")
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError("`class_weight` must be a dict mapping class index to weight.")
            yy = np.asarray(y)
            if yy.ndim >= 2 and yy.shape[-1] > 1:
                labels = np.argmax(yy, axis=-1)
            else:
                labels = np.rint(yy.reshape(yy.shape[0], -1)[:, 0]).astype(np.int64)
            labels = labels.reshape(n, -1)[:, 0] if labels.ndim > 1 else labels
            cw = np.array([class_weight.get(int(c), 1.0) for c in range(int(labels.max()) + 1)])
            w = cw[labels]
            sw = w if sw is None else sw * w
        return sw

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, x, training):
        mask = None
        for layer in self._layers:
            y = layer._forward(x, mask, training)
            if mask is not None or layer.supports_masking:
                mask = layer.compute_mask(x, mask) if layer.supports_masking else None
            x = y
        return x, mask

    @contextlib.contextmanager
    def _weights_held(self, batches, callbacks):
        """For predict() and evaluate(), which change no weight: over several batches the
        layers may keep work that depends on the weights (packed LSTM weights) from batch to
        batch. Not with a caller's callbacks, which could change weights between batches."""
        held = batches > 1 and not callbacks
        if held:
            for layer in self._layers:
                layer._hold_weights(True)
        try:
            yield
        finally:
            if held:
                for layer in self._layers:
                    layer._hold_weights(False)

    def _backward(self, dy):
        for layer in reversed(self._layers):
            dy = layer._backward(dy)
            if dy is None:
                break

    def __call__(self, x, training=False):
        """Run the model on a numpy array and return the output (inference by default)."""
        x = self._prepare_x(x)
        return self._forward(x, bool(training))[0]

    def _check_compiled(self, what):
        if not self.compiled or self.loss is None:
            raise RuntimeError(
                f"You must call `compile()` with a `loss` before calling `{what}()`, e.g. "
                "model.compile(optimizer='adam', loss='mse')."
            )

    def _train_batch(self, xb, yb, swb):
        y_pred, mask = self._forward(xb, True)
        loss, dy = self.loss._loss_and_grad(yb, y_pred, swb, mask)
        if not np.isfinite(loss):
            # A step whose loss is NaN or infinite leaves the weights as they are (Keras would
            # write NaN into them); the loss is still reported, so TerminateOnNaN can stop fit.
            return float(loss)
        self._backward(dy)
        self.optimizer.apply(self._flat, self._gflat)
        if self._metrics:
            for m in self._metrics:
                m.update_state(yb, y_pred, swb, mask)
        return float(loss)

    def _logs(self, prefix=""):
        logs = {prefix + "loss": self._loss_total / self._loss_count if self._loss_count else float("nan")}
        if self._metrics:
            for m in self._metrics:
                logs[prefix + m.name] = m.result()
        return dict(sorted(logs.items()))

    # ------------------------------------------------------------------ fit
    @blas_single_threaded
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs and return a `History` (see Keras's `Model.fit`).

        Ctrl-C stops training after the step in progress; the model keeps the weights of that
        last finished step and `fit` returns normally.
        """
        self._check_compiled("fit")
        if steps_per_epoch is not None or validation_steps is not None:
            raise ValueError("`steps_per_epoch`/`validation_steps` apply to data generators; lstmfast "
                             "trains on arrays, one pass over them per epoch.")
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Argument `epochs` must be a non-negative integer. Received: epochs={epochs!r}")
        if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split!r}")
        x = self._prepare_x(x)
        n_all = x.shape[0]
        y = self._prepare_y(y, n_all)
        sw = self._prepare_sample_weight(sample_weight, class_weight, y, n_all)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 f"val_sample_weight). Received: {type(validation_data).__name__}")
            vx = self._prepare_x(validation_data[0], "validation_data[0]")
            vy = self._prepare_y(validation_data[1], vx.shape[0], "validation_data[1]")
            vsw = None if len(validation_data) == 2 else self._prepare_sample_weight(validation_data[2], None, vy, vx.shape[0])
            val = (vx, vy, vsw)
        elif validation_split:
            split = int(math.floor(n_all * (1.0 - validation_split)))
            if split == 0 or split == n_all:
                raise ValueError(f"`validation_split`={validation_split} leaves no training or no validation "
                                 f"samples out of {n_all}.")
            val = (x[split:], y[split:], None if sw is None else sw[split:])
            x, y = x[:split], y[:split]
            sw = None if sw is None else sw[:split]
        n = x.shape[0]
        if n == 0:
            raise ValueError("Expected at least one training sample; `x` is empty.")
        self._ensure_packed()
        steps = -(-n // batch_size)
        self._ensure_metrics(y[:1], (1,) + tuple(self._output_shape[1:]))
        self.stop_training = False
        cbs = callbacks_module.CallbackList(
            callbacks, model=self, add_history=True, add_progbar=verbose != 0,
            verbose=verbose, epochs=epochs, steps=steps, _in_fit=True)
        want_batch_begin = cbs.wants("on_train_batch_begin")
        want_batch_end = cbs.wants("on_train_batch_end")
        rng = _random.global_generator()
        logs = {}
        interrupted = False
        cbs.call("on_train_begin", None)
        with _InterruptGuard() as guard:
            for epoch in range(int(initial_epoch), int(epochs)):
                self.reset_metrics()
                cbs.call("on_epoch_begin", epoch, None)
                order = rng.permutation(n) if shuffle and shuffle != "batch" else None
                try:
                    for step in range(steps):
                        if order is None:
                            sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
                        else:
                            sl = order[step * batch_size:(step + 1) * batch_size]
                        xb, yb = x[sl], y[sl]
                        swb = None if sw is None else sw[sl]
                        if want_batch_begin:
                            cbs.call("on_train_batch_begin", step, None)
                        loss = self._train_batch(xb, yb, swb)
                        nb = xb.shape[0]
                        self._loss_total += loss * nb
                        self._loss_count += nb
                        if want_batch_end:
                            logs = self._logs()
                            cbs.call("on_train_batch_end", step, logs)
                        if self.stop_training or guard.requested:
                            break
                except KeyboardInterrupt:
                    interrupted = True
                interrupted = interrupted or guard.requested
                if interrupted:
                    sys.stdout.write("\nTraining interrupted: keeping the weights of the last finished step.\n")
                    sys.stdout.flush()
                    break
                logs = self._logs()
                if val is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = self._evaluate_arrays(val[0], val[1], val[2],
                                                     _check_batch_size(validation_batch_size, batch_size))
                    logs.update({"val_" + k: v for k, v in val_logs.items()})
                    logs = dict(sorted(logs.items()))
                cbs.call("on_epoch_end", epoch, logs)
                if self.stop_training:
                    break
        cbs.call("on_train_end", logs)
        return cbs.history

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_arrays(self, x, y, sw, batch_size, cbs=None):
        self.reset_metrics()
        metrics = self._ensure_metrics(y[:1], (1,) + tuple(self._output_shape[1:]))
        n = x.shape[0]
        steps = -(-n // batch_size)
        want_end = cbs is not None and cbs.wants("on_test_batch_end")
        for step in range(steps):
            sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
            xb, yb = x[sl], y[sl]
            swb = None if sw is None else sw[sl]
            y_pred, mask = self._forward(xb, False)
            loss = self.loss._loss_and_grad(yb, y_pred, swb, mask)[0] if mask is not None or swb is not None \
                else self.loss(yb, y_pred)
            self._loss_total += float(loss) * xb.shape[0]
            self._loss_count += xb.shape[0]
            for m in metrics:
                m.update_state(yb, y_pred, swb, mask)
            if want_end:
                cbs.call("on_test_batch_end", step, self._logs())
        loss = self._loss_total / self._loss_count if self._loss_count else float("nan")
        out = {"loss": loss}
        for m in metrics:
            out[m.name] = m.result()
        return dict(sorted(out.items()))

    @blas_single_threaded
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics) on (x, y): a scalar, a list [loss, *metrics], or a dict."""
        self._check_compiled("evaluate")
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        sw = self._prepare_sample_weight(sample_weight, None, y, x.shape[0])
        steps_n = -(-x.shape[0] // batch_size)
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0,
                                            verbose=verbose, epochs=1, steps=steps_n)
        cbs.call("on_test_begin", None)
        with self._weights_held(steps_n, callbacks):
            logs = self._evaluate_arrays(x, y, sw, batch_size, cbs)
        cbs.call("on_test_end", logs)
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return values[0] if len(values) == 1 else values

    @blas_single_threaded
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x, computed in batches of `batch_size` (default 32): an array, or a
        list of arrays for a model with several outputs."""
        verbose = _resolve_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        x = self._prepare_x(x)
        n = x.shape[0]
        nsteps = -(-n // batch_size)
        cbs = None
        if verbose or callbacks:
            cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0,
                                                verbose=verbose, epochs=1, steps=nsteps)
            cbs.call("on_predict_begin", None)
        outs = [np.empty((0,) + tuple(s[1:]), dtype=self.dtype) for s in self._output_shapes()] if n == 0 else None
        with self._weights_held(nsteps, callbacks):
            for step in range(nsteps):
                sl = slice(step * batch_size, min(n, (step + 1) * batch_size))
                yb = self._forward(x[sl], False)[0]
                ys = yb if isinstance(yb, tuple) else (yb,)
                if outs is None:
                    outs = [np.empty((n,) + y.shape[1:], dtype=y.dtype) for y in ys]
                for out, y in zip(outs, ys):
                    out[sl] = y
                if cbs is not None:
                    cbs.call("on_predict_batch_end", step, {"outputs": yb if len(ys) == 1 else list(ys)})
        if cbs is not None:
            cbs.call("on_predict_end", None)
        return outs[0] if len(outs) == 1 else outs

    def _output_shapes(self):
        """The shape of each output (one for a Sequential)."""
        return [self._output_shape]

    @blas_single_threaded
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the loss (and metrics, accumulated since the
        last `reset_metrics()`)."""
        self._check_compiled("train_on_batch")
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        sw = self._prepare_sample_weight(sample_weight, class_weight, y, x.shape[0])
        self._ensure_packed()
        if not hasattr(self, "_loss_total"):
            self.reset_metrics()
        self._ensure_metrics(y[:1], (1,) + tuple(self._output_shape[1:]))
        loss = self._train_batch(x, y, sw)
        self._loss_total, self._loss_count = loss * x.shape[0], x.shape[0]
        logs = self._logs()
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return values[0] if len(values) == 1 else values

    @blas_single_threaded
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch, without training."""
        self._check_compiled("test_on_batch")
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        sw = self._prepare_sample_weight(sample_weight, None, y, x.shape[0])
        logs = self._evaluate_arrays(x, y, sw, max(1, x.shape[0]))
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return values[0] if len(values) == 1 else values

    @blas_single_threaded
    def predict_on_batch(self, x):
        """Model outputs for one batch."""
        return self._forward(self._prepare_x(x), False)[0]

    # ------------------------------------------------------------------ summary
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the layers, their output shapes and parameter counts (Keras's layout and counts,
        thousands separated by commas as Keras prints them)."""
        print_fn = print_fn or print
        rows = []
        for layer in self._layers:
            shape = _fmt_shape(layer._output_shape) if layer._output_shape is not None else "?"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, params))
        w = [max(31, max((len(r[0]) for r in rows), default=0) + 1), 22, 13]
        w[1] = max(w[1], max((len(r[1]) for r in rows), default=0) + 1)

        def line(l, m, r, fill="━"):
            return l + m.join(fill * (x + 2) for x in w) + r

        lines = [f'Model: "{self.name}"', line("┏", "┳", "┓"),
                 "┃ " + " ┃ ".join([("Layer (type)").ljust(w[0]), "Output Shape".ljust(w[1]),
                                     "Param #".rjust(w[2])]) + " ┃",
                 line("┡", "╇", "┩")]
        for i, (a, b, c) in enumerate(rows):
            lines.append("│ " + " │ ".join([a.ljust(w[0]), b.ljust(w[1]), c.rjust(w[2])]) + " │")
            lines.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
        if not rows:
            lines.append(line("└", "┴", "┘", "─"))
        if self.built:
            trainable = sum(v.value.size for v in self.trainable_weights)
            non_trainable = sum(v.value.size for v in self.non_trainable_weights)
            itemsize = np.dtype(self.dtype).itemsize
            opt = 0
            if self.optimizer is not None and self.optimizer.built:
                opt = self.optimizer.count_params()
            total = trainable + non_trainable + opt
            lines.append(f" Total params: {total:,} ({_readable_size(total * itemsize)})")
            lines.append(f" Trainable params: {trainable:,} ({_readable_size(trainable * itemsize)})")
            lines.append(f" Non-trainable params: {non_trainable:,} ({_readable_size(non_trainable * itemsize)})")
            if opt:
                lines.append(f" Optimizer params: {opt:,} ({_readable_size(opt * itemsize)})")
        for text in lines:
            print_fn(text)

    # ------------------------------------------------------------------ config and saving
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

    def get_compile_config(self):
        return self._compile_config

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Save architecture, weights, compile settings and optimizer state to one file
        (lstmfast's format, written atomically)."""
        from .saving import save_model

        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Save only the weights (lstmfast's format, written atomically)."""
        from .saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights saved by `save_weights`/`save`, or from a Keras `.weights.h5`/`.keras`/`.h5`."""
        from .saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"


def _coerce_array(x, arg):
    """`x` as a numeric numpy array with a batch axis, or a ValueError/TypeError saying why not."""
    if x is None:
        raise ValueError(f"Argument `{arg}` is required.")
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == object:
        raise TypeError(
            f"`{arg}` must be a numeric array. Received an object array (ragged sequences? pad "
            "them to one length first)."
        )
    if x.dtype.kind not in "biuf":
        raise TypeError(f"`{arg}` must be numeric. Received dtype {x.dtype}.")
    if x.ndim == 0:
        raise ValueError(f"`{arg}` must have a batch axis. Received a scalar.")
    return x


def _prepare_array(x, arg, reader, dtype, expected, name):
    """One model input, checked and converted once: token ids when the layer that reads it
    (`reader`, None when none does) is an Embedding, else finite values of `dtype`; its shape
    must match the batch shape `expected` (None: any size) of the input called `name` in
    messages."""
    x = _coerce_array(x, arg)
    if isinstance(reader, Embedding):
        x = reader._ids(x)
    else:
        if not all_finite(x):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
            raise ValueError(f"`{arg}` contains NaN or infinite values (first at index {bad}); "
                             "every value must be finite.")
        if x.dtype != dtype:
            x = x.astype(dtype)
    if x.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], x.shape[1:])):
        hint = ""
        if x.ndim + 1 == len(expected) and tuple(x.shape[1:]) + (1,) == tuple(
                e if e is not None else s for e, s in zip(expected[1:], tuple(x.shape[1:]) + (1,))):
            hint = " Add a trailing feature axis: x[..., None]."
        raise ValueError(
            f'Input 0 of layer "{name}" is incompatible with the layer: expected '
            f"shape={_fmt_shape(expected)}, found shape={_fmt_shape(x.shape)}.{hint}"
        )
    return np.ascontiguousarray(x)


def _readable_size(nbytes):
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    size = float(nbytes)
    for unit in units:
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} {units[-1]}"


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved by `Model.save`, or import a Keras `.keras` / legacy `.h5` file."""
    from .saving import load_model as _load

    return _load(filepath, compile=compile)


def clone_model(model):
    """A new model with the same architecture and freshly initialised weights."""
    return Sequential.from_config(model.get_config())


from .functional import Model  # noqa: E402,F401  (the functional API; it subclasses Sequential)
