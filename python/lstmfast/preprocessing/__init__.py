"""``keras.preprocessing`` as older Keras code imports it: ``sequence.pad_sequences`` and
``text.Tokenizer`` (the same functions as ``lstmfast.utils.pad_sequences`` and
``lstmfast.data.text``)."""

from . import sequence, text

__all__ = ["sequence", "text"]
