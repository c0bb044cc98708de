"""What `fit` trains and validates on: its `x, y, sample_weight` and `validation_*` arguments
turned into batches (arrays checked once and split for `validation_split`; generators, iterables
and datasets read batch by batch)."""

import numpy as np

from .. import _random
from . import data
from .data_sources import is_batch_source
from .epoch_iterator import ArrayBatches

__all__ = ["fit_batches"]


def fit_batches(trainer, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
                validation_split, validation_data, validation_steps, validation_batch_size):
    """(training batches, validation batches or None) for `trainer.fit`."""
    if is_batch_source(x):
        if validation_split:
            raise ValueError("`validation_split` needs arrays; with a generator or dataset, pass "
                             "`validation_data`.")
        batches = trainer._batches(x, y, sample_weight, batch_size, steps_per_epoch, "fit", class_weight,
                                   shuffle=bool(shuffle))
    else:
        if steps_per_epoch is not None:
            raise ValueError("`steps_per_epoch` applies to generators and datasets; with arrays, an "
                             "epoch is one pass over them.")
        x, y, sw = trainer._prepare_xy(x, y, sample_weight, class_weight)
        if validation_split and validation_data is None:
            n_all = x.shape[0]
            split = int(np.floor(n_all * (1.0 - validation_split)))
            if split == 0 or split == n_all:
                raise ValueError(f"`validation_split`={validation_split} leaves no training or no validation "
                                 f"samples out of {n_all}.")
            validation_data = (x[split:], y[split:]) + (() if sw is None else (sw[split:],))
            x, y = x[:split], y[:split]
            sw = None if sw is None else sw[:split]
        if x.shape[0] == 0:
            raise ValueError("Expected at least one training sample; `x` is empty.")
        batches = ArrayBatches(x, y, sw, batch_size, shuffle, _random.global_generator())
    val = None
    if validation_data is not None:
        val_batch_size = data.check_batch_size(validation_batch_size, batch_size)
        if is_batch_source(validation_data):
            val = trainer._batches(validation_data, None, None, val_batch_size, validation_steps, "validation",
                                   x_arg="validation_data")
        elif not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, "
                             f"val_sample_weight), or a generator or dataset. Received: "
                             f"{type(validation_data).__name__}")
        else:
            val = trainer._batches(validation_data[0], validation_data[1],
                                   None if len(validation_data) == 2 else validation_data[2], val_batch_size,
                                   validation_steps, "validation", x_arg="validation_data[0]",
                                   y_arg="validation_data[1]")
    return batches, val
