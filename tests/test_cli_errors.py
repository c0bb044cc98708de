"""The command line's error discipline: every bad argument, file or directory ends in one line
`lstmfast <pipeline> <command>: error: ...` that names what was expected and what came, exit
status 2, no traceback (unless --debug), and before any training starts. Each case is a
reproducer of something the command once did instead (a traceback, or silently going on)."""

import json
import os
import time

import numpy as np
import pytest

import lstmfast as lf
from lstmfast.__main__ import main


def run_cli(args, capsys):
    """(exit status, stderr) of `lstmfast args`; argparse's own exits count as statuses."""
    try:
        status = main(args)
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.err


def assert_one_line_error(status, err, command, *fragments):
    assert status == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"lstmfast {command}: error: ") or "error: argument" in lines[0], lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"


@pytest.fixture
def series_csv(tmp_path):
    def write(n, value=None, name="series.csv"):
        dates = np.arange("2000-01-01", n, dtype="datetime64[D]") if False else \
            np.datetime64("2000-01-01") + np.arange(n)
        rng = np.random.default_rng(0)
        values = rng.normal(100, 10, n) if value is None else np.full(n, value)
        path = tmp_path / name
        path.write_text("date,value\n" + "".join(f"{d},{v}\n" for d, v in zip(dates, values)))
        return str(path)
    return write


def _model_dir(tmp_path, pipeline, marker=None, model=True):
    d = tmp_path / f"{pipeline}-model"
    d.mkdir()
    doc = {"pipeline": pipeline, "format_version": 1} if marker is None else marker
    (d / "pipeline.json").write_text(json.dumps(doc))
    if model:
        m = lf.Sequential([lf.Input((3, 1)), lf.layers.LSTM(2), lf.layers.Dense(1)])
        m.save(str(d / "model.lstmfast"))
    return str(d)


# ----- model directories ---------------------------------------------------------------------------

@pytest.mark.parametrize("pipeline,command", [("forecast", ["predict"]), ("sentiment", ["predict", "good"]),
                                              ("translate", ["predict", "one"])])
def test_a_marker_without_its_keys_is_named(tmp_path, capsys, pipeline, command):
    d = _model_dir(tmp_path, pipeline)
    status, err = run_cli([pipeline, command[0], "--out", d] + command[1:], capsys)
    assert_one_line_error(status, err, f"{pipeline} {command[0]}", "pipeline.json", "config")


def test_a_truncated_model_file_or_a_directory_in_its_place_is_named(tmp_path, capsys):
    d = _model_dir(tmp_path, "forecast", marker={"pipeline": "forecast", "format_version": 1, "config": {},
                                                 "columns": ["value"], "preprocessing": {}, "target": "value"})
    path = os.path.join(d, "model.lstmfast")
    with open(path, "rb") as f:
        head = f.read(100)
    with open(path, "wb") as f:
        f.write(head)
    status, err = run_cli(["forecast", "predict", "--out", d], capsys)
    assert_one_line_error(status, err, "forecast predict", "model.lstmfast")
    os.remove(path)
    os.mkdir(path)
    status, err = run_cli(["forecast", "predict", "--out", d], capsys)
    assert_one_line_error(status, err, "forecast predict", "model.lstmfast")


# ----- the output directory, checked before training ------------------------------------------------

def test_out_must_be_a_directory_that_can_be_made_and_is_checked_first(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    for out, fragment in ((str(a_file), "not a directory"), (str(a_file / "below"), "not a directory"),
                          ("", "--out")):
        start = time.perf_counter()
        status, err = run_cli(["forecast", "train", "--quick", "--out", out], capsys)
        assert_one_line_error(status, err, "forecast train", fragment)
        assert time.perf_counter() - start < 5  # refused before the data is read and a model trained
    assert a_file.read_text() == "mine"


# ----- options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,fragment", [
    (["forecast", "train", "--seed", "-1"], "--seed"),
    (["forecast", "train", "--test-size", "1"], "--test-size"),
    (["translate", "train", "--max-pairs", "1"], "--max-pairs"),
    (["translate", "train", "--max-tokens", "1"], "--max-tokens"),
    (["translate", "train", "--max-vocab", "1"], "--max-vocab"),
])
def test_options_below_their_minimum_are_refused(capsys, tmp_path, args, fragment):
    status, err = run_cli(args + ["--out", str(tmp_path / "m")], capsys)
    assert status == 2 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "m").exists()


# ----- data --------------------------------------------------------------------------------------------

def test_series_too_short_to_split_are_refused_with_the_length_needed(series_csv, capsys, tmp_path):
    for n in (1, 150):
        status, err = run_cli(["forecast", "train", "--data", series_csv(n), "--out", str(tmp_path / "m")], capsys)
        assert_one_line_error(status, err, "forecast train", f"{n} row", "at least")


def test_unknown_target_or_date_column_is_refused(series_csv, capsys, tmp_path):
    path = series_csv(800)
    for flag in ("--target", "--date-column"):
        status, err = run_cli(["forecast", "train", "--data", path, flag, "nope", "--out", str(tmp_path / "m")],
                              capsys)
        assert_one_line_error(status, err, "forecast train", "'nope'")


def test_values_too_large_for_float32_are_refused(series_csv, capsys, tmp_path):
    status, err = run_cli(["forecast", "train", "--data", series_csv(800, value=1e300), "--out",
                           str(tmp_path / "m")], capsys)
    assert_one_line_error(status, err, "forecast train", "1e+300", "float32")
    assert not (tmp_path / "m").exists()


def test_sentiment_texts_without_words_or_with_an_unclosed_quote_are_refused(tmp_path, capsys):
    punct = tmp_path / "punct.csv"
    punct.write_text("text,label\n" + "".join(f"\"!!! ...\",{i % 2}\n" for i in range(60)))
    status, err = run_cli(["sentiment", "train", "--data", str(punct), "--out", str(tmp_path / "m")], capsys)
    assert_one_line_error(status, err, "sentiment train", "no words")
    quote = tmp_path / "quote.csv"
    quote.write_text("text,label\n" + "".join(f"\"fine film {i}\",{i % 2}\n" for i in range(60))
                     + "\"an unclosed quote,1\nmore,0\n")
    status, err = run_cli(["sentiment", "train", "--data", str(quote), "--out", str(tmp_path / "m")], capsys)
    assert_one_line_error(status, err, "sentiment train", "quote")


# ----- --debug -------------------------------------------------------------------------------------------

def test_debug_shows_the_traceback(tmp_path, capsys):
    d = _model_dir(tmp_path, "forecast")
    with pytest.raises(Exception):
        main(["forecast", "predict", "--out", d, "--debug"])


# ----- Ctrl-C --------------------------------------------------------------------------------------------

def test_ctrl_c_during_training_ends_the_command_and_keeps_the_saved_model(tmp_path, capsys, monkeypatch):
    from lstmfast.trainers import trainer

    d = _model_dir(tmp_path, "forecast")
    before = {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d)}
    steps = {"n": 0}
    real = trainer.Trainer._train_step

    def interrupted_step(self, *args):
        steps["n"] += 1
        if steps["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(trainer.Trainer, "_train_step", interrupted_step)
    status, err = run_cli(["forecast", "train", "--quick", "--out", d, "-q"], capsys)
    assert status == 130, err
    assert err.strip() == "lstmfast forecast train: interrupted: nothing was saved; the model directory is as it was"
    assert {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d)} == before
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(d)]
