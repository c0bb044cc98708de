"""Pipeline plumbing without training: metrics, tokens, model directories and the command line."""

import json
import math
import os

import pytest

from lstmfast.__main__ import build_parser, main
from lstmfast.pipelines.common import MARKER, PipelineError, format_table, read_marker, write_json
from lstmfast.pipelines.translation import (
    char_accuracy, corpus_bleu, detokenize, exact_match, tokenize,
)


def test_bleu_matches_the_hand_computed_value():
    # p1..p4 = 4/5, 3/4, 2/3, 1/2, same length: BLEU = (0.2) ** (1/4)
    assert corpus_bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(100 * 0.2 ** 0.25)
    assert corpus_bleu(["the cat sat on the mat ."], ["the cat sat on the mat ."]) == pytest.approx(100)
    assert corpus_bleu(["x y"], ["a b c d"]) == 0.0


def test_bleu_brevity_penalty_applies_to_short_output():
    full = "one two three four five six"
    short = "one two three four"
    assert corpus_bleu([short], [full]) == pytest.approx(100 * math.exp(1 - 6 / 4))


def test_char_accuracy_is_one_minus_the_character_error_rate():
    assert char_accuracy(["abcd"], ["abcd"]) == 1.0
    assert char_accuracy(["abxd"], ["abcd"]) == pytest.approx(0.75)
    assert char_accuracy(["", "ab"], ["ab", "ab"]) == pytest.approx(0.5)
    assert char_accuracy(["a much longer output"], ["a"]) == 0.0
    assert exact_match(["a", "b"], ["a", "c"]) == 0.5


@pytest.mark.parametrize("text", ["quatre-vingt-dix-neuf mille neuf cent",
                                  "ninety-one thousand, and seventy-one", "Va !", "Ich hab's."])
def test_word_tokens_rebuild_the_text_exactly(text):
    assert detokenize(tokenize(text, "word"), "word") == text
    assert detokenize(tokenize(text, "char"), "char") == text


def test_word_tokens_mark_a_preceding_space():
    assert tokenize("vingt et un-deux, trois", "word") == ["vingt", "\u2581et", "\u2581un-deux", ",", "\u2581trois"]


def test_marker_of_another_pipeline_is_a_clear_error(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    write_json(str(d / MARKER), {"pipeline": "forecast", "format_version": 1, "config": {}, "columns": ["v"],
                                 "preprocessing": {}, "target": "v"})
    with pytest.raises(PipelineError, match="made by the 'forecast' pipeline, not 'sentiment'"):
        read_marker(str(d), "sentiment")
    assert read_marker(str(d), "forecast")["pipeline"] == "forecast"
    with pytest.raises(PipelineError, match="no such model directory"):
        read_marker(str(tmp_path / "nope"), "forecast")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="not an lstmfast model directory"):
        read_marker(str(tmp_path / "empty"), "forecast")


def test_command_line_reports_a_wrong_model_directory(tmp_path, capsys):
    d = tmp_path / "m"
    d.mkdir()
    (d / MARKER).write_text(json.dumps({"pipeline": "translate", "format_version": 1}))
    assert main(["sentiment", "predict", "--out", str(d), "great film"]) == 2
    err = capsys.readouterr().err
    assert "made by the 'translate' pipeline" in err and "lstmfast translate" in err


def test_command_line_reports_a_bad_data_file(tmp_path, capsys):
    bad = tmp_path / "s.csv"
    bad.write_text("date,v\n2020-01-01,1\n2020-01-08,oops\n")
    assert main(["forecast", "train", "--data", str(bad), "--out", str(tmp_path / "m"), "-q"]) == 2
    assert "s.csv, line 3: column 'v' holds 'oops'" in capsys.readouterr().err


def test_command_line_parses_the_common_options():
    args = build_parser().parse_args(["translate", "train", "--epochs", "3", "--batch-size", "32",
                                      "--seed", "7", "--threads", "2", "--out", "m", "--quick"])
    assert (args.epochs, args.batch_size, args.seed, args.threads, args.out, args.quick) == (3, 32, 7, 2, "m", True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["forecast", "train", "--epochs", "0"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cook", "train"])
    assert build_parser().parse_args(["translate", "train", "--dropout", "0.3"]).dropout == 0.3


@pytest.mark.parametrize("rate", ["1", "-0.1", "much"])
def test_a_dropout_rate_outside_0_1_is_refused_with_status_2(rate, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["translate", "train", "--dropout", rate])
    assert e.value.code == 2
    assert "expected a number in [0, 1)" in capsys.readouterr().err


def test_format_table_aligns_columns():
    t = format_table([("lstm", 0.5), ("naive", None)], ["model", "rmse"])
    assert t.splitlines()[2].startswith("lstm ") and t.splitlines()[3].endswith("-")


def test_public_pipeline_functions_take_public_arguments_only():
    import inspect

    from lstmfast.pipelines import forecasting, sentiment, translation

    for module in (translation, forecasting, sentiment):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                private = [p for p in inspect.signature(obj).parameters if p.startswith("_")]
                assert not private, f"{module.__name__}.{name} takes {private}"


def test_a_config_option_becomes_a_train_flag_with_its_type_default_and_help(monkeypatch, capsys):
    import dataclasses
    import types

    from lstmfast import pipelines
    from lstmfast.__main__ import _config
    from lstmfast.pipelines.common import option, setting

    @dataclasses.dataclass
    class ToyConfig:
        width: int = option(8, "units per layer")
        fancy: bool = option(False, "the fancy variant")
        mode: str = option("a", "how", choices=["a", "b"])
        data: str | None = option(None, "input file (default: built in)", every_command=True, metavar="PATH")
        rate: float = setting(0.5, "not on the command line")
        scored: int = option(3, "evaluate only", commands=("evaluate",))

        def quick(self):
            return dataclasses.replace(self, width=2)

    toy = types.SimpleNamespace(PIPELINE="toy", SUMMARY="a toy", CONFIG=ToyConfig)
    monkeypatch.setattr(pipelines, "PIPELINES", {"toy": toy})
    parser = build_parser()
    args = parser.parse_args(["toy", "train", "--quick", "--fancy", "--mode", "b", "--data", "x.csv"])
    assert _config(args, ToyConfig) == ToyConfig(width=2, fancy=True, mode="b", data="x.csv")
    args = parser.parse_args(["toy", "train", "--quick", "--width", "5"])
    assert _config(args, ToyConfig) == ToyConfig(width=5)
    assert parser.parse_args(["toy", "evaluate", "--data", "y.csv"]).data == "y.csv"
    assert parser.parse_args(["toy", "evaluate", "--scored", "4"]).scored == 4
    for command in ("train", "predict"):  # each command takes only its own settings
        with pytest.raises(SystemExit):
            parser.parse_args(["toy", command, "--scored", "4"])
    for bad in (["--width", "0"], ["--mode", "c"], ["--rate", "1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["toy", "train", *bad])
    with pytest.raises(SystemExit):
        parser.parse_args(["toy", "train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--width WIDTH units per layer (default: 8)" in shown
    assert "--data PATH input file (default: built in)" in shown and "--rate" not in shown


def test_every_pipeline_is_a_command_with_its_config_options():
    from lstmfast.pipelines import PIPELINES
    from lstmfast.pipelines.common import a_rate, options

    parser = build_parser()
    for name, module in PIPELINES.items():
        assert module.PIPELINE == name
        for field in options(module.CONFIG):
            flag = "--" + field.name.replace("_", "-")
            # above every count's minimum; a rate in [0, 1)
            value = None if field.type == "bool" else "0.5" if field.metadata["flag"].get("type") is a_rate else "100"
            argv = [name, "train", flag] + ([value] if value else [])
            if field.metadata["flag"].get("choices"):
                argv[-1] = field.metadata["flag"]["choices"][-1]
            assert getattr(parser.parse_args(argv), field.name) is not None, flag


def test_the_registry_maps_each_command_to_the_pipeline_module_of_that_name():
    from lstmfast.pipelines import PIPELINES, forecasting, sentiment, translation

    assert PIPELINES == {"translate": translation, "forecast": forecasting, "sentiment": sentiment}
    assert all(module.PIPELINE == name for name, module in PIPELINES.items())


def _tiny_model():
    import lstmfast as lf

    return lf.Sequential([lf.Input((3, 1)), lf.layers.LSTM(2), lf.layers.Dense(1)])


def test_a_model_directory_is_replaced_as_a_whole_and_a_failed_save_leaves_it_as_it_was(tmp_path):
    from lstmfast.pipelines.common import save_pipeline

    out = tmp_path / "model"
    save_pipeline(str(out), "forecast", _tiny_model(), {"config": {}, "run": 1},
                  extra=lambda d: open(os.path.join(d, "first-run-only.txt"), "w").close())
    assert (out / "first-run-only.txt").exists()
    save_pipeline(str(out), "forecast", _tiny_model(), {"config": {}, "run": 2})
    assert not (out / "first-run-only.txt").exists()  # no file of the first run beside the second's
    assert json.loads((out / MARKER).read_text())["run"] == 2

    def fail(d):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_pipeline(str(out), "forecast", _tiny_model(), {"config": {}, "run": 3}, extra=fail)
    assert json.loads((out / MARKER).read_text())["run"] == 2
    assert sorted(os.listdir(tmp_path)) == ["model"]  # nothing left beside it


def test_what_a_killed_save_left_is_cleaned_up_by_the_next_one(tmp_path):
    from lstmfast.pipelines.common import save_pipeline

    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    (tmp_path / f".model.{dead}.abc.new").mkdir()  # killed while writing
    old = tmp_path / f".model.{dead}.def.old"  # killed between the two renames: the old model set aside
    (old / "model").mkdir(parents=True)
    (old / "model" / MARKER).write_text(json.dumps({"pipeline": "forecast", "run": 1}))
    (tmp_path / ".model.notes.txt").write_text("not ours")
    save_pipeline(str(tmp_path / "model"), "forecast", _tiny_model(), {"config": {}, "run": 2})
    assert sorted(os.listdir(tmp_path)) == [".model.notes.txt", "model"]
    assert json.loads((tmp_path / "model" / MARKER).read_text())["run"] == 2
