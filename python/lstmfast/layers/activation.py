"""Activation: apply an activation function element-wise (softmax on the last axis)."""

from .. import activations
from .layer import Layer


class Activation(Layer):
    """Keras's `Activation(activation)`; passes masks through."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True
        self.built = True

    def forward(self, x, mask=None, training=False):
        y = self.activation(x)
        if training:
            self._x, self._y = x, y
        return y

    def backward(self, dy):
        dx = activations.derivative(self.activation)(dy, self._x, self._y)
        self._x = self._y = None
        return dx

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
