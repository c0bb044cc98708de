"""Translating English number phrases into French with an LSTM encoder-decoder.

Introduction
------------
"ninety-one thousand and seventy-one" -> "quatre-vingt-onze mille soixante et
onze". Pairs come from ``num2words`` for numbers 0..99,999; the test numbers
are drawn apart from the training numbers, so the model is scored on numbers
it has never seen. The model is the classic sequence-to-sequence network: an
encoder LSTM reads the one-hot source words (last word first, which shortens
the path from the first words to the decoder) into one vector, RepeatVector
hands that vector to every output step, a decoder LSTM unrolls it and a
softmax picks a word per step. Decoding is greedy: the likeliest word at each
step until the end-of-text index 0.

The same steps, saved as a model directory with both vocabularies, are one
command: ``lstmfast translate train`` (and ``lstmfast translate predict "..."``).

Run: ``python examples/translate_numbers.py`` (several minutes on two cores).
"""

# -- Set-up --------------------------------------------------------------------
import numpy as np

import lstmfast
from lstmfast.data import Tokenizer, number_phrases, pad_sequences, split_numbers
from lstmfast.layers import LSTM, Dense, Input, RepeatVector, TimeDistributed
from lstmfast.pipelines.translation import char_accuracy, detokenize, exact_match, tokenize

# -- Configuration: every setting in one place -------------------------------------
N_TRAIN, N_VAL, N_TEST = 20000, 1000, 2000
UNITS = 128
EPOCHS = 12           # upper bound; early stopping on validation loss
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
SEED = 0

lstmfast.utils.set_random_seed(SEED)

# -- Data ----------------------------------------------------------------------------
train_n, val_n, test_n = split_numbers(N_TRAIN, N_VAL, N_TEST, seed=SEED)   # disjoint numbers
train, val, test = number_phrases(train_n), number_phrases(val_n), number_phrases(test_n)
print(train[0], "...")

# Word tokens: "quatre-vingt-dix" is one word; "▁" marks a word after a space.
src_tok = Tokenizer(filters="", lower=False, oov_token="\x00")
tgt_tok = Tokenizer(filters="", lower=False, oov_token="\x00")
src_tok.fit_on_texts([tokenize(s, "word") for s, _ in train])
tgt_tok.fit_on_texts([tokenize(t, "word") for _, t in train])
T_IN = max(len(tokenize(s, "word")) for s, _ in train)
T_OUT = max(len(tokenize(t, "word")) for _, t in train) + 1     # + the end-of-text step
V_IN, V_OUT = src_tok.vocabulary_size, tgt_tok.vocabulary_size


def encode_source(pairs):
    seqs = [s[::-1] for s in src_tok.texts_to_sequences([tokenize(s, "word") for s, _ in pairs])]
    idx = pad_sequences(seqs, maxlen=T_IN)                       # pre-padding, Keras's default
    return np.eye(V_IN, dtype=np.float32)[idx] * (idx > 0)[..., None]   # one-hot; padding all zeros


def encode_target(pairs):
    seqs = tgt_tok.texts_to_sequences([tokenize(t, "word") for _, t in pairs])
    return pad_sequences(seqs, maxlen=T_OUT, padding="post")     # 0 after the last word = stop


X_train, y_train = encode_source(train), encode_target(train)
X_val, y_val = encode_source(val), encode_target(val)
print(f"source: {V_IN} words x {T_IN} steps, target: {V_OUT} words x {T_OUT} steps")

# -- Build ---------------------------------------------------------------------------
model = lstmfast.Sequential([
    Input(shape=(T_IN, V_IN)),
    LSTM(UNITS),                            # encoder
    RepeatVector(T_OUT),
    LSTM(UNITS, return_sequences=True),     # decoder
    TimeDistributed(Dense(V_OUT, activation="softmax")),   # one softmax per output step
])
model.compile(optimizer=lstmfast.optimizers.Adam(learning_rate=LEARNING_RATE),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.summary()

# -- Train ---------------------------------------------------------------------------
model.fit(X_train, y_train, batch_size=BATCH_SIZE, epochs=EPOCHS, validation_data=(X_val, y_val),
          callbacks=[lstmfast.callbacks.EarlyStopping(patience=4, restore_best_weights=True)], verbose=2)

# -- Inference -------------------------------------------------------------------------


def translate(pairs):
    best = model.predict(encode_source(pairs), batch_size=256, verbose=0).argmax(axis=-1)   # greedy
    out = []
    for seq in best:
        words = []
        for i in seq:
            if i == 0:
                break
            words.append(tgt_tok.index_word.get(int(i), "?"))
        out.append(detokenize(words, "word"))
    return out


hyps, refs = translate(test), [t for _, t in test]
print(f"held-out numbers: exact match {exact_match(hyps, refs):.4f}, "
      f"character accuracy {char_accuracy(hyps, refs):.4f}")
for (source, reference), output in list(zip(test, hyps))[:5]:
    print(f"  {source} -> {output}" + ("" if output == reference else f"   (want: {reference})"))
