"""Learning-rate schedules with Keras's names, arguments and formulas: an optimizer given one as
its `learning_rate` evaluates it at every step s (its `iterations` before the step, from 0).

    ExponentialDecay        lr₀ · r^(s/n)                      (s/n floored with staircase)
    InverseTimeDecay        lr₀ / (1 + r · s/n)                (s/n floored with staircase)
    PolynomialDecay         (lr₀ − lr_end) · (1 − s'/n')^p + lr_end,  s' = min(s, n), n' = n;
                            with cycle: s' = s, n' = n · max(1, ⌈s/n⌉)
    PiecewiseConstantDecay  values[i] for boundaries[i−1] < s ≤ boundaries[i]
    CosineDecay             lr · ((1 − α) · ½(1 + cos(π · min(s, n)/n)) + α), after a linear
                            warmup from lr₀ to warmup_target over warmup_steps (lr = lr₀ without)
    CosineDecayRestarts     the cosine of CosineDecay restarted after n, n·t_mul, n·t_mul², …
                            steps, the i-th restart's peak lr₀ · m_mulⁱ

(lr₀ = initial_learning_rate, n = decay_steps, r = decay_rate.)
"""

import math

__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay", "PolynomialDecay",
           "PiecewiseConstantDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize"]


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return value


class LearningRateSchedule:
    """Base class: `__call__(step)` returns the learning rate for `step`; `get_config()` the
    arguments that rebuild it. Subclass it for a schedule of your own."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
                                  "in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


class ExponentialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def _progress(self, step):
        """s/n, floored with staircase."""
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)  # lr₀ · r^(s/n)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(ExponentialDecay):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))  # lr₀ / (1 + r · s/n)


class PolynomialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        n = self.decay_steps
        if self.cycle:
            n = n * (1.0 if step == 0 else math.ceil(step / self.decay_steps))
        else:
            step = min(step, n)
        p = step / n
        return (self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. Received: "
                             f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length "
                             f"{len(values)}.")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step, start_lr):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))  # ½(1 + cos(π s/n))
        return start_lr * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:  # linear from lr₀ to the warmup target
            return (self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps \
                + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = _positive(first_decay_steps, "first_decay_steps")
        self.t_mul, self.m_mul = t_mul, m_mul
        self.alpha = alpha
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:  # restart i begins after (1 − t_mulⁱ)/(1 − t_mul) first periods
            restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            done = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            fraction = (fraction - done) / self.t_mul ** restart
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


ALL_OBJECTS = {cls.__name__: cls for cls in (ExponentialDecay, InverseTimeDecay, PolynomialDecay,
                                             PiecewiseConstantDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule):
    """Keras's form: {"module": "keras.optimizers.schedules", "class_name", "config", ...}."""
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A schedule from its serialized form (`custom_objects` maps names of your own classes)."""
    objects = dict(ALL_OBJECTS, **(custom_objects or {}))
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = objects.get(name)
    if cls is None:
        raise ValueError(f"Unknown learning rate schedule: {name!r}. Expected one of {sorted(objects)} "
                         "(or pass your class in custom_objects).")
    return cls.from_config(config.get("config") or {})
