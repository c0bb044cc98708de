"""The flat parameter buffer: every trainable weight of a model as a slice of one array.

    values = [ kernel | recurrent_kernel | bias | dense kernel | ... ]    one aligned array
    grads  = [ ∂L/∂kernel | ...                                     ]    the same layout

A model packs its weights into it before training: each `Variable.value` (and `.grad`) becomes a
view of its slice, so layers read and write their weights as before while the optimizer updates
the whole buffer in one fused call. Each slice starts on a 64-byte boundary.
"""

import numpy as np

__all__ = ["FlatParameters", "aligned_zeros"]

ALIGN = 16  # slices start on 64-byte boundaries (float32)


def aligned_zeros(n, dtype, alignment=64):
    """A zeroed 1-D array whose data start on an `alignment`-byte boundary.

    Vectorised kernels treat a buffer's unaligned head element by element; where that path
    rounds differently from the vector path, results would depend on where malloc put the
    buffer. Aligning every parameter, gradient and optimizer buffer keeps runs bit-identical.
    """
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + n * dtype.itemsize].view(dtype)


class FlatParameters:
    """`variables` moved into one buffer: `values` and `grads` (1-D, aligned) and `segments`,
    the (start, stop) slice of each variable, in order."""

    def __init__(self, variables, dtype):
        self.variables = list(variables)
        self.segments, offset = [], 0
        for v in self.variables:
            self.segments.append((offset, offset + v.value.size))
            offset += -(-v.value.size // ALIGN) * ALIGN
        self.values = aligned_zeros(max(offset, 1), dtype)
        # Two more slots after the gradients: data-parallel training sums its step's loss and a
        # flag with them, in the same allreduce (trainers.distributed).
        self.grads_and_step = aligned_zeros(self.values.size + 2, dtype)
        self.grads = self.grads_and_step[:self.values.size]
        for v, (a, b) in zip(self.variables, self.segments):
            view = self.values[a:b].reshape(v.value.shape)
            view[...] = v.value
            v.value = view
            v.grad = self.grads[a:b].reshape(view.shape)

    def holds(self, variables):
        """Whether `variables` are exactly the ones packed here and still live in this buffer
        (another model sharing layers may have moved them into its own since)."""
        variables = list(variables)
        return (len(variables) == len(self.variables)
                and all(a is b for a, b in zip(variables, self.variables))
                and all(np.may_share_memory(v.value, self.values) for v in variables))
