"""The ``lstmfast`` command: train, evaluate and use the three pipelines.

    lstmfast forecast train                    # weekly CO2, seed model, then the test table
    lstmfast forecast evaluate --plot          # RMSE beside the baselines, forecast.png
    lstmfast forecast predict --horizon 12
    lstmfast sentiment train --quick
    lstmfast sentiment predict "A moving, beautifully acted film."
    lstmfast translate train
    lstmfast translate predict "forty-two thousand and seven"

Also ``python -m lstmfast ...``. Every subcommand takes ``--out MODEL_DIR``
(default ``./lstmfast-<pipeline>``); ``predict`` and ``evaluate`` read it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _add_option(parser, field, annotation):
    """The flag of one configuration field (see ``lstmfast.pipelines.common.option``)."""
    kwargs = {"help": field.metadata["help"], **field.metadata["flag"]}
    kinds = [t for t in typing.get_args(annotation) if t is not type(None)] or [annotation]
    if kinds[0] is bool:  # a switch: on when given
        parser.add_argument("--" + field.name.replace("_", "-"), action="store_true", **kwargs)
        return
    kwargs["default"] = None  # not given: the configuration's value (or --quick's) stays
    if field.default is not None:
        kwargs["help"] += f" (default: {field.default})"
    if "type" not in kwargs and "choices" not in kwargs and kinds[0] is not str:
        kwargs["type"] = _positive_int if kinds[0] is int else kinds[0]
    parser.add_argument("--" + field.name.replace("_", "-"), **kwargs)


def build_parser():
    from .pipelines import PIPELINES, default_model_dir, forecasting
    from .pipelines.common import options

    p = argparse.ArgumentParser(
        prog="lstmfast",
        description="Train and use LSTM models for translation, time-series forecasting and sentiment.",
        epilog="Example: lstmfast forecast train --quick && lstmfast forecast predict. "
               "`lstmfast --cmake-dir` prints the C++ library's CMake directory.",
    )
    sub = p.add_subparsers(dest="pipeline", metavar="{" + ",".join(PIPELINES) + "}", required=True)
    for name, module in PIPELINES.items():
        pp = sub.add_parser(name, help=module.SUMMARY, description=module.SUMMARY)
        actions = pp.add_subparsers(dest="action", metavar="{train,evaluate,predict}", required=True)
        annotations = typing.get_type_hints(module.CONFIG)
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--out", "--model", dest="out", metavar="MODEL_DIR",
                            help=f"model directory (default: ./{default_model_dir(name)})")
        common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        common.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")
        # each command lists the settings it takes (common.option's `commands`)
        own = {command: argparse.ArgumentParser(add_help=False) for command in ("train", "evaluate", "predict")}
        for field in options(module.CONFIG):
            for command in field.metadata["commands"]:
                _add_option(own[command], field, annotations[field.name])

        t = actions.add_parser("train", parents=[common, own["train"]],
                               help="train on the data, save MODEL_DIR, evaluate")
        t.add_argument("--quick", action="store_true", help="a small run of about a minute")
        t.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")
        t.add_argument("--plot", action="store_true", help="also draw the evaluation plots (PNG)")

        e = actions.add_parser("evaluate", parents=[common, own["evaluate"]], help="score MODEL_DIR beside the baselines")
        e.add_argument("--plot", action="store_true", help="draw PNGs into MODEL_DIR (needs matplotlib)")

        pr = actions.add_parser("predict", parents=[common, own["predict"]], help="use MODEL_DIR on new input")
        if module is forecasting:  # continues the series; the others read texts
            pr.add_argument("--horizon", type=_positive_int, help="steps to forecast (default: the trained horizon)")
            pr.add_argument("--method", choices=["recursive", "direct"])
        else:
            pr.add_argument("text", nargs="*", help="text(s) to process; '-' or none reads lines from stdin")
            pr.add_argument("--file", metavar="PATH", help="read one input per line from this file")
    return p


def _config(args, config_class):
    """The configuration of ``train``: the defaults (or ``--quick``'s), then the flags given."""
    from .pipelines.common import options

    given = {}
    for field in options(config_class):
        value = getattr(args, field.name, None)  # None: not a flag of this command
        if value is not None and value is not False:  # not a flag left out or a switch left off
            given[field.name] = value
    config = dataclasses.replace(config_class(), **given)
    if args.quick:  # --quick's settings for the network asked for, then the flags given
        config = dataclasses.replace(config.quick(), **given)
    return config


def _read_inputs(args):
    if args.file:
        from .data import DataError
        from .data._io import read_lines

        if args.file.lower().endswith(".csv"):
            texts = _csv_texts(args.file)
        else:
            texts = [line for _, line in read_lines(args.file) if line.strip()]
        if not texts:
            raise DataError("no input lines", args.file)
        return texts
    if args.text and args.text != ["-"]:
        return args.text
    from .pipelines.common import PipelineError

    if sys.stdin.isatty():
        raise PipelineError("give the text as an argument, with --file PATH, or on stdin")
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise PipelineError("no input on stdin")
    return texts


def _csv_texts(path):
    """The `text` column of a CSV file (the format sentiment trains on), one input per row."""
    from .data._io import read_csv

    header, rows = read_csv(path, required=["text"])
    k = header.index("text")
    return [cells[k] for _, cells in rows if cells[k].strip()]


def run(args):
    from .pipelines import PIPELINES, default_model_dir, forecasting, sentiment
    from .pipelines.common import PipelineError, check_out_dir

    module = PIPELINES[args.pipeline]
    verbose = 0 if args.quiet else 1
    if args.out == "":
        raise PipelineError("--out: expected the path of a model directory, got an empty string")
    out = args.out or default_model_dir(args.pipeline)
    if args.action == "train":
        check_out_dir(out)  # before any data is read or any model trained
        cfg = _config(args, module.CONFIG)
        with_plot = args.plot and not args.no_evaluate
        result = module.train(cfg, out=out, verbose=verbose, evaluate_after=not (args.no_evaluate or with_plot))
        if with_plot:  # evaluate once, from the saved directory, drawing the plots
            module.evaluate(result["model_dir"], plot=True, verbose=verbose)
        print(f"model saved to {result['model_dir']}")
        return 0
    if args.threads:
        from .pipelines.common import set_threads
        set_threads(args.threads)
    beam = {"beam": args.beam} if getattr(args, "beam", None) else {}  # translate's --beam
    if args.action == "evaluate":
        module.evaluate(out, data=args.data, plot=args.plot, verbose=verbose, **beam)
        return 0
    # predict
    if module is forecasting:
        for label, value in forecasting.predict(out, data=args.data, horizon=args.horizon, method=args.method):
            print(f"{label},{value:.4f}")
        return 0
    texts = _read_inputs(args)
    if module is sentiment:
        for text, (label, p) in zip(texts, sentiment.predict(out, texts)):
            print(f"{label}\t{p:.3f}" + (f"\t{text}" if len(texts) > 1 else ""))
    else:
        for text in module.predict(out, texts, **beam):
            print(text)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--cmake-dir"]:  # for CMake: find_package(lstmfast) (lstmfast.cmake)
        from . import cmake

        return cmake.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"lstmfast {args.pipeline} {args.action}: error:"
    try:
        strategy = _join_mpi_job()
    except ImportError as e:
        print(f"{prefix} {_one_line(e)}", file=sys.stderr)
        return 2
    code = _run(args, prefix)
    if strategy is not None and code:
        strategy.abort(code)  # the other ranks may wait in a collective step: end them too
    return code


def _join_mpi_job():
    """Under `mpiexec -n N` (N > 1): join the job (`lstmfast.distribute`), so that training is
    data-parallel; only rank 0 prints to stdout and writes the model directory."""
    from . import distribute

    if not distribute.launched_by_mpi():
        return None
    strategy = distribute.init()
    if not strategy.is_chief:
        sys.stdout = open(os.devnull, "w")
    return strategy


def _run(args, prefix):
    from .data import DataError
    from .pipelines.common import PipelineError

    try:
        return run(args)
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        kept = str(e) or "nothing was saved"
        print(f"lstmfast {args.pipeline} {args.action}: interrupted: {kept}", file=sys.stderr)
        return 130
    except (DataError, PipelineError, OSError, ImportError, ValueError, MemoryError) as e:
        # what the user gave: the message says what was expected and what came
        if args.debug:
            raise
        print(f"{prefix} {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # anything else is lstmfast's fault: still one line, the traceback on --debug
        if args.debug:
            raise
        print(f"{prefix} {type(e).__name__}: {_one_line(e)} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 2


def _one_line(error):
    """The error's message on one line (an OSError's with its file name)."""
    if isinstance(error, OSError) and error.filename and not isinstance(error, FileNotFoundError) \
            and str(error.filename) not in str(error):
        text = f"{error.filename}: {error.strerror or error}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
