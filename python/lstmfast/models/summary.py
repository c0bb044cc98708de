"""`model.summary()`: Keras's table of layers, output shapes and parameter counts."""

import numpy as np

from ..layers.layer import _fmt_shape


def readable_size(nbytes):
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    size = float(nbytes)
    for unit in units:
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} {units[-1]}"


def print_summary(model, print_fn):
    """Print `model`'s table through `print_fn`, a line at a time, as Keras 3 draws it."""
    rows = []
    for layer in model.layers:
        shape = _fmt_shape(layer._output_shape) if layer._output_shape is not None else "?"
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, params))
    w = [max(31, max((len(r[0]) for r in rows), default=0) + 1), 22, 13]
    w[1] = max(w[1], max((len(r[1]) for r in rows), default=0) + 1)

    def line(l, m, r, fill="━"):
        return l + m.join(fill * (x + 2) for x in w) + r

    lines = [f'Model: "{model.name}"', line("┏", "┳", "┓"),
             "┃ " + " ┃ ".join([("Layer (type)").ljust(w[0]), "Output Shape".ljust(w[1]),
                                 "Param #".rjust(w[2])]) + " ┃",
             line("┡", "╇", "┩")]
    for i, (a, b, c) in enumerate(rows):
        lines.append("│ " + " │ ".join([a.ljust(w[0]), b.ljust(w[1]), c.rjust(w[2])]) + " │")
        lines.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
    if not rows:
        lines.append(line("└", "┴", "┘", "─"))
    if model.built:
        trainable = sum(v.value.size for v in model.trainable_weights)
        non_trainable = sum(v.value.size for v in model.non_trainable_weights)
        itemsize = np.dtype(model.dtype).itemsize
        opt = 0
        if model.optimizer is not None and model.optimizer.built:
            opt = model.optimizer.count_params()
        total = trainable + non_trainable + opt
        lines.append(f" Total params: {total:,} ({readable_size(total * itemsize)})")
        lines.append(f" Trainable params: {trainable:,} ({readable_size(trainable * itemsize)})")
        lines.append(f" Non-trainable params: {non_trainable:,} ({readable_size(non_trainable * itemsize)})")
        if opt:
            lines.append(f" Optimizer params: {opt:,} ({readable_size(opt * itemsize)})")
    for text in lines:
        print_fn(text)
