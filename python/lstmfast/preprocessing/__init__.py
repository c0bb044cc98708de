"""``keras.preprocessing`` as older Keras code imports it: ``sequence.pad_sequences`` and
``text.Tokenizer`` (the same functions as ``lstmfast.utils.pad_sequences`` and
``lstmfast.data.text``), and ``timeseries_dataset_from_array``."""

from . import sequence, text, timeseries
from .timeseries import timeseries_dataset_from_array

__all__ = ["sequence", "text", "timeseries", "timeseries_dataset_from_array"]
