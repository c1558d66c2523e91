"""Checks every structured reader applies: text sanity, decoding flags, keys, lengths, duplicates.

Kept apart from the readers so that Excel, fixed-width, delimited and JSON Lines files get exactly the
same rules: a row without its key or with an absurdly long value is quarantined with a reason naming
the file, row and field; a file whose key repeats or that does not decode is refused as a whole.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from datetime import datetime

import polars as pl

from mdm.config import SourceConfig
from mdm.errors import RowReject, SourceError
from mdm.privacy import mask
from mdm.sources.base import LOCATOR, ROW_FLAGS

#: Longest value a reader accepts per canonical field (characters); ``options.max_length`` overrides.
DEFAULT_MAX_LENGTH: dict[str, int] = {"name": 200, "name_alt": 200}
#: Limit for every other column: generous, only meant to stop absurd values.
DEFAULT_MAX_OTHER = 4000
#: Share of rows with undecodable bytes above which a file is refused as being in another encoding.
DEFAULT_MAX_BAD_ENCODING_SHARE = 0.05
REPLACEMENT = "\ufffd"
_PROBLEM = "_problem"
_ERRORS = "mdm-replace-one-byte"


def _replace_one_byte(exc: UnicodeError) -> tuple[str, int]:
    """Replace only the first byte of an invalid sequence and resume right after it.

    Python's CJK codecs may swallow the bytes following a broken lead byte into one replacement;
    resuming byte by byte keeps ASCII separators (0x1F, newline) that readers split on intact.
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return REPLACEMENT, exc.start + 1


codecs.register_error(_ERRORS, _replace_one_byte)


def decode(data: bytes, encoding: str, file: str) -> str:
    """Bytes to text; undecodable bytes become U+FFFD one by one (flagged later by flag_bad_encoding)."""
    try:
        return data.decode(encoding, errors=_ERRORS)
    except LookupError as exc:
        raise SourceError(file, f"unknown encoding {encoding!r} configured") from exc


def field_of(cfg: SourceConfig) -> dict[str, str]:
    """Native column -> canonical field it feeds (first mapping wins), for flags and messages."""
    out: dict[str, str] = {}
    for fld, spec in cfg.columns.items():
        for col in [spec] if isinstance(spec, str) else spec:
            out.setdefault(col, fld)
    return out


def max_lengths(cfg: SourceConfig) -> dict[str, int]:
    """Per-field length limits: defaults overlaid with the source's ``options.max_length``."""
    configured = cfg.options.get("max_length") or {}
    if not isinstance(configured, Mapping):
        raise SourceError(cfg.name, "options.max_length must map field names to integers")
    return {**DEFAULT_MAX_LENGTH, **{str(k): int(v) for k, v in configured.items()}}


def check_text_bytes(data: bytes, file: str, encoding: str) -> None:
    """Refuse binary data and text that is plainly UTF-8 while the source declares another encoding."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise SourceError(file, "binary data (NUL byte), not a text file", f"line {line}")
    if encoding.replace("-", "").replace("_", "").lower() in {"utf8", "utf8sig"} or data.isascii():
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return
    raise SourceError(file, f"the file is UTF-8 text, but the source declares {encoding}")


def flag_expr(conditions: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """List[String] of the flags whose condition holds, appended to the frame's existing flags."""
    if not conditions:
        return pl.col(ROW_FLAGS)
    new = pl.concat_list([pl.when(cond).then(pl.lit(flag)) for cond, flag in conditions]).list.drop_nulls()
    return pl.concat_list(pl.col(ROW_FLAGS), new)


def flag_bad_encoding(frame: pl.DataFrame, cfg: SourceConfig, file: str) -> pl.DataFrame:
    """Flag ``field:bad_encoding`` where decoding replaced bytes; refuse a file where many rows did.

    Readers decode with replacement, so a few damaged bytes cost one field, not the file; when more
    than ``options.max_bad_encoding_share`` of the rows are damaged the declared encoding is wrong.
    """
    names = field_of(cfg)
    cols = [c for c, t in frame.schema.items() if t == pl.String and c != LOCATOR]
    bad = {c: pl.col(c).str.contains(REPLACEMENT, literal=True).fill_null(False) for c in cols}
    out = frame.with_columns(flag_expr([(e, f"{names.get(c, c)}:bad_encoding") for c, e in bad.items()]))
    if not bad:
        return out
    damaged = frame.select(pl.any_horizontal(list(bad.values())).alias("d"), pl.col(LOCATOR)).filter("d")
    share = float(cfg.options.get("max_bad_encoding_share", DEFAULT_MAX_BAD_ENCODING_SHARE))  # type: ignore[arg-type]
    if damaged.height and damaged.height > share * max(frame.height, 1):
        raise SourceError(
            file,
            f"{damaged.height} of {frame.height} rows do not decode as {cfg.encoding}: wrong encoding",
            damaged[LOCATOR][0],
        )
    return out


def _rejects(bad: pl.DataFrame, file: str, key: str) -> list[RowReject]:
    """RowReject per quarantined row; iterates over the bad rows only."""
    return [
        RowReject(file=file, locator=loc, field=prob.split("\t")[0], reason=prob.split("\t")[1], source_key=k)
        for loc, prob, k in bad.select(LOCATOR, _PROBLEM, key).iter_rows()
    ]


def guard_rows(frame: pl.DataFrame, cfg: SourceConfig, file: str) -> tuple[pl.DataFrame, list[RowReject]]:
    """Quarantine rows without a key, with a key not matching ``options.key_pattern`` or with a value
    over its length limit; refuse repeated keys. Values are never shown in reasons, only field and length.
    """
    key = cfg.natural_key
    names = field_of(cfg)
    limits = max_lengths(cfg)
    problems = [
        pl.when(pl.col(key).str.strip_chars().replace("", None).is_null()).then(
            pl.lit(f"source_key\tthe record has no key (column {key} is empty)")
        )
    ]
    pattern = cfg.options.get("key_pattern")
    if pattern:
        problems.append(
            pl.when(~pl.col(key).str.strip_chars().str.contains(str(pattern))).then(
                pl.lit(f"source_key\tthe value in column {key} does not look like a key ({pattern})")
            )
        )
    for col, dtype in frame.schema.items():
        if col in {LOCATOR, key}:
            continue
        fld = names.get(col, col)
        limit = limits.get(fld, DEFAULT_MAX_OTHER)
        length = (
            pl.col(col).list.eval(pl.element().str.len_chars()).list.max()
            if isinstance(dtype, pl.List)
            else pl.col(col).str.len_chars()
            if dtype == pl.String
            else None
        )
        if length is None:
            continue
        problems.append(
            pl.when(length > limit).then(
                pl.format(f"{fld}\tvalue of column {col} longer than {limit} characters ({{}})", length)
            )
        )
    checked = frame.with_columns(pl.coalesce(problems).alias(_PROBLEM))
    bad = checked.filter(pl.col(_PROBLEM).is_not_null())
    kept = checked.filter(pl.col(_PROBLEM).is_null()).drop(_PROBLEM)
    check_unique(kept, key, file)
    return kept, _rejects(bad, file, key)


def check_unique(frame: pl.DataFrame, key: str, file: str) -> None:
    """Refuse a file whose natural key repeats, naming the rows of the first repeated key."""
    dup = (
        frame.filter(pl.col(key).str.strip_chars().is_duplicated())
        .group_by(pl.col(key).str.strip_chars(), maintain_order=True)
        .agg(pl.col(LOCATOR), pl.len())
        .filter(pl.col("len") > 1)
    )
    if dup.height:
        first = dup.row(0, named=True)
        raise SourceError(
            file,
            f"natural key {key} repeats within the file ({dup.height} key(s)); "
            f"key {mask(first[key])} at {', '.join(first[LOCATOR][:5])}",
            first[LOCATOR][0],
            key,
        )


def parse_header_line(line: str, pattern: str, cfg: SourceConfig, file: str) -> dict[str, str]:
    """Named groups of the header line as meta (``date`` YYYYMMDD becomes ISO ``extract_date``).

    A first line that does not match means the file is not this source's extract (or not in its
    encoding): it is refused.
    """
    match = re.match(pattern, line)
    if not match:
        raise SourceError(
            file, f"the first line is not a header matching {pattern!r}: not a {cfg.name} extract", "line 1"
        )
    meta = {k: v.strip() for k, v in match.groupdict().items() if v is not None}
    if "date" in meta:
        try:
            meta["extract_date"] = datetime.strptime(meta.pop("date"), "%Y%m%d").date().isoformat()
        except ValueError as exc:
            raise SourceError(
                file, "the header's extract date is not a valid YYYYMMDD date", "line 1"
            ) from exc
    return meta


def check_trailer_line(line: str, pattern: str, n_detail: int, line_no: int, file: str) -> None:
    """The last line must be the trailer (named group ``count``) and agree with the detail lines read."""
    match = re.match(pattern, line)
    if not match:
        raise SourceError(
            file, "the last line is not the trailer: the file is truncated or incomplete", f"line {line_no}"
        )
    stated = int(match.group("count"))
    if stated != n_detail:
        raise SourceError(
            file, f"trailer states {stated} detail lines, the file has {n_detail}", f"line {line_no}"
        )


def text_lines(text: str) -> pl.DataFrame:
    """Lines of a decoded file (CRLF or LF) with 1-based line numbers; trailing blank lines dropped."""
    lines = pl.Series("text", [text]).str.split("\n").explode().str.strip_suffix("\r")
    frame = pl.DataFrame({"text": lines}).with_row_index("line_no", offset=1)
    content = frame.filter(pl.col("text").str.strip_chars() != "")
    last = int(content["line_no"].max()) if content.height else 0  # type: ignore[arg-type]
    return frame.filter(pl.col("line_no") <= last)
