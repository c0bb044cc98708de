"""The translation pipeline end to end on a slice of the number phrases: it beats the copy baseline."""

import json
import os

import pytest

pytest.importorskip("num2words")

from lstmfast.__main__ import main  # noqa: E402
from lstmfast.pipelines import translation  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models") / "translate")
    return translation.train(out=out, verbose=0, n_train=2000, n_val=100, n_test=200, units=64,
                             epochs=10, patience=10, batch_size=32, seed=0, threads=1)


def test_training_beats_the_copy_baseline_on_unseen_numbers(trained):
    m = trained["metrics"]["models"]
    assert trained["metrics"]["test_pairs"] == 200
    assert m["lstm_seq2seq"]["char_accuracy"] > m["copy_source"]["char_accuracy"] + 0.15
    assert m["lstm_seq2seq"]["bleu"] > m["copy_source"]["bleu"]


def test_model_directory_keeps_both_vocabularies(trained):
    with open(os.path.join(trained["model_dir"], "pipeline.json")) as f:
        marker = json.load(f)
    assert marker["pipeline"] == "translate"
    assert marker["source_vocab"]["level"] == "word" and marker["t_out"] >= 8


def test_predict_translates_to_french_words(trained):
    out = translation.predict(trained["model_dir"], ["twenty-one thousand and five", "seven hundred"])
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    assert "mille" in out[0]


def test_command_line_predict_reads_stdin(trained, capsys, monkeypatch):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("three hundred\n\nforty\n"))
    assert main(["translate", "predict", "--out", trained["model_dir"]]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_own_tab_separated_pairs_train_at_character_level(tmp_path):
    lines = [f"{w}\t{w.upper()}\tCC-BY" for w in ["cat", "dog", "bird", "fish", "cow", "hen", "fox", "owl",
                                                 "bee", "ant", "elk", "yak", "emu", "pig", "rat", "eel"] * 4]
    p = tmp_path / "pairs.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = translation.train(out=str(tmp_path / "m"), verbose=0, data=str(p), level="char", units=16,
                          epochs=2, seed=0, threads=1)
    assert r["metrics"]["test_pairs"] >= 1
    assert set(r["metrics"]["models"]) == {"lstm_seq2seq", "copy_source"}
