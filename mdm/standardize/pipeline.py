"""Standardization entry points: a raw canonical frame in, the same frame plus STANDARD_SCHEMA out.

Each field family lives in its own module and adds its columns plus a ``_flag_*`` list; this module
runs them, cross-checks the record's birth date and sex against its resident ID, and appends every
flag to ``dq_flags``. ``standardize_one`` is the real-time path and runs the very same code.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

import polars as pl

from mdm.schema import FLAGS, RAW_SCHEMA, STANDARD_SCHEMA
from mdm.standardize.addresses import standardize_addresses
from mdm.standardize.cards import standardize_cards
from mdm.standardize.dates import standardize_birth_date
from mdm.standardize.emails import standardize_emails
from mdm.standardize.ids import standardize_ids
from mdm.standardize.names import standardize_names
from mdm.standardize.phones import standardize_phones
from mdm.standardize.sex import standardize_sex
from mdm.standardize.vec import flag_list, merge_flag_lists, run


def cross_check_flags() -> pl.Expr:
    """Flags where the record's own birth date or sex disagrees with its valid resident ID."""
    return flag_list(
        pl.when(
            pl.col("birth_date_std").is_not_null()
            & pl.col("id_birth_date").is_not_null()
            & (pl.col("birth_date_std") != pl.col("id_birth_date"))
        ).then(pl.lit("birth_date:conflicts_with_id")),
        pl.when(
            pl.col("sex_std").is_not_null()
            & pl.col("id_sex").is_not_null()
            & (pl.col("sex_std") != pl.col("id_sex"))
        ).then(pl.lit("sex:conflicts_with_id")),
    )


@lru_cache(maxsize=16)
def _finish(flag_cols: tuple[str, ...], casts: tuple[str, ...]) -> list[pl.Expr]:
    """``dq_flags`` merged with these flag columns, and the ``casts`` columns cast to their STANDARD_SCHEMA type."""
    return [
        merge_flag_lists(FLAGS, *flag_cols).alias(FLAGS),
        *(pl.col(c).cast(STANDARD_SCHEMA[c]) for c in casts),
    ]


@lru_cache(maxsize=1)
def _cross() -> pl.Expr:
    return cross_check_flags().alias("_flag_cross")


def standardize(raw: pl.DataFrame, today: dt.date | None = None) -> pl.DataFrame:
    """The raw frame with every STANDARD_SCHEMA column added and ``dq_flags`` extended."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in RAW_SCHEMA.items() if c not in raw.columns]
    df = raw.with_columns(missing) if missing else raw
    df = standardize_names(df)
    df = standardize_ids(df, today)
    df = standardize_birth_date(df, today)
    df = standardize_sex(df)
    df = standardize_phones(df)
    df = standardize_emails(df)
    df = standardize_addresses(df)
    df = standardize_cards(df)
    flag_cols = [c for c in df.columns if c.startswith("_flag_") and c != "_flag_cross"]
    dtypes = dict(zip(df.columns, df.dtypes, strict=True))
    casts = tuple(c for c, t in STANDARD_SCHEMA.items() if dtypes.get(c) != t)
    plan = df.lazy().with_columns(_cross()).with_columns(_finish((*flag_cols, "_flag_cross"), casts))
    return run(plan.select(*[c for c in raw.columns if c not in STANDARD_SCHEMA], *STANDARD_SCHEMA))


def standardize_one(fields: dict[str, Any], today: dt.date | None = None) -> dict[str, Any]:
    """One record standardized exactly as in batch: a one-row frame through :func:`standardize`."""
    row = {c: fields.get(c) for c in RAW_SCHEMA}
    for c, t in RAW_SCHEMA.items():
        if isinstance(t, pl.List) and isinstance(row[c], str):
            row[c] = [row[c]]
    frame = pl.DataFrame([row], schema=RAW_SCHEMA)
    extra = {k: v for k, v in fields.items() if k not in RAW_SCHEMA}
    return {**extra, **standardize(frame, today).row(0, named=True)}
