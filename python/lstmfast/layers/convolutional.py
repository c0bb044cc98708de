"""One-dimensional convolution and max pooling over the time axis, channels last
(B, T, C) as Keras's default (channels_first (B, C, T) is transposed on the way in and out).

Conv1D, with k taps, stride s, dilation d, filters F, and x padded to x̃ (see below):
    z[b, t, f] = Σ_j Σ_c x̃[b, t·s + j·d, c] · kernel[j, c, f] + bias[f],   y = activation(z)
computed as one matrix product: the patches x̃[b, t·s + j·d, :] for every (b, t) form the rows
of a (B·T_out, k·C) matrix P, so z = P · kernel(k·C, F). Backward:
    ∂L/∂kernel = Pᵀ · ∂L/∂z,   ∂L/∂bias = Σ_(b,t) ∂L/∂z,
    ∂L/∂x̃[b, t·s + j·d, :] += (∂L/∂z · kernelᵀ)[b, t, j, :]     (one pass per tap j)
Padding, with k_eff = (k − 1)·d + 1: "valid" none; "causal" k_eff − 1 zeros in front, so that
y_t sees x up to step t only; "same" the total (⌈T/s⌉ − 1)·s + k_eff − T (≥ 0) split as Keras
splits it, the extra zero at the end: T_out = ⌈T/s⌉.

MaxPooling1D, window p, stride s (default p):
    y[b, t, c] = max_j x̃[b, t·s + j, c],    x̃ padded with −inf for "same"
and the gradient goes to the first step holding the maximum in each window (as PyTorch's and
TensorFlow's max pooling route it).

Neither supports masking (as in Keras): a mask reaching them is dropped with a warning.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import activations
from .. import initializers
from .dense import _activation_backward, _kernel_layer_config, _set_weight_options, column_sums, product
from .layer import Layer, _check_data_format, _check_positive_int


def _one_int(value, arg, layer_name):
    """Keras's int-or-1-tuple arguments (kernel_size, strides, …) as a positive int."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(
                f"Argument `{arg}` of {layer_name} must be an int or a tuple of 1 int. Received: {arg}={value!r}"
            )
        value = value[0]
    return int(_check_positive_int(value, arg, layer_name))


def _padding(value, allowed, layer_name):
    value = str(value).lower()
    if value not in allowed:
        raise ValueError(
            f"Argument `padding` of {layer_name} must be one of {allowed}. Received: padding={value!r}"
        )
    return value


def _pads(length, span, stride, padding):
    """(front, back) padding of a sequence of `length` steps for windows of `span` steps."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    total = max(0, (-(-length // stride) - 1) * stride + span - length)  # "same": T_out = ⌈T/s⌉
    return total // 2, total - total // 2


def _windows(xp, n_out, taps, stride, dilation):
    """View (B, n_out, taps, C) of xp (B, T̃, C): element [b, t, j, c] = xp[b, t·stride + j·dilation, c]."""
    b, step, c = xp.strides
    return as_strided(xp, shape=(xp.shape[0], n_out, taps, xp.shape[2]),
                      strides=(b, stride * step, dilation * step, c), writeable=False)


class _TimeWindowLayer(Layer):
    """Shared by Conv1D and MaxPooling1D: the channels_first transposes and the padding."""

    input_axes = ("batch", "steps", "channels")

    def _steps(self, shape):
        return shape[1] if self.data_format == "channels_last" else shape[2]

    def _to_channels_last(self, a):
        return a if self.data_format == "channels_last" else np.ascontiguousarray(a.transpose(0, 2, 1))

    _from_channels_last = _to_channels_last  # the same swap of the last two axes

    def _out_length(self, length):
        """T_out for `length` steps (None: unknown), refusing sequences shorter than a window."""
        if length is None:
            return None
        front, back = _pads(length, self._span, self._stride, self.padding)
        n_out = (length + front + back - self._span) // self._stride + 1
        if n_out < 1:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: {length} steps are fewer than one window of "
                f"{self._span} steps with padding={self.padding!r}. Use longer sequences or padding='same'."
            )
        return n_out

    def _padded(self, x, fill):
        """x padded along time for this layer's windows, the padding, and T_out."""
        length = x.shape[1]
        front, back = _pads(length, self._span, self._stride, self.padding)
        n_out = self._out_length(length)
        if front or back:
            x = np.pad(x, ((0, 0), (front, back), (0, 0)), constant_values=fill)
        return x, front, n_out

    def _scatter_windows(self, grads, padded_len, front, length, taps, dilation):
        """Σ over windows of per-tap gradients grads (B, T_out, taps, C) onto the steps of x."""
        b, n_out, _, c = grads.shape
        dxp = np.zeros((b, padded_len, c), grads.dtype)
        end = self._stride * (n_out - 1) + 1
        for j in range(taps):  # one pass per tap (a handful), not per step
            dxp[:, j * dilation: j * dilation + end: self._stride] += grads[:, :, j, :]
        return dxp[:, front: front + length]


class Conv1D(_TimeWindowLayer):
    """Keras's `Conv1D(filters, kernel_size, strides=1, padding="valid", data_format=None,
    dilation_rate=1, groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
    bias_initializer="zeros")`; kernel (kernel_size, channels, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        for k in ("lora_rank", "lora_alpha"):
            if kwargs.pop(k, None) is not None:
                raise ValueError(f"Argument `{k}` of Conv1D is not supported by lstmfast.")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.filters = int(_check_positive_int(filters, "filters", "Conv1D"))
        self.kernel_size = (_one_int(kernel_size, "kernel_size", "Conv1D"),)
        self.strides = (_one_int(strides, "strides", "Conv1D"),)
        self.dilation_rate = (_one_int(dilation_rate, "dilation_rate", "Conv1D"),)
        self.padding = _padding(padding, ("valid", "same", "causal"), "Conv1D")
        self.data_format = _check_data_format(data_format)
        if groups != 1:
            raise ValueError(f"Argument `groups` of Conv1D: only 1 is supported by lstmfast. Received: groups={groups!r}")
        self.groups = 1
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel = self.bias = None
        self._stride = self.strides[0]
        self._span = (self.kernel_size[0] - 1) * self.dilation_rate[0] + 1  # k_eff

    def build(self, input_shape):
        channels = input_shape[-1] if self.data_format == "channels_last" else input_shape[1]
        if channels is None:
            raise ValueError(
                f"Conv1D {self.name!r} needs a known number of channels. Received: input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight((self.kernel_size[0], int(channels), self.filters), self.kernel_initializer,
                                      "kernel", regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._dact = None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        n = self._out_length(self._steps(input_shape))
        if self.data_format == "channels_last":
            return (input_shape[0], n, self.filters)
        return (input_shape[0], self.filters, n)

    def forward(self, x, mask=None, training=False):
        x = self._to_channels_last(x)
        xp, front, n_out = self._padded(x, 0)
        k, c = self.kernel_size[0], x.shape[2]
        # P: one row per (b, t), the k·C values of its window; z = P · kernel + bias
        patches = _windows(xp, n_out, k, self._stride, self.dilation_rate[0]).reshape(-1, k * c)
        bias = self.bias.value if self.use_bias else None
        z = product(patches, self.kernel.value.reshape(k * c, self.filters), bias).reshape(
            x.shape[0], n_out, self.filters)
        y = z if self.activation is activations.linear else self.activation(z)
        if training:
            self._cache = (patches, z, y, xp.shape[1], front, x.shape[1])
        return self._from_channels_last(y)

    def backward(self, dy):
        patches, z, y, padded_len, front, length = self._cache
        self._cache = None
        dz = _activation_backward(self, self._to_channels_last(dy), z, y)
        dz2 = dz.reshape(-1, self.filters)
        kernel = self.kernel.value
        if self.trainable:
            # ∂L/∂kernel = Pᵀ · ∂L/∂z ; ∂L/∂bias = Σ ∂L/∂z over batch and time
            product(patches, dz2, out=self.kernel._ensure_grad().reshape(-1, self.filters), transpose_a=True)
            if self.use_bias:
                column_sums(dz2, self.bias._ensure_grad())
        if not self.needs_input_gradient:
            return None
        k, c = kernel.shape[0], kernel.shape[1]
        dpatches = product(dz2, kernel.reshape(k * c, self.filters), transpose_b=True).reshape(
            dz.shape[0], dz.shape[1], k, c)
        dx = self._scatter_windows(dpatches, padded_len, front, length, k, self.dilation_rate[0])
        return self._from_channels_last(dx)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format, "dilation_rate": self.dilation_rate,
            "groups": self.groups,
        })
        config.update(_kernel_layer_config(self))
        return config


class MaxPooling1D(_TimeWindowLayer):
    """Keras's `MaxPooling1D(pool_size=2, strides=None, padding="valid", data_format=None)`."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = (_one_int(pool_size, "pool_size", "MaxPooling1D"),)
        self.strides = self.pool_size if strides is None else (_one_int(strides, "strides", "MaxPooling1D"),)
        self.padding = _padding(padding, ("valid", "same"), "MaxPooling1D")
        self.data_format = _check_data_format(data_format)
        self.built = True
        self._stride, self._span = self.strides[0], self.pool_size[0]

    def compute_output_shape(self, input_shape):
        n = self._out_length(self._steps(input_shape))
        if self.data_format == "channels_last":
            return (input_shape[0], n, input_shape[2])
        return (input_shape[0], input_shape[1], n)

    def forward(self, x, mask=None, training=False):
        x = self._to_channels_last(x)
        xp, front, n_out = self._padded(x, -np.inf)
        win = _windows(xp, n_out, self._span, self._stride, 1)
        first = win.argmax(axis=2)  # (B, T_out, C): the first step of each window holding its max
        y = np.take_along_axis(win, first[:, :, None, :], axis=2)[:, :, 0, :]
        if training:
            self._cache = (first, xp.shape[1], front, x.shape[1])
        return self._from_channels_last(y)

    def backward(self, dy):
        first, padded_len, front, length = self._cache
        self._cache = None
        dy = self._to_channels_last(dy)
        taps = np.arange(self._span)[None, None, :, None]
        grads = np.where(first[:, :, None, :] == taps, dy[:, :, None, :], dy.dtype.type(0))
        return self._from_channels_last(self._scatter_windows(grads, padded_len, front, length, self._span, 1))

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                       "data_format": self.data_format})
        return config
