"""Streaming inference, one time step per call: `stream = model.stream(batch=1)`,
`y_t = stream.step(x_t)`, `stream.reset()`.

For a Sequential model of LSTM, Dense, Embedding, Activation and dropout layers. Each LSTM keeps
its state (h, c) between calls and runs the kernels' one-step path (`LSTMStream` in
`cpp/lstm.cpp`: the forward's own products and cell, on the weights packed once when the
stream is made, into buffers made with it):

    z_t = x_t·W + b + h_{t−1}·U ;  c_t = f⊙c_{t−1} + i⊙g ;  h_t = o⊙φ(c_t)

so T calls of `step` give the bits `predict` gives on the T steps (the same batch and machine):
an LSTM with `return_sequences=True` its output at step t, one without it its output as if the
sequence ended at t (what a model answering after every new sample wants). A stateful LSTM's
stream starts from the layer's current state. Layers that need the whole sequence
(`go_backwards`, `Bidirectional`, `RepeatVector`, pooling over time) are refused with the
reason. The weights are those of the moment the stream is made: make a new stream after
training.
"""

import numpy as np

from .. import ops

__all__ = ["Stream"]

_IDENTITY = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "InputLayer")


class Stream:
    """A model run one time step per `step` call, keeping each LSTM's state (module docstring)."""

    def __init__(self, model, batch=1):
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"Argument `batch` must be a positive integer. Received: batch={batch!r}")
        if not any(c.__name__ == "Sequential" for c in type(model).__mro__):
            raise ValueError("stream() runs Sequential models so far; this is a "
                             f"{type(model).__name__} model")
        if not model.built:
            raise ValueError("The model is not built: give it an Input or call it on data before streaming")
        self.batch = int(batch)
        self.dtype = np.dtype(model.dtype)
        from .._core import core

        stream_class = core.LSTMStream_f32 if self.dtype == np.float32 else core.LSTMStream_f64
        self._plan = []
        self._steps = 0  # steps since the last reset
        for layer in model._layers:
            kind = type(layer).__name__
            if kind in _IDENTITY:
                continue
            if kind == "LSTM":
                if layer.go_backwards:
                    raise ValueError(f"Layer {layer.name!r}: go_backwards reads the sequence from its end; "
                                     "a stream only has the steps so far")
                # the weights copied and packed once, as predict packs them
                packed = ops.pack_lstm_weights(
                    *(np.asarray(v.value, self.dtype) for v in (layer.kernel, layer.recurrent_kernel)),
                    np.asarray(layer.bias.value, self.dtype) if layer.use_bias else None)
                stepper = stream_class(packed._impl, self.batch, ops.ACTIVATIONS[layer._act_name],
                                       ops.RECURRENT_ACTIVATIONS[layer._ract_name])
                # [kind, layer, stepper, h, c, whether h and c started from a given state]
                self._plan.append(["LSTM", layer, stepper, None, None, False])
            elif kind in ("Dense", "Activation", "Embedding"):
                self._plan.append([kind, layer])
            else:
                raise ValueError(f"Layer {layer.name!r} ({kind}) cannot run one step at a time: it needs "
                                 "the whole sequence (streaming runs LSTM, Dense, Embedding, Activation "
                                 "and dropout layers)")
        self._embedding_first = bool(self._plan) and self._plan[0][0] == "Embedding"
        self.reset(keep_stateful=True)

    def reset(self, keep_stateful=False):
        """Zero every LSTM's state (a stateful LSTM's own state instead, with keep_stateful)."""
        for p in self._plan:
            if p[0] != "LSTM":
                continue
            layer = p[1]
            h = np.zeros((self.batch, layer.units), self.dtype)
            c = np.zeros((self.batch, layer.units), self.dtype)
            given = keep_stateful and layer.stateful and layer.states is not None and layer.states[0].shape == h.shape
            if given:
                h, c = (np.array(s, self.dtype, copy=True) for s in layer.states)
            p[3], p[4], p[5] = h, c, given
        self._steps = 0

    @property
    def states(self):
        """[(h, c)] of each LSTM, copies."""
        return [(p[3].copy(), p[4].copy()) for p in self._plan if p[0] == "LSTM"]

    def step(self, x_t):
        """The model's output for the next time step x_t: (batch, features), or (batch,) token
        ids for a model that starts with an Embedding."""
        x = np.asarray(x_t)
        if self._embedding_first:
            if x.shape != (self.batch,):
                raise ValueError(f"step() takes one time step of the {self.batch} streams: token ids of shape "
                                 f"({self.batch},); received shape {x.shape}")
        else:
            if x.ndim != 2 or x.shape[0] != self.batch:
                raise ValueError(f"step() takes one time step of the {self.batch} streams: shape "
                                 f"({self.batch}, features); received shape {x.shape}")
            if x.dtype != self.dtype or not x.flags.c_contiguous:
                x = np.ascontiguousarray(x, dtype=self.dtype)
        for p in self._plan:
            if p[0] == "LSTM":  # h and c updated in place by the kernel's one-step path
                p[2].step(x, p[3], p[4], self._steps, p[5])
                x = p[3]
            else:
                x = p[1].forward(x)
                if x.dtype != self.dtype or not x.flags.c_contiguous:
                    x = np.ascontiguousarray(x, dtype=self.dtype)
        self._steps += 1
        return x.copy()
