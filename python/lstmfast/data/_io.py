"""Reading text files with errors that name the file and the line.

Every loader in :mod:`lstmfast.data` reads through these helpers, so a bad
file always fails the same way: a :class:`DataError` (a ``ValueError``)
whose message starts with ``path, line N:``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import zlib

__all__ = ["DataError", "read_text", "read_lines", "read_csv"]


class DataError(ValueError):
    """Bad input data. ``path`` and ``line`` (1-based) say where, when known."""

    def __init__(self, message, path=None, line=None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message)


_GZIP_MAGIC = b"\x1f\x8b"
# The longest line the text loaders take: a sentence pair, a review or a CSV row is far
# shorter; a longer line is binary data or a file without line breaks.
MAX_LINE = 1_000_000


def read_text(path, encoding="utf-8"):
    """Return the whole file decoded (gunzipped first when it is gzip-compressed); a
    byte-order mark is dropped.

    Raises DataError for a missing or empty file, an unknown encoding name,
    or bytes that are not valid in ``encoding`` (naming the line).
    """
    path = os.fspath(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}", path) from None
    if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
        raise DataError("not a regular file (a FIFO, device or socket); expected a text file", path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", path) from None
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"the gzip-compressed file is damaged ({e})", path) from None
    if not raw.strip():
        raise DataError("the file is empty", path)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"the text is not valid {encoding} (byte 0x{raw[e.start]:02x} at column "
            f"{column}); convert the file to UTF-8 or name its encoding",
            path, line,
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    start = 0
    while True:  # every line within MAX_LINE characters, checked before anything splits the text
        end = text.find("\n", start)
        stop = len(text) if end < 0 else end
        if stop - start > MAX_LINE:
            raise DataError(f"a line of {stop - start:,} characters; lines of up to {MAX_LINE:,} are read "
                            "(is this a text file with line breaks?)", path, text.count("\n", 0, start) + 1)
        if end < 0:
            return text
        start = end + 1


def read_lines(path, encoding="utf-8"):
    """Yield ``(line_number, line)`` for each line, without its line ending."""
    text = read_text(path, encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip("\r")


def read_csv(path, required=None, encoding="utf-8", delimiter=","):
    """Read a CSV file with a header row.

    Returns ``(header, rows)`` where ``rows`` is a list of ``(line_number,
    list_of_cells)``. ``required`` lists column names that must be present.
    Rows whose cell count differs from the header's raise DataError.
    """
    text = read_text(path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the file is empty", path) from None
    except csv.Error as e:
        raise DataError(f"cannot parse the header: {e}", path, 1) from None
    header = [h.strip() for h in header]
    missing = [c for c in (required or []) if c not in header]
    if missing:
        raise DataError(
            f"expected column(s) {', '.join(repr(c) for c in missing)} in the header; "
            f"found {', '.join(repr(h) for h in header)}",
            path, 1,
        )
    rows = []
    line = reader.line_num
    try:
        for cells in reader:
            # the record starts on the line after the previous record ended
            line, end = line + 1, reader.line_num
            if not cells or all(not c.strip() for c in cells):
                line = end
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"expected {len(header)} columns ({', '.join(header)}), found {len(cells)}",
                    path, line,
                )
            rows.append((line, cells))
            line = end
    except csv.Error as e:
        if "unexpected end of data" in str(e):  # a quote opened and never closed
            raise DataError(f"a quoted cell opened on line {line} is never closed (an unmatched quote \" runs "
                            "to the end of the file)", path, line) from None
        raise DataError(f"cannot parse CSV: {e}", path, reader.line_num) from None
    if not rows:
        raise DataError("the file has a header but no data rows", path)
    return header, rows
