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
import sys

PIPELINES = {
    "translate": "English->French numbers (built in) or your source<TAB>target pairs",
    "forecast": "weekly Mauna Loa CO2 (built in) or your CSV with a date column and value columns",
    "sentiment": "IMDB movie reviews (built in) or your CSV with text,label columns",
}

DATA_HELP = {
    "translate": "tab-separated source<TAB>target[<TAB>...] lines (Tatoeba/Anki format), "
                 "or 'ding' for the Ding German-English sentences (Debian package trans-de-en)",
    "forecast": "CSV with a header: a date column (the first, or --date-column) and numeric value columns",
    "sentiment": "CSV with a header naming 'text' and 'label' columns (two classes)",
}


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def build_parser():
    p = argparse.ArgumentParser(
        prog="lstmfast",
        description="Train and use LSTM models for translation, time-series forecasting and sentiment.",
        epilog="Example: lstmfast forecast train --quick && lstmfast forecast predict",
    )
    sub = p.add_subparsers(dest="pipeline", metavar="{translate,forecast,sentiment}", required=True)
    for name, help_text in PIPELINES.items():
        pp = sub.add_parser(name, help=help_text, description=help_text)
        actions = pp.add_subparsers(dest="action", metavar="{train,evaluate,predict}", required=True)
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--out", "--model", dest="out", metavar="MODEL_DIR",
                            help=f"model directory (default: ./lstmfast-{name})")
        common.add_argument("--threads", type=_positive_int, help="kernel threads (default: all cores)")
        common.add_argument("--data", metavar="PATH", help=DATA_HELP[name])
        common.add_argument("-q", "--quiet", action="store_true", help="no progress output")

        t = actions.add_parser("train", parents=[common], help="train on the data, save MODEL_DIR, evaluate")
        t.add_argument("--epochs", type=_positive_int, help="maximum epochs (early stopping may end sooner)")
        t.add_argument("--batch-size", type=_positive_int)
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--quick", action="store_true", help="a small run of about a minute")
        t.add_argument("--no-evaluate", action="store_true", help="skip the evaluation after training")
        t.add_argument("--plot", action="store_true", help="also draw the evaluation plots (PNG)")
        if name in ("sentiment", "translate"):
            t.add_argument("--bidirectional", action="store_true", help="the stronger variant: a Bidirectional LSTM")
        if name == "translate":
            t.add_argument("--level", choices=["word", "char"], help="token level (default: word)")
            t.add_argument("--units", type=_positive_int, help="LSTM units (default: 128)")
            t.add_argument("--max-tokens", type=_positive_int, help="own data: drop pairs longer than this")
            t.add_argument("--max-pairs", type=_positive_int, help="own data: use at most this many pairs")
            t.add_argument("--max-vocab", type=_positive_int, help="tokens kept per side (default: 10000)")
        if name == "forecast":
            t.add_argument("--n-steps", type=_positive_int, help="window length (default: 60)")
            t.add_argument("--horizon", type=_positive_int, help="multi-step horizon (default: 52)")
            t.add_argument("--test-size", type=_positive_int, help="held-out last steps (default: 104)")
            t.add_argument("--date-column", help="name of the date column (default: the first)")
            t.add_argument("--target", help="column to forecast (default: the first value column)")
        if name == "sentiment":
            t.add_argument("--maxlen", type=_positive_int, help="words kept per text (default: 200)")
            t.add_argument("--max-features", type=_positive_int, help="vocabulary size (default: 20000)")

        e = actions.add_parser("evaluate", parents=[common], help="score MODEL_DIR beside the baselines")
        e.add_argument("--plot", action="store_true", help="draw PNGs into MODEL_DIR (needs matplotlib)")

        pr = actions.add_parser("predict", parents=[common], help="use MODEL_DIR on new input")
        if name == "forecast":
            pr.add_argument("--horizon", type=_positive_int, help="steps to forecast (default: the trained horizon)")
            pr.add_argument("--method", choices=["recursive", "direct"])
        else:
            pr.add_argument("text", nargs="*", help="text(s) to process; '-' or none reads lines from stdin")
            pr.add_argument("--file", metavar="PATH", help="read one input per line from this file")
    return p


def _config(args):
    from .pipelines import forecasting, sentiment, translation

    cls = {"translate": translation.TranslateConfig, "forecast": forecasting.ForecastConfig,
           "sentiment": sentiment.SentimentConfig}[args.pipeline]
    cfg = cls()
    if args.quick:
        cfg = cfg.quick()
    names = {f.name for f in __import__("dataclasses").fields(cls)}
    over = {}
    for key in ("epochs", "batch_size", "seed", "threads", "data", "bidirectional", "level", "units",
                "n_steps", "horizon", "test_size", "date_column", "target", "maxlen", "max_features",
                "max_tokens", "max_pairs", "max_vocab"):
        v = getattr(args, key, None)
        if key in names and v not in (None, False):
            over[key] = v
    return __import__("dataclasses").replace(cfg, **over)


def _read_inputs(args):
    if args.file:
        from .data import DataError
        from .data._io import read_lines

        lines = [line for _, line in read_lines(args.file)]
        texts = [line for line in lines if line.strip()]
        if not texts:
            raise DataError("no input lines", args.file)
        return texts
    if args.text and args.text != ["-"]:
        return args.text
    if sys.stdin.isatty():
        raise SystemExit("lstmfast: error: give the text as an argument, with --file PATH, or on stdin")
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise SystemExit("lstmfast: error: no input on stdin")
    return texts


def run(args):
    from .pipelines import forecasting, sentiment, translation

    module = {"translate": translation, "forecast": forecasting, "sentiment": sentiment}[args.pipeline]
    verbose = 0 if args.quiet else 1
    out = args.out or f"lstmfast-{args.pipeline}"
    if args.action == "train":
        cfg = _config(args)
        with_plot = args.plot and not args.no_evaluate
        result = module.train(cfg, out=out, verbose=verbose, evaluate_after=not (args.no_evaluate or with_plot))
        if with_plot:  # evaluate once, from the saved directory, drawing the plots
            module.evaluate(result["model_dir"], plot=True, verbose=verbose)
        print(f"model saved to {result['model_dir']}")
        return 0
    if args.threads:
        from .pipelines.common import set_threads
        set_threads(args.threads)
    if args.action == "evaluate":
        module.evaluate(out, data=args.data, plot=args.plot, verbose=1)
        return 0
    # predict
    if args.pipeline == "forecast":
        for label, value in forecasting.predict(out, data=args.data, horizon=args.horizon, method=args.method):
            print(f"{label},{value:.4f}")
        return 0
    if args.data:
        raise SystemExit("lstmfast: error: predict takes its input as text, --file or stdin, not --data")
    texts = _read_inputs(args)
    if args.pipeline == "sentiment":
        for text, (label, p) in zip(texts, sentiment.predict(out, texts)):
            print(f"{label}\t{p:.3f}" + (f"\t{text}" if len(texts) > 1 else ""))
    else:
        for text in translation.predict(out, texts):
            print(text)
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from .data import DataError
    from .pipelines.common import PipelineError

    try:
        return run(args)
    except (DataError, PipelineError, FileNotFoundError) as e:
        print(f"lstmfast {args.pipeline}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"lstmfast {args.pipeline}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
