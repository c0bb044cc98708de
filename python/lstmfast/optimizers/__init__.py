"""Optimizers with Keras's names, defaults and update formulas, on one flat parameter buffer.

A compiled model keeps every trainable weight as a slice of one contiguous array `params` and
writes every gradient into the matching slice of `grads`; the optimizer updates the whole buffer
at once. Adam runs in the fused C++ kernel `lstmfast.ops.adam_update`; SGD and RMSprop are a few
vectorised numpy lines. Update rules (step t counts from 1, as Keras's `iterations + 1`):

    Adam:    m += (g − m)(1 − β₁);  v += (g² − v)(1 − β₂)
             w −= lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)          ε = 1e-7 by default
    SGD:     m = momentum·m − lr·g;  w += m   (nesterov: w += momentum·m − lr·g)
    RMSprop: v = ρ·v + (1 − ρ)·g²;  w −= lr·g / √(v + ε)

With `use_ema`, the moving average w̄ = μ·w̄ + (1 − μ)·w of the weights (μ = `ema_momentum`)
is kept after every step, copied into the weights every `ema_overwrite_frequency` steps and,
as in Keras, at the end of `fit`.

Gradient clipping as in Keras: `clipnorm` rescales each weight's gradient to at most that L2 norm,
`global_clipnorm` all of them together, `clipvalue` clips element-wise.

Every rule above is element by element once the gradient is clipped, so a part of the buffer can
be updated on its own with the same part of the state (`apply(..., part=(start, stop))`): data-
parallel training gives each rank its part of the update (trainers.distributed).
"""

import numpy as np

from .. import ops
from ..parameters import aligned_zeros
from . import schedules
from .schedules import LearningRateSchedule


def _zeros_like(params):
    return aligned_zeros(params.size, params.dtype)


class Optimizer:
    """Base class. Subclasses implement `_update(params, grads, lr)` on flat arrays. One that
    reads its state through `_slot` (the state arrays' part being updated) sets `_updates_parts`,
    and may then update a part of the buffer (`apply(part=...)`)."""

    _updates_parts = False

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs:
            for k in ("lr", "decay"):
                if k in kwargs:
                    raise ValueError(
                        f"Argument `{k}` is no longer supported (Keras 3 spelling: "
                        f"{'learning_rate' if k == 'lr' else 'a learning-rate schedule'})."
                    )
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if loss_scale_factor or gradient_accumulation_steps:
            raise ValueError("`loss_scale_factor` and `gradient_accumulation_steps` are not "
                             "supported by lstmfast optimizers.")
        if use_ema:
            if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, (int, float)) or not 0 <= ema_momentum <= 1:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum!r}")
            if ema_overwrite_frequency is not None and (isinstance(ema_overwrite_frequency, bool) or not isinstance(
                    ema_overwrite_frequency, int) or ema_overwrite_frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency!r}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        for arg, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm),
                       ("weight_decay", weight_decay)):
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
                raise ValueError(f"Argument `{arg}` must be a non-negative number. Received: {arg}={v!r}")
        self.name = name or _snake(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.learning_rate = learning_rate
        self.use_ema = bool(use_ema)
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency if use_ema else None
        self.iterations = 0
        self.built = False
        self._segments = None
        self._average = None
        self._part = slice(None)  # the part of the buffer that apply() updates
        self._state_split = False  # data-parallel fit: state current on this rank's part only

    # ----- learning rate -----
    @property
    def learning_rate(self):
        """The current learning rate as a float (a schedule is evaluated at `iterations`)."""
        lr = self._learning_rate
        if callable(lr):
            return float(lr(self.iterations))
        return lr

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value):
            self._learning_rate = value
            return
        if isinstance(getattr(self, "_learning_rate", None), LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable. If "
                            "you need the learning rate to be settable, you should instantiate the optimizer "
                            "with a float `learning_rate` argument.")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
                np.isfinite(value) and value >= 0):
            raise ValueError(
                f"Argument `learning_rate` must be a non-negative finite number or a schedule. "
                f"Received: learning_rate={value!r}"
            )
        self._learning_rate = float(value)

    lr = learning_rate

    # ----- state -----
    def build(self, params, segments):
        """Allocate state for a flat `params` buffer; `segments` are (start, stop) per weight."""
        self._segments = list(segments)
        self._build_state(params)
        if self.use_ema:
            self._average = _zeros_like(params)
        self.built = True

    def _build_state(self, params):
        pass

    def _state_arrays(self):
        return {}

    def _all_state_arrays(self):
        arrays = self._state_arrays()
        if self._average is not None:
            arrays = dict(arrays, average=self._average)
        return arrays

    def get_state(self):
        """The optimizer's variables: {"iterations": int, name: flat array, ...}."""
        if getattr(self, "_state_split", False):
            raise RuntimeError(
                "The optimizer's state is split over the ranks while `fit` runs data-parallel (each rank "
                "updates its part of the weights); it is whole again at the end of every epoch and of "
                "`fit`. Save the model then (ModelCheckpoint with save_freq='epoch'), or pass "
                "shard_optimizer=False to lstmfast.distribute.init().")
        state = {"iterations": np.int64(self.iterations)}
        state.update({k: v.copy() for k, v in self._all_state_arrays().items()})
        return state

    def set_state(self, state):
        self.iterations = int(state["iterations"])
        for k, v in self._all_state_arrays().items():
            if k not in state:
                raise ValueError(f"Optimizer state is missing {k!r}.")
            src = np.asarray(state[k])
            if src.shape != v.shape:
                raise ValueError(
                    f"Optimizer state {k!r} has shape {src.shape}, but this model's parameters need {v.shape}."
                )
            v[...] = src

    def count_params(self):
        """Keras's count: each state array's size over the real parameters (not the alignment
        padding of the flat buffer), plus the iteration count and the learning rate."""
        n = sum(b - a for a, b in self._segments) if self._segments else 0
        return 2 + n * len(self._all_state_arrays())

    # ----- update -----
    def _slot(self, array):
        """The part of a state array that the update in progress reads and writes."""
        return array[self._part]

    def _clip(self, grads, total=None):
        """Clip `grads`, the part of the gradient buffer being updated. total: a function that
        sums a float64 array over every rank's part (the norms need the whole gradient), or None
        when `grads` is whole."""
        if self.clipvalue:
            np.clip(grads, -self.clipvalue, self.clipvalue, out=grads)
        elif self.clipnorm:
            # each weight's gradient scaled to at most `clipnorm` in L2 norm
            a = self._part.start or 0
            pieces = [(max(start, a) - a, min(stop, a + grads.size) - a) for start, stop in self._segments]
            if total is None:
                norms = [float(np.sqrt(np.dot(grads[i:j], grads[i:j]))) for i, j in pieces]
            else:  # Σ g² of this rank's piece of each weight, summed over the ranks
                squares = [float(np.dot(grads[i:j], grads[i:j])) if j > i else 0.0 for i, j in pieces]
                norms = np.sqrt(total(np.array(squares, np.float64)))
            for (i, j), norm in zip(pieces, norms):
                if j > i and norm > self.clipnorm:
                    grads[i:j] *= grads.dtype.type(self.clipnorm / norm)
        elif self.global_clipnorm:
            if total is None:
                norm = float(np.sqrt(np.dot(grads, grads)))
            else:
                norm = float(np.sqrt(total(np.array([float(np.dot(grads, grads))], np.float64))[0]))
            if not np.isfinite(norm):
                grads[...] = np.nan
            elif norm > self.global_clipnorm:
                grads *= grads.dtype.type(self.global_clipnorm / norm)

    def apply(self, params, grads, part=None, total=None):
        """One update of the flat `params` from the flat `grads` (which may be clipped in place).

        part: (start, stop), to update params[start:stop] only, from grads[start:stop] and the
        same part of the optimizer's state (an optimizer with `_updates_parts`); the rest of the
        buffer is left as it is. total: with a part, a function that sums a float64 array over
        the ranks, whose parts together make the whole buffer (clipping by norm needs it).
        """
        if not self.built:
            self.build(params, [(0, params.size)])
        if part is not None and not self._updates_parts:
            raise ValueError(f"{type(self).__name__} updates the whole buffer only (it reads its state "
                             "without `_slot`)")
        self._part = slice(None) if part is None else slice(*part)
        try:
            params, grads = params[self._part], grads[self._part]
            self._clip(grads, total if part is not None else None)
            lr = self.learning_rate
            if self.weight_decay:
                params -= params * params.dtype.type(self.weight_decay * lr)
            self.iterations += 1
            self._update(params, grads, lr)
            if self.use_ema:
                # w̄ = μ·w̄ + (1 − μ)·w, with μ = 0 at the first step (w̄ starts at the weights)
                average = self._slot(self._average)
                mu = params.dtype.type(self.ema_momentum if self.iterations > 1 else 0.0)
                average *= mu
                average += (1 - mu) * params
                if self.ema_overwrite_frequency and self.iterations % self.ema_overwrite_frequency == 0:
                    params[...] = average
        finally:
            self._part = slice(None)

    def finalize_variable_values(self, params):
        """At the end of `fit`: with `use_ema`, the weights become their moving average."""
        if self.use_ema and self._average is not None:
            params[...] = self._average

    def _update(self, params, grads, lr):
        raise NotImplementedError

    def get_config(self):
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": (schedules.serialize(lr) if isinstance(lr, LearningRateSchedule)
                              else lr if not callable(lr) else self.learning_rate),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
        }

    @classmethod
    def from_config(cls, config):
        config = {k: v for k, v in config.items() if k not in _KERAS_ONLY_KEYS}
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} learning_rate={self.learning_rate}>"


_KERAS_ONLY_KEYS = ("loss_scale_factor",
                    "gradient_accumulation_steps", "is_legacy_optimizer", "jit_compile", "decay")


def _snake(name):
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Adam(Optimizer):
    """Keras's Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False).
    Without amsgrad the update is the fused C++ kernel."""

    _updates_parts = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        for arg, v in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(v) < 1.0:
                raise ValueError(f"Argument `{arg}` must be in [0, 1). Received: {arg}={v!r}")
        if not float(epsilon) > 0:  # 0 would divide a zero gradient by zero: NaN weights
            raise ValueError(f"Argument `epsilon` must be positive. Received: epsilon={epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)

    def _build_state(self, params):
        self._m = _zeros_like(params)
        self._v = _zeros_like(params)
        self._vhat = _zeros_like(params) if self.amsgrad else None

    def _state_arrays(self):
        if not self.built:
            return {}
        out = {"m": self._m, "v": self._v}
        if self.amsgrad:
            out["vhat"] = self._vhat
        return out

    def _update(self, params, grads, lr):
        t = self.iterations
        m, v = self._slot(self._m), self._slot(self._v)
        if not self.amsgrad:
            ops.adam_update(params, grads, m, v, learning_rate=lr, beta_1=self.beta_1,
                            beta_2=self.beta_2, epsilon=self.epsilon, step=t)
            return
        dt = params.dtype.type
        vhat = self._slot(self._vhat)
        alpha = lr * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        m += (grads - m) * dt(1 - self.beta_1)
        v += (grads * grads - v) * dt(1 - self.beta_2)
        np.maximum(vhat, v, out=vhat)
        params -= (m * dt(alpha)) / (np.sqrt(vhat) + dt(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class SGD(Optimizer):
    """Keras's SGD(learning_rate=0.01, momentum=0.0, nesterov=False)."""

    _updates_parts = True

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _build_state(self, params):
        self._mom = _zeros_like(params) if self.momentum else None

    def _state_arrays(self):
        return {"momentum": self._mom} if self.built and self.momentum else {}

    def _update(self, params, grads, lr):
        dt = params.dtype.type
        if not self.momentum:
            params -= grads * dt(lr)
            return
        m = self._slot(self._mom)
        m *= dt(self.momentum)
        m -= grads * dt(lr)
        if self.nesterov:
            params += m * dt(self.momentum) - grads * dt(lr)
        else:
            params += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras's RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)."""

    _updates_parts = True

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def _build_state(self, params):
        self._vel = _zeros_like(params)
        self._mom = _zeros_like(params) if self.momentum > 0 else None
        self._avg = _zeros_like(params) if self.centered else None

    def _state_arrays(self):
        if not self.built:
            return {}
        out = {"velocity": self._vel}
        if self._mom is not None:
            out["momentum"] = self._mom
        if self._avg is not None:
            out["average_gradient"] = self._avg
        return out

    def _update(self, params, grads, lr):
        dt = params.dtype.type
        rho = dt(self.rho)
        vel = self._slot(self._vel)
        vel *= rho
        vel += (1 - rho) * grads * grads
        if self.centered:
            avg = self._slot(self._avg)
            avg *= rho
            avg += (1 - rho) * grads
            denom = vel - avg * avg + dt(self.epsilon)
        else:
            denom = vel + dt(self.epsilon)
        increment = dt(lr) * grads / np.sqrt(denom)
        if self._mom is not None:
            mom = self._slot(self._mom)
            mom *= dt(self.momentum)
            mom += increment
            params -= mom
        else:
            params -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


ALL_OBJECTS = {"Adam": Adam, "SGD": SGD, "RMSprop": RMSprop, "adam": Adam, "sgd": SGD, "rmsprop": RMSprop}


def get(identifier):
    """Return an optimizer for a name ("adam", "sgd", "rmsprop"), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict):
        cls = ALL_OBJECTS.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown optimizer: {identifier!r}. Expected one of {sorted(ALL_OBJECTS)}.")
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, str):
        cls = ALL_OBJECTS.get(identifier) or ALL_OBJECTS.get(identifier.lower())
        if cls is None:
            raise ValueError(
                f"Could not interpret optimizer identifier: {identifier!r}. Expected one of "
                "['adam', 'rmsprop', 'sgd'] or an lstmfast.optimizers.Optimizer."
            )
        return cls()
    raise ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. Expected a name ('adam', 'rmsprop', "
        "'sgd') or an lstmfast.optimizers.Optimizer."
    )


def serialize(optimizer):
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def deserialize(config):
    return get(config)
