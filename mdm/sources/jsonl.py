"""JSON Lines reader: one object per line, nested objects and lists flattened to named native columns.

The source YAML lists the native columns as paths into each object (``options.fields``):

- ``profile.name``: a field of a nested object -> String
- ``addresses.0.province``: a field of the first list element -> String
- ``bank_cards[]``: every element of a list -> List[String]
- ``contacts[type=mobile].value``: ``value`` of the list elements whose ``type`` is ``mobile`` -> List[String]

The decode schema is built from those paths (numbers and booleans become text). A well-formed file is
read by DuckDB's JSON reader (the fastest here: ~1M lines/s), rows matched to their 1-based line numbers
from a numpy scan of the newlines. When DuckDB refuses the file (a malformed line, an unexpected shape)
the file is read again line by line with polars, and the bad lines are found by bisection (polars
decodes halves until they are isolated) and quarantined with their line numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from polars._typing import PolarsDataType
from polars.exceptions import ComputeError

from mdm.config import SourceConfig
from mdm.errors import RowReject, SourceError
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.row_checks import check_text_bytes, flag_bad_encoding, guard_rows, text_lines

#: More malformed lines than this and the file is refused rather than picked apart.
DEFAULT_MAX_BAD_LINES = 1000
#: The first lines probed: if none of them is a JSON object, the file is not JSON Lines at all.
PROBE_LINES = 100
_OBJ = "_obj"
_SEGMENT = re.compile(r"^(?P<name>[^.\[\]]+)(?:\[(?:(?P<key>[^=\]]+)=(?P<value>[^\]]*))?\])?$")

#: A node of the decode schema: "str", ("struct", {name: node}) or ("list", node).
Node = Any


@dataclass(frozen=True)
class _Step:
    """One path segment: a field name, optionally a list marker with a filter, or a list index."""

    name: str
    is_list: bool = False
    index: int | None = None
    where: tuple[str, str] | None = None


def parse_path(path: str) -> list[_Step]:
    """Segments of a field path (``contacts[type=mobile].value``, ``addresses.0.city``)."""
    steps: list[_Step] = []
    for seg in path.split("."):
        if seg.isdigit() and steps:
            steps.append(_Step(name="", index=int(seg)))
            continue
        match = _SEGMENT.match(seg)
        if not match:
            raise ValueError(f"bad field path {path!r} at {seg!r}")
        is_list = seg.endswith("]")
        where = (match["key"], match["value"]) if match["key"] else None
        steps.append(_Step(name=match["name"], is_list=is_list, where=where))
    return steps


def _node(steps: list[_Step]) -> Node:
    """Schema node for the remainder of a path."""
    if not steps:
        return "str"
    head, rest = steps[0], steps[1:]
    if head.index is not None:
        return ("list", _node(rest))
    inner = _node(rest)
    if head.is_list:
        inner = ("list", _merge(inner, ("struct", {head.where[0]: "str"})) if head.where else inner)
    return ("struct", {head.name: inner})


def _merge(a: Node, b: Node) -> Node:
    """Union of two schema nodes (paths sharing a prefix)."""
    if a == "str" and b == "str":
        return a
    if a != "str" and b != "str" and a[0] == b[0] == "list":
        return ("list", _merge(a[1], b[1]))
    if a != "str" and b != "str" and a[0] == b[0] == "struct":
        fields = dict(a[1])
        for k, v in b[1].items():
            fields[k] = _merge(fields[k], v) if k in fields else v
        return ("struct", fields)
    raise ValueError(f"field paths disagree on the shape of the data: {a!r} vs {b!r}")


def _dtype(node: Node) -> pl.DataType:
    """Polars dtype of a schema node."""
    if node == "str":
        return pl.String()
    kind, inner = node
    if kind == "list":
        return pl.List(_dtype(inner))
    return pl.Struct({k: _dtype(v) for k, v in inner.items()})


def decode_dtype(fields: dict[str, str]) -> pl.Struct:
    """The struct dtype that decodes exactly the configured paths of each line."""
    node: Node = ("struct", {})
    for path in fields.values():
        node = _merge(node, _node(parse_path(path)))
    dtype = _dtype(node)
    assert isinstance(dtype, pl.Struct)
    return dtype


def _path_expr(steps: list[_Step], expr: pl.Expr) -> pl.Expr:
    """Expression walking the path; inside a list the walk continues per element."""
    if not steps:
        return expr
    head, rest = steps[0], steps[1:]
    if head.index is not None:
        return _path_expr(rest, expr.list.get(head.index, null_on_oob=True))
    value = expr.struct.field(head.name)
    if not head.is_list:
        return _path_expr(rest, value)
    element = pl.element()
    if head.where:
        element = element.filter(element.struct.field(head.where[0]) == head.where[1])
    return value.list.eval(_path_expr(rest, element))


def field_exprs(fields: dict[str, str]) -> list[pl.Expr]:
    """Native column expressions over the decoded struct column ``_obj``."""
    return [_path_expr(parse_path(path), pl.col(_OBJ)).alias(name) for name, path in fields.items()]


def malformed(lines: pl.Series, dtype: pl.DataType, limit: int, offset: int = 0) -> list[int]:
    """Positions of lines polars cannot decode as ``dtype``, found by bisection (few polars calls)."""
    try:
        lines.str.json_decode(dtype)
        return []
    except ComputeError:
        if lines.len() == 1:
            return [offset]
    half = lines.len() // 2
    left = malformed(lines.slice(0, half), dtype, limit, offset)
    if len(left) > limit:
        return left
    return left + malformed(lines.slice(half), dtype, limit - len(left), offset + half)


def duckdb_type(dtype: PolarsDataType) -> str:
    """DuckDB type name of a String / List / Struct polars dtype."""
    if isinstance(dtype, pl.List):
        return duckdb_type(dtype.inner) + "[]"
    if isinstance(dtype, pl.Struct):
        inner = ", ".join(
            f'"{f.name.replace(chr(34), chr(34) * 2)}" {duckdb_type(f.dtype)}' for f in dtype.fields
        )
        return f"STRUCT({inner})"
    return "VARCHAR"


def content_line_numbers(data: bytes) -> np.ndarray:
    """1-based numbers of the non-empty lines (LF or CRLF), in file order.

    Without any blank line (the usual case, checked by a byte search) they are simply 1..n.
    """
    if not (data.startswith((b"\n", b"\r\n")) or b"\n\n" in data or b"\n\r\n" in data):
        return np.arange(1, data.count(b"\n") + (0 if data.endswith(b"\n") else 1) + 1)
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 0x0A)
    if buf.size and buf[-1] != 0x0A:
        ends = np.append(ends, buf.size)
    starts = np.concatenate(([0], ends[:-1] + 1))
    cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 0x0D)
    return np.flatnonzero(ends - starts - cr > 0) + 1


def duckdb_objects(path: Path, data: bytes, dtype: pl.Struct) -> pl.DataFrame | None:
    """``line_no`` and decoded ``_obj`` per line via DuckDB; None when DuckDB refuses the file."""
    columns = ", ".join(
        f"'{f.name.replace(chr(39), chr(39) * 2)}': '{duckdb_type(f.dtype)}'" for f in dtype.fields
    )
    sql = f"SELECT * FROM read_json(?, format='newline_delimited', columns={{{columns}}})"
    try:
        with duckdb.connect() as con:
            table = con.execute(sql, [str(path)]).pl()
    except duckdb.Error:
        return None
    numbers = content_line_numbers(data)
    if numbers.size != table.height:
        return None
    known = pl.when(pl.any_horizontal(pl.all().is_not_null())).then(pl.struct(pl.all()))
    return table.select(pl.Series("line_no", numbers, dtype=pl.Int64), known.alias(_OBJ))


def polars_objects(
    text: str, dtype: pl.Struct, limit: int, file: str
) -> tuple[pl.DataFrame, list[RowReject]]:
    """``line_no`` and decoded ``_obj`` per line via polars, malformed lines found by bisection."""
    lines = text_lines(text.removeprefix("\ufeff")).filter(pl.col("text").str.strip_chars() != "")
    if lines.height == 0:
        raise SourceError(file, "the file has no JSON lines")
    probe = lines.head(PROBE_LINES)
    if len(malformed(probe["text"], dtype, PROBE_LINES)) == probe.height:
        raise SourceError(file, "no line is a JSON object: not a JSON Lines file", "line 1")
    bad = malformed(lines["text"], dtype, limit)
    if len(bad) > limit:
        raise SourceError(file, f"more than {limit} malformed JSON lines", f"line {lines['line_no'][bad[0]]}")
    rejects = [
        RowReject(file, f"line {n}", None, "malformed JSON or unexpected structure")
        for n in lines["line_no"].gather(bad).to_list()
    ]
    good = lines.with_row_index("_pos").filter(~pl.col("_pos").is_in(bad))
    return good.select(
        pl.col("line_no").cast(pl.Int64), pl.col("text").str.json_decode(dtype).alias(_OBJ)
    ), rejects


def read_jsonl(path: Path, cfg: SourceConfig) -> ReadResult:
    """Objects of a JSON Lines file flattened to the native columns of ``options.fields``."""
    file = str(path)
    fields = {str(k): str(v) for k, v in dict(cfg.options.get("fields") or {}).items()}  # type: ignore[call-overload]
    if not fields:
        raise SourceError(file, f"source {cfg.name!r} configures no options.fields")
    try:
        dtype = decode_dtype(fields)
    except ValueError as exc:
        raise SourceError(file, f"source {cfg.name!r}: {exc}") from exc
    data = path.read_bytes()
    check_text_bytes(data, file, cfg.encoding)
    utf8 = cfg.encoding.replace("-", "").replace("_", "").lower() == "utf8"
    decoded = duckdb_objects(path, data, dtype) if utf8 and not data.startswith(b"\xef\xbb\xbf") else None
    rejects: list[RowReject] = []
    if decoded is None:
        try:
            text = data.decode(cfg.encoding)
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise SourceError(file, f"not {cfg.encoding} text (byte {exc.start})", f"line {line}") from exc
        except LookupError as exc:
            raise SourceError(file, f"unknown encoding {cfg.encoding!r} configured") from exc
        limit = int(cfg.options.get("max_bad_lines", DEFAULT_MAX_BAD_LINES))  # type: ignore[call-overload]
        decoded, rejects = polars_objects(text, dtype, limit, file)
    if decoded.height == 0 and not rejects:
        raise SourceError(file, "the file has no JSON lines")
    not_object = decoded.filter(pl.col(_OBJ).is_null())
    rejects += [
        RowReject(file, f"line {n}", None, "the line is not a JSON object with any configured field")
        for n in not_object["line_no"]
    ]
    frame = decoded.filter(pl.col(_OBJ).is_not_null()).select(
        *field_exprs(fields),
        pl.format("line {}", pl.col("line_no")).alias(LOCATOR),
        pl.lit([], pl.List(pl.String)).alias(ROW_FLAGS),
    )
    frame = flag_bad_encoding(frame, cfg, file)
    frame, guarded = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects + guarded, meta={})
