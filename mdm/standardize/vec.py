"""Vectorized helpers shared by the standardizers: element-wise work on list columns, digit matrices."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

ROW = "_vec_row"


def per_element(df: pl.DataFrame, column: str, fn: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``fn`` applied to every element of list column ``column``; nulls it yields are dropped, order kept.

    Works on the exploded values (one flat column, regexes compiled once) and regroups by row, which
    is much faster than ``list.eval`` with regex-heavy expressions. Rows without values get ``[]``.
    """
    flat = (
        df.select(pl.col(column))
        .with_row_index(ROW)
        .explode(column)
        .with_columns(fn(pl.col(column)).alias("_v"))
        .filter(pl.col("_v").is_not_null())
    )
    grouped = flat.group_by(ROW, maintain_order=True).agg(pl.col("_v"))
    rows = pl.DataFrame({ROW: pl.arange(0, df.height, eager=True).cast(pl.UInt32)})
    dtype = grouped.schema["_v"]
    out = rows.join(grouped, on=ROW, how="left", maintain_order="left")["_v"]
    return out.fill_null(pl.lit([], dtype=dtype)).alias(column)


def digit_matrix(values: pl.Series, width: int) -> np.ndarray:
    """(n, width) int matrix of the digits of each value; values not exactly ``width`` digits give zeros."""
    ok = values.str.contains(rf"^[0-9]{{{width}}}$").fill_null(False)
    padded = pl.select(pl.when(ok).then(values).otherwise(pl.lit("0" * width))).to_series()
    raw = padded.str.join("").item().encode("ascii") if len(padded) else b""
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, width).astype(np.int64) - ord("0")


def flag_list(*flags: pl.Expr) -> pl.Expr:
    """List[String] of the non-null flag strings among ``flags`` (``[]`` when none).

    Built through a joined string: much faster than ``concat_list(...).list.drop_nulls()`` at 1M rows.
    """
    joined = pl.concat_str(list(flags), separator="|", ignore_nulls=True)
    return pl.when(joined != "").then(joined.str.split("|")).otherwise(pl.lit([], dtype=pl.List(pl.String)))


def merge_flag_lists(*columns: str) -> pl.Expr:
    """Several List[String] flag columns merged into one list, duplicates removed, order kept."""
    parts = [pl.when(pl.col(c).list.len() > 0).then(pl.col(c).list.join("|")) for c in columns]
    return flag_list(*parts).list.unique(maintain_order=True)
