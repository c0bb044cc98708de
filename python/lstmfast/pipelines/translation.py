"""Sequence-to-sequence translation: English -> French numbers (built in) or your parallel text.

Model (the classic encoder-decoder)::

    one-hot source tokens (T_in, V_in)
    -> LSTM(units)                         encoder: the sentence in one vector
    -> RepeatVector(T_out)
    -> LSTM(units, return_sequences=True)  decoder
    -> TimeDistributed(Dense(V_out, softmax))  a distribution over tokens per step

Decoding is greedy: the most likely token at each step, up to the first
end-of-text (the padding index 0, which the model learns to emit after the
last token). ``bidirectional=True`` (the stronger variant) reads the source
with a ``Bidirectional`` encoder.

Tokens: ``level='char'`` uses characters; ``level='word'`` uses words (with
their inner hyphens and apostrophes: ``"quatre-vingt-dix"`` is one word) and
punctuation marks, each token carrying whether a space came before it
(``"▁mille"`` vs ``","``), so the output text is rebuilt exactly.

Data: ``num2words`` phrases of numbers 0..99,999 (test numbers never seen in
training), a tab-separated file of ``source<TAB>target`` lines (the
Tatoeba/Anki format), or ``'ding'`` for the example sentences of the Ding
German-English dictionary when the ``trans-de-en`` package is installed.

Metrics: exact match (the whole output right), character accuracy
(``1 - edit distance / reference length``, pooled over the corpus, at least 0)
and corpus BLEU-4 (sacrebleu when installed, else :func:`corpus_bleu`, a
documented re-implementation of the same formula).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .. import data as D
from .common import (
    PipelineError, Stopwatch, format_table, history_dict, load_pipeline_model, log, option,
    plot_saved_history, resolve_out, save_pipeline, seed_everything, set_threads, setting, write_json,
)

PIPELINE = "translate"
SUMMARY = "English->French numbers (built in) or your source<TAB>target pairs"
SPACE = "\u2581"  # marks a word token that follows a space

__all__ = ["TranslateConfig", "train", "evaluate", "predict", "load_pairs", "corpus_bleu",
           "char_accuracy", "exact_match", "tokenize", "detokenize"]


@dataclass
class TranslateConfig:
    """Every setting of a translation run (defaults: the run reported in the docs)."""

    level: str = option("word", "token level", choices=["word", "char"])
    units: int = option(128, "LSTM units of encoder and decoder")
    bidirectional: bool = option(False, "the stronger variant: a Bidirectional LSTM encoder")
    epochs: int = option(12, "maximum epochs; early stopping on validation loss may end sooner")
    patience: int = setting(4, "epochs without improvement before stopping")
    batch_size: int = option(64, "pairs per gradient step")
    learning_rate: float = setting(2e-3, "Adam's learning rate")
    n_train: int = setting(20000, "built-in numbers: training pairs")
    n_val: int = setting(1000, "built-in numbers: validation pairs (early stopping)")
    n_test: int = setting(2000, "built-in numbers: held-out test numbers")
    max_pairs: int | None = option(None, "own data: use at most this many pairs")
    max_tokens: int | None = option(None, "own data: drop pairs with more tokens than this on either side")
    test_fraction: float = setting(0.1, "own data: held-out part")
    val_fraction: float = setting(0.05, "own data: validation part")
    lower: bool = setting(False, "lower-case source and target")
    reverse_source: bool = setting(True, "feed the source tokens last-to-first (Sutskever et al., 2014)")
    max_vocab: int = option(10000, "tokens kept per side; the rest map to an unknown token")
    embedding_dim: int | None = setting(None, "source Embedding(mask_zero) of this width instead of one-hot; "
                                              "None: one-hot unless the source vocabulary exceeds 1,000 "
                                              "tokens (then 128)")
    seed: int = option(0, "seed of the split, the initial weights and the shuffling", type=int)
    threads: int | None = option(None, "kernel threads (default: all cores)", every_command=True)
    data: str | None = option(None, "tab-separated source<TAB>target[<TAB>...] lines (Tatoeba/Anki format), "
                                    "or 'ding' for the Ding German-English sentences of the Debian package "
                                    "trans-de-en (default: the built-in English->French numbers)",
                              every_command=True, metavar="PATH")

    def quick(self):
        """A run of about a minute."""
        return dataclasses.replace(self, n_train=min(self.n_train, 4000), n_val=200, n_test=500,
                                   epochs=min(self.epochs, 12), units=min(self.units, 128),
                                   max_pairs=self.max_pairs or 5000)


CONFIG = TranslateConfig


# ---------------------------------------------------------------------------
# Tokens

# a word keeps its inner hyphens and apostrophes ("quatre-vingt-dix", "it's"); other
# punctuation marks are tokens of their own
_WORD = re.compile(r"\s+|\w+(?:[-'’]\w+)*|[^\w\s]")


def tokenize(text, level):
    """Text -> list of tokens; :func:`detokenize` inverts it (up to runs of spaces)."""
    if level == "char":
        return list(text)
    tokens, space = [], False
    for piece in _WORD.findall(text):
        if piece.isspace():
            space = True
            continue
        tokens.append((SPACE + piece) if space else piece)
        space = False
    return tokens


def detokenize(tokens, level):
    if level == "char":
        return "".join(tokens)
    return "".join(t.replace(SPACE, " ") for t in tokens).strip()


class _Vocab:
    """Token <-> index for one side (0 = padding / end of text, 1 = unknown)."""

    def __init__(self, level, lower, tokenizer=None, max_vocab=None):
        self.level, self.lower = level, lower
        self.tok = tokenizer or D.Tokenizer(num_words=max_vocab, filters="", lower=False, oov_token="\x00")

    def _split(self, text):
        return tokenize(text.lower() if self.lower else text, self.level)

    def fit(self, texts):
        self.tok.fit_on_texts([self._split(t) for t in texts])
        return self

    @property
    def size(self):
        return self.tok.vocabulary_size

    def encode(self, texts):
        return self.tok.texts_to_sequences([self._split(t) for t in texts])

    def decode(self, seq):
        out = []
        for i in seq:
            i = int(i)
            if i == 0:
                break
            out.append(self.tok.index_word.get(i, "?"))
        return detokenize([("?" if t == "\x00" else t) for t in out], self.level)

    def get_config(self):
        return {"level": self.level, "lower": self.lower, "tokenizer": json.loads(self.tok.to_json())}

    @classmethod
    def from_config(cls, c):
        return cls(c["level"], c["lower"], D.tokenizer_from_json(json.dumps(c["tokenizer"])))


def _one_hot(seqs, length, size):
    """Pre-padded one-hot source batch (N, length, size); index 0 (padding) is all zeros."""
    idx = D.pad_sequences(seqs, maxlen=length)  # Keras defaults: pad and cut at the front
    x = np.zeros((len(seqs), length, size), dtype=np.float32)
    n, t = np.nonzero(idx)
    x[n, t, idx[n, t]] = 1.0
    return x


# ---------------------------------------------------------------------------
# Data

def load_pairs(config):
    """``(train, val, test, description)``: lists of (source, target) pairs."""
    if config.data is None:
        tr, va, te = D.split_numbers(config.n_train, config.n_val, config.n_test, seed=config.seed)
        return (D.number_phrases(tr), D.number_phrases(va), D.number_phrases(te),
                "numbers 0..99999 in English and French (num2words); test numbers never seen in training")
    if config.data == "ding":
        pairs = D.load_ding()
        desc = f"Ding German-English example sentences ({D.DING_PATH})"
    else:
        pairs = D.load_tab_pairs(config.data)
        desc = os.path.abspath(config.data)
    if config.max_tokens:
        pairs = [p for p in pairs if max(len(tokenize(p[0], config.level)),
                                         len(tokenize(p[1], config.level))) <= config.max_tokens]
    if config.max_pairs and len(pairs) > config.max_pairs:
        keep = np.sort(np.random.default_rng(config.seed + 1).choice(len(pairs), config.max_pairs, replace=False))
        pairs = [pairs[i] for i in keep]
    if len(pairs) < 10:
        raise PipelineError(f"{desc}: only {len(pairs)} usable pairs; at least 10 are needed")
    # pairs with the same source sentence stay in one part
    tr, va, te = D.train_val_test_split(len(pairs), config.test_fraction, config.val_fraction,
                                        seed=config.seed, groups=[p[0] for p in pairs])
    pick = lambda idx: [pairs[i] for i in idx]  # noqa: E731
    return pick(tr), pick(va), pick(te), desc


# ---------------------------------------------------------------------------
# Metrics

def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(hypotheses, references):
    """``1 - sum(edit distance) / sum(reference length)``, at least 0 (one minus the CER)."""
    edits = sum(_edit_distance(h, r) for h, r in zip(hypotheses, references))
    total = sum(len(r) for r in references)
    return max(0.0, 1.0 - edits / max(total, 1))


def exact_match(hypotheses, references):
    return float(np.mean([h == r for h, r in zip(hypotheses, references)]))


def _bleu_tokens(text):
    # sacrebleu's default '13a' tokenizer, in short: split off punctuation, keep
    # periods and commas inside numbers, split on whitespace.
    text = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", text)
    text = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", text)
    text = re.sub(r"([\.,])([^0-9])", r" \1 \2", text)
    text = re.sub(r"([0-9])(-)", r"\1 \2 ", text)
    return text.split()


def corpus_bleu(hypotheses, references, max_n=4):
    """Corpus BLEU (Papineni et al., 2002) in percent, as sacrebleu computes it by default.

    Clipped n-gram precisions p_1..p_4 are pooled over the corpus; BLEU =
    BP * exp(mean(log p_n)), with the brevity penalty BP = exp(1 - r/c) when
    the output length c is below the reference length r, else 1. No
    smoothing: a corpus without any matching 4-gram scores 0.
    """
    try:
        import sacrebleu
    except ImportError:
        pass
    else:
        return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)
    match, total = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references):
        ht, rt = _bleu_tokens(h), _bleu_tokens(r)
        hyp_len, ref_len = hyp_len + len(ht), ref_len + len(rt)
        for n in range(1, max_n + 1):
            hc = Counter(tuple(ht[i:i + n]) for i in range(len(ht) - n + 1))
            rc = Counter(tuple(rt[i:i + n]) for i in range(len(rt) - n + 1))
            match[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[n - 1] += max(len(ht) - n + 1, 0)
    if hyp_len == 0 or min(match) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total)) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * bp * math.exp(log_p)


# ---------------------------------------------------------------------------
# Model

def build_model(config, t_in, v_in, t_out, v_out, embedding_dim=None):
    """The encoder-decoder, compiled; ``embedding_dim`` swaps the one-hot input for an Embedding."""
    from ..layers import LSTM, Bidirectional, Dense, Embedding, Input, RepeatVector, TimeDistributed
    from ..models import Sequential
    from ..optimizers import Adam

    encoder = LSTM(config.units)
    inputs = [Input(shape=(t_in,), dtype="int32"), Embedding(v_in, embedding_dim, mask_zero=True)] \
        if embedding_dim else [Input(shape=(t_in, v_in))]
    model = Sequential(inputs + [
        Bidirectional(encoder) if config.bidirectional else encoder,
        RepeatVector(t_out),
        LSTM(config.units, return_sequences=True),
        # the same weights and outputs as the seed's Dense on the 3-D decoder output
        TimeDistributed(Dense(v_out, activation="softmax")),
    ])
    model.compile(optimizer=Adam(learning_rate=config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _Translator:
    def __init__(self, model, src, tgt, t_in, t_out, reverse, embedding=False):
        self.model, self.src, self.tgt, self.t_in, self.t_out = model, src, tgt, t_in, t_out
        self.reverse, self.embedding = reverse, embedding

    def encode(self, texts):
        seqs = self.src.encode(texts)
        return [s[::-1] for s in seqs] if self.reverse else seqs

    def inputs(self, texts):
        if self.embedding:  # token indices, padded at the front; the Embedding masks index 0
            return D.pad_sequences(self.encode(texts), maxlen=self.t_in)
        return _one_hot(self.encode(texts), self.t_in, self.src.size)

    def translate(self, texts, batch_size=256):
        if not texts:
            return []
        prob = self.model.predict(self.inputs(texts), batch_size=batch_size, verbose=0)
        return [self.tgt.decode(seq) for seq in prob.argmax(axis=-1)]  # greedy


def train(config=None, out=None, verbose=1, evaluate_after=True, **overrides):
    """Fit vocabularies and the model on the training pairs, save the model directory, evaluate."""
    config = dataclasses.replace(config or TranslateConfig(), **overrides)
    if config.level not in ("char", "word"):
        raise PipelineError(f"level must be 'char' or 'word', got {config.level!r}")
    seed_everything(config.seed)
    set_threads(config.threads)
    with Stopwatch() as data_clock:
        train_pairs, val_pairs, test_pairs, desc = load_pairs(config)
    log(verbose, f"data: {desc}: train {len(train_pairs)}, validation {len(val_pairs)}, "
                 f"test {len(test_pairs)} (held out) [{data_clock.seconds:.1f} s]")

    with Stopwatch() as clock:
        src = _Vocab(config.level, config.lower, max_vocab=config.max_vocab).fit([s for s, _ in train_pairs])
        tgt = _Vocab(config.level, config.lower, max_vocab=config.max_vocab).fit([t for _, t in train_pairs])
        embedding_dim = config.embedding_dim or (128 if src.size > 1000 else None)
        t_tr = tgt.encode([t for _, t in train_pairs])
        t_out = max(len(t) for t in t_tr) + 1  # room for the end-of-text step
        t_in = max(len(s) for s in src.encode([s for s, _ in train_pairs]))
        translator = _Translator(None, src, tgt, t_in, t_out, config.reverse_source, bool(embedding_dim))
        X = translator.inputs([s for s, _ in train_pairs])
        y = D.pad_sequences(t_tr, maxlen=t_out, padding="post", truncating="post")
        Xv = translator.inputs([s for s, _ in val_pairs])
        yv = D.pad_sequences(tgt.encode([t for _, t in val_pairs]), maxlen=t_out, padding="post", truncating="post")
        log(verbose, f"tokens ({config.level}): source {src.size} x {t_in} steps, target {tgt.size} x {t_out} steps; "
                     + (f"source Embedding({src.size}, {embedding_dim})" if embedding_dim else "one-hot source"))
        model = translator.model = build_model(config, t_in, src.size, t_out, tgt.size, embedding_dim)
        from ..callbacks import EarlyStopping

        h = model.fit(X, y, batch_size=config.batch_size, epochs=config.epochs, validation_data=(Xv, yv),
                      callbacks=[EarlyStopping(monitor="val_loss", patience=config.patience,
                                               restore_best_weights=True)],
                      verbose=verbose)
    history = history_dict(h)
    log(verbose, f"trained in {clock.seconds:.1f} s")

    out = resolve_out(out, PIPELINE)
    marker = {
        "config": dataclasses.asdict(config),
        "source_vocab": src.get_config(), "target_vocab": tgt.get_config(),
        "t_in": t_in, "t_out": t_out, "embedding": bool(embedding_dim),
        "data": {"description": desc, "train": len(train_pairs), "val": len(val_pairs), "test": len(test_pairs)},
        "train_seconds": clock.seconds,
    }
    save_pipeline(out, PIPELINE, model, marker, history)
    result = {"model_dir": out, "history": history, "train_seconds": clock.seconds}
    if evaluate_after:
        result["metrics"] = _evaluate(out, translator, marker, test_pairs,
                                      marker["data"]["description"] + " (held-out part)", verbose=verbose)
    return result


def _load(model_dir):
    model, marker = load_pipeline_model(model_dir, PIPELINE)
    src, tgt = _Vocab.from_config(marker["source_vocab"]), _Vocab.from_config(marker["target_vocab"])
    reverse = marker["config"].get("reverse_source", False)
    return _Translator(model, src, tgt, marker["t_in"], marker["t_out"], reverse, marker.get("embedding", False)), marker


def evaluate(model_dir, data=None, plot=False, verbose=1, examples=5):
    """Exact match, character accuracy and BLEU on the held-out pairs (or all pairs of ``data``).

    Also scores the copy baseline (output = input), which shows how much of
    the score needs no model. ``examples``: how many outputs to show beside
    their references. Writes ``metrics.json``; returns it.
    """
    translator, marker = _load(model_dir)
    cfg = TranslateConfig(**marker["config"])
    if data and data != cfg.data:
        pairs = D.load_ding() if data == "ding" else D.load_tab_pairs(data)
        test_pairs, test_desc = pairs, f"all pairs of {data}"
    else:
        _, _, test_pairs, desc = load_pairs(cfg)
        test_desc = desc + " (held-out part)"
    return _evaluate(model_dir, translator, marker, test_pairs, test_desc, plot=plot, verbose=verbose,
                     examples=examples)


def _evaluate(model_dir, translator, marker, test_pairs, test_desc, plot=False, verbose=1, examples=5):
    """:func:`evaluate` with the translator, its marker and the test pairs at hand."""
    cfg = TranslateConfig(**marker["config"])
    sources = [s for s, _ in test_pairs]
    refs = [t.lower() if cfg.lower else t for _, t in test_pairs]
    with Stopwatch() as clock:
        hyps = translator.translate(sources)
    copy = [s.lower() if cfg.lower else s for s in sources]
    metrics = {"pipeline": PIPELINE, "test_data": test_desc, "test_pairs": len(test_pairs),
               "bleu_implementation": "sacrebleu" if _has_sacrebleu() else "lstmfast corpus_bleu",
               "models": {}}
    for name, out in (("lstm_seq2seq", hyps), ("copy_source", copy)):
        metrics["models"][name] = {"exact_match": exact_match(out, refs), "char_accuracy": char_accuracy(out, refs),
                                   "bleu": corpus_bleu(out, refs)}
    metrics["models"]["lstm_seq2seq"]["seconds"] = clock.seconds
    metrics["examples"] = [{"source": s, "reference": r, "output": h}
                           for s, r, h in list(zip(sources, refs, hyps))[:examples]]
    metrics["train_seconds"] = marker.get("train_seconds")
    write_json(os.path.join(model_dir, "metrics.json"), metrics)
    log(verbose, f"\nscores on {len(test_pairs)} held-out pairs")
    log(verbose, format_table([(k, v["exact_match"], v["char_accuracy"], v["bleu"]) for k, v in metrics["models"].items()],
                              ["model", "exact match", "char accuracy", "BLEU"]))
    for e in metrics["examples"]:
        log(verbose, f"  {e['source']!r} -> {e['output']!r}" + ("" if e["output"] == e["reference"] else f"  (want {e['reference']!r})"))
    if plot:
        p = plot_saved_history(model_dir, "translation training")
        if p:
            metrics["plots"] = [p]
            log(verbose, f"wrote {p}")
    return metrics


def _has_sacrebleu():
    try:
        import sacrebleu  # noqa: F401
    except ImportError:
        return False
    return True


def predict(model_dir, texts):
    """Translate each text with the saved model (greedy decoding)."""
    if isinstance(texts, str):
        texts = [texts]
    translator, _ = _load(model_dir)
    return translator.translate(list(texts))
