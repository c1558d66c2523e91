"""Outlook contacts CSV reader: UTF-8 with BOM, every field quoted, CRLF, notes spanning lines.

Read with polars ``read_csv`` (it handles the BOM and quoted multi-line fields), every column as
text. Outlook exports carry no record key, so the key is the 1-based data row number
(``row_number``: "1" is the first row after the header), as the delivery's truth uses.

Native columns: the export's own (``First Name``, ``Middle Name``, ``Last Name``, ``Mobile Phone``,
``Home Street``, ``Birthday``, ``Notes``, …) with ``0/0/00`` birthdays as null, plus
``row_number``, ``full_name`` (Last+Middle+First without spaces when any part is hanzi, else
"First Middle Last"; the standardizer recognises the order) and ``notes_id_number`` (the ID number a
note gives after ``证件：`` / ``身份证``). Locator ``row N (line L)``, L the physical line it starts on.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
from polars.exceptions import ComputeError, NoDataError

from mdm.config import SourceConfig
from mdm.errors import SourceError
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.row_checks import check_text_bytes, decode, flag_bad_encoding, guard_rows

#: Columns every Outlook contacts export has; a CSV without them is another file.
REQUIRED_COLUMNS: tuple[str, ...] = ("First Name", "Last Name", "Mobile Phone", "Notes")
NAME_PARTS: tuple[str, str, str] = ("First Name", "Middle Name", "Last Name")
#: Outlook's empty date.
NO_DATE = "0/0/00"
KEY = "row_number"
ID_IN_NOTE = r"(?:证件|身份证)(?:号码|号)?\s*[：:]?\s*([0-9]{17}[0-9Xx]|[0-9]{15})(?:[^0-9]|$)"


def note_id_number(note: pl.Expr) -> pl.Expr:
    """The ID number a free-text note gives after 证件 / 身份证 (``证件：110105…``), else null."""
    return note.str.extract(ID_IN_NOTE, 1)


def full_name(first: pl.Expr, middle: pl.Expr, last: pl.Expr) -> pl.Expr:
    """Name from its parts: Last+Middle+First for hanzi, "First Middle Last" for latin script."""
    parts = [e.str.strip_chars().replace("", None) for e in (first, middle, last)]
    han = pl.any_horizontal([p.str.contains(r"\p{Han}").fill_null(False) for p in parts])
    hanzi = pl.concat_str([parts[2], parts[1], parts[0]], separator="", ignore_nulls=True)
    latin = pl.concat_str(parts, separator=" ", ignore_nulls=True)
    return pl.when(han).then(hanzi).otherwise(latin).replace("", None)


def read_outlook_csv(path: Path, cfg: SourceConfig) -> ReadResult:
    """One record per contact row of an Outlook contacts CSV export."""
    file = str(path)
    data = path.read_bytes()
    check_text_bytes(data, file, cfg.encoding)
    text = decode(data, cfg.encoding, file).removeprefix("\ufeff")
    if not text.strip():
        raise SourceError(file, "the file is empty")
    if text.count('"') % 2:
        raise SourceError(
            file, "a quoted field is not closed: the file is truncated", f"line {text.count(chr(10)) + 1}"
        )
    try:
        frame = pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema=False, quote_char='"')
    except (ComputeError, NoDataError) as exc:
        raise SourceError(file, f"not a readable CSV file ({type(exc).__name__})", "line 1") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceError(file, f"not an Outlook contacts export: columns {missing} are missing", "line 1")
    for col in NAME_PARTS:
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit("", pl.String).alias(col))
    newlines = pl.sum_horizontal([pl.col(c).str.count_matches("\n").fill_null(0) for c in frame.columns])
    frame = frame.with_row_index("_n", offset=1).with_columns(
        (pl.col("_n") + 1 + newlines.cum_sum() - newlines).alias("_line")
    )
    birthday = [pl.col("Birthday").replace(NO_DATE, None)] if "Birthday" in frame.columns else []
    frame = frame.with_columns(
        *birthday,
        pl.col("_n").cast(pl.String).alias(KEY),
        full_name(*(pl.col(c) for c in NAME_PARTS)).alias("full_name"),
        note_id_number(pl.col("Notes")).alias("notes_id_number"),
        pl.format("row {} (line {})", pl.col("_n"), pl.col("_line")).alias(LOCATOR),
        pl.lit([], pl.List(pl.String)).alias(ROW_FLAGS),
    ).drop("_n", "_line")
    frame = flag_bad_encoding(frame, cfg, file)
    frame, rejects = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects, meta={"rows": str(frame.height + len(rejects))})
