"""Saving and loading models and weights: lstmfast's own format (`native`), Keras files
imported (`keras_import`), PyTorch LSTM weights converted (`torch_lstm_weights`)."""

from .api import load_model, load_weights, save_model, save_weights, torch_lstm_weights
from .native import FORMAT_NAME, FORMAT_VERSION

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_model", "load_weights", "save_model", "save_weights",
           "torch_lstm_weights"]
