"""Data sets in the form of ``keras.datasets``: ``imdb``.

Nothing is downloaded: each data set is built from data that installs with a package.
"""

from . import imdb

__all__ = ["imdb"]
