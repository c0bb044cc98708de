"""Translation: English -> French sentences (Tatoeba, built in), number phrases, or your pairs.

Two networks (``--network``):

``attention`` (the default; :mod:`.seq2seq`)
    source subword ids -> Embedding -> Bidirectional LSTM encoder (its states start the decoder)
    -> LSTM decoder, teacher-forced -> Luong attention over the encoder outputs -> Dense(tanh)
    -> Dense(V, softmax). Decoded greedily or by beam search (``--beam N``, length-normalised),
    all sentences of a batch at once, by encoder and decoder models that share the trained layers.

``repeat`` (the classic model of the seed example)
    one-hot or embedded source -> LSTM(units) -> RepeatVector(T_out) -> LSTM -> TimeDistributed
    (Dense(V, softmax)); greedy, the padding index 0 ending the output.

Tokens (``--level``): ``subword`` units learned by sentencepiece on the training text (a word
never seen still splits into known pieces; :mod:`.subwords`), ``word`` (words with their inner
hyphens and apostrophes, and punctuation marks, each token carrying whether a space came before
it: ``"▁mille"`` vs ``","``, so the output text is rebuilt exactly) or ``char``.

Data: Tatoeba English-French pairs shipped with lstmfast (76,037 pairs, CC-BY 2.0 FR), split by
English sentence (all translations of one sentence in one part; 2,000 held out, 1,000 for
validation); ``numbers`` for ``num2words`` phrases of 0..99,999 (test numbers never seen in
training); ``ding`` for the example sentences of the Ding German-English dictionary when the
``trans-de-en`` package is installed; or a tab-separated file of ``source<TAB>target`` lines.

Metrics: corpus BLEU against every reference translation of a source sentence, chrF (both
sacrebleu), exact match (the output equals one of the references) and character accuracy
(``1 - edit distance / reference length`` against the first reference, pooled over the corpus, at
least 0); the copy baseline (output = input) beside them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .. import data as D
from .common import (
    PipelineError, Stopwatch, a_rate, at_least, fit_or_stop, format_table, history_dict, load_pipeline_model, log,
    option, plot_saved_history, resolve_out, save_pipeline, seed_everything, set_threads, setting, write_json,
)

PIPELINE = "translate"
SUMMARY = "English->French sentences (Tatoeba, built in), number phrases, or your source<TAB>target pairs"
SPACE = "\u2581"  # marks a word token that follows a space

__all__ = ["TranslateConfig", "train", "evaluate", "predict", "load_pairs", "corpus_bleu", "corpus_chrf",
           "decode_texts",
           "char_accuracy", "exact_match", "tokenize", "detokenize"]


@dataclass
class TranslateConfig:
    """Every setting of a translation run (defaults: the run reported in the docs)."""

    network: str = option("attention", "the network: a bidirectional encoder and an attention decoder, or the "
                                     "classic RepeatVector encoder-decoder", choices=["attention", "repeat"])
    level: str = option("subword", "token level", choices=["subword", "word", "char"])
    units: int | None = option(None, "LSTM units of the decoder (the encoder's two directions have half each; "
                                     "None: 256 with attention, 128 for repeat)")
    bidirectional: bool = option(False, "repeat model: a Bidirectional LSTM encoder")
    epochs: int = option(12, "maximum epochs; early stopping on validation loss may end sooner")
    max_minutes: float | None = option(13.0, "end training after the epoch when one more would pass this many "
                                             "minutes of training (None: no limit)")
    patience: int = setting(3, "epochs without improvement (validation BLEU with attention, validation loss "
                                  "for repeat) before stopping")
    lr_decay: float = setting(0.5, "attention: the learning rate is multiplied by this after each epoch whose "
                                   "validation BLEU did not improve (1: constant)")
    batch_size: int = option(64, "pairs per gradient step")
    learning_rate: float | None = setting(None, "Adam's learning rate (None: 1e-3 with attention, 2e-3 repeat)")
    beam: int = option(4, "beam width of evaluate and predict (1: greedy)", every_command=True)
    n_train: int = setting(20000, "numbers: training pairs")
    n_val: int = setting(1000, "numbers: validation pairs; Tatoeba: validation English sentences")
    n_test: int = setting(2000, "numbers: held-out test numbers; Tatoeba: held-out English sentences")
    max_pairs: int | None = option(None, "use at most this many pairs (sentence data)", type=at_least(50))
    max_tokens: int | None = option(None, "own data: drop pairs with more tokens than this on either side",
                                    type=at_least(3))
    test_fraction: float = setting(0.1, "own data: held-out part")
    val_fraction: float = setting(0.05, "own data: validation part")
    lower: bool = setting(False, "lower-case source and target")
    reverse_source: bool = setting(True, "repeat model: feed the source tokens last-to-first (Sutskever et al., 2014)")
    max_vocab: int = option(6000, "subword units, or words, per side (the rest map to an unknown token)",
                            type=at_least(32))
    dropout: float = option(0.2, "attention: dropout of the embedded source and target tokens and of the "
                                 "attentional state, in training (0: none)", type=a_rate)
    embedding_dim: int | None = setting(None, "source Embedding width; None: 128 with attention; for repeat, "
                                              "one-hot unless the source vocabulary exceeds 1,000 tokens (then 128)")
    seed: int = option(0, "seed of the split, the initial weights and the shuffling", type=at_least(0))
    threads: int | None = option(None, "kernel threads (default: all cores)", every_command=True)
    data: str | None = option(None, "tab-separated source<TAB>target[<TAB>...] lines (Tatoeba/Anki format), "
                                    "'numbers' for English->French number phrases (num2words), or 'ding' for the "
                                    "Ding German-English sentences of the Debian package trans-de-en (default: "
                                    "the built-in Tatoeba English->French sentences)",
                              commands=("train", "evaluate"), metavar="PATH")

    def quick(self):
        """A run of about a minute."""
        return dataclasses.replace(self, n_train=min(self.n_train, 4000), n_val=200, n_test=500,
                                   epochs=min(self.epochs, 10), units=min(self.units or 128, 128),
                                   max_pairs=self.max_pairs or 5000, max_vocab=min(self.max_vocab, 2000))

    def resolved(self):
        """The settings with their None defaults filled in for the chosen model."""
        attention = self.network == "attention"
        return dataclasses.replace(
            self, units=self.units or (256 if attention else 128),
            learning_rate=self.learning_rate or (1e-3 if attention else 2e-3),
            embedding_dim=self.embedding_dim or (128 if attention else None))


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

    # The attention decoder's begin token is one id past the vocabulary (an input, never an
    # output); its end token is the padding index 0, as the repeat model's.
    @property
    def bos_id(self):
        return self.size

    eos_id = 0

    @property
    def input_size(self):
        return self.size + 1

    def unknown_fraction(self, texts):
        """The share of tokens that are unknown, per text."""
        return [sum(i == 1 for i in s) / max(len(s), 1) for s in self.encode(texts)]

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
    if config.data == "numbers":
        tr, va, te = D.split_numbers(config.n_train, config.n_val, config.n_test, seed=config.seed)
        return (D.number_phrases(tr), D.number_phrases(va), D.number_phrases(te),
                "numbers 0..99999 in English and French (num2words); test numbers never seen in training")
    if config.data is None:
        pairs = D.load_tatoeba()
        if config.max_pairs and len(pairs) > config.max_pairs:
            keep = np.sort(np.random.default_rng(config.seed + 1).choice(len(pairs), config.max_pairs, replace=False))
            pairs = [pairs[i] for i in keep]
        # n_test and n_val count English sentences, each with all its translations
        sources = list(dict.fromkeys(s for s, _ in pairs))
        order = np.random.default_rng(config.seed).permutation(len(sources))
        n_test, n_val = min(config.n_test, len(sources) // 5), min(config.n_val, len(sources) // 10)
        part = {sources[k]: (0 if j < n_test else 1 if j < n_test + n_val else 2) for j, k in enumerate(order)}
        tr, va, te = ([p for p in pairs if part[p[0]] == i] for i in (2, 1, 0))
        return (tr, va, te, "Tatoeba English-French sentences (CC-BY 2.0 FR, shipped with lstmfast): "
                f"{n_test} English sentences held out with all their translations")
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
    """The share of outputs equal to their reference (or to one of their references)."""
    return float(np.mean([h in _as_list(r) for h, r in zip(hypotheses, references)]))


def _as_list(refs):
    return [refs] if isinstance(refs, str) else list(refs)


def _bleu_tokens(text):
    # sacrebleu's default '13a' tokenizer, in short: split off punctuation, keep
    # periods and commas inside numbers, split on whitespace.
    text = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", text)
    text = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", text)
    text = re.sub(r"([\.,])([^0-9])", r" \1 \2", text)
    text = re.sub(r"([0-9])(-)", r"\1 \2 ", text)
    return text.split()


def _reference_streams(references):
    """sacrebleu's layout: stream k holds each sentence's k-th reference (its first where it has
    fewer; a repeated reference changes neither BLEU nor chrF)."""
    refs = [_as_list(r) for r in references]
    depth = max((len(r) for r in refs), default=1)
    return [[r[k] if k < len(r) else r[0] for r in refs] for k in range(depth)]


def corpus_bleu(hypotheses, references, max_n=4):
    """Corpus BLEU (Papineni et al., 2002) in percent, as sacrebleu computes it by default;
    `references` holds one reference per output, or a list of them.

    Clipped n-gram precisions p_1..p_4 are pooled over the corpus (an n-gram counts at most as
    often as in the reference holding it most); BLEU = BP * exp(mean(log p_n)), with the brevity
    penalty BP = exp(1 - r/c) when the output length c is below the reference length r (per
    sentence the reference length closest to the output's), else 1. No smoothing: a corpus
    without any matching 4-gram scores 0.
    """
    try:
        import sacrebleu
    except ImportError:
        pass
    else:
        return float(sacrebleu.corpus_bleu(list(hypotheses), _reference_streams(references), force=True).score)
    match, total = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for h, refs in zip(hypotheses, references):
        ht, rts = _bleu_tokens(h), [_bleu_tokens(r) for r in _as_list(refs)]
        hyp_len += len(ht)
        ref_len += min((len(rt) for rt in rts), key=lambda n: (abs(n - len(ht)), n))
        for n in range(1, max_n + 1):
            hc = Counter(tuple(ht[i:i + n]) for i in range(len(ht) - n + 1))
            rc = Counter()
            for rt in rts:
                rc |= Counter(tuple(rt[i:i + n]) for i in range(len(rt) - n + 1))
            match[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            total[n - 1] += max(len(ht) - n + 1, 0)
    if hyp_len == 0 or min(match) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total)) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * bp * math.exp(log_p)


def corpus_chrf(hypotheses, references):
    """chrF (Popović, 2015) with sacrebleu's defaults, in percent; None without sacrebleu."""
    try:
        import sacrebleu
    except ImportError:
        return None
    return float(sacrebleu.corpus_chrf(list(hypotheses), _reference_streams(references)).score)


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
    """The repeat model with its vocabularies: texts in, texts out (greedy)."""

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

    def translate(self, texts, beam=1, batch_size=256):
        if not texts:
            return []
        prob = self.model.predict(self.inputs(texts), batch_size=batch_size, verbose=0)
        return [self.tgt.decode(seq) for seq in prob.argmax(axis=-1)]  # greedy


class _AttentionTranslator:
    """The attention model with its vocabularies: texts in, texts out, greedy or by beam search,
    through encoder and decoder models that share its layers (seq2seq.inference_models)."""

    def __init__(self, model, src, tgt, max_target_len):
        from .seq2seq import inference_models

        self.model, self.src, self.tgt, self.max_target_len = model, src, tgt, max_target_len
        self.encoder, self.decoder = inference_models(model)

    def translate(self, texts, beam=1, batch_size=256):
        return decode_texts(self.encoder, self.decoder, self.src, self.tgt, texts, self.max_target_len, beam,
                            batch_size)


def decode_texts(encoder, decoder, src, tgt, texts, max_target_len, beam=1, batch_size=256):
    """Texts -> translations through `encoder` and `decoder` (anything with predict_on_batch, as
    seq2seq.inference_models makes them): sentences of similar length decoded together, greedily
    (beam 1) or by beam search, at most max_target_len + 5 tokens and twice the source's + 10."""
    from .seq2seq import beam_decode, greedy_decode

    seqs = src.encode(list(texts))
    order = np.argsort([len(q) for q in seqs], kind="stable")  # similar lengths share a batch
    decoded = [None] * len(seqs)
    step = max(1, batch_size // max(beam, 1))
    for k in range(0, len(order), step):
        idx = order[k:k + step]
        source = _right_padded([seqs[i] or [src.eos_id] for i in idx])
        max_len = min(max_target_len + 5, 2 * source.shape[1] + 10)
        if beam > 1:
            ids = beam_decode(encoder, decoder, source, tgt.bos_id, tgt.eos_id, max_len, beam)
        else:
            ids = greedy_decode(encoder, decoder, source, tgt.bos_id, tgt.eos_id, max_len)
        for i, row in zip(idx, ids):
            decoded[i] = tgt.decode(row)
    return decoded


def _right_padded(seqs):
    """Id sequences padded with 0 at the end to the longest of them."""
    return D.pad_sequences(seqs, padding="post", truncating="post")


class _PairBatches:
    """Training batches of (source, target-with-begin) -> target-with-end ids, pairs of similar
    length together (little padding), each batch padded to its own longest sentence. Pairs are
    sorted by target length, then source length: the target side carries the costliest layer
    (the softmax over the vocabulary at every step), and on Tatoeba 99.9 % of the target steps
    and 98 % of the source steps of a batch are then real words (sorting by the sum of the two
    lengths left 84 % and 79 %)."""

    def __init__(self, sources, targets, batch_size, bos, eos):
        from ..utils import PyDataset

        order = np.lexsort(([len(a) for a in sources], [len(b) for b in targets]))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

        class Batches(PyDataset):
            def __len__(self):
                return len(batches)

            def __getitem__(self, i):
                idx = batches[i]
                tgt = [targets[j] for j in idx]
                return ((_right_padded([sources[j] for j in idx]), _right_padded([[bos] + t for t in tgt])),
                        _right_padded([t + [eos] for t in tgt]))

        self.dataset = Batches()


def _vocab(level, lower, max_vocab, texts, seed):
    if level == "subword":
        from .subwords import SubwordVocab

        return SubwordVocab.train(texts, max_vocab, lower=lower)
    return _Vocab(level, lower, max_vocab=max_vocab).fit(texts)


def _vocab_from_config(config):
    if config.get("level") == "subword":
        from .subwords import SubwordVocab

        return SubwordVocab.from_config(config)
    return _Vocab.from_config(config)


def _time_budget(seconds, verbose):
    """A callback that ends training after the epoch when one more epoch (as long as the last)
    would end past `seconds` from the start of fit."""
    from ..callbacks import Callback

    class TimeBudget(Callback):
        def on_train_begin(self, logs=None):
            self.start = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            now = time.monotonic()
            if now + (now - self.epoch_start) > self.start + seconds:
                self.model.stop_training = True
                log(verbose, f"time budget of {seconds / 60:.1f} min: training ends after epoch {epoch + 1}")

    return TimeBudget()


def _save_improved(save):
    """A callback that saves the model directory after each epoch that lowered val_loss."""
    from ..callbacks import Callback

    class SaveImproved(Callback):
        best = math.inf

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_loss")
            if value is not None and value < self.best:
                self.best = value
                save()

    return SaveImproved()


def train(config=None, out=None, verbose=1, evaluate_after=True, **overrides):
    """Learn the vocabularies and the model on the training pairs, save the model directory
    (after every epoch that improved, and at the end), evaluate on the held-out pairs."""
    config = dataclasses.replace(config or TranslateConfig(), **overrides).resolved()
    if config.level not in ("subword", "char", "word"):
        raise PipelineError(f"level must be 'subword', 'word' or 'char', got {config.level!r}")
    if config.network not in ("attention", "repeat"):
        raise PipelineError(f"network must be 'attention' or 'repeat', got {config.network!r}")
    if config.network == "repeat" and config.level == "subword":
        config = dataclasses.replace(config, level="word")  # the repeat model's vocabulary
    seed_everything(config.seed)
    set_threads(config.threads)
    with Stopwatch() as data_clock:
        train_pairs, val_pairs, test_pairs, desc = load_pairs(config)
    log(verbose, f"data: {desc}: train {len(train_pairs)}, validation {len(val_pairs)}, "
                 f"test {len(test_pairs)} (held out) [{data_clock.seconds:.1f} s]")
    out = resolve_out(out, PIPELINE)
    fit = _fit_attention if config.network == "attention" else _fit_repeat
    with Stopwatch() as clock:
        translator, marker, history = fit(config, train_pairs, val_pairs, out, desc, verbose)
    marker["train_seconds"] = clock.seconds
    log(verbose, f"trained in {clock.seconds:.1f} s")
    save_pipeline(out, PIPELINE, translator.model, marker, history)
    result = {"model_dir": out, "history": history, "train_seconds": clock.seconds}
    if evaluate_after:
        result["metrics"] = _evaluate(out, translator, marker, test_pairs, desc + " (held-out part)",
                                      verbose=verbose)
    return result


def _marker(config, src, tgt, desc, n_pairs, **extra):
    return {"config": dataclasses.asdict(config), "source_vocab": src.get_config(), "target_vocab": tgt.get_config(),
            "data": {"description": desc, **n_pairs}, **extra}


def _callbacks(config, save, verbose, selection=None):
    """Early stopping on val_loss (restoring the best epoch) and a save after each improved
    epoch, or `selection` doing both; then the time budget."""
    from ..callbacks import EarlyStopping

    cbs = [selection] if selection is not None else [
        EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True), _save_improved(save)]
    if config.max_minutes:
        cbs.append(_time_budget(60.0 * config.max_minutes, verbose))
    return cbs


def _bleu_selection(translator, val_pairs, save, patience, verbose, lr_decay=1.0, average=3):
    """A callback choosing the weights by what the model is for: after each epoch it translates
    the validation sentences greedily and scores BLEU against all their references
    (logs["val_bleu"]), for the epoch's weights and for the mean of the weights at the ends of
    the last `average` epochs (checkpoint averaging, as neural translation systems do:
    w̄ = (1/k) Σ_{j<k} w_{e−j}, logs["val_bleu_averaged"]); the better of the two is a candidate.
    The model directory is written when the best BLEU so far improved; after an epoch without
    improvement the learning rate is multiplied by `lr_decay` (logs["learning_rate"]: the rate
    the epoch trained with); training stops after `patience` epochs without improvement, and
    the best weights come back at the end. Training itself always goes on from the epoch's own
    weights. (The validation loss of teacher-forced steps reaches its minimum epochs before
    BLEU does.)"""
    from ..callbacks import Callback

    references = {}
    for s, t in val_pairs:
        references.setdefault(s, []).append(t)
    sources = list(references)
    refs = [references[s] for s in sources]

    class BleuSelection(Callback):
        best, wait, weights = -math.inf, 0, None

        def on_train_begin(self, logs=None):
            self.recent = []  # the weights at the ends of the last `average` epochs

        def on_epoch_end(self, epoch, logs=None):
            bleu = corpus_bleu(translator.translate(sources, beam=1), refs)
            rate = float(self.model.optimizer.learning_rate)
            if logs is not None:
                logs["val_bleu"], logs["learning_rate"] = bleu, rate
            log(verbose, f"validation BLEU (greedy, {len(sources)} sentences): {bleu:.2f}")
            own = self.model.get_weights()
            self.recent = (self.recent + [own])[-average:] if average > 1 else []
            candidate, weights, bleu_mean = bleu, own, bleu
            if len(self.recent) > 1:
                mean = [np.mean(ws, axis=0, dtype=np.float64).astype(w.dtype) for w, ws in
                        zip(own, zip(*self.recent))]  # w̄ = (1/k) Σ_j w_{e−j}
                self.model.set_weights(mean)
                bleu_mean = corpus_bleu(translator.translate(sources, beam=1), refs)
                log(verbose, f"validation BLEU of the last {len(self.recent)} epochs' mean weights: {bleu_mean:.2f}")
                if bleu_mean > bleu:
                    candidate, weights = bleu_mean, mean
                else:
                    self.model.set_weights(own)
            if logs is not None:
                logs["val_bleu_averaged"] = bleu_mean
            if candidate > self.best:
                self.best, self.wait, self.weights = candidate, 0, weights
                save()  # the model holds the candidate's weights
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True
                elif lr_decay != 1.0:
                    self.model.optimizer.learning_rate = rate * lr_decay
                    log(verbose, f"learning rate {rate:.3g} -> {rate * lr_decay:.3g}")
            if weights is not own:
                self.model.set_weights(own)  # training goes on from the epoch's own weights

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return BleuSelection()


def _kept(out):
    """What an interrupted training leaves: the model of the last epoch that improved, saved when
    it did (ModelCheckpoint-like), or the directory as it was."""
    started = time.time()

    def say():
        marker = os.path.join(out, "pipeline.json")
        if os.path.exists(marker) and os.path.getmtime(marker) >= started:
            return f"{out} holds the model of the last epoch that improved"
        return "nothing was saved; the model directory is as it was"
    return say


def _fit_attention(config, train_pairs, val_pairs, out, desc, verbose):
    from .seq2seq import build_attention_model

    src = _vocab(config.level, config.lower, config.max_vocab, [s for s, _ in train_pairs], config.seed)
    tgt = _vocab(config.level, config.lower, config.max_vocab, [t for _, t in train_pairs], config.seed)
    s_tr, t_tr = src.encode([s for s, _ in train_pairs]), tgt.encode([t for _, t in train_pairs])
    s_va, t_va = src.encode([s for s, _ in val_pairs]), tgt.encode([t for _, t in val_pairs])
    max_target = max(len(t) for t in t_tr)
    log(verbose, f"tokens ({config.level}): source {src.size}, target {tgt.size}; longest target {max_target} tokens")
    model = build_attention_model(src.input_size, tgt.input_size, tgt.size, config.embedding_dim, config.units,
                                  config.learning_rate, config.dropout)
    translator = _AttentionTranslator(model, src, tgt, max_target)
    marker = _marker(config, src, tgt, desc, {"train": len(train_pairs), "val": len(val_pairs)},
                     max_target_len=max_target)
    history = {}
    save = lambda: save_pipeline(out, PIPELINE, model, marker, history)  # noqa: E731
    train_set = _PairBatches(s_tr, t_tr, config.batch_size, tgt.bos_id, tgt.eos_id).dataset
    val_set = _PairBatches(s_va, t_va, 256, tgt.bos_id, tgt.eos_id).dataset
    selection = _bleu_selection(translator, val_pairs, save, config.patience, verbose, config.lr_decay)
    h = fit_or_stop(model, _kept(out), x=train_set, epochs=config.epochs, validation_data=val_set,
                    callbacks=_callbacks(config, save, verbose, selection), verbose=verbose)
    history.update(history_dict(h))
    return translator, marker, history


def _fit_repeat(config, train_pairs, val_pairs, out, desc, verbose):
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
    marker = _marker(config, src, tgt, desc, {"train": len(train_pairs), "val": len(val_pairs)},
                     t_in=t_in, t_out=t_out, embedding=bool(embedding_dim))
    history = {}
    save = lambda: save_pipeline(out, PIPELINE, model, marker, history)  # noqa: E731
    h = fit_or_stop(model, _kept(out), x=X, y=y, batch_size=config.batch_size, epochs=config.epochs,
                    validation_data=(Xv, yv), callbacks=_callbacks(config, save, verbose), verbose=verbose)
    history.update(history_dict(h))
    return translator, marker, history


def _load(model_dir):
    model, marker = load_pipeline_model(model_dir, PIPELINE)
    try:
        src, tgt = _vocab_from_config(marker["source_vocab"]), _vocab_from_config(marker["target_vocab"])
        if marker["config"].get("network", "repeat") == "attention":
            return _AttentionTranslator(model, src, tgt, int(marker["max_target_len"])), marker
        reverse = marker["config"].get("reverse_source", False)
        return _Translator(model, src, tgt, marker["t_in"], marker["t_out"], reverse,
                           marker.get("embedding", False)), marker
    except (KeyError, TypeError, ValueError) as e:
        raise PipelineError(f"{model_dir}: the pipeline marker is incomplete or damaged ({type(e).__name__}: {e})") from None


def _config_of(marker):
    known = {f.name for f in dataclasses.fields(TranslateConfig)}
    saved = {k: v for k, v in marker["config"].items() if k in known}
    saved.setdefault("network", "repeat")  # directories written before the attention model
    if saved.get("data") is None and "network" not in marker["config"]:
        saved["data"] = "numbers"  # whose default data were the number phrases
    return TranslateConfig(**saved)


def evaluate(model_dir, data=None, plot=False, verbose=1, examples=5, beam=None):
    """BLEU (against all references of a sentence), chrF, exact match and character accuracy on
    the held-out pairs (or all pairs of ``data``), greedy and with a beam of ``beam`` (default:
    the model's setting), beside the copy baseline (output = input), which shows how much of the
    score needs no model. ``examples``: how many outputs to show beside their references.
    Writes ``metrics.json``; returns it.
    """
    translator, marker = _load(model_dir)
    cfg = _config_of(marker)
    if data and data != cfg.data:
        pairs = D.load_ding() if data == "ding" else D.load_tab_pairs(data)
        test_pairs, test_desc = pairs, f"all pairs of {data}"
    else:
        _, _, test_pairs, desc = load_pairs(cfg)
        test_desc = desc + " (held-out part)"
    return _evaluate(model_dir, translator, marker, test_pairs, test_desc, plot=plot, verbose=verbose,
                     examples=examples, beam=beam)


def _evaluate(model_dir, translator, marker, test_pairs, test_desc, plot=False, verbose=1, examples=5, beam=None):
    """:func:`evaluate` with the translator, its marker and the test pairs at hand."""
    cfg = _config_of(marker)
    beam = cfg.beam if beam is None else int(beam)
    references = {}  # every translation of a source sentence is a reference
    for s, t in test_pairs:
        references.setdefault(s, []).append(t.lower() if cfg.lower else t)
    sources = list(references)
    refs = [references[s] for s in sources]
    copy = [s.lower() if cfg.lower else s for s in sources]
    runs = {}
    if cfg.network == "attention":
        for width in sorted({1, beam}):
            with Stopwatch() as clock:
                runs[f"attention_{'greedy' if width == 1 else f'beam{width}'}"] = (translator.translate(sources, beam=width),
                                                                                   clock)
    else:
        with Stopwatch() as clock:
            runs["lstm_seq2seq"] = (translator.translate(sources), clock)
    metrics = {"pipeline": PIPELINE, "test_data": test_desc, "test_pairs": len(test_pairs),
               "test_sources": len(sources), "references_per_source": len(test_pairs) / max(len(sources), 1),
               "bleu_implementation": "sacrebleu" if _has_sacrebleu() else "lstmfast corpus_bleu", "models": {}}
    for name, out in [(k, v[0]) for k, v in runs.items()] + [("copy_source", copy)]:
        metrics["models"][name] = {"bleu": corpus_bleu(out, refs), "chrf": corpus_chrf(out, refs),
                                   "exact_match": exact_match(out, refs),
                                   "char_accuracy": char_accuracy(out, [r[0] for r in refs])}
    for name, (_, clock) in runs.items():
        metrics["models"][name]["seconds"] = clock.seconds
    first = list(runs.values())[-1][0]  # the beam's outputs where there is one
    metrics["examples"] = [{"source": s, "references": r, "output": h}
                           for s, r, h in list(zip(sources, refs, first))[:examples]]
    metrics["train_seconds"] = marker.get("train_seconds")
    write_json(os.path.join(model_dir, "metrics.json"), metrics)
    log(verbose, f"\nscores on {len(sources)} held-out source sentences ({len(test_pairs)} reference translations)")
    rows = [(k, v["bleu"], v["chrf"] if v["chrf"] is not None else float("nan"), v["exact_match"], v["char_accuracy"])
            for k, v in metrics["models"].items()]
    log(verbose, format_table(rows, ["model", "BLEU", "chrF", "exact match", "char accuracy"]))
    for e in metrics["examples"]:
        hit = e["output"] in e["references"]
        log(verbose, f"  {e['source']!r} -> {e['output']!r}" + ("" if hit else f"  (one reference: {e['references'][0]!r})"))
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


def predict(model_dir, texts, beam=None):
    """Translate each text with the saved model: by beam search of width ``beam`` (default: the
    model's setting; 1 is greedy). Warns about inputs that are mostly unknown to the model."""
    if isinstance(texts, str):
        texts = [texts]
    translator, marker = _load(model_dir)
    texts = list(texts)
    unknown = translator.src.unknown_fraction(texts)
    for text, share in zip(texts, unknown):
        if share > 0.3:
            print(f"lstmfast: warning: {share:.0%} of the tokens of {text[:60]!r} are unknown to this model; "
                  "its translation is a guess", file=sys.stderr)
    beam = _config_of(marker).beam if beam is None else int(beam)
    return translator.translate(texts, beam=beam)
