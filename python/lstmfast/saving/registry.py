"""The model classes a saved architecture can name, registered by the classes themselves, so
that reading a file never needs to import the models."""

_MODEL_CLASSES = {}


def register_model_class(cls):
    """Class decorator: files whose config names `cls.__name__` are rebuilt with `cls`."""
    _MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_class(name):
    """The registered model class called `name`."""
    try:
        return _MODEL_CLASSES[name]
    except KeyError:
        raise ValueError(f"Unknown model class {name!r}; known: {sorted(_MODEL_CLASSES)}.") from None
