"""The translation pipeline end to end: the attention network with subword units and the classic
repeat network on slices of the number phrases and of Tatoeba; beam search against greedy on a
decoder whose best sentence greedy misses; BLEU against several references as sacrebleu scores it."""

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("num2words")
pytest.importorskip("sentencepiece")

from lstmfast.__main__ import main  # noqa: E402
from lstmfast.pipelines import translation  # noqa: E402
from lstmfast.pipelines.seq2seq import beam_decode, greedy_decode  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models") / "translate")
    return translation.train(out=out, verbose=0, data="numbers", network="repeat", n_train=2000, n_val=100,
                             n_test=200, units=64, epochs=10, patience=10, batch_size=32, seed=0, threads=1)


@pytest.fixture(scope="module")
def attention(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models") / "attention")
    return translation.train(out=out, verbose=0, data="numbers", n_train=3000, n_val=100, n_test=200, units=64,
                             embedding_dim=32, max_vocab=200, epochs=15, patience=15, learning_rate=3e-3,
                             batch_size=32, beam=3, seed=0, threads=1)


def test_the_repeat_network_beats_the_copy_baseline_on_unseen_numbers(trained):
    m = trained["metrics"]["models"]
    assert trained["metrics"]["test_pairs"] == 200
    assert m["lstm_seq2seq"]["char_accuracy"] > m["copy_source"]["char_accuracy"] + 0.15
    assert m["lstm_seq2seq"]["bleu"] > m["copy_source"]["bleu"]


def test_the_attention_network_translates_unseen_numbers_greedy_and_by_beam(attention):
    m = attention["metrics"]["models"]
    assert set(m) == {"attention_greedy", "attention_beam3", "copy_source"}
    for name in ("attention_greedy", "attention_beam3"):
        assert m[name]["bleu"] > 90 and m[name]["chrf"] > 90 > 20 > m["copy_source"]["chrf"]
        assert m[name]["exact_match"] > 0.9
    with open(os.path.join(attention["model_dir"], "pipeline.json")) as f:
        marker = json.load(f)
    assert marker["config"]["network"] == "attention" and marker["source_vocab"]["level"] == "subword"
    out = translation.predict(attention["model_dir"], ["twenty-one thousand and five", "seven hundred"], beam=2)
    assert len(out) == 2 and "mille" in out[0] and "cent" in out[1]


def test_model_directory_keeps_both_vocabularies(trained):
    with open(os.path.join(trained["model_dir"], "pipeline.json")) as f:
        marker = json.load(f)
    assert marker["pipeline"] == "translate"
    assert marker["source_vocab"]["level"] == "word" and marker["t_out"] >= 8


def test_predict_translates_to_french_words(trained):
    out = translation.predict(trained["model_dir"], ["twenty-one thousand and five", "seven hundred"])
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    assert "mille" in out[0]


def test_command_line_predict_reads_stdin_and_takes_a_beam(attention, capsys, monkeypatch):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("three hundred\n\nforty\n"))
    assert main(["translate", "predict", "--out", attention["model_dir"], "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_own_tab_separated_pairs_train_at_character_level(tmp_path):
    lines = [f"{w}\t{w.upper()}\tCC-BY" for w in ["cat", "dog", "bird", "fish", "cow", "hen", "fox", "owl",
                                                 "bee", "ant", "elk", "yak", "emu", "pig", "rat", "eel"] * 4]
    p = tmp_path / "pairs.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for network in ("repeat", "attention"):
        r = translation.train(out=str(tmp_path / network), verbose=0, data=str(p), level="char", network=network,
                              units=16, epochs=2, seed=0, threads=1)
        assert r["metrics"]["test_pairs"] >= 1
        assert "copy_source" in r["metrics"]["models"] and len(r["metrics"]["models"]) >= 2


def test_tatoeba_holds_out_english_sentences_with_all_their_translations():
    cfg = translation.TranslateConfig(max_pairs=6000, n_test=300, n_val=100)
    train, val, test, _ = translation.load_pairs(cfg)
    sources = [{s for s, _ in part} for part in (train, val, test)]
    assert len(sources[2]) == 300 and len(sources[1]) == 100
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert len(train) + len(val) + len(test) == 6000


class _Scripted:
    """Encoder and decoder models of a toy language: from <begin> (id 1), token 2 has p = 0.6 and
    token 3 p = 0.4; after 2 every next token is a coin toss between 4 and 5 (p = 0.5 each) for
    two steps, after 3 the end (id 0) is certain. Greedy reads 2 4 4 … (p = 0.6·0.5·0.5·…); the
    best sentence is 3 <end> (p = 0.4)."""

    vocab = 6

    def predict_on_batch(self, inputs):
        if not isinstance(inputs, list):  # the encoder: memory, h, c
            n = len(inputs)
            return np.zeros((n, 1, 1)), np.zeros((n, 1)), np.zeros((n, 1))
        token, memory, h, c = inputs
        last, steps = token[:, -1], h[:, 0]
        p = np.zeros((len(last), 1, self.vocab))
        for i, (t, k) in enumerate(zip(last, steps)):
            if t == 1:
                p[i, 0, 2], p[i, 0, 3] = 0.6, 0.4
            elif t == 3 or k >= 3:
                p[i, 0, 0] = 1.0
            else:
                p[i, 0, 4] = p[i, 0, 5] = 0.5
        return p, h + 1, c


def test_beam_search_finds_the_sentence_greedy_decoding_misses():
    model, source = _Scripted(), np.ones((2, 3), np.int32)
    greedy = greedy_decode(model, model, source, bos=1, eos=0, max_len=6)
    assert list(greedy[0][:4]) == [2, 4, 4, 0]
    best = beam_decode(model, model, source, bos=1, eos=0, max_len=6, beam=3)
    assert list(best[0][:2]) == [3, 0] and list(best[1][:2]) == [3, 0]


def test_bleu_against_several_references_matches_sacrebleu(monkeypatch):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = ["Il fait beau aujourd'hui.", "Je suis content de te voir.", "C'est un chat noir."]
    refs = [["Il fait beau aujourd'hui !", "Aujourd'hui, il fait beau."], ["Je suis ravi de te voir."],
            ["C'est un chat noir.", "Voici un chat noir.", "C'est un chaton noir."]]
    want = sacrebleu.corpus_bleu(hyps, translation._reference_streams(refs)).score
    assert translation.corpus_bleu(hyps, refs) == pytest.approx(want)
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # lstmfast's own formula
    assert translation.corpus_bleu(hyps, refs) == pytest.approx(want, rel=1e-9)
    assert translation.exact_match(hyps, refs) == pytest.approx(1 / 3)


def test_the_mean_of_the_last_epochs_weights_is_kept_when_it_translates_better():
    # A scripted model whose translation is right only while its one weight is near 1: the
    # epochs end at 0, 2 and 3; the mean of the first two (1) is the best, and training goes
    # on from each epoch's own weights.
    class Model:
        stop_training = False

        def __init__(self):
            self.w = np.zeros(1)
            self.optimizer = type("Opt", (), {"learning_rate": 1e-3})()

        def get_weights(self):
            return [self.w.copy()]

        def set_weights(self, ws):
            self.w = ws[0].copy()

    model, saved = Model(), []
    good, bad = "Il fait beau aujourd'hui.", "Chat."
    translator = type("T", (), {"translate": lambda self, texts, beam=1: [good if abs(model.w[0] - 1) < 0.1
                                                                         else bad for _ in texts]})()
    pairs = [("It is nice today.", good)]
    selection = translation._bleu_selection(translator, pairs, lambda: saved.append(model.w[0]), patience=5,
                                            verbose=0, lr_decay=0.5, average=3)
    selection.set_model(model)
    selection.on_train_begin()
    logs_seen = []
    for w in (0.0, 2.0, 3.0):
        model.w = np.array([w])
        logs = {}
        selection.on_epoch_end(len(logs_seen), logs)
        logs_seen.append(logs)
        assert model.w[0] == w  # training goes on from the epoch's own weights
    assert saved == [0.0, 1.0]  # epoch 1's mean (0 + 2) / 2 improved; epoch 2's (0 + 2 + 3) / 3 did not
    assert [round(x["val_bleu"]) for x in logs_seen] == [0, 0, 0]
    assert round(logs_seen[1]["val_bleu_averaged"]) == 100
    assert model.optimizer.learning_rate == 5e-4  # the third epoch did not improve
    selection.on_train_end()
    assert model.w[0] == 1.0  # the best weights, the mean, come back at the end
