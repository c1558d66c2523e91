"""Column mapping: a reader's native columns onto the raw canonical record of mdm.schema."""

from __future__ import annotations

import polars as pl

from mdm.config import SourceConfig
from mdm.errors import SourceError
from mdm.schema import FLAGS, RAW_LIST_FIELDS, RAW_SCALAR_FIELDS, RAW_SCHEMA
from mdm.sources.base import LOCATOR, ROW_FLAGS


def _as_list(col: str, dtype: pl.DataType) -> pl.Expr:
    """A native column as List[String] (a scalar becomes a one-element list, blanks dropped)."""
    expr = pl.col(col)
    if not isinstance(dtype, pl.List):
        expr = pl.concat_list(expr.cast(pl.String))
    return expr.cast(pl.List(pl.String)).fill_null(pl.lit([], pl.List(pl.String)))


def map_columns(frame: pl.DataFrame, cfg: SourceConfig, file: str) -> pl.DataFrame:
    """Raw canonical frame (RAW_SCHEMA) from a reader's native frame, per the source's ``columns``."""
    missing = sorted(
        {c for cols in cfg.columns.values() for c in ([cols] if isinstance(cols, str) else cols)}
        - set(frame.columns)
    )
    if cfg.natural_key not in frame.columns:
        missing = sorted({*missing, cfg.natural_key})
    if missing:
        raise SourceError(file, f"missing columns {missing} required by source {cfg.name!r}")
    exprs: list[pl.Expr] = [
        pl.lit(cfg.name).alias("source"),
        pl.col(cfg.natural_key).cast(pl.String).str.strip_chars().alias("source_key"),
        pl.lit(file).alias("file"),
        (pl.col(LOCATOR) if LOCATOR in frame.columns else pl.lit(None, pl.String)).alias("locator"),
    ]
    for name in RAW_SCALAR_FIELDS:
        spec = cfg.columns.get(name)
        cols = [spec] if isinstance(spec, str) else list(spec or [])
        if not cols:
            exprs.append(pl.lit(None, pl.String).alias(name))
            continue
        values = [pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in cols]
        exprs.append(pl.coalesce(values).alias(name))
    for name in RAW_LIST_FIELDS:
        spec = cfg.columns.get(name)
        cols = [spec] if isinstance(spec, str) else list(spec or [])
        if not cols:
            exprs.append(pl.lit(None, pl.List(pl.String)).alias(name))
            continue
        parts = [_as_list(c, frame.schema[c]) for c in cols]
        combined = pl.concat_list(parts).list.eval(
            pl.element().str.strip_chars().filter(pl.element().is_not_null() & (pl.element() != ""))
        )
        exprs.append(combined.alias(name))
    flags = pl.col(ROW_FLAGS) if ROW_FLAGS in frame.columns else pl.lit([], pl.List(pl.String))
    exprs.append(flags.fill_null([]).cast(pl.List(pl.String)).alias(FLAGS))
    return frame.select(exprs).select(list(RAW_SCHEMA))
