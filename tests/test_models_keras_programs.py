"""Keras programs from the Keras documentation's examples, written as Keras writes them and run
with only their imports changed (`from lstmfast import ...`), against Keras itself where they
train: a bidirectional-LSTM IMDB classifier, a character-level text generator, a model that
merges text and numeric features with Concatenate, and a forecaster fed windows by
timeseries_dataset_from_array with EarlyStopping and ModelCheckpoint."""

import numpy as np
import pytest

from keras_reference import import_keras

keras_module = import_keras()

import lstmfast  # noqa: E402


def _bilstm_imdb(keras, layers, x_train, y_train, max_features):
    # keras-io examples/nlp/bidirectional_lstm_imdb.py, at a small size
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(max_features, 16)(inputs)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(8))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _text_and_numbers(keras, layers):
    text_in = keras.Input(shape=(None,), dtype="int32", name="text")
    numbers_in = keras.Input(shape=(4,), name="numbers")
    x = layers.LSTM(8)(layers.Embedding(50, 6, mask_zero=True)(text_in))
    y = layers.Dense(8, activation="relu")(numbers_in)
    merged = layers.concatenate([x, y])
    out = layers.Dense(1, activation="sigmoid")(layers.Dropout(0.0)(merged))
    model = keras.Model(inputs=[text_in, numbers_in], outputs=out)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _parity(build, xs, y):
    lstmfast.utils.set_random_seed(0)
    lm = build(lstmfast, lstmfast.layers)
    km = build(keras_module, keras_module.layers)
    km.set_weights(lm.get_weights())
    np.testing.assert_allclose(lm.predict(xs, verbose=0), km.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    fit = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
    hl, hk = lm.fit(xs, y, **fit).history, km.fit(xs, y, **fit).history
    for key in hk:
        np.testing.assert_allclose(hl[key], hk[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_the_bidirectional_lstm_imdb_classifier_trains_like_keras():
    max_features, maxlen = 500, 40
    (x_train, y_train), _ = lstmfast.datasets.imdb.load_data(num_words=max_features)
    x_train = lstmfast.utils.pad_sequences(x_train[:64], maxlen=maxlen)
    y_train = np.asarray(y_train[:64], dtype=np.float32)
    _parity(lambda k, L: _bilstm_imdb(k, L, x_train, y_train, max_features), x_train, y_train)


def test_a_text_and_numbers_model_merged_with_concatenate_trains_like_keras():
    rng = np.random.default_rng(1)
    text = rng.integers(1, 50, (48, 7))
    text[:10, -3:] = 0
    numbers = rng.standard_normal((48, 4)).astype(np.float32)
    y = rng.integers(0, 2, (48, 1)).astype(np.float32)
    _parity(_text_and_numbers, [text, numbers], y)


def test_the_character_level_text_generator_learns_and_samples():
    # keras-io examples/generative/lstm_character_level_text_generation.py, at a small size
    from lstmfast import layers
    (x_train, _), _ = lstmfast.datasets.imdb.load_data(num_words=None)
    index = {i + 3: w for w, i in lstmfast.datasets.imdb.get_word_index().items()}
    text = " ".join(" ".join(index.get(i, "") for i in review) for review in x_train[:20])[:6000]
    chars = sorted(set(text))
    char_indices = {c: i for i, c in enumerate(chars)}
    indices_char = {i: c for i, c in enumerate(chars)}
    maxlen, step = 20, 3
    sentences = [text[i:i + maxlen] for i in range(0, len(text) - maxlen, step)]
    next_chars = [text[i + maxlen] for i in range(0, len(text) - maxlen, step)]
    x = np.zeros((len(sentences), maxlen, len(chars)), dtype="bool")
    y = np.zeros((len(sentences), len(chars)), dtype="bool")
    for i, sentence in enumerate(sentences):
        for t, char in enumerate(sentence):
            x[i, t, char_indices[char]] = 1
        y[i, char_indices[next_chars[i]]] = 1
    lstmfast.utils.set_random_seed(2)
    model = lstmfast.Sequential([lstmfast.Input(shape=(maxlen, len(chars))), layers.LSTM(64),
                                 layers.Dense(len(chars), activation="softmax")])
    optimizer = lstmfast.optimizers.RMSprop(learning_rate=0.01)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)
    history = model.fit(x, y, batch_size=64, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.85

    def sample(preds, temperature=1.0):
        preds = np.asarray(preds).astype("float64")
        preds = np.log(preds) / temperature
        exp_preds = np.exp(preds)
        preds = exp_preds / np.sum(exp_preds)
        probas = np.random.multinomial(1, preds, 1)
        return np.argmax(probas)

    sentence, generated = text[:maxlen], ""
    for _ in range(40):
        x_pred = np.zeros((1, maxlen, len(chars)))
        for t, char in enumerate(sentence):
            x_pred[0, t, char_indices[char]] = 1.0
        next_char = indices_char[sample(model.predict(x_pred, verbose=0)[0], 0.5)]
        sentence = sentence[1:] + next_char
        generated += next_char
    assert len(generated) == 40 and set(generated) <= set(chars)


def test_the_timeseries_forecaster_fed_by_timeseries_dataset_from_array_trains_like_keras(tmp_path):
    # keras-io examples/timeseries/timeseries_weather_forecasting.py, on the weekly CO2 series
    # shipped with lstmfast: normalised features, windows cut by timeseries_dataset_from_array, an
    # LSTM(32) -> Dense(1) model, EarlyStopping and ModelCheckpoint(save_best_only) on val_loss.
    # Keras 3 builds its windows with tf.data, absent here: it is fed the same batches through a
    # keras.utils.PyDataset.
    frame = lstmfast.data.load_co2()
    values = np.asarray(frame.values, dtype=np.float32)[:, :1]
    features = np.concatenate([values, np.sin(np.arange(len(values)) * 2 * np.pi / 52.18)[:, None]], axis=1)
    train_split = int(0.7 * len(features))
    mean, std = features[:train_split].mean(axis=0), features[:train_split].std(axis=0)
    features = ((features - mean) / std).astype(np.float32)
    past, future, step, sequence_length, batch_size = 24, 4, 2, 12, 64
    start = past + future
    x_train, y_train = features[:train_split], features[start:train_split + start, :1]
    x_val, y_val = features[train_split:-start], features[train_split + start:, :1]
    dataset_train = lstmfast.utils.timeseries_dataset_from_array(
        x_train, y_train, sequence_length=sequence_length, sampling_rate=step, batch_size=batch_size)
    dataset_val = lstmfast.preprocessing.timeseries_dataset_from_array(
        x_val, y_val, sequence_length=sequence_length, sampling_rate=step, batch_size=batch_size)

    def build(keras, path):
        inputs = keras.layers.Input(shape=(sequence_length, features.shape[1]))
        lstm_out = keras.layers.LSTM(32)(inputs)
        outputs = keras.layers.Dense(1)(lstm_out)
        model = keras.Model(inputs=inputs, outputs=outputs)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
        es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)
        modelckpt_callback = keras.callbacks.ModelCheckpoint(
            monitor="val_loss", filepath=str(path), verbose=0, save_weights_only=True, save_best_only=True)
        return model, [es_callback, modelckpt_callback]

    class Windows(keras_module.utils.PyDataset):
        def __init__(self, source):
            super().__init__()
            self.source = source

        def __len__(self):
            return len(self.source)

        def __getitem__(self, i):
            return self.source[i]

    lstmfast.utils.set_random_seed(0)
    lm, lcb = build(lstmfast, tmp_path / "lstmfast.weights.h5")
    km, kcb = build(keras_module, tmp_path / "keras.weights.h5")
    km.set_weights(lm.get_weights())
    fit = dict(epochs=3, shuffle=False, verbose=0)  # each shuffles the batch order with its own generator
    hl = lm.fit(dataset_train, validation_data=dataset_val, callbacks=lcb, **fit).history
    hk = km.fit(Windows(dataset_train), validation_data=Windows(dataset_val), callbacks=kcb, **fit).history
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(hl[key], hk[key], rtol=1e-4, atol=1e-6, err_msg=key)
    best = lstmfast.models.clone_model(lm)
    best.load_weights(tmp_path / "lstmfast.weights.h5")
    best.compile(optimizer="adam", loss="mse")
    np.testing.assert_allclose(best.evaluate(dataset_val, verbose=0), min(hl["val_loss"]), rtol=1e-5)
