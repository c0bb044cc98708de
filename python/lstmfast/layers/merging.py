"""Merge layers, as Keras defines them: a list of tensors in, one tensor out (functional API).

    Add:         y = Σ_k x_k                 ∂L/∂x_k = dy
    Subtract:    y = x_0 − x_1               ∂L/∂x_0 = dy,  ∂L/∂x_1 = −dy
    Average:     y = (1/K) Σ_k x_k           ∂L/∂x_k = dy / K
    Multiply:    y = Π_k x_k                 ∂L/∂x_k = dy ⊙ Π_{j≠k} x_j
    Maximum:     y = max_k x_k               ∂L/∂x_k = dy where x_k gave the maximum (the first
    Minimum:     y = min_k x_k                 operand on ties), else 0; likewise the minimum
    Concatenate: y = [x_0 | x_1 | …] on `axis`      ∂L/∂x_k = the k-th slice of dy
    Dot:         y = x̂_0 · x̂_1 over `axes` (x̂ = x/‖x‖ with normalize, else x), batch by batch

Inputs of different ranks are broadcast as Keras does (size-1 axes inserted after the batch
axis). Masks follow Keras: Add, Subtract, Average, Multiply, Maximum and Minimum return the OR of
the inputs' masks when every input has one (None otherwise); Concatenate ORs the masks of what it
joins (an input without a mask counts as unmasked); Dot returns no mask. Where masks are given,
Multiply treats masked entries as 1 (and zeroes the output outside the merged mask), Maximum and
Minimum take each entry from the inputs unmasked there, as Keras does.
"""

import numpy as np

from .. import graph, ops
from .layer import Layer, _fmt_shape


class Merge(Layer):
    """Base of the merge layers: called on a list of tensors; `forward(xs, masks, training)`
    returns the merged array, `backward(dy)` the list of ∂L/∂x_k."""

    _min_inputs = 1
    _max_inputs = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.built = False

    # ----- shapes -----
    def _check_count(self, n):
        name = type(self).__name__
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            want = (f"exactly {self._min_inputs}" if self._min_inputs == self._max_inputs
                    else f"at least {self._min_inputs}")
            raise ValueError(f"A `{name}` layer should be called on a list of {want} inputs. "
                             f"Received {n} inputs.")

    def _shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(
                f"A merge layer should be called on a list of inputs. Received: input_shape={input_shape} "
                "(not a list of shapes)"
            )
        self._check_count(len(input_shape))
        shapes = [tuple(s) for s in input_shape]
        batches = {s[0] for s in shapes} - {None}
        if len(batches) > 1:
            raise ValueError(f"Cannot merge tensors with different batch sizes. Received tensors with shapes {shapes}")
        return shapes

    def build(self, input_shape):
        self.compute_output_shape(input_shape)  # validates
        self._build_input_shape = [tuple(s) for s in input_shape]
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)
        if self._output_shape is None:
            self._build_input_shape = [tuple(s) for s in input_shape]
            self._output_shape = self.compute_output_shape(input_shape)

    def _check_input_shape(self, shape):
        expected = self._build_input_shape
        if expected is None:
            return
        if len(shape) != len(expected) or any(
                len(s) != len(e) or any(a is not None and a != b for a, b in zip(e[1:], s[1:]))
                for s, e in zip(shape, expected)):
            raise ValueError(
                f'Input of layer "{self.name}" is incompatible with the layer: expected shapes '
                f"{[_fmt_shape(e) for e in expected]}, found {[_fmt_shape(tuple(s)) for s in shape]}"
            )

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        out = shapes[0][1:]
        for s in shapes[1:]:
            out = _broadcast_shape(out, s[1:], shapes)
        batches = {s[0] for s in shapes} - {None}
        return (batches.pop() if batches else None,) + tuple(out)

    # ----- calls -----
    def graph_inputs(self, inputs, kwargs):
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(t, graph.KerasTensor) for t in inputs):
            raise ValueError(
                f"A merge layer should be called on a list of inputs. Received: inputs={inputs!r} "
                "(not a list of tensors)"
            )
        if kwargs:
            raise TypeError(f"Unsupported arguments in a call of layer {self.name!r}: {sorted(kwargs)}")
        self._check_count(len(inputs))
        return list(inputs)

    def _graph_input_shape(self, inbound):
        return [tuple(t.shape) for t in inbound]

    def graph_forward(self, inputs, masks, training):
        return (self.forward([self.receive(x) for x in inputs], masks, training),)

    def graph_compute_mask(self, inputs, masks):
        return self.compute_mask(inputs, masks)

    def graph_output_has_mask(self, input_has_masks):
        return all(input_has_masks)

    def graph_backward(self, d_outputs):
        return self.backward(d_outputs[0])

    def __call__(self, inputs, training=False, mask=None, **kwargs):
        """On a list of arrays: the merged array (inference); on a list of Input tensors: the
        output tensor of a functional model."""
        if graph.is_symbolic(inputs):
            if mask is not None:
                kwargs["mask"] = mask
            return self._symbolic_call(inputs, kwargs)
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: inputs={inputs!r}")
        xs = [self._cast_input(x) for x in inputs]
        self._maybe_build([x.shape for x in xs])
        masks = None if mask is None else [None if m is None else np.asarray(m, dtype=bool) for m in mask]
        return self.forward(xs, masks, bool(training))

    def forward(self, xs, masks=None, training=False):
        self._given_shapes = [x.shape for x in xs]
        xs = _same_rank(xs)
        if masks is None or all(m is None for m in masks):
            masks = None
        return self._merge(xs, masks)

    def backward(self, dy):
        """∂L/∂x_k of each input, in the shape it was given (lower ranks included)."""
        return [d.reshape(s) for d, s in zip(self._merge_backward(dy), self._given_shapes)]

    def compute_mask(self, inputs, mask=None):
        if mask is None or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = np.logical_or(out, m)
        return out

    def _sum_to(self, d, shape):
        """∂L/∂x for an x of `shape` that was broadcast to d's shape: sum over the broadcast axes."""
        shape = tuple(shape)
        if d.shape == shape:
            return d
        lead = d.ndim - len(shape)
        axes = tuple(range(1, 1 + lead)) + tuple(
            lead + i for i, n in enumerate(shape) if i > 0 and n == 1 and d.shape[lead + i] != 1)
        return d.sum(axis=axes, keepdims=True).reshape(shape) if axes else d.reshape(shape)


def _broadcast_shape(a, b, shapes):
    """Keras's element-wise output shape of two shapes without their batch axis."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return tuple(a)
    out = list(a[:len(a) - len(b)])
    for i, j in zip(a[len(a) - len(b):], b):
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1 or i == j:
            out.append(i)
        else:
            raise ValueError(f"Inputs have incompatible shapes. Received shapes {shapes}")
    return tuple(out)


def _same_rank(xs):
    """Inputs of lower rank get size-1 axes after the batch axis (Keras's broadcasting)."""
    top = max(x.ndim for x in xs)
    return [x.reshape((x.shape[0],) + (1,) * (top - x.ndim) + x.shape[1:]) if x.ndim < top else x for x in xs]


def _expand(mask, x):
    """A (B, …) mask broadcast over the trailing feature axis of x."""
    return np.broadcast_to(mask[..., None] if mask.ndim < x.ndim else mask, x.shape)


class Add(Merge):
    """Keras's `Add()`: the element-wise sum of its inputs."""

    def _merge(self, xs, masks):
        self._shapes_in = [x.shape for x in xs]
        y = xs[0]
        for x in xs[1:]:
            y = y + x  # y = Σ_k x_k
        return y

    def _merge_backward(self, dy):
        return [self._sum_to(dy, s) for s in self._shapes_in]  # ∂L/∂x_k = dy


class Subtract(Merge):
    """Keras's `Subtract()`: x_0 − x_1 of exactly two inputs."""

    _min_inputs = _max_inputs = 2

    def _merge(self, xs, masks):
        self._shapes_in = [x.shape for x in xs]
        return xs[0] - xs[1]  # y = x_0 − x_1

    def _merge_backward(self, dy):
        return [self._sum_to(dy, self._shapes_in[0]), self._sum_to(-dy, self._shapes_in[1])]


class Average(Merge):
    """Keras's `Average()`: the element-wise mean of its inputs."""

    def _merge(self, xs, masks):
        self._shapes_in = [x.shape for x in xs]
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y / len(xs)  # y = (1/K) Σ_k x_k

    def _merge_backward(self, dy):
        d = dy / len(self._shapes_in)  # ∂L/∂x_k = dy / K
        return [self._sum_to(d, s) for s in self._shapes_in]


class Multiply(Merge):
    """Keras's `Multiply()`: the element-wise product of its inputs."""

    def _merge(self, xs, masks):
        self._shapes_in = [x.shape for x in xs]
        self._out_mask = None
        if masks is not None:
            # masked entries count as 1; the product is zeroed outside the merged mask when
            # every input has a mask (Keras)
            full = [None if m is None else _expand(m, x) for m, x in zip(masks, xs)]
            xs = [x if m is None else np.where(m, x, x.dtype.type(1)) for x, m in zip(xs, full)]
            self._in_masks = full
            if all(m is not None for m in full):
                self._out_mask = np.logical_or.reduce(full)
        else:
            self._in_masks = [None] * len(xs)
        self._xs = xs
        y = xs[0]
        for x in xs[1:]:
            y = y * x  # y = Π_k x_k
        if self._out_mask is not None:
            y = np.where(self._out_mask, y, y.dtype.type(0))
        return y

    def _merge_backward(self, dy):
        if self._out_mask is not None:
            dy = np.where(self._out_mask, dy, dy.dtype.type(0))
        out = []
        for k, (s, m) in enumerate(zip(self._shapes_in, self._in_masks)):
            d = dy
            for j, x in enumerate(self._xs):
                if j != k:
                    d = d * x  # ∂L/∂x_k = dy ⊙ Π_{j≠k} x_j
            if m is not None:
                d = np.where(m, d, d.dtype.type(0))
            out.append(self._sum_to(d, s))
        self._xs = self._in_masks = None
        return out


class _Extremum(Merge):
    """Maximum and Minimum: each entry from the input holding the extremum there (Keras's
    order: the running result against the next input, masked entries replaced by the other)."""

    def _merge(self, xs, masks):
        self._shapes_in = [x.shape for x in xs]
        shape = np.broadcast_shapes(*[x.shape for x in xs])
        full = [None] * len(xs) if masks is None else [None if m is None else _expand(m, np.empty(shape, bool))
                                                         for m in masks]
        y = np.broadcast_to(xs[0], shape)
        src = np.zeros(shape, dtype=np.int32)  # which input each entry of y came from
        y_mask = full[0]
        for k in range(1, len(xs)):
            x = np.broadcast_to(xs[k], shape)
            x_src = np.full(shape, k, dtype=np.int32)
            if full[k] is not None:
                x, x_src = np.where(full[k], x, y), np.where(full[k], x_src, src)
            if y_mask is not None:
                y, src = np.where(y_mask, y, x), np.where(y_mask, src, x_src)
            y_mask = np.logical_or(y_mask, full[k]) if y_mask is not None and full[k] is not None else None
            take = self._better(x, y)  # the earlier operand on ties
            y, src = np.where(take, x, y), np.where(take, x_src, src)
        self._src = src
        return np.ascontiguousarray(y)

    def _merge_backward(self, dy):
        out = [self._sum_to(np.where(self._src == k, dy, dy.dtype.type(0)), s)
               for k, s in enumerate(self._shapes_in)]  # ∂L/∂x_k = dy where x_k is the extremum
        self._src = None
        return out


class Maximum(_Extremum):
    """Keras's `Maximum()`: the element-wise maximum of its inputs."""

    @staticmethod
    def _better(x, y):
        return x > y


class Minimum(_Extremum):
    """Keras's `Minimum()`: the element-wise minimum of its inputs."""

    @staticmethod
    def _better(x, y):
        return x < y


class Concatenate(Merge):
    """Keras's `Concatenate(axis=-1)`: inputs joined along `axis`."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Argument `axis` of Concatenate must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        ranks = {len(s) for s in shapes}
        axis = self.axis % len(shapes[0])
        if len(ranks) != 1 or axis == 0 or any(
                len({s[i] for s in shapes} - {None}) > 1 for i in range(len(shapes[0])) if i not in (0, axis)):
            raise ValueError(
                "A `Concatenate` layer requires inputs with matching shapes except for the concatenation "
                f"axis. Received: input_shape={shapes}"
            )
        out = list(shapes[0])
        for i in range(1, len(out)):
            if i != axis:
                out[i] = next((s[i] for s in shapes if s[i] is not None), None)
        sizes = [s[axis] for s in shapes]
        out[axis] = None if None in sizes else int(sum(sizes))
        return tuple(out)

    def graph_output_has_mask(self, input_has_masks):
        return any(input_has_masks)

    def forward(self, xs, masks=None, training=False):
        self._sizes = [x.shape[self.axis] for x in xs]
        return ops.concatenate(xs, axis=self.axis)  # y = [x_0 | x_1 | …]

    def backward(self, dy):
        # ∂L/∂x_i: views of dy's parts (a layer whose kernel needs contiguous rows copies them;
        # attention's kernel and a sum with another gradient take them as they lie)
        out, start, index = [], 0, [slice(None)] * dy.ndim
        for n in self._sizes:
            index[self.axis] = slice(start, start + n)
            out.append(dy[tuple(index)])
            start += n
        return out

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        full = [np.ones(x.shape, bool) if m is None else _expand(np.asarray(m, bool), x)
                for x, m in zip(inputs, mask)]
        return np.any(np.concatenate(full, axis=self.axis), axis=-1)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class Dot(Merge):
    """Keras's `Dot(axes, normalize=False)`: the dot product of two inputs over `axes`, sample by
    sample; with `normalize`, of their L2-normalised versions (cosine similarity)."""

    _min_inputs = _max_inputs = 2
    _EPSILON = 1e-7  # Keras's backend.epsilon(): the norm is taken as at least this

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
                raise ValueError(f"Invalid format for argument `axes`: it should contain two integers. Received: axes={axes}")
            axes = tuple(int(a) for a in axes)
        elif isinstance(axes, bool) or not isinstance(axes, (int, np.integer)):
            raise TypeError(f"Invalid type for argument `axes`: it should be a list or an int. Received: axes={axes!r}")
        else:
            axes = int(axes)
        self.axes = axes
        self.normalize = bool(normalize)

    def _axes(self, ranks):
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        axes = tuple(a % r if a < 0 else a for a, r in zip(axes, ranks))
        if 0 in axes or any(a >= r for a, r in zip(axes, ranks)):
            raise ValueError(f"Dot {self.name!r}: axes {self.axes} do not fit inputs of ranks {ranks} "
                             "(the batch axis 0 cannot be one).")
        return axes

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        if any(len(s) not in (2, 3) for s in shapes):
            raise ValueError(f"Dot {self.name!r} takes inputs of rank 2 or 3. Received: input_shape={shapes}")
        a0, a1 = self._axes([len(s) for s in shapes])
        s0, s1 = list(shapes[0]), list(shapes[1])
        if s0[a0] is not None and s1[a1] is not None and s0[a0] != s1[a1]:
            raise ValueError(
                f"Incompatible input shapes: axis values {s0[a0]} (at axis {a0}) != {s1[a1]} (at axis {a1}). "
                f"Full input shapes: {shapes[0]}, {shapes[1]}"
            )
        s0.pop(a0)
        s1.pop(a1)
        out = s0 + s1[1:]
        return tuple(out + [1] if len(out) == 1 else out)

    def graph_output_has_mask(self, input_has_masks):
        return False

    def compute_mask(self, inputs, mask=None):
        return None

    def _normalized(self, x, axis):
        # x̂ = x · r,  r = min(1/√(Σ x²), 1/ε) over `axis`
        r = np.minimum(1.0 / np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), x.dtype.type(1.0 / self._EPSILON))
        return x * r, r

    def forward(self, xs, masks=None, training=False):
        x, y = xs
        a0, a1 = self._axes([x.ndim, y.ndim])
        self._in = (x.shape, y.shape, a0, a1)
        if self.normalize:
            with np.errstate(divide="ignore"):
                (x, rx), (y, ry) = self._normalized(x, a0), self._normalized(y, a1)
            self._norm = (x, rx, y, ry)
        # batch_dot: X (B, m, K) · Y (B, K, n) = Z (B, m, n), K the contracted axis
        X = np.moveaxis(x, a0, -1) if x.ndim == 3 else x[:, None, :]
        Y = np.moveaxis(y, a1, 1) if y.ndim == 3 else y[:, :, None]
        self._XY = (X, Y)
        z = np.matmul(X, Y)
        return z.reshape((z.shape[0],) + self._out_tail(x.shape, y.shape, a0, a1))

    @staticmethod
    def _out_tail(sx, sy, a0, a1):
        s0, s1 = list(sx), list(sy)
        s0.pop(a0)
        s1.pop(a1)
        out = s0[1:] + s1[1:]
        return tuple(out or [1])

    def backward(self, dy):
        X, Y = self._XY
        sx, sy, a0, a1 = self._in
        dZ = dy.reshape(X.shape[0], X.shape[1], Y.shape[2])
        dX = np.matmul(dZ, np.swapaxes(Y, 1, 2))  # ∂L/∂X = dZ · Yᵀ
        dY = np.matmul(np.swapaxes(X, 1, 2), dZ)  # ∂L/∂Y = Xᵀ · dZ
        dx = np.moveaxis(dX, -1, a0) if len(sx) == 3 else dX[:, 0, :]
        dy_ = np.moveaxis(dY, 1, a1) if len(sy) == 3 else dY[:, :, 0]
        if self.normalize:
            xh, rx, yh, ry = self._norm
            dx, dy_ = self._normalize_backward(dx, xh, rx, a0), self._normalize_backward(dy_, yh, ry, a1)
            self._norm = None
        self._XY = None
        return [np.ascontiguousarray(dx), np.ascontiguousarray(dy_)]

    def _normalize_backward(self, d, xh, r, axis):
        # x̂ = x·r, r = (Σ x²)^(−1/2):  ∂L/∂x = r ⊙ (d − x̂ Σ(d ⊙ x̂));  r clipped at 1/ε: ∂L/∂x = r ⊙ d
        clipped = r >= r.dtype.type(1.0 / self._EPSILON)
        full = r * (d - xh * np.sum(d * xh, axis=axis, keepdims=True))
        return np.where(clipped, r * d, full)

    def get_config(self):
        config = super().get_config()
        config.update(axes=list(self.axes) if isinstance(self.axes, tuple) else self.axes, normalize=self.normalize)
        return config
