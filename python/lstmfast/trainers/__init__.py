"""Training: the `Trainer` every model inherits (compile / fit / evaluate / predict), the one
batch loop (`EpochIterator`) and the checks of data at the door (`data`)."""

from .epoch_iterator import EpochIterator, InterruptGuard
from .trainer import Trainer

__all__ = ["EpochIterator", "InterruptGuard", "Trainer"]
