"""``keras.preprocessing.sequence``: ``pad_sequences``."""

from ..data.text import pad_sequences

__all__ = ["pad_sequences"]
