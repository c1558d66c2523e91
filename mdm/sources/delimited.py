"""Delimited extract reader (e.g. a card system's ``|``-separated GBK file with header and trailer).

The file has no row of column names: the native columns are named by ``options.column_names``. The
first line is a header (``H|system|date|version``), the last a trailer (``T|count``) whose count must
equal the detail lines. The whole file is decoded once and split with polars; no quoting applies.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mdm.config import SourceConfig
from mdm.errors import RowReject, SourceError
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.row_checks import (
    check_text_bytes,
    check_trailer_line,
    decode,
    flag_bad_encoding,
    guard_rows,
    parse_header_line,
    text_lines,
)

DEFAULT_SEPARATOR = "|"
DEFAULT_HEADER_PATTERN = r"^H\|(?P<system>[^|]*)\|(?P<date>\d{8})\|(?P<version>[^|]*)$"
DEFAULT_TRAILER_PATTERN = r"^T\|(?P<count>\d+)$"
_FIELDS = "_fields"


def read_delimited(path: Path, cfg: SourceConfig) -> ReadResult:
    """Detail lines of a delimited extract as native String columns named by ``options.column_names``."""
    file = str(path)
    names = [str(c) for c in cfg.options.get("column_names", [])]  # type: ignore[attr-defined]
    if not names:
        raise SourceError(file, f"source {cfg.name!r} configures no options.column_names")
    separator = str(cfg.options.get("separator", DEFAULT_SEPARATOR))
    data = path.read_bytes()
    check_text_bytes(data, file, cfg.encoding)
    lines = text_lines(decode(data, cfg.encoding, file))
    if lines.height == 0:
        raise SourceError(file, "the file is empty")
    header = str(cfg.options.get("header_pattern", DEFAULT_HEADER_PATTERN))
    trailer = str(cfg.options.get("trailer_pattern", DEFAULT_TRAILER_PATTERN))
    meta = parse_header_line(lines["text"][0], header, cfg, file)
    if lines.height < 2:
        raise SourceError(file, "no trailer line: the file is truncated", "line 1")
    body = lines.slice(1, lines.height - 2).filter(pl.col("text").str.strip_chars() != "")
    check_trailer_line(lines["text"][-1], trailer, body.height, lines.height, file)
    split = body.with_columns(pl.col("text").str.split(separator).alias(_FIELDS))
    ragged = split.filter(pl.col(_FIELDS).list.len() != len(names))
    if body.height and ragged.height == body.height:
        raise SourceError(
            file,
            f"no detail line has the {len(names)} configured fields: wrong separator or layout",
            "line 2",
        )
    rejects = [
        RowReject(
            file, f"line {n}", None, f"line has {k} fields separated by {separator!r}, expected {len(names)}"
        )
        for n, k in ragged.select("line_no", pl.col(_FIELDS).list.len()).iter_rows()
    ]
    frame = split.filter(pl.col(_FIELDS).list.len() == len(names)).select(
        *[pl.col(_FIELDS).list.get(i).replace("", None).alias(name) for i, name in enumerate(names)],
        pl.format("line {}", pl.col("line_no")).alias(LOCATOR),
        pl.lit([], pl.List(pl.String)).alias(ROW_FLAGS),
    )
    frame = flag_bad_encoding(frame, cfg, file)
    frame, bad = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects + bad, meta=meta)
