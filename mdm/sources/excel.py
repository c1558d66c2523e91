"""Excel (.xlsx) reader: every sheet, title rows above the header, footers below the data.

The workbook is read with fastexcel (calamine). Each sheet is loaded three times over the same cells:
as text (the value the reader outputs), as booleans (non-null exactly for number and boolean cells,
which tells which cells Excel stored as numbers) and as datetimes (non-null for date cells and numbers).
A number holding more than 15 digits has lost digits in Excel and is flagged ``field:excel_precision_loss``
and kept as read; a real date cell is output as ISO text; everything else is the text as given.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import fastexcel
import polars as pl

from mdm.config import SourceConfig
from mdm.errors import SourceError
from mdm.privacy import mask
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.row_checks import field_of, flag_expr, guard_rows

#: Defaults for the reader options a source may override in its YAML ``options``.
DEFAULT_FOOTER_PATTERNS: tuple[str, ...] = (r"^合计[:：]", r"^制表人[:：]")
DEFAULT_COUNT_PATTERN = r"^合计[:：]\s*(\d+)\s*条"
DEFAULT_HEADER_SEARCH_ROWS = 50
DEFAULT_MAX_UNCOMPRESSED_MB = 512
DEFAULT_MAX_RATIO = 100.0
#: Members smaller than this may compress well without being suspect.
RATIO_FLOOR_BYTES = 10 * 2**20
#: Canonical fields whose value Excel may corrupt when it stores it as a number.
IDENTIFIER_FIELDS = frozenset({"id_number", "mobile", "phone", "bank_card"})
EXCEL_SIGNIFICANT_DIGITS = 15
_NUMBER_TEXT = r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$"
_DATETIME_TEXT = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
_NUM, _DATE = "\x00number", "\x00date"


def check_workbook_archive(path: Path, cfg: SourceConfig) -> None:
    """Refuse a non-xlsx file or a zip bomb from the archive's declared sizes, before inflating anything."""
    file = str(path)
    limit = int(cfg.options.get("max_uncompressed_mb", DEFAULT_MAX_UNCOMPRESSED_MB)) * 2**20  # type: ignore[call-overload]
    max_ratio = float(cfg.options.get("max_compression_ratio", DEFAULT_MAX_RATIO))  # type: ignore[arg-type]
    if not zipfile.is_zipfile(path):
        raise SourceError(file, "not an xlsx workbook (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SourceError(file, f"not an xlsx workbook ({type(exc).__name__})") from exc
    if "xl/workbook.xml" not in {m.filename for m in members}:
        raise SourceError(file, "not an xlsx workbook (no xl/workbook.xml in the archive)")
    total = sum(m.file_size for m in members)
    if total > limit:
        raise SourceError(
            file, f"workbook inflates to {total / 2**20:.0f} MB, over the {limit / 2**20:.0f} MB limit"
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > RATIO_FLOOR_BYTES and ratio > max_ratio:
            raise SourceError(
                file, f"archive member {m.filename} compressed {ratio:.0f}:1: refused as a zip bomb"
            )


def _header_row(
    reader: fastexcel.ExcelReader, sheet: str, key: str, cfg: SourceConfig, file: str
) -> int | None:
    """0-based sheet row of the header (the row holding the key column's name); None for an empty sheet."""
    rows = int(cfg.options.get("header_search_rows", DEFAULT_HEADER_SEARCH_ROWS))  # type: ignore[call-overload]
    top = reader.load_sheet(sheet, header_row=None, skip_rows=0, n_rows=rows, dtypes="string").to_polars()
    if top.width == 0 or top.height == 0:
        return None
    hit = (
        top.with_row_index("_row")
        .filter(pl.any_horizontal(pl.exclude("_row").str.strip_chars() == key))
        .get_column("_row")
    )
    if hit.is_empty():
        raise SourceError(
            file, f"no header row naming the key column {key} in the first {rows} rows", f"sheet {sheet}", key
        )
    return int(hit[0])


def _cell_values(
    text: pl.DataFrame, numbers: pl.DataFrame, dates: pl.DataFrame, cfg: SourceConfig
) -> pl.DataFrame:
    """Text per cell (ISO for date cells) and flags for identifiers Excel stored as numbers."""
    names = field_of(cfg)
    both = pl.concat(
        [text, numbers.rename(lambda c: c + _NUM), dates.rename(lambda c: c + _DATE)], how="horizontal"
    )
    values: list[pl.Expr] = []
    conditions: list[tuple[pl.Expr, str]] = []
    for col in text.columns:
        is_number = pl.col(col + _NUM).is_not_null() & pl.col(col).str.contains(_NUMBER_TEXT).fill_null(False)
        is_date = (
            pl.col(col + _DATE).is_not_null()
            & pl.col(col + _NUM).is_null()
            & pl.col(col).str.contains(_DATETIME_TEXT).fill_null(False)
        )
        stamp = pl.col(col + _DATE)
        iso = (
            pl.when(stamp.dt.time() == pl.time(0))
            .then(stamp.dt.strftime("%Y-%m-%d"))
            .otherwise(stamp.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        )
        values.append(pl.when(is_date).then(iso).otherwise(pl.col(col)).alias(col))
        field = names.get(col, col)
        if field in IDENTIFIER_FIELDS:
            digits = pl.col(col).str.replace_all(r"[^0-9]", "").str.len_chars()
            conditions.append(
                (is_number & (digits > EXCEL_SIGNIFICANT_DIGITS), f"{field}:excel_precision_loss")
            )
    flags = flag_expr(conditions).alias(ROW_FLAGS)
    return both.with_columns(pl.lit([], pl.List(pl.String)).alias(ROW_FLAGS)).select(*values, flags)


def _read_sheet(
    reader: fastexcel.ExcelReader, sheet: str, cfg: SourceConfig, file: str
) -> pl.DataFrame | None:
    """One sheet's data rows (footers and blank rows dropped) with locators and flags."""
    key = cfg.natural_key
    header = _header_row(reader, sheet, key, cfg, file)
    if header is None:
        return None
    text = reader.load_sheet(sheet, header_row=header, dtypes="string").to_polars()
    needed = sorted({key, *field_of(cfg)} - set(text.columns))
    if needed:
        raise SourceError(
            file,
            f"sheet {sheet} has no column {', '.join(needed)}",
            f"sheet {sheet} row {header + 1}",
            needed[0],
        )
    numbers = reader.load_sheet(sheet, header_row=header, dtypes="boolean").to_polars()
    dates = reader.load_sheet(sheet, header_row=header, dtypes="datetime").to_polars()
    if not (text.shape == numbers.shape == dates.shape):
        raise SourceError(file, "cell ranges differ between loads of the sheet", f"sheet {sheet}")
    frame = _cell_values(text, numbers, dates, cfg).with_columns(
        pl.format(f"sheet {sheet} row {{}}", pl.int_range(header + 2, header + 2 + pl.len())).alias(LOCATOR)
    )
    blank = pl.all_horizontal(pl.col(text.columns).str.strip_chars().replace("", None).is_null())
    patterns = [str(p) for p in cfg.options.get("footer_patterns", DEFAULT_FOOTER_PATTERNS)]  # type: ignore[attr-defined]
    key_text = pl.col(key).str.strip_chars().fill_null("")
    footer = pl.any_horizontal([key_text.str.contains(p) for p in patterns]) if patterns else pl.lit(False)
    marked = frame.with_columns(blank.alias("_blank"), footer.alias("_footer"))
    data = marked.filter(~pl.col("_blank") & ~pl.col("_footer")).drop("_blank", "_footer")
    _check_footer_count(marked.filter(pl.col("_footer")), data.height, key, cfg, file)
    return data


def _check_footer_count(footers: pl.DataFrame, n_rows: int, key: str, cfg: SourceConfig, file: str) -> None:
    """A footer stating the record count (``合计：N 条``) must agree with the data rows read."""
    pattern = str(cfg.options.get("count_pattern", DEFAULT_COUNT_PATTERN))
    stated = footers.select(
        pl.col(key).str.strip_chars().str.extract(pattern, 1).cast(pl.Int64), LOCATOR
    ).drop_nulls()
    if stated.height and stated[key][0] != n_rows:
        raise SourceError(
            file,
            f"footer states {stated[key][0]} records but the sheet has {n_rows} data rows",
            stated[LOCATOR][0],
        )


def read_excel(path: Path, cfg: SourceConfig) -> ReadResult:
    """Every sheet of an .xlsx workbook as native String columns, one row per record."""
    file = str(path)
    check_workbook_archive(path, cfg)
    try:
        reader = fastexcel.read_excel(path)
        sheets = [
            s for s in (_read_sheet(reader, name, cfg, file) for name in reader.sheet_names) if s is not None
        ]
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(file, f"unreadable xlsx workbook: {type(exc).__name__}: {_short(exc)}") from exc
    if not sheets:
        raise SourceError(file, "the workbook has no data sheet")
    frame = pl.concat(sheets, how="diagonal")
    frame, rejects = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects, meta={"sheets": ",".join(reader.sheet_names)})


def _short(exc: Exception) -> str:
    """First line of an exception text, identifiers masked (library messages may quote cell values)."""
    lines = str(exc).splitlines()
    return mask(lines[0] if lines else "")[:200]
