"""The three Keras snippets of the project's LSTM overview run on lstmfast with only their
`tensorflow.keras` imports replaced by `lstmfast` — same layers, same arguments, same compile
call — and then train and predict.

The translation snippet uses `RepeatVector` without importing it (it would raise NameError in
Keras too), so its import line also names RepeatVector; nothing else is changed.
"""

import textwrap

import numpy as np
import pytest

import lstmfast as lf

TRANSLATION = """
from lstmfast.models import Sequential
from lstmfast.layers import LSTM, Dense, RepeatVector

model = Sequential()
model.add(LSTM(256, input_shape=(input_length, input_dim)))
model.add(RepeatVector(output_length))
model.add(LSTM(256, return_sequences=True))
model.add(Dense(output_vocab_size, activation='softmax'))
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
"""

TIME_SERIES = """
from lstmfast.models import Sequential
from lstmfast.layers import LSTM, Dense

model = Sequential()
model.add(LSTM(50, activation='relu', input_shape=(n_steps, n_features)))
model.add(Dense(1))
model.compile(optimizer='adam', loss='mse')
"""

SENTIMENT = """
from lstmfast.models import Sequential
from lstmfast.layers import LSTM, Dense, Embedding

model = Sequential()
model.add(Embedding(max_features, embedding_dim, input_length=maxlen))
model.add(LSTM(128, dropout=0.2, recurrent_dropout=0.2))
model.add(Dense(1, activation='sigmoid'))
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
"""


def _run(snippet, **sizes):
    namespace = dict(sizes)
    exec(textwrap.dedent(snippet), namespace)
    return namespace["model"]


@pytest.fixture(autouse=True)
def _seed():
    lf.utils.set_random_seed(0)


def test_translation_snippet_builds_trains_and_predicts():
    model = _run(TRANSLATION, input_length=6, input_dim=8, output_length=5, output_vocab_size=12)
    assert model.output_shape == (None, 5, 12)
    assert model.count_params() == 4 * (8 * 256 + 256 * 256 + 256) + 4 * (256 * 256 * 2 + 256) + 256 * 12 + 12
    rng = np.random.default_rng(0)
    x = rng.random((32, 6, 8)).astype(np.float32)
    y = lf.utils.to_categorical(rng.integers(0, 12, (32, 5)), 12)
    h = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert sorted(h.history) == ["accuracy", "loss"] and h.history["loss"][1] < h.history["loss"][0]
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(axis=-1), 1, rtol=1e-5)


def test_time_series_snippet_builds_trains_and_predicts():
    model = _run(TIME_SERIES, n_steps=30, n_features=1)
    assert model.count_params() == 10451 and model.output_shape == (None, 1)
    t = np.arange(400, dtype=np.float32)
    series = np.sin(t / 8)
    x = np.stack([series[i:i + 30] for i in range(300)])[..., None]
    y = series[30:330, None]
    h = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0] / 4
    assert model.predict(x[:5], verbose=0).shape == (5, 1)


def test_sentiment_snippet_builds_trains_and_predicts_with_dropout_on_the_fast_path():
    model = _run(SENTIMENT, max_features=1000, embedding_dim=32, maxlen=20)
    assert model.output_shape == (None, 1)
    assert model.count_params() == 1000 * 32 + 4 * (32 * 128 + 128 * 128 + 128) + 129
    rng = np.random.default_rng(1)
    x = rng.integers(1, 1000, (64, 20))
    y = (x[:, :5] < 500).mean(axis=1).round().astype(np.float32)
    h = model.fit(x, y, epochs=2, batch_size=32, verbose=0, validation_split=0.25)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    p = model.predict(x, verbose=0)
    assert p.shape == (64, 1) and np.all((p > 0) & (p < 1))
    # dropout is active in training (two training passes differ) and off in predict
    a, _ = model.forward(x[:8], True)
    b, _ = model.forward(x[:8], True)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))


def test_snippets_differ_from_the_keras_originals_only_in_their_imports():
    original_imports = {
        "from tensorflow.keras.models import Sequential",
        "from tensorflow.keras.layers import LSTM, Dense",
        "from tensorflow.keras.layers import LSTM, Dense, Embedding",
    }
    for snippet in (TRANSLATION, TIME_SERIES, SENTIMENT):
        imports = [l for l in snippet.strip().splitlines() if l.startswith("from ")]
        assert all(l.startswith("from lstmfast.") for l in imports)
        restored = {l.replace("lstmfast", "tensorflow.keras").replace(", RepeatVector", "") for l in imports}
        assert restored <= original_imports
