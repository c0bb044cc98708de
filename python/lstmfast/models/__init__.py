"""Models: `Model` (the base, with training from `lstmfast.trainers`), `Sequential` and
`Functional` (what `Model(inputs, outputs)` makes), and `load_model` / `clone_model`."""

from .. import saving
from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model"]


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved by `Model.save`, or import a Keras `.keras` / legacy `.h5` file."""
    return saving.load_model(filepath, compile=compile)


def clone_model(model):
    """A new model with the same architecture (new layers) and freshly initialised weights."""
    return type(model).from_config(model.get_config())
