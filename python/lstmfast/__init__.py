"""lstmfast: fast LSTM training and inference on CPUs, with a Keras-like API.

The LSTM forward and backward passes run in C++ (Eigen, vectorised activations, OpenMP);
``lstmfast.ops`` is the low-level numpy interface to them.
"""

from ._threads import (cpu_isa, get_num_threads, get_thread_policy, physical_cores, set_num_threads,
                       set_thread_policy, threads_in_use)
from . import ops

__version__ = "0.1.0"

__all__ = ["ops", "set_num_threads", "get_num_threads", "set_thread_policy", "get_thread_policy", "threads_in_use",
           "cpu_isa", "physical_cores", "__version__"]

# --- Keras-like API --------------------------------------------------------------------
from . import activations, callbacks, config, constraints, initializers, layers, losses, metrics, models
from . import regularizers
from . import datasets, distribute, optimizers, preprocessing, saving, utils
from .layers import Input
from .models import Model, Sequential, load_model

__all__ += ["activations", "callbacks", "config", "constraints", "regularizers", "initializers", "layers", "losses", "metrics",
            "models", "optimizers", "saving", "utils", "datasets", "distribute", "preprocessing", "Input",
            "Model", "Sequential", "load_model"]
