"""LayerNormalization, as Keras defines it: each sample normalised over `axis` (the features by
default), then scaled and shifted.

With the statistics over the normalised axes (n entries per sample):

    μ = mean(x)      σ² = mean((x − μ)²)      r = 1/√(σ² + ε)
    x̂ = (x − μ)·r    y = γ ⊙ x̂ + β

Backward, with dy given and the sums over the same axes:

    ∂L/∂γ = Σ_samples dy ⊙ x̂        ∂L/∂β = Σ_samples dy
    g = dy ⊙ γ                      ∂L/∂x = r · (g − mean(g) − x̂ · mean(g ⊙ x̂))
"""

import numpy as np

from .. import initializers
from .dense import _set_weight_options, _weight_options_config
from .layer import Layer


class LayerNormalization(Layer):
    """Keras's `LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True,
    beta_initializer="zeros", gamma_initializer="ones", ...)`. Weights: gamma, then beta, shaped
    like the normalised axes. Passes a mask through."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if kwargs.pop("rms_scaling", False):
            raise ValueError("LayerNormalization(rms_scaling=True) is deprecated in Keras and not supported by "
                             "lstmfast.")
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis or not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
                raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
            axis = list(axis)
        elif isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
        if not epsilon > 0:
            raise ValueError(f"Argument `epsilon` must be positive. Received: epsilon={epsilon!r}")
        self.axis = axis
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        _set_weight_options(self, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                            beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.supports_masking = True
        self.gamma = self.beta = None
        self._axes = None

    def _resolve_axes(self, rank):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if a >= rank or a < -rank or a % rank == 0:
                raise ValueError(f"LayerNormalization {self.name!r}: axis {a} is out of bounds for inputs of "
                                 f"rank {rank} (the batch axis 0 cannot be normalised). Received: axis={self.axis}")
        return tuple(sorted({a % rank for a in axes}))

    def build(self, input_shape):
        axes = self._resolve_axes(len(input_shape))
        shape = tuple(input_shape[a] for a in axes)
        if any(d is None for d in shape):
            raise ValueError(f"LayerNormalization {self.name!r} needs known sizes on the normalised axes {list(axes)}. "
                             f"Received: input_shape={tuple(input_shape)}")
        self._axes = axes
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma", regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, "beta", regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        self._resolve_axes(len(input_shape))
        return tuple(input_shape)

    def _broadcast(self, w, rank):
        """gamma or beta shaped to broadcast against the input."""
        shape = [1] * rank
        for a, n in zip(self._axes, w.shape):
            shape[a] = n
        return w.reshape(shape)

    def forward(self, x, mask=None, training=False):
        axes, rank = self._axes, x.ndim
        mu = x.mean(axis=axes, keepdims=True)  # μ
        centred = x - mu
        var = np.mean(centred * centred, axis=axes, keepdims=True)  # σ²
        r = 1.0 / np.sqrt(var + x.dtype.type(self.epsilon))  # r = 1/√(σ² + ε)
        xhat = centred * r  # x̂ = (x − μ)·r
        y = xhat * self._broadcast(self.gamma.value, rank) if self.scale else xhat.copy()  # γ ⊙ x̂
        if self.center:
            y += self._broadcast(self.beta.value, rank)  # + β
        if training:
            self._cache = (xhat, r)
        return y

    def backward(self, dy):
        xhat, r = self._cache
        self._cache = None
        rank = dy.ndim
        others = tuple(a for a in range(rank) if a not in self._axes)  # the axes summed for γ and β
        if self.trainable:
            if self.scale:
                np.copyto(self.gamma._ensure_grad(), np.sum(dy * xhat, axis=others))  # Σ dy ⊙ x̂
            if self.center:
                np.copyto(self.beta._ensure_grad(), np.sum(dy, axis=others))  # Σ dy
        if not self.needs_input_gradient:
            return None
        g = dy * self._broadcast(self.gamma.value, rank) if self.scale else dy  # g = dy ⊙ γ
        mean_g = g.mean(axis=self._axes, keepdims=True)
        mean_gx = np.mean(g * xhat, axis=self._axes, keepdims=True)
        return r * (g - mean_g - xhat * mean_gx)  # r · (g − mean(g) − x̂ · mean(g ⊙ x̂))

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis, epsilon=self.epsilon, center=self.center, scale=self.scale,
            beta_initializer=initializers.serialize(self.beta_initializer),
            gamma_initializer=initializers.serialize(self.gamma_initializer),
            **_weight_options_config(self, "beta_regularizer", "gamma_regularizer", "beta_constraint",
                                     "gamma_constraint"),
        )
        return config
