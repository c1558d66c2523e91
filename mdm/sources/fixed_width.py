"""Fixed-width reader (legacy core-banking extracts): byte offsets, header and trailer lines.

Widths are in bytes of the file's encoding (GB18030: a hanzi takes 2), so fields are cut from the raw
bytes, never from decoded text. Every line has the same byte length, so the file is one numpy matrix
(lines x bytes): each field is a slice of byte columns. Fields that are pure ASCII in every line go
straight to polars; the others are joined with 0x1F (a byte that cannot occur inside a GB18030/GBK
character), decoded at once and split by polars' CSV reader.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl

from mdm.config import FixedWidthField, SourceConfig
from mdm.errors import SourceError
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.row_checks import (
    check_text_bytes,
    check_trailer_line,
    decode,
    flag_bad_encoding,
    guard_rows,
    parse_header_line,
)

DEFAULT_HEADER_PATTERN = r"^HDR(?P<date>\d{8})(?P<system>.*?)\s*$"
DEFAULT_TRAILER_PATTERN = r"^TRL(?P<count>\d{10})\s*$"
DEFAULT_DETAIL_PREFIX = "D"
_SEP, _EOL, _CR = 0x1F, 0x0A, 0x0D


def byte_lines(data: bytes, line_bytes: int, file: str) -> np.ndarray:
    """The file as a (lines, line_bytes) uint8 matrix; a line of another length raises SourceError.

    CR bytes are dropped first (they only end lines: no GB18030 character contains 0x0D), so CRLF and
    LF files read alike; trailing blank lines are ignored. A uniform CRLF file is reshaped without a copy.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    stride = line_bytes + 2
    if buf.size % stride == 0 and buf.size:
        rows = buf.reshape(-1, stride)
        if (rows[:, -2] == _CR).all() and (rows[:, -1] == _EOL).all() and not (rows[:, :-2] == _EOL).any():
            return rows[:, :line_bytes]
    buf = buf[buf != _CR]
    content = np.flatnonzero(buf != _EOL)
    if content.size == 0:
        raise SourceError(file, "the file is empty")
    buf = np.append(buf[: content[-1] + 1], np.uint8(_EOL))
    ends = np.flatnonzero(buf == _EOL)
    lengths = np.diff(ends, prepend=-1) - 1
    wrong = np.flatnonzero(lengths != line_bytes)
    if wrong.size:
        first = int(wrong[0])
        raise SourceError(
            file,
            f"line is {int(lengths[first])} bytes, every line must be {line_bytes} "
            f"({wrong.size} line(s) of a wrong length; truncated or not this layout)",
            f"line {first + 1}",
        )
    return buf.reshape(ends.size, line_bytes + 1)[:, :line_bytes]


def _ascii_field(body: np.ndarray, f: FixedWidthField) -> pl.Series:
    """A field whose bytes are all ASCII in every line: straight from numpy, no codec needed."""
    raw = np.ascontiguousarray(body[:, f.start : f.start + f.width]).view(f"S{f.width}").ravel()
    return pl.Series(f.name, raw, dtype=pl.Binary).cast(pl.String)


def _encoded_fields(
    body: np.ndarray, layout: list[FixedWidthField], encoding: str, file: str
) -> pl.DataFrame:
    """Fields holding non-ASCII bytes: joined by 0x1F per line, decoded once, split by polars' CSV reader."""
    width = sum(f.width for f in layout) + len(layout)
    joined = np.empty((body.shape[0], width), dtype=np.uint8)
    pos = 0
    for f in layout:
        joined[:, pos : pos + f.width] = body[:, f.start : f.start + f.width]
        joined[:, pos + f.width] = _SEP
        pos += f.width + 1
    joined[:, -1] = _EOL
    text = decode(joined.tobytes(), encoding, file)
    return pl.read_csv(
        io.BytesIO(text.encode("utf-8")),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        schema=dict.fromkeys([f.name for f in layout], pl.String),
    )


def slice_fields(body: np.ndarray, layout: list[FixedWidthField], encoding: str, file: str) -> pl.DataFrame:
    """Every field of every detail line as text, right padding removed, blanks as null."""
    names = [f.name for f in layout]
    if body.shape[0] == 0:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    stray = np.flatnonzero((body == _SEP).any(axis=1))
    if stray.size:
        raise SourceError(file, "control byte 0x1F inside a detail line", f"line {int(stray[0]) + 2}")
    high: np.ndarray = np.asarray((body >= 0x80).any(axis=0))
    encoded = [f for f in layout if high[f.start : f.start + f.width].any()]
    columns = {f.name: _ascii_field(body, f) for f in layout if f not in encoded}
    if encoded:
        columns.update(_encoded_fields(body, encoded, encoding, file).to_dict())
    return pl.DataFrame([columns[n] for n in names]).with_columns(
        pl.all().str.strip_chars_end(" ").replace("", None)
    )


def read_fixed_width(path: Path, cfg: SourceConfig) -> ReadResult:
    """Detail lines of a fixed-width extract as native String columns named by the layout."""
    file = str(path)
    if not cfg.layout:
        raise SourceError(file, f"source {cfg.name!r} has no fixed-width layout configured")
    line_bytes = int(cfg.options.get("line_bytes", max(f.start + f.width for f in cfg.layout)))  # type: ignore[call-overload]
    data = path.read_bytes()
    check_text_bytes(data, file, cfg.encoding)
    rows = byte_lines(data, line_bytes, file)
    header = str(cfg.options.get("header_pattern", DEFAULT_HEADER_PATTERN))
    trailer = str(cfg.options.get("trailer_pattern", DEFAULT_TRAILER_PATTERN))
    meta = parse_header_line(decode(rows[0].tobytes(), cfg.encoding, file), header, cfg, file)
    if rows.shape[0] < 2:
        raise SourceError(file, "no trailer line: the file is truncated", "line 1")
    n = rows.shape[0]
    check_trailer_line(decode(rows[-1].tobytes(), cfg.encoding, file), trailer, n - 2, n, file)
    body = rows[1:-1]
    prefix = str(cfg.options.get("detail_prefix", DEFAULT_DETAIL_PREFIX)).encode("ascii")
    if prefix:
        other = np.flatnonzero((body[:, : len(prefix)] != np.frombuffer(prefix, np.uint8)).any(axis=1))
        if other.size:
            raise SourceError(
                file,
                f"not a detail line (does not start with {prefix.decode()!r})",
                f"line {int(other[0]) + 2}",
            )
    frame = slice_fields(body, cfg.layout, cfg.encoding, file).with_columns(
        pl.format("line {}", pl.int_range(2, body.shape[0] + 2)).alias(LOCATOR),
        pl.lit([], pl.List(pl.String)).alias(ROW_FLAGS),
    )
    frame = flag_bad_encoding(frame, cfg, file)
    frame, rejects = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects, meta=meta)
