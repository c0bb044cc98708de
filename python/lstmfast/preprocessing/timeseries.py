"""``keras.preprocessing.timeseries_dataset_from_array`` as older Keras code imports it."""

from ..utils import timeseries_dataset_from_array

__all__ = ["timeseries_dataset_from_array"]
