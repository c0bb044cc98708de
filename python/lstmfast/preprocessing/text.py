"""``keras.preprocessing.text``: ``Tokenizer``, ``tokenizer_from_json``, ``text_to_word_sequence``."""

from ..data.text import Tokenizer, text_to_word_sequence, tokenizer_from_json

__all__ = ["Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]
