"""The random state behind initializers, dropout and shuffling.

Every random draw in lstmfast comes from a `numpy.random.Generator`, either one seeded by a layer's
or initializer's own `seed` argument, or the global one that `lstmfast.utils.set_random_seed`
re-seeds. Nothing depends on thread count or timing, so two runs after the same
`set_random_seed(s)` draw the same numbers in the same order.
"""

import numpy as np

_global = np.random.default_rng()


def set_global_seed(seed):
    global _global
    _global = np.random.default_rng(seed)


def global_generator():
    return _global


def make_seed():
    """Draw a fresh integer seed from the global generator."""
    return int(_global.integers(0, 2**31 - 1))


class SeedGenerator:
    """A generator owned by one object: seeded by `seed`, else by a draw from the global generator.

    The draw happens when the owner is created, so construction order fixes every later stream.
    """

    def __init__(self, seed=None):
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise ValueError(f"Argument `seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = seed
        self.rng = np.random.default_rng(make_seed() if seed is None else int(seed))
