"""Subword units for translation: a sentencepiece unigram model per language (Kudo, 2018).

A word the training text never held still splits into pieces that it did ("mammifère" ->
"▁mammi" "fère"), so the decoder can spell out names and rare words instead of emitting an
unknown token. Ids: 0 padding, 1 unknown, 2 begin, 3 end of sentence, then the pieces.

The trained model travels inside the pipeline marker (base64 of its bytes), so a model
directory stays one JSON file and one network file.
"""

from __future__ import annotations

import base64
import io

from .common import PipelineError

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def _sentencepiece():
    try:
        import sentencepiece
    except ImportError:
        raise PipelineError("subword units need the sentencepiece package: pip install \"lstmfast[pipelines]\" "
                            "(or pip install sentencepiece), or use --level word") from None
    return sentencepiece


class SubwordVocab:
    """Text <-> ids with a sentencepiece model; the interface of translation's word vocabulary."""

    level = "subword"
    bos_id, eos_id = BOS, EOS

    def __init__(self, proto: bytes, lower=False):
        self.proto, self.lower = proto, lower
        self.sp = _sentencepiece().SentencePieceProcessor(model_proto=proto)

    @classmethod
    def train(cls, texts, size, lower=False):
        """A unigram model of at most `size` pieces learned from `texts` (fewer when the texts
        are too small to hold that many)."""
        spm = _sentencepiece()
        texts = [t.lower() if lower else t for t in texts if t.strip()]
        if not texts:
            raise PipelineError("no text to learn subword units from")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=int(size), model_type="unigram",
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, character_coverage=1.0,
            hard_vocab_limit=False, minloglevel=2, num_threads=1)
        return cls(model.getvalue(), lower)

    @property
    def size(self):
        """Ids in use: the rows of an embedding, the classes of the output softmax."""
        return self.sp.get_piece_size()

    input_size = size

    def encode(self, texts):
        return self.sp.encode([t.lower() if self.lower else t for t in texts])

    def decode(self, ids):
        """Ids up to the first end (or padding) -> text."""
        out = []
        for i in ids:
            i = int(i)
            if i in (PAD, EOS):
                break
            if i != BOS:
                out.append(i)
        return self.sp.decode(out)

    def unknown_fraction(self, texts):
        """The share of pieces that are unknown, per text."""
        return [sum(i == UNK for i in s) / max(len(s), 1) for s in self.encode(texts)]

    def get_config(self):
        return {"level": "subword", "lower": self.lower, "model": base64.b64encode(self.proto).decode("ascii")}

    @classmethod
    def from_config(cls, config):
        return cls(base64.b64decode(config["model"]), config.get("lower", False))
