"""Keras-style configs of the small objects that layers name (regularizers, constraints):
{"module", "class_name", "config", "registered_name"}, and the lookup by name or config."""


def serialize(obj, module):
    """The Keras config dict of `obj` (None stays None)."""
    if obj is None:
        return None
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": None}


def from_name(name, objects, what):
    """A new object of the class called `name` in `objects`, or a ValueError naming the choices."""
    cls = objects.get(name)
    if cls is None:
        raise ValueError(f"Could not interpret {what} identifier: {name!r}. lstmfast provides: {sorted(objects)}.")
    return cls()


def from_config(config, objects, what):
    """The object a Keras config dict describes, or a ValueError naming the choices."""
    cls = objects.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown {what} {config.get('class_name')!r}. lstmfast provides: {sorted(objects)}.")
    return cls.from_config(dict(config.get("config") or {}))
