"""LSTM: the Keras layer on top of the fused C++ kernel `lstmfast.ops.lstm_forward/backward`.

Shapes: x (B, T, D) -> (B, T, H) with return_sequences, else (B, H); kernel (D, 4H),
recurrent_kernel (H, 4H), bias (4H,), columns in Keras's gate order [i f c o]:

    z_t = x_t·kernel + h_{t-1}·recurrent_kernel + bias
    i, f, o = recurrent_activation(z_i, z_f, z_o);  g = activation(z_c)
    c_t = f⊙c_{t-1} + i⊙g;  h_t = o⊙activation(c_t)

Dropout stays on the fast path: the masks (one (B, D) mask on x_t and one (B, H) mask on h_{t-1},
reused at every step as Keras does within a batch) are drawn here in numpy once per batch and
handed to the kernel. Keras applies four independent recurrent masks, one per gate, when
`recurrent_dropout > 0`; lstmfast applies one mask to h_{t-1} for all four gates, which is the
same in distribution per gate but not the same draw. A mask (B, T) from the layer below (e.g.
`Embedding(mask_zero=True)`) makes masked steps carry h and c unchanged, as in Keras.
"""

import numpy as np

from .. import _random
from .. import activations
from .. import graph
from .. import initializers
from .. import ops
from .dense import _set_weight_options, _weight_options_config
from .layer import Layer, RepeatedSequence, TimeSummedGradient, _check_positive_int, _check_rate

# Activations the fused kernel computes.
_KERNEL_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
_KERNEL_RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


class _UnitForgetBias(initializers.Initializer):
    """bias = [init(H), ones(H), init(2H)]: the forget-gate slice starts at 1 (Jozefowicz et al.)."""

    def __init__(self, base, units):
        self.base, self.units = base, units

    def __call__(self, shape, dtype=None):
        h = self.units
        return np.concatenate([self.base((h,), dtype=dtype), np.ones((h,), dtype=dtype),
                               self.base((2 * h,), dtype=dtype)])


def _kernel_activation_name(fn, allowed, arg):
    name = activations.serialize(fn) if fn in activations.ALL_OBJECTS.values() else None
    if name not in allowed:
        raise ValueError(
            f"LSTM argument `{arg}` must be one of {list(allowed)} (the activations the fused kernel "
            f"computes). Received: {arg}={getattr(fn, '__name__', fn)!r}"
        )
    return name


class LSTM(Layer):
    """Keras's `LSTM` layer: same arguments, defaults, weights (kernel, recurrent_kernel, bias) and
    outputs. `unroll` and `use_cudnn` are accepted and have no effect."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn="auto", zero_output_for_mask=False, **kwargs):
        kwargs.pop("implementation", None)
        kwargs.pop("time_major", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint)
        self.units = _check_positive_int(units, "units", "LSTM")
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self._act_name = _kernel_activation_name(self.activation, _KERNEL_ACTIVATIONS, "activation")
        self._ract_name = _kernel_activation_name(
            self.recurrent_activation, _KERNEL_RECURRENT_ACTIVATIONS, "recurrent_activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.dropout = _check_rate(dropout, "dropout")
        self.recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
        for arg, rate in (("dropout", self.dropout), ("recurrent_dropout", self.recurrent_dropout)):
            if rate >= 1.0:
                raise ValueError(f"Argument `{arg}` must be in [0, 1). Received: {arg}={rate}")
        self.seed = seed
        self._gen = _random.SeedGenerator(seed)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        if use_cudnn not in ("auto", True, False):
            raise ValueError(
                "Invalid valid received for argument `use_cudnn`. Expected one of {'auto', True, "
                f"False}}. Received: use_cudnn={use_cudnn}"
            )
        self.use_cudnn = use_cudnn
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True
        self.states = None
        self.kernel = self.recurrent_kernel = self.bias = None
        self._cache = None
        self._weights_held = False  # inside predict()/evaluate(): the weights stay as they are
        self._packed = None  # the weights packed for those calls (ops.pack_lstm_weights)

    @property
    def state_size(self):
        return [self.units, self.units]

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"LSTM layer {self.name!r} expects 3-D input (batch, timesteps, features) with a known "
                f"number of features. Received: input_shape={tuple(input_shape)}"
            )
        d, h = int(input_shape[-1]), self.units
        self.kernel = self.add_weight((d, 4 * h), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight((h, 4 * h), self.recurrent_initializer, "recurrent_kernel",
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            init = _UnitForgetBias(self.bias_initializer, h) if self.unit_forget_bias else self.bias_initializer
            self.bias = self.add_weight((4 * h,), init, "bias", regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        if self.stateful and input_shape[0] is not None:
            self._create_states(int(input_shape[0]))
        super().build(input_shape)

    def _check_input_shape(self, shape):
        # any number of steps, as in Keras: only the rank and the features are fixed once built
        expected = self._build_input_shape
        if expected is not None and (len(shape) != 3 or shape[-1] != expected[-1]):
            super()._check_input_shape(shape)

    def compute_output_shape(self, input_shape):
        b, t = input_shape[0], input_shape[1]
        out = (b, t, self.units) if self.return_sequences else (b, self.units)
        if self.return_state:
            return (out, (b, self.units), (b, self.units))
        return out

    def output_has_mask(self, input_has_mask):
        return input_has_mask and self.return_sequences  # the last output alone carries none

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out, None, None]
        return out

    # ----- stateful -----
    def _create_states(self, batch_size):
        self.states = [np.zeros((batch_size, self.units), self.dtype) for _ in range(2)]

    def reset_states(self, states=None):
        """Zero the carried (h, c) of a stateful LSTM, or set them to `states` = [h, c]."""
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        if self.states is None:
            return
        if states is None:
            for s in self.states:
                s[...] = 0
        else:
            for s, v in zip(self.states, states):
                s[...] = np.asarray(v, dtype=s.dtype).reshape(s.shape)

    reset_state = reset_states

    # ----- computation -----
    def hold_weights(self, held):
        self._weights_held = bool(held)
        self._packed = None

    def _dropout_mask(self, n, width, rate, dtype):
        if rate <= 0.0:
            return None
        keep = self._gen.rng.random((n, width)) >= rate
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))

    def forward(self, x, mask=None, training=False, initial_state=None):
        b = x.shape[0]
        h0 = c0 = None
        if initial_state is not None:
            if len(initial_state) != 2:
                raise ValueError(
                    f"LSTM {self.name!r} expects `initial_state` = [h0, c0]. Received "
                    f"{len(initial_state)} tensors."
                )
            h0, c0 = (np.ascontiguousarray(s, dtype=x.dtype) for s in initial_state)
            for s, n in ((h0, "h0"), (c0, "c0")):
                if s.shape != (b, self.units):
                    raise ValueError(
                        f"LSTM {self.name!r}: initial state {n} must have shape ({b}, {self.units}). "
                        f"Received: {s.shape}"
                    )
        elif self.stateful:
            if self.states is None:
                self._create_states(b)
            elif self.states[0].shape[0] != b:
                raise ValueError(
                    "If an RNN is stateful, the batch size of the input sequences must be the same as "
                    f"the batch size of the initial state.\n- Expected batch size: "
                    f"{self.states[0].shape[0]}\n- Received batch size: {b}"
                )
            h0, c0 = self.states
        dp = rdp = None
        if training:
            dp = self._dropout_mask(b, x.shape[2], self.dropout, x.dtype)
            rdp = self._dropout_mask(b, self.units, self.recurrent_dropout, x.dtype)
        timesteps = None
        if isinstance(x, RepeatedSequence) and x.vector is not None:
            # x_t = v at every step (a RepeatVector's output): the kernel projects v once,
            # z_t = v·kernel + h_{t-1}·recurrent_kernel + bias, and backward returns Σ_t ∂L/∂x_t.
            timesteps, x = x.shape[1], x.vector
        elif not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        weights = (self.kernel.value, self.recurrent_kernel.value, self.bias.value if self.use_bias else None)
        if self._weights_held and not training:
            # predict()/evaluate(): pack the weights once for all their batches.
            if self._packed is None:
                self._packed = ops.pack_lstm_weights(*weights)
            weights = (self._packed, None, None)
        out, h_t, c_t, cache = ops.lstm_forward(
            x, *weights,
            h0=h0, c0=c0, mask=mask, input_dropout_mask=dp, recurrent_dropout_mask=rdp,
            activation=self._act_name, recurrent_activation=self._ract_name,
            go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask, training=training,
            check_finite=False,  # inputs are checked once at the model's door, not per layer call
            timesteps=timesteps,
            # a first layer fed with data needs no dx: its backward needs no transposed kernel
            # (a stale answer costs nothing but time: backward passes the kernel to pack it then)
            input_gradient=self.needs_input_gradient,
        )
        self._cache = cache
        self._initial_state_given = initial_state is not None  # a variable of the graph: wants ∂L/∂(h0, c0)
        if self.stateful:
            self.states = [np.array(h_t, copy=True), np.array(c_t, copy=True)]
        if self.return_state:
            return out, h_t, c_t
        return out

    def backward(self, dy, d_h=None, d_c=None):
        if self._cache is None:
            raise RuntimeError(f"LSTM {self.name!r}: backward called without a training forward pass.")
        dt = self.kernel.value.dtype
        # The kernel reads contiguous rows; a merge's gradient may hand on views of its parts.
        dy, d_h, d_c = (g if g is None or (g.dtype == dt and g.flags.c_contiguous) else np.ascontiguousarray(g, dt)
                        for g in (dy, d_h, d_c))
        # ∂L/∂kernel, ∂L/∂recurrent_kernel, ∂L/∂bias are written straight into the weights'
        # gradient buffers (a frozen layer's go to arrays that are dropped).
        out = None
        if self.trainable:
            out = (self.kernel._ensure_grad(), self.recurrent_kernel._ensure_grad(),
                   self.bias._ensure_grad() if self.use_bias else None)
        dx, _dk, _drk, _db, _dh0, _dc0 = ops.lstm_backward(self._cache, d_outputs=dy, d_h=d_h, d_c=d_c,
                                                           input_gradient=self.needs_input_gradient,
                                                           initial_state_gradient=self._initial_state_given,
                                                           check_finite=False, out=out,
                                                           kernel=self.kernel.value)
        constant_input = self._cache.constant_input
        self._cache = None
        self._d_initial_state = (_dh0, _dc0)  # ∂L/∂h0, ∂L/∂c0, for graph_backward
        if dx is None:
            return None
        return TimeSummedGradient(dx) if constant_input else dx

    # ----- in a functional graph: inputs [x, h0, c0], outputs [y, h_T, c_T] with return_state -----
    graph_multi_output = True

    def graph_inputs(self, inputs, kwargs):
        states = kwargs.pop("initial_state", None)
        inbound = super().graph_inputs(inputs, kwargs)
        if states is None:
            return inbound
        return inbound + initial_state_tensors(self, states, ("h0", "c0"), self.units)

    def graph_forward(self, inputs, masks, training):
        if len(inputs) > 1:
            y = self.forward(inputs[0], masks[0], training, initial_state=list(inputs[1:]))
        else:
            y = self.forward(inputs[0], masks[0], training)
        return y if isinstance(y, tuple) else (y,)

    def receive(self, x):
        return x  # a RepeatedSequence stays one: forward projects its vector once

    def graph_backward(self, d_outputs):
        if self.return_state:
            dx = self.backward(d_outputs[0], d_h=d_outputs[1], d_c=d_outputs[2])
        else:
            dx = self.backward(d_outputs[0])
        return [dx, *self._d_initial_state]

    def load_torch_state_dict(self, state_dict, layer=0, reverse=False):
        """Load PyTorch `nn.LSTM` weights: kernel = weight_ih_l{layer}ᵀ,
        recurrent_kernel = weight_hh_l{layer}ᵀ, bias = bias_ih + bias_hh (PyTorch's gate order
        i, f, g, o is Keras's i, f, c, o). `reverse=True` reads the `_reverse` direction."""
        weights = torch_lstm_weights(state_dict, layer=layer, reverse=reverse, use_bias=self.use_bias)
        if not self.built:
            self._maybe_build((None, None, weights[0].shape[0]))
        self.set_weights(weights)

    def get_config(self):
        config = super().get_config()
        config.update({
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            **_weight_options_config(self, "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                                     "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                                     "bias_constraint"),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        })
        return config


# ---------------------------------------------------------------------------- PyTorch weights

def _to_numpy(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def initial_state_tensors(layer, states, names, units, one_message=False):
    """The `initial_state` tensors of a symbolic call of an LSTM or Bidirectional, checked: one
    KerasTensor of shape (batch, units) per name. `one_message`: a wrong shape is reported for
    all states at once ("each initial state") rather than by name."""
    kind = type(layer).__name__
    count = {2: "two", 4: "four"}.get(len(names), str(len(names)))
    if not isinstance(states, (list, tuple)) or len(states) != len(names) or not all(
            isinstance(s, graph.KerasTensor) for s in states):
        raise ValueError(f"{kind} {layer.name!r} expects `initial_state` = [{', '.join(names)}], {count} tensors. "
                         f"Received: {states!r}")
    for s, name in zip(states, names):
        if len(s.shape) != 2 or s.shape[1] != units:
            what = "each initial state" if one_message else f"initial state {name}"
            raise ValueError(f"{kind} {layer.name!r}: {what} must have shape (batch, {units}). Received: {s.shape}")
    return list(states)


def torch_lstm_weights(state_dict, layer=0, reverse=False, use_bias=True, prefix=None):
    """[kernel, recurrent_kernel, bias] for a Keras-layout LSTM from a PyTorch `nn.LSTM` state_dict.

    kernel = weight_ih_l{layer}ᵀ (D, 4H); recurrent_kernel = weight_hh_l{layer}ᵀ (H, 4H);
    bias = bias_ih + bias_hh (4H,). PyTorch's gate order i, f, g, o is Keras's i, f, c, o, so no
    column permutation is needed. `prefix` selects a submodule ("encoder.lstm."); when None, the
    single `weight_ih_l{layer}` key in the dict is found automatically.
    """
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    keys = list(state_dict.keys())
    if prefix is None:
        matches = [k for k in keys if k.endswith("weight_ih" + suffix)]
        if len(matches) != 1:
            raise ValueError(
                f"Expected exactly one 'weight_ih{suffix}' entry in the state_dict (pass `prefix=` to "
                f"choose). Found: {matches or 'none'}; keys: {keys[:8]}"
            )
        prefix = matches[0][: -len("weight_ih" + suffix)]
    if any(k.startswith(prefix + "weight_hr") for k in keys):
        raise ValueError("PyTorch LSTMs with proj_size > 0 have no Keras equivalent.")

    def get(name):
        key = prefix + name + suffix
        if key not in state_dict:
            raise ValueError(f"The state_dict has no {key!r} entry. Keys: {keys[:8]}")
        return _to_numpy(state_dict[key])

    w_ih, w_hh = get("weight_ih"), get("weight_hh")
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_ih.shape[0] % 4 or w_hh.shape != (w_ih.shape[0], w_ih.shape[0] // 4):
        raise ValueError(
            f"Unexpected PyTorch LSTM weight shapes: weight_ih {w_ih.shape}, weight_hh {w_hh.shape} "
            "(expected (4H, D) and (4H, H))."
        )
    out = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    has_bias = (prefix + "bias_ih" + suffix) in state_dict
    if use_bias:
        if has_bias:
            out.append(get("bias_ih") + get("bias_hh"))
        else:
            out.append(np.zeros(w_ih.shape[0], dtype=w_ih.dtype))
    elif has_bias:
        b = get("bias_ih") + get("bias_hh")
        if np.any(b != 0):
            raise ValueError("The PyTorch LSTM has biases but the lstmfast LSTM has use_bias=False.")
    return out
