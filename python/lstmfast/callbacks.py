"""Callbacks with Keras's names, arguments and hooks.

`fit` always runs a `History` and, when verbose, a `ProgbarLogger`. Hooks a callback does not
override are never called, so an idle callback costs nothing per step. A callback may set
`self.model.stop_training = True` to end `fit` after the current step or epoch.
"""

import csv
import math
import os
import sys
import time
import warnings

import numpy as np


class Callback:
    """Base class: override any of the `on_*` hooks."""

    # Under lstmfast.distribute, callbacks that print or write files run on rank 0 only.
    _chief_only = False

    def __init__(self):
        self.params = {}
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): self.on_batch_begin(batch, logs)
    def on_train_batch_end(self, batch, logs=None): self.on_batch_end(batch, logs)
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass
    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass


_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
          "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
          "on_train_begin", "on_train_end", "on_test_begin", "on_test_end", "on_predict_begin",
          "on_predict_end")


def _overrides(cb, hook):
    """Whether `cb` does something in `hook` (train-batch hooks also count on_batch_*)."""
    if isinstance(cb, LambdaCallback):
        return hook in cb._defined
    fn = getattr(type(cb), hook, None)
    if fn is not getattr(Callback, hook):
        return True
    if hook in ("on_train_batch_begin", "on_train_batch_end"):
        alias = hook.replace("train_", "")
        return getattr(type(cb), alias) is not getattr(Callback, alias)
    return False


class CallbackList:
    """Dispatches each hook to the callbacks that implement it."""

    def __init__(self, callbacks=None, model=None, add_history=False, add_progbar=False, **params):
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"`callbacks` must be a list of lstmfast.callbacks.Callback instances. Received: {cb!r}"
                )
        self.history = None
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in callbacks):
            callbacks.insert(0, ProgbarLogger())
        if add_history:
            existing = [c for c in callbacks if isinstance(c, History)]
            self.history = existing[0] if existing else History()
            if not existing:
                callbacks.append(self.history)
        self.callbacks = callbacks
        for cb in callbacks:
            if model is not None:
                cb.set_model(model)
            cb.set_params(params)
        self._by_hook = {h: [getattr(cb, h) for cb in callbacks if _overrides(cb, h)] for h in _HOOKS}

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)

    def wants(self, hook):
        return bool(self._by_hook[hook])

    def call(self, hook, *args):
        for fn in self._by_hook[hook]:
            fn(*args)


class History(Callback):
    """Records each epoch's logs: `history.history["loss"]` is the list of epoch losses."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


class Progbar:
    """A Keras-style progress bar: `12/32 ━━━━━━━━━━━━━━━━━━━━ 1s 5ms/step - loss: 0.6931`.

    verbose=1 redraws one line (at most every `interval` seconds) on a terminal and prints only the
    final line elsewhere; verbose=2 prints one line when `current` reaches `target`.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step", file=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._file = file
        out = self._out()
        self._dynamic = (hasattr(out, "isatty") and out.isatty()) or "ipykernel" in sys.modules
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._prev_width = 0
        self._time_after_first = None
        self._seen = 0

    def _out(self):
        return self._file if self._file is not None else sys.stdout

    def _format_time(self, per_unit):
        if per_unit >= 1 or per_unit == 0:
            return f" {per_unit:.0f}s/{self.unit_name}"
        if per_unit >= 1e-3:
            return f" {per_unit * 1e3:.0f}ms/{self.unit_name}"
        return f" {per_unit * 1e6:.0f}us/{self.unit_name}"

    def _per_unit(self, current, now):
        if current == 0:
            return 0.0
        if self._time_after_first is not None and current > 1:
            return (now - self._time_after_first) / (current - 1)
        return (now - self._start) / current

    @staticmethod
    def _values_text(values):
        text = ""
        for k, v in values:
            v = float(v)
            text += f" - {k}: {v:.4f}" if abs(v) > 1e-3 else f" - {k}: {v:.4e}"
        return text

    def update(self, current, values=None, finalize=None):
        """Show progress `current` of `target` with `values` = [(name, value), ...] as given."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        if current == 1 and self._time_after_first is None:
            self._time_after_first = now
        self._seen = current
        if self.verbose == 1:
            if not finalize and (now - self._last_update < self.interval or not self._dynamic):
                return
            per_unit = self._per_unit(current, now)
            if self.target:
                digits = int(math.log10(self.target)) + 1
                count = f"{current:{digits}d}/{self.target}"
                done = int(self.width * current / self.target)
                if self._dynamic:
                    bar = (f"\x1b[1m{count}\x1b[0m \x1b[32m{'━' * done}\x1b[0m"
                           f"\x1b[37m{'━' * (self.width - done)}\x1b[0m")
                    plain = len(count) + 1 + self.width
                else:
                    bar = f"{count} {'━' * done}{'─' * (self.width - done)}"
                    plain = len(bar)
            else:
                bar = f"{current:7d}/Unknown"
                plain = len(bar)
            if self.target and not finalize:
                eta = per_unit * (self.target - current)
                eta_s = (f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}" if eta > 3600
                         else f"{int(eta // 60)}:{int(eta % 60):02d}" if eta > 60 else f"{int(eta)}s")
            else:
                eta_s = f"{now - self._start:.0f}s"
            info = (f" \x1b[1m{eta_s}\x1b[0m" if self._dynamic else f" {eta_s}")
            plain += 1 + len(eta_s)
            tail = self._format_time(per_unit) + self._values_text(values or [])
            info += tail
            plain += len(tail)
            msg = ("\r" if self._dynamic else "") + bar + info
            if self._prev_width > plain:
                msg += " " * (self._prev_width - plain)
            if finalize:
                msg += "\n"
            self._prev_width = plain
            out = self._out()
            out.write(msg)
            out.flush()
            self._last_update = now
        elif self.verbose == 2 and finalize:
            per_unit = self._per_unit(current, now)
            digits = int(math.log10(self.target)) + 1 if self.target else 1
            line = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s -"
            line += self._format_time(per_unit) + self._values_text(values or []) + "\n"
            out = self._out()
            out.write(line)
            out.flush()


class ProgbarLogger(Callback):
    """Prints "Epoch i/n" and a progress bar per epoch (verbose=1) or one line per epoch (verbose=2)."""

    _chief_only = True

    def __init__(self, count_mode="steps", file=None):
        super().__init__()
        self._file = file
        self.verbose = 1
        self.epochs = 1
        self.target = None
        self.progbar = None

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _write(self, text):
        out = self._file if self._file is not None else sys.stdout
        out.write(text)
        out.flush()

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose and self.epochs > 1:
            self._write(f"Epoch {epoch + 1}/{self.epochs}\n")
        self.progbar = Progbar(self.target, verbose=self.verbose, file=self._file)
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if batch == 0:
            self.progbar._time_after_first = time.perf_counter()
        if self.verbose == 1:
            self.progbar.update(self._seen, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.progbar is not None:
            self.progbar.update(self._seen, list((logs or {}).items()), finalize=True)

    def on_test_begin(self, logs=None):
        if not self.params.get("_in_fit"):
            self.progbar = Progbar(self.target, verbose=self.verbose, file=self._file)
            self._seen = 0

    def on_test_batch_end(self, batch, logs=None):
        if not self.params.get("_in_fit"):
            self._seen = batch + 1
            if self.verbose == 1:
                self.progbar.update(self._seen, list((logs or {}).items()), finalize=False)

    def on_test_end(self, logs=None):
        if not self.params.get("_in_fit") and self.progbar is not None:
            self.progbar.update(self._seen, list((logs or {}).items()), finalize=True)

    def on_predict_begin(self, logs=None):
        self.progbar = Progbar(self.target, verbose=self.verbose, file=self._file)
        self._seen = 0

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self._seen, finalize=False)

    def on_predict_end(self, logs=None):
        if self.progbar is not None:
            self.progbar.update(self._seen, finalize=True)


class MonitorCallback(Callback):
    """Shared logic for callbacks that watch one logged quantity (`monitor`)."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            if "acc" in name:
                self.monitor_op = np.greater
            elif name in ("loss", "mse", "mae", "mean_squared_error", "mean_absolute_error") or \
                    "loss" in name or "error" in name or "crossentropy" in name:
                self.monitor_op = np.less
            else:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but lstmfast "
                    "isn't able to automatically determine whether that metric should be maximized "
                    "or minimized. Pass `mode='max'` in order to monitor based on the highest metric "
                    "value, or pass `mode='min'` in order to use the lowest value."
                )

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.monitor_op is np.greater:
            return bool(value - self.min_delta > reference)
        return bool(value + self.min_delta < reference)


class EarlyStopping(MonitorCallback):
    """Stop training when `monitor` has not improved for `patience` epochs; with
    `restore_best_weights=True`, end with the weights of the best epoch."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(list((logs or {}).keys()))}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(MonitorCallback):
    """Save the model (or only its weights) every epoch or every `save_freq` steps; with
    `save_best_only=True`, only when `monitor` improves. `filepath` may hold `{epoch:02d}` and
    logged values such as `{val_loss:.2f}`. Files are written in lstmfast's format, atomically."""

    _chief_only = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(
                f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or integer values"
            )
        self.save_freq = save_freq
        self._batches_since_save = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None and self.save_best_only:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            if self.monitor_op is None:
                self._set_monitor_op()
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            else:
                best_str = "None" if self.best is None else f"{self.best:.5f}"
                if not self._is_improvement(current, self.best):
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
                    return
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to "
                          f"{current:.5f}, saving model to {path}")
                self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience` epochs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta=min_delta)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to ReduceLROnPlateau: {kwargs}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                f"available. Available metrics are: {','.join(list(logs.keys()))}.",
                stacklevel=2,
            )
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.cooldown_counter > 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to `schedule(epoch, lr)` (or
    `schedule(epoch)`), as Keras does; the rate is logged as `learning_rate`."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"`schedule` must be a function of (epoch, lr) or (epoch). Received: {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # a schedule of the epoch alone (Keras's older form)
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (float, np.floating)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        optimizer.learning_rate = lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite (or raise, with raise_error=True)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Append one row per epoch (epoch, then the logged values in sorted key order) to a CSV file."""

    _chief_only = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys.extend([f"val_{k}" for k in self.keys])
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, logs.get(k, "NA")) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_begin(epoch, logs), on_epoch_end(epoch, logs),
    on_train_begin(logs), on_train_end(logs), on_train_batch_begin(batch, logs),
    on_train_batch_end(batch, logs) (on_batch_begin / on_batch_end are aliases)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        self._defined = set()
        on_train_batch_begin = kwargs.pop("on_batch_begin", None) or on_train_batch_begin
        on_train_batch_end = kwargs.pop("on_batch_end", None) or on_train_batch_end
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to LambdaCallback: {sorted(kwargs)}")
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_begin", on_train_batch_begin),
                         ("on_train_batch_end", on_train_batch_end)):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback `{name}` must be callable. Received: {fn!r}")
                setattr(self, name, fn)
                self._defined.add(name)
