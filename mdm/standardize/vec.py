"""Vectorized helpers shared by the standardizers: element-wise work on list columns, digit matrices.

Standardization runs per batch of a million rows and per real-time request of one row. On a small
frame a polars call costs a fixed fraction of a millisecond, so each family builds its steps as one
short lazy chain collected once by :func:`run`, with the very optimizations of polars' eager methods
(same work, same results, one call instead of one per step).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import polars as pl

ROW = "_vec_row"
#: The optimizations polars' eager DataFrame methods run with: a chain collected with them does the same work.
EAGER = pl.QueryOptFlags.none(simplify_expression=True)
EMPTY_STRINGS = pl.lit([], dtype=pl.List(pl.String))


def run(plan: pl.LazyFrame) -> pl.DataFrame:
    """Collect a short chain of steps in one call, in memory, exactly as the eager steps would run."""
    return plan.collect(engine="in-memory", optimizations=EAGER)


def all_null(df: pl.DataFrame, *columns: str) -> bool:
    """A non-empty frame whose ``columns`` hold only nulls (null counts are stored: no polars call)."""
    return df.height > 0 and all(df[c].null_count() == df.height for c in columns)


def add_columns(df: pl.DataFrame, columns: pl.DataFrame) -> pl.DataFrame:
    """``df.with_columns(columns)`` for a same-height frame of new columns (appended without a polars query)."""
    if set(columns.columns) & set(df.columns):
        return df.with_columns(columns.get_columns())
    return df.hstack(columns.get_columns())


def per_element_plan(plan: pl.LazyFrame, column: str, fn: Callable[[pl.Expr], pl.Expr]) -> pl.LazyFrame:
    """Rows ``ROW`` (row number) and ``_v``: ``fn`` of each element of ``column``, nulls dropped, order kept.

    Works on the exploded values (one flat column, regexes compiled once), which is much faster than
    ``list.eval`` with regex-heavy expressions; rows without values are absent.
    """
    return (
        plan.select(pl.col(column))
        .with_row_index(ROW)
        .explode(column)
        .with_columns(fn(pl.col(column)).alias("_v"))
        .filter(pl.col("_v").is_not_null())
        .group_by(ROW, maintain_order=True)
        .agg(pl.col("_v"))
    )


def row_numbers(height: int) -> pl.LazyFrame:
    """One row per row number ``0 .. height - 1`` in column ``ROW`` (left side of regrouping joins)."""
    return pl.LazyFrame({ROW: pl.Series(ROW, np.arange(height, dtype=np.uint32))})


@lru_cache(maxsize=8)
def _blocks(width: int, pad: bool) -> pl.Expr:
    """Column ``_d`` as one string of ``width``-character blocks: the digits, or ``:`` * width when not digits.

    Without ``pad`` a value must be exactly ``width`` digits; with it 1 to ``width`` digits, left zero-padded.
    """
    value = pl.col("_d")
    ok = value.str.contains(rf"^[0-9]{{{1 if pad else width},{width}}}$").fill_null(False)
    block = value.str.zfill(width) if pad else value
    return pl.when(ok).then(block).otherwise(pl.lit(":" * width)).str.join("")


def digit_rows(values: pl.Series, width: int, pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(digits, ok): the (n, width) int digit matrix (zeros where not ok) and whether each value is digits.

    ``ok`` means exactly ``width`` ASCII digits, or 1 to ``width`` digits (left zero-padded) with ``pad``.
    One polars call: the values are joined into one string read as bytes.
    """
    if not len(values):
        return np.zeros((0, width), dtype=np.int64), np.zeros(0, dtype=bool)
    joined = values.to_frame("_d").select(_blocks(width, pad)).item()
    raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, width).astype(np.int64) - ord("0")
    ok: np.ndarray = np.all(raw <= 9, axis=1)
    return np.where(ok[:, None], raw, 0), ok


def flag_list(*flags: pl.Expr) -> pl.Expr:
    """List[String] of the non-null flag strings among ``flags`` (``[]`` when none).

    Built through a joined string: much faster than ``concat_list(...).list.drop_nulls()`` at 1M rows.
    """
    joined = pl.concat_str(list(flags), separator="|", ignore_nulls=True)
    return pl.when(joined != "").then(joined.str.split("|")).otherwise(EMPTY_STRINGS)


def merge_flag_lists(*columns: str, small: bool = False) -> pl.Expr:
    """Several List[String] flag columns merged into one list, duplicates removed, order kept (a null
    column counts as empty).

    Through one joined string by default (the faster way at 1M rows); for a ``small`` frame the lists
    are concatenated directly, a quarter of the cost on one row. Both give the same lists of flags
    (``field:flag`` strings: never empty, never holding ``|``).
    """
    if small:
        return pl.concat_list([pl.col(c).fill_null(EMPTY_STRINGS) for c in columns]).list.unique(
            maintain_order=True
        )
    parts = [pl.when(pl.col(c).list.len() > 0).then(pl.col(c).list.join("|")) for c in columns]
    return flag_list(*parts).list.unique(maintain_order=True)
