"""Streaming inference, one time step per call: `stream = model.stream(batch=1)`,
`y_t = stream.step(x_t)`, `stream.reset()`.

For a Sequential model of LSTM, Dense, Embedding, Activation and dropout layers. Each LSTM keeps
its state (h, c) between calls and runs the same kernel as `predict` on one step from that state,
with its weights packed once when the stream is made:

    z_t = x_t·W + h_{t−1}·U + b ;  c_t = f⊙c_{t−1} + i⊙g ;  h_t = o⊙φ(c_t)

so T calls of `step` give what `predict` gives on the T steps: an LSTM with
`return_sequences=True` its output at step t, one without it its output as if the sequence ended
at t (what a model answering after every new sample wants). Equal within float32 rounding, and
bit for bit from a batch of 3 up (measured at batches 3, 5, 17 and 64): `predict` projects the inputs of all
steps in one product, and the product's blocks of 1 or 2 rows add their terms in another order
(four partial sums, for speed) than larger blocks. A stateful LSTM's stream starts from
the layer's current state. Layers that need the whole sequence (`go_backwards`, `Bidirectional`,
`RepeatVector`, pooling over time) are refused with the reason. The weights are those of the
moment the stream is made: make a new stream after training.
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
        self._plan = []
        for layer in model._layers:
            kind = type(layer).__name__
            if kind in _IDENTITY:
                continue
            if kind == "LSTM":
                if layer.go_backwards:
                    raise ValueError(f"Layer {layer.name!r}: go_backwards reads the sequence from its end; "
                                     "a stream only has the steps so far")
                weights = [np.ascontiguousarray(v.value) for v in (layer.kernel, layer.recurrent_kernel)]
                bias = np.ascontiguousarray(layer.bias.value) if layer.use_bias else None
                self._plan.append(["LSTM", layer, ops.pack_lstm_weights(*weights, bias), None, None])
            elif kind in ("Dense", "Activation", "Embedding"):
                self._plan.append([kind, layer])
            else:
                raise ValueError(f"Layer {layer.name!r} ({kind}) cannot run one step at a time: it needs "
                                 "the whole sequence (streaming runs LSTM, Dense, Embedding, Activation "
                                 "and dropout layers)")
        self._first = next((p for p in self._plan), None)
        self.reset(keep_stateful=True)

    def reset(self, keep_stateful=False):
        """Zero every LSTM's state (a stateful LSTM's own state instead, with keep_stateful)."""
        for p in self._plan:
            if p[0] != "LSTM":
                continue
            layer = p[1]
            h = np.zeros((self.batch, layer.units), self.dtype)
            c = np.zeros((self.batch, layer.units), self.dtype)
            if keep_stateful and layer.stateful and layer.states is not None \
                    and layer.states[0].shape == h.shape:
                h, c = (np.array(s, self.dtype, copy=True) for s in layer.states)
            p[3], p[4] = h, c

    @property
    def states(self):
        """[(h, c)] of each LSTM, copies."""
        return [(p[3].copy(), p[4].copy()) for p in self._plan if p[0] == "LSTM"]

    def step(self, x_t):
        """The model's output for the next time step x_t: (batch, features), or (batch,) token
        ids for a model that starts with an Embedding."""
        x = np.asarray(x_t)
        embedding_first = self._first is not None and self._first[0] == "Embedding"
        want = (self.batch,) if embedding_first else None
        if x.ndim == 0 or x.shape[0] != self.batch or (want is not None and x.shape != want) \
                or (want is None and x.ndim != 2):
            raise ValueError(f"step() takes one time step of the {self.batch} streams: "
                             f"{'token ids of shape (%d,)' % self.batch if embedding_first else 'shape (%d, features)' % self.batch}"
                             f"; received shape {x.shape}")
        if not embedding_first:
            x = np.ascontiguousarray(x, dtype=self.dtype)
        for p in self._plan:
            kind, layer = p[0], p[1]
            if kind == "LSTM":
                r = ops.lstm_forward(x[:, None, :], p[2], h0=p[3], c0=p[4], return_sequences=False,
                                     activation=layer._act_name, recurrent_activation=layer._ract_name)
                p[3], p[4] = r.h, r.c
                x = r.h
            elif kind == "Embedding":
                x = layer.forward(x)
            else:
                x = layer.forward(x)
        return x
