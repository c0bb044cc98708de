"""Dense: y = activation(x·kernel + bias) on the last axis.

Shapes: x (..., D) -> y (..., units); kernel (D, units); bias (units,). Works on 2-D (B, D) and
3-D (B, T, D) input alike; the gradient sums over every leading axis.
"""

import numpy as np

from .. import activations
from .. import ops
from .. import constraints
from .. import initializers
from .. import regularizers
from .layer import Layer, _check_positive_int


class Dense(Layer):
    """Keras's `Dense(units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")`. Passes an incoming mask through unchanged."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        for k in ("lora_rank", "lora_alpha", "quantization_config"):
            if kwargs.pop(k, None) is not None:
                raise ValueError(f"Argument `{k}` of Dense is not supported by lstmfast.")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.units = _check_positive_int(units, "units", "Dense")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.supports_masking = True
        self.kernel = None
        self.bias = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Dense layer {self.name!r} needs inputs with a known last axis, shaped (batch, ..., "
                f"features). Received: input_shape={tuple(input_shape)}"
            )
        d = int(input_shape[-1])
        self.kernel = self.add_weight((d, self.units), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._dact = None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, mask=None, training=False):
        # z = x·kernel + bias ; y = activation(z). A sequence (B, T, D) is multiplied as one
        # (B·T, D) matrix.
        bias = self.bias.value if self.use_bias else None
        z = product(x.reshape(-1, x.shape[-1]), self.kernel.value, bias).reshape(x.shape[:-1] + (self.units,))
        y = z if self.activation is activations.linear else self.activation(z)
        if training:
            self._x, self._z, self._y = x, z, y
        return y

    def backward(self, dy):
        dz = _activation_backward(self, dy, self._z, self._y)
        x2 = self._x.reshape(-1, self._x.shape[-1])
        dz2 = dz.reshape(-1, self.units)
        if self.trainable:
            # dL/dkernel = xᵀ·dz ; dL/dbias = Σ dz over all leading axes
            product(x2, dz2, out=self.kernel._ensure_grad(), transpose_a=True)
            if self.use_bias:
                column_sums(dz2, self.bias._ensure_grad())
        self._x = self._z = self._y = None
        if not self.needs_input_gradient:
            return None
        return product(dz2, self.kernel.value, transpose_b=True).reshape(dz.shape[:-1] + (self.kernel.value.shape[0],))

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        config.update(_kernel_layer_config(self))
        return config


def column_sums(a, out):
    """``out = Σ_r a[r, :]`` over the rows of a 2-D array (a bias's gradient): on the kernels'
    threads (ops.column_sums) for a float32 or float64 ``a`` of ``out``'s dtype, with numpy
    otherwise."""
    if a.dtype == out.dtype and a.dtype in (np.float32, np.float64) and out.flags.c_contiguous:
        return ops.column_sums(np.ascontiguousarray(a), out=out)
    return np.sum(a, axis=0, out=out)


def product(a, b, bias=None, out=None, transpose_a=False, transpose_b=False):
    """op(a)·op(b) [+ bias] of 2-D arrays, written to `out` when given: on the kernels' threads
    (ops.matmul) for float32 and float64 of one dtype, with numpy otherwise."""
    if a.dtype == b.dtype and a.dtype in (np.float32, np.float64) and (bias is None or bias.dtype == a.dtype):
        return ops.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b), bias=bias, out=out,
                          transpose_a=transpose_a, transpose_b=transpose_b)
    a, b = (a.T if transpose_a else a), (b.T if transpose_b else b)
    if out is None:
        out = a @ b
    else:
        np.matmul(a, b, out=out)
    if bias is not None:
        out += bias
    return out


def _activation_backward(layer, dy, z, y):
    """∂L/∂z = ∂L/∂y ⊙ activation'(z) for a layer y = activation(z) (Dense, Conv1D). A softmax
    layer told by its model that dy is already ∂L/∂z (a crossentropy loss takes the gradient
    past the softmax itself: `Loss._loss_and_grad(softmax_logits=True)`) passes it on."""
    if layer.activation is activations.linear:
        return dy
    if layer.__dict__.pop("_gradient_is_for_logits", False):
        return dy
    if layer._dact is None:
        layer._dact = activations.derivative(layer.activation)
    return layer._dact(dy, z, y)


def softmax_output(layer):
    """The layer inside `layer` (itself, or what a TimeDistributed wraps) that makes a softmax
    output through _activation_backward and takes ∂L/∂z from the loss, or None."""
    inner = getattr(layer, "layer", None) if type(layer).__name__ == "TimeDistributed" else layer
    if getattr(inner, "activation", None) is not activations.softmax or not hasattr(inner, "kernel"):
        return None
    if layer.activity_regularizer is not None or inner.activity_regularizer is not None:
        return None  # R(y) adds its own ∂R/∂y to the output's gradient
    return inner


def _kernel_layer_config(layer):
    """The config entries of a layer with activation, kernel and bias (Dense, Conv1D)."""
    return {
        "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        **_weight_options_config(layer, "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                 "kernel_constraint", "bias_constraint"),
    }


def _set_weight_options(layer, **options):
    """The layer's regularizers (`*_regularizer`) and constraints (`*_constraint`), resolved from
    names, configs or instances, as attributes of the same names."""
    for key, value in options.items():
        module = regularizers if key.endswith("_regularizer") else constraints
        setattr(layer, key, module.get(value))


def _weight_options_config(layer, *keys):
    """Keras's config entries of the layer's regularizers and constraints."""
    return {key: (regularizers if key.endswith("_regularizer") else constraints).serialize(getattr(layer, key))
            for key in keys}
