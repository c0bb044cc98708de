"""The Trainer: Keras's compile / fit / evaluate / predict and the `*_on_batch` calls.

A training step is: forward through the model (each layer keeps what its backward pass needs),
the loss and its gradient in numpy, backward through the model (each layer writes its weight
gradients into the flat gradient buffer, `lstmfast.parameters`), and one optimizer update of the
flat parameter buffer. Per step the Python work is a handful of calls per layer; the arithmetic
is in the C++ kernels and in whole-array numpy operations.

The Trainer is the base of every `Model`; what it asks of the model is:
    model.prepare_inputs(x, arg)     the inputs, checked and converted once (trainers.data)
    model.forward(x, training)       (outputs, mask)
    model.backward(dy)               gradients into the flat buffer
    model.flat_parameters()          the packed weights (parameters.FlatParameters)
    model.output_shapes()            one shape per output
    model.weights_held(batches, cbs) a context in which the weights do not change
"""

import sys
import warnings

import numpy as np

from .. import _random, distribute
from .. import callbacks as callbacks_module
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from .._threads import model_loop
from . import data, distributed
from .data_sources import is_batch_source, unpack_batch, unpack_targets
from .epoch_iterator import ArrayBatches, InterruptGuard, SourceBatches
from .fit_inputs import fit_batches
from .steps import apply_gradients, backward_from_output, loss_and_output_gradient


class Trainer:
    """compile / fit / evaluate / predict over the model it is the base of."""

    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metric_ids = []
        self._metrics = None
        self._compile_config = None
        self._params = None  # the flat buffer the optimizer was built for
        self._regularized = False  # any weight or activity regularizer: the loss gets its penalties
        self._weight_regularized = self._constrained = []
        self.reset_metrics()

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
        self.compiled = True
        self._params = None  # the optimizer is built on the next packing

    def get_compile_config(self):
        return self._compile_config

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
        """Zero the running loss total and every metric's state."""
        if self._metrics:
            for m in self._metrics:
                m.reset_state()
        self._loss_total = 0.0
        self._loss_count = 0

    def _check_compiled(self, what):
        if not self.compiled or self.loss is None:
            raise RuntimeError(
                f"You must call `compile()` with a `loss` before calling `{what}()`, e.g. "
                "model.compile(optimizer='adam', loss='mse')."
            )

    def _logs(self):
        logs = {"loss": self._loss_total / self._loss_count if self._loss_count else float("nan")}
        if self._metrics:
            for m in self._metrics:
                logs[m.name] = m.result()
        return dict(sorted(logs.items()))

    def _results(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return values[0] if len(values) == 1 else values

    def _prepare_xy(self, x, y, sample_weight, class_weight=None, x_arg="x", y_arg="y"):
        """Inputs, targets and per-sample weights, checked and converted once (and the metrics
        made for those targets)."""
        x = self.prepare_inputs(x, x_arg)
        n = x.shape[0]
        y = data.prepare_targets(y, n, self.loss, self.dtype, self.output_shapes()[0], y_arg)
        self._ensure_metrics(y[:1], (1,) + tuple(self.output_shapes()[0][1:]))
        return x, y, data.prepare_sample_weight(sample_weight, class_weight, y, n)

    # ------------------------------------------------------------------ steps
    def _train_step(self, xb, yb, swb):
        """One optimizer step: L, ∂L/∂ŷ; backward; w ← optimizer(w, ∂L/∂w). Returns L."""
        y_pred, mask = self.forward(xb, True)
        loss, dy, logits_layer = loss_and_output_gradient(self, yb, y_pred, swb, mask)
        if self._regularized:
            loss = loss + self.regularization_loss()  # L + Σ R(w) + Σ R(y)/B, as Keras reports it
        if not np.isfinite(loss):
            # A step whose loss is NaN or infinite leaves the weights as they are (Keras would
            # write NaN into them); the loss is still reported, so TerminateOnNaN can stop fit.
            return float(loss)
        backward_from_output(self, dy, logits_layer)
        apply_gradients(self)
        if self._metrics:
            for m in self._metrics:
                m.update_state(yb, y_pred, swb, mask)
        return float(loss)

    def _test_step(self, xb, yb, swb):
        """Loss and metrics of one batch, no training; adds them to the running totals."""
        y_pred, mask = self.forward(xb, False)
        loss = self.loss._loss_and_grad(yb, y_pred, swb, mask)[0] if mask is not None or swb is not None \
            else self.loss(yb, y_pred)
        if self._regularized:
            loss = float(loss) + self.regularization_loss()
        self._loss_total += float(loss) * xb.shape[0]
        self._loss_count += xb.shape[0]
        for m in self._metrics:
            m.update_state(yb, y_pred, swb, mask)

    def _ensure_optimizer(self):
        """Pack the weights (unless they still live in this model's buffer) and build the
        optimizer's state for that buffer."""
        old = self._params
        params = self.flat_parameters()
        _find_regularized(self)
        if params is not old:
            if not self.optimizer.built or old is None or old.values.size != params.values.size:
                self.optimizer.build(params.values, params.segments)
            else:
                self.optimizer._segments = params.segments
            self._params = params
        return params

    # ------------------------------------------------------------------ batches
    def _batches(self, x, y, sample_weight, batch_size, steps, what, class_weight=None, shuffle=False,
                 x_arg="x", y_arg="y"):
        """ArrayBatches over arrays checked once, or SourceBatches over a generator, iterable or
        PyDataset (each batch checked as it arrives)."""
        if is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError(f"`{y_arg}` and `sample_weight` must not be given when `{x_arg}` is a "
                                 "generator or dataset: it yields (x, y) or (x, y, sample_weight) batches.")
            # A PyDataset's batch order is shuffled (Keras's PyDatasetAdapter does the same) from a
            # generator of its own, drawn here: the reader thread then never shares one.
            rng = np.random.default_rng(_random.global_generator().integers(2**63)) if shuffle else None
            return SourceBatches(x, steps, lambda b: self._prepare_xy(*unpack_targets(b, what), class_weight), rng)
        if steps is not None:
            raise ValueError("`steps_per_epoch`/`validation_steps`/`steps` apply to generators and datasets; "
                             "with arrays, an epoch is one pass over them.")
        x, y, sw = self._prepare_xy(x, y, sample_weight, class_weight, x_arg, y_arg)
        return ArrayBatches(x, y, sw, batch_size, shuffle, _random.global_generator() if shuffle else None)

    # ------------------------------------------------------------------ fit
    @model_loop
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs and return a `History` (see Keras's `Model.fit`). `x` is
        arrays (with `y`), or a generator, iterable or `PyDataset` of (x, y) batches
        (`trainers.data_sources`).

        Ctrl-C stops training after the step in progress; the model keeps the weights of that
        last finished step and `fit` returns normally.
        """
        self._check_compiled("fit")
        verbose = data.resolve_verbose(verbose)
        batch_size = data.check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Argument `epochs` must be a non-negative integer. Received: epochs={epochs!r}")
        if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split!r}")
        batches, val = fit_batches(self, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
                                   validation_split, validation_data, validation_steps, validation_batch_size)
        self._ensure_optimizer()
        strategy = distribute.current()  # data-parallel over MPI ranks (trainers.distributed)
        parts = None  # the optimizer's update shared out over the ranks (trainers.distributed)
        if strategy is not None:
            parts = distributed.start(self, strategy, callbacks, share_update=True)
            batches, callbacks = distributed.RankBatches(strategy, batches, batch_size), \
                distributed.rank_callbacks(callbacks, strategy)
            val = val if val is None else distributed.RankBatches(strategy, val)
        self.stop_training = False
        self.training_interrupted = False  # True when Ctrl-C ends this fit
        cbs = callbacks_module.CallbackList(
            callbacks, model=self, add_history=True, add_progbar=verbose != 0 and distribute.is_chief(),
            verbose=verbose, epochs=epochs, steps=batches.steps, _in_fit=True)
        want_batch_begin = cbs.wants("on_train_batch_begin")
        want_batch_end = cbs.wants("on_train_batch_end")
        logs = {}
        cbs.call("on_train_begin", None)
        try:
            with InterruptGuard() as guard:
                for epoch in range(int(initial_epoch), int(epochs)):
                    self.reset_metrics()
                    cbs.call("on_epoch_begin", epoch, None)
                    interrupted, seen = False, 0
                    try:
                        for step, xb, yb, swb in batches.epoch():
                            if want_batch_begin:
                                cbs.call("on_train_batch_begin", step, None)
                            if strategy is None:
                                loss = local = self._train_step(xb, yb, swb)
                                n = xb.shape[0]
                            else:  # the batch's loss; this rank's samples and their loss
                                loss, n, local = distributed.train_step(self, strategy, xb, yb, swb,
                                                                        batches.step_samples, parts)
                            self._loss_total += local * n
                            self._loss_count += n
                            seen += 1
                            if want_batch_end:
                                cbs.call("on_train_batch_end", step, self._logs())
                            if self.stop_training or guard.requested:
                                break
                    except KeyboardInterrupt:
                        interrupted = True
                    if interrupted or guard.requested:
                        self.training_interrupted = True
                        sys.stdout.write("\nTraining interrupted: keeping the weights of the last finished step.\n")
                        sys.stdout.flush()
                        break
                    if seen == 0:
                        warnings.warn("Your input ran out of data; interrupting training. Make sure that your "
                                      "dataset or generator can generate at least `steps_per_epoch * epochs` "
                                      "batches.", stacklevel=3)
                        break
                    if strategy is not None:
                        distributed.epoch_end(self, strategy, parts)
                    logs = self._logs()
                    if val is not None and (epoch + 1) % validation_freq == 0:
                        val_logs = self._evaluate_batches(val)
                        logs.update({"val_" + k: v for k, v in val_logs.items()})
                        logs = dict(sorted(logs.items()))
                    cbs.call("on_epoch_end", epoch, logs)
                    if strategy is not None:  # a callback that looks at its own clock stops all ranks
                        self.stop_training = bool(strategy.sum_floats(self.stop_training)[0])
                    if self.stop_training:
                        break
        finally:
            batches.close()
            if val is not None:
                val.close()
        if strategy is not None:
            distributed.finish(self, strategy, parts)
        if epochs > 0 and self._params is not None:
            self.optimizer.finalize_variable_values(self._params.values)  # use_ema: the averaged weights
        cbs.call("on_train_end", logs)
        return cbs.history

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate_batches(self, batches, cbs=None):
        self.reset_metrics()
        _find_regularized(self)
        want_end = cbs is not None and cbs.wants("on_test_batch_end")
        for step, xb, yb, swb in batches.epoch():
            if xb is not None:  # None: this rank has no sample in the step (trainers.distributed)
                self._test_step(xb, yb, swb)
            if want_end:
                cbs.call("on_test_batch_end", step, self._logs())
        if isinstance(batches, distributed.RankBatches):
            distributed.reduce_totals(self, batches.strategy)
        if not self._loss_count:
            raise ValueError("There is no data to evaluate on: `x` holds no sample, or the generator or dataset "
                             "yielded no batch.")
        return self._logs()

    def _evaluate_arrays(self, x, y, sw, batch_size, cbs=None):
        return self._evaluate_batches(ArrayBatches(x, y, sw, batch_size), cbs)

    @model_loop
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics) on (x, y), or on the batches of a generator, iterable or
        `PyDataset`: a scalar, a list [loss, *metrics], or a dict."""
        self._check_compiled("evaluate")
        verbose = data.resolve_verbose(verbose)
        batch_size = data.check_batch_size(batch_size)
        batches = self._batches(x, y, sample_weight, batch_size, steps, "evaluate")
        if distribute.current() is not None:
            batches = distributed.RankBatches(distribute.current(), batches)
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0 and distribute.is_chief(),
                                            verbose=verbose, epochs=1, steps=batches.steps)
        cbs.call("on_test_begin", None)
        try:
            with self.weights_held(batches.steps or 2, callbacks):
                logs = self._evaluate_batches(batches, cbs)
        finally:
            batches.close()
        cbs.call("on_test_end", logs)
        return self._results(logs, return_dict)

    @model_loop
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x, computed in batches of `batch_size` (default 32): an array, or a
        list of arrays for a model with several outputs. `x` may be a generator, iterable or
        `PyDataset` of batches (x, or tuples whose first item is x)."""
        verbose, strategy = data.resolve_verbose(verbose), distribute.current()
        batch_size = data.check_batch_size(batch_size)
        if is_batch_source(x):
            batches = SourceBatches(x, steps, lambda b: (self.prepare_inputs(unpack_batch(b, "predict")[0]),
                                                         None, None))
            n = None
        else:
            if steps is not None:
                raise ValueError("`steps` applies to generators and datasets; with arrays, predict makes one "
                                 "pass over them.")
            x = self.prepare_inputs(x)
            if strategy is not None:  # each rank its part; all parts gathered at the end
                x = x[slice(*strategy.part(x.shape[0]))]
            n = x.shape[0]
            batches = ArrayBatches(x, batch_size=batch_size)
        cbs = None
        if verbose or callbacks:
            cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0 and distribute.is_chief(),
                                                verbose=verbose, epochs=1, steps=batches.steps)
            cbs.call("on_predict_begin", None)
        outs, pieces, start = None, [], 0
        try:
            with self.weights_held(batches.steps or 2, callbacks):
                for step, xb, _, _ in batches.epoch():
                    yb = self.forward(xb, False)[0]
                    ys = yb if isinstance(yb, tuple) else (yb,)
                    if n is None:
                        pieces.append([np.array(y) for y in ys])
                    else:
                        if outs is None:
                            outs = [np.empty((n,) + y.shape[1:], dtype=y.dtype) for y in ys]
                        for out, y in zip(outs, ys):
                            out[start:start + y.shape[0]] = y
                        start += ys[0].shape[0]
                    if cbs is not None:
                        cbs.call("on_predict_batch_end", step, {"outputs": yb if len(ys) == 1 else list(ys)})
        finally:
            batches.close()
        if cbs is not None:
            cbs.call("on_predict_end", None)
        if n is None:
            if not pieces:
                raise ValueError("There was no data to predict on: the generator or dataset yielded no batch.")
            outs = [np.concatenate(parts) for parts in zip(*pieces)]
        elif outs is None:
            outs = [np.empty((0,) + tuple(d or 0 for d in s[1:]), dtype=self.dtype) for s in self.output_shapes()]
        if n is not None and strategy is not None:
            outs = distributed.gather_parts(strategy, outs)
        return outs[0] if len(outs) == 1 else outs

    @model_loop
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the loss (and metrics, accumulated since the
        last `reset_metrics()`)."""
        self._check_compiled("train_on_batch")
        x, y, sw = self._prepare_xy(x, y, sample_weight, class_weight)
        params, strategy = self._ensure_optimizer(), distribute.current()
        if strategy is None:
            loss = self._train_step(x, y, sw)
        else:  # every rank is given the batch and trains on its part (trainers.distributed)
            loss = distributed.train_on_batch(self, strategy, params, x, y, sw)
        self._loss_total, self._loss_count = loss * x.shape[0], x.shape[0]
        return self._results(self._logs(), return_dict)

    @model_loop
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch, without training."""
        self._check_compiled("test_on_batch")
        x, y, sw = self._prepare_xy(x, y, sample_weight)
        return self._results(self._evaluate_arrays(x, y, sw, max(1, x.shape[0])), return_dict)

    @model_loop
    def predict_on_batch(self, x):
        """Model outputs for one batch."""
        return self.forward(self.prepare_inputs(x), False)[0]


def _find_regularized(model):
    """Set on `model` the trainable weights with a regularizer and with a constraint; whether the loss gets
    penalties (those weights', or a layer's activity regularizer)."""
    weights = model.trainable_weights
    model._weight_regularized = [v for v in weights if v.regularizer is not None]
    model._constrained = [v for v in weights if v.constraint is not None]
    model._regularized = bool(model._weight_regularized) or any(
        layer.activity_regularizer is not None for layer in model.layers)
