"""Text to integer sequences, as Keras users know it.

``Tokenizer`` follows ``keras.preprocessing.text.Tokenizer``: the same
arguments, the same word ranking (most frequent first, index 0 reserved for
padding, the OOV token at index 1 when given), and a JSON form that
``keras.preprocessing.text.tokenizer_from_json`` can read back.
``pad_sequences`` follows ``keras.utils.pad_sequences`` with its defaults
(``dtype='int32'``, ``padding='pre'``, ``truncating='pre'``, ``value=0``).
"""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict

import numpy as np

__all__ = ["Tokenizer", "tokenizer_from_json", "text_to_word_sequence", "pad_sequences"]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Split ``text`` into words: lower-case, turn filter characters into ``split``, split."""
    if lower:
        text = text.lower()
    if filters:
        text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class Tokenizer:
    """Map texts to sequences of word (or character) indices.

    Args:
        num_words: keep only the ``num_words - 1`` most frequent words when
            converting (indices ``1..num_words-1``); ``None`` keeps all.
        filters: characters removed from words (ignored at character level).
        lower: lower-case the text first.
        split: word separator.
        char_level: treat every character as a token.
        oov_token: if given, it takes index 1 and stands for every word that
            is unknown or beyond ``num_words``; otherwise such words are dropped.
    """

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ",
                 char_level=False, oov_token=None, document_count=0):
        if num_words is not None and (not isinstance(num_words, (int, np.integer)) or num_words < 1):
            raise ValueError(
                f"Argument `num_words` must be a positive integer or None. Received: num_words={num_words!r}"
            )
        self.num_words = None if num_words is None else int(num_words)
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self.document_count = document_count
        self.word_counts = OrderedDict()
        self.word_docs = defaultdict(int)
        self.index_docs = defaultdict(int)
        self.word_index = {}
        self.index_word = {}

    # -- fitting -----------------------------------------------------------
    def _tokens(self, text):
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return list(text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts):
        """Count tokens over ``texts`` (strings, or lists of tokens) and build the index."""
        if isinstance(texts, str):
            raise TypeError("`texts` must be a list of strings, not a single string")
        for text in texts:
            self.document_count += 1
            seq = self._tokens(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(seq):
                self.word_docs[w] += 1
        # Most frequent first; ties keep first-seen order (sorted is stable).
        ranked = sorted(self.word_counts.items(), key=lambda kv: kv[1], reverse=True)
        vocab = [] if self.oov_token is None else [self.oov_token]
        vocab.extend(w for w, _ in ranked if w != self.oov_token)
        self.word_index = {w: i for i, w in enumerate(vocab, start=1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.index_docs = defaultdict(int)
        for w, c in self.word_docs.items():
            self.index_docs[self.word_index[w]] = c

    @property
    def vocabulary_size(self):
        """Size of the index space the sequences use, padding index 0 included."""
        n = len(self.word_index) + 1
        return n if self.num_words is None else min(n, self.num_words)

    # -- converting --------------------------------------------------------
    def texts_to_sequences(self, texts):
        """Return one list of indices per text."""
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts):
        if isinstance(texts, str):
            raise TypeError("`texts` must be a list of strings, not a single string")
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        limit = self.num_words
        index = self.word_index
        for text in texts:
            out = []
            for w in self._tokens(text):
                i = index.get(w)
                if i is not None and (limit is None or i < limit):
                    out.append(i)
                elif oov is not None:
                    out.append(oov)
            yield out

    def sequences_to_texts(self, sequences):
        """Inverse of :meth:`texts_to_sequences` (unknown words come back as the OOV token)."""
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        joiner = "" if self.char_level else " "
        texts = []
        for seq in sequences:
            words = []
            for i in seq:
                i = int(i)
                w = self.index_word.get(i)
                if w is not None and (self.num_words is None or i < self.num_words):
                    words.append(w)
                elif oov is not None:
                    words.append(self.oov_token)
            texts.append(joiner.join(words))
        return texts

    # -- serialisation -----------------------------------------------------
    def get_config(self):
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs):
        """JSON string in the layout of Keras's ``Tokenizer.to_json``."""
        return json.dumps({"class_name": self.__class__.__name__, "config": self.get_config()}, **kwargs)

    @classmethod
    def from_json(cls, json_string):
        return tokenizer_from_json(json_string)


def tokenizer_from_json(json_string):
    """Rebuild a :class:`Tokenizer` from :meth:`Tokenizer.to_json` output (or Keras's)."""
    data = json.loads(json_string)
    config = dict(data.get("config", data))
    word_counts = json.loads(config.pop("word_counts"))
    word_docs = json.loads(config.pop("word_docs"))
    index_docs = {int(k): v for k, v in json.loads(config.pop("index_docs")).items()}
    index_word = {int(k): v for k, v in json.loads(config.pop("index_word")).items()}
    word_index = json.loads(config.pop("word_index"))
    tok = Tokenizer(**config)
    tok.word_counts = OrderedDict(word_counts)
    tok.word_docs = defaultdict(int, word_docs)
    tok.index_docs = defaultdict(int, index_docs)
    tok.index_word = index_word
    tok.word_index = word_index
    return tok


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pad (or cut) sequences to one length, as ``keras.utils.pad_sequences``.

    Args:
        sequences: list of sequences (lists or arrays; items may be scalars or
            equally shaped arrays).
        maxlen: final length; ``None`` uses the longest sequence.
        dtype: dtype of the result.
        padding: ``'pre'`` or ``'post'``: where the ``value`` padding goes.
        truncating: ``'pre'`` or ``'post'``: which end is cut from sequences
            longer than ``maxlen``.
        value: the padding value.

    Returns:
        array of shape ``(len(sequences), maxlen) + item_shape``.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"Argument `padding` must be 'pre' or 'post'. Received: padding={padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"Argument `truncating` must be 'pre' or 'post'. Received: truncating={truncating!r}")
    if maxlen is not None and (not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise ValueError(f"Argument `maxlen` must be a non-negative integer or None. Received: maxlen={maxlen!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable with a length.")
    lengths = []
    sample_shape = ()
    found_shape = False
    for i, s in enumerate(sequences):
        try:
            lengths.append(len(s))
        except TypeError:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {s!r} at position {i}"
            ) from None
        if not found_shape and len(s):
            sample_shape = np.asarray(s).shape[1:]
            found_shape = True
    n = len(sequences)
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    out = np.full((n, maxlen) + tuple(sample_shape), value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != tuple(sample_shape):
            raise ValueError(
                f"Shape of sample {trunc.shape[1:]} of sequence at position {i} "
                f"is different from expected shape {tuple(sample_shape)}"
            )
        if padding == "post":
            out[i, : len(trunc)] = trunc
        else:
            out[i, -len(trunc):] = trunc
    return out
