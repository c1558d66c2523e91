"""Standardization entry points: a raw canonical frame in, the same frame plus STANDARD_SCHEMA out.

Each field family lives in its own module and adds its columns plus a ``_flag_*`` list from raw columns
only; this module runs them (on two threads for a real-time request's few rows), cross-checks the
record's birth date and sex against its resident ID, and appends every flag to ``dq_flags``.
``standardize_one`` is the real-time path and runs the very same code.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
def _finish(flag_cols: tuple[str, ...], casts: tuple[str, ...], small: bool) -> list[pl.Expr]:
    """``dq_flags`` merged with these flag columns, and the ``casts`` columns cast to their STANDARD_SCHEMA type."""
    return [
        merge_flag_lists(FLAGS, *flag_cols, small=small).alias(FLAGS),
        *(pl.col(c).cast(STANDARD_SCHEMA[c]) for c in casts),
    ]


@lru_cache(maxsize=1)
def _cross() -> pl.Expr:
    return cross_check_flags().alias("_flag_cross")


Family = Callable[[pl.DataFrame, "dt.date | None"], pl.DataFrame]

#: The families in output order. Each reads raw columns only, so they may run in any order or at once.
FAMILIES: tuple[Family, ...] = (
    lambda df, _: standardize_names(df),
    standardize_ids,
    standardize_birth_date,
    lambda df, _: standardize_sex(df),
    lambda df, _: standardize_phones(df),
    lambda df, _: standardize_emails(df),
    lambda df, _: standardize_addresses(df),
    lambda df, _: standardize_cards(df),
)
#: Frames up to this many rows (real-time requests) run the families on two threads: on a few rows
#: polars' cost is per call and much of it is spent outside the GIL, so a request takes about a third
#: less time. Bigger frames run one family at a time, each already using every core. The same bound
#: picks the small-frame way of merging flag lists.
PARALLEL_ROWS = 64
#: Indexes into FAMILIES of the second thread's share (names, birth date, address, cards): about half
#: of the one-row cost.
SECOND_THREAD = (0, 2, 6, 7)
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="standardize")


def _run_families(df: pl.DataFrame, which: Sequence[int], today: dt.date | None) -> dict[int, pl.DataFrame]:
    """The new columns of each of the ``which`` families, applied one after another to ``df``."""
    out: dict[int, pl.DataFrame] = {}
    for i in which:
        known = set(df.columns)
        df = FAMILIES[i](df, today)
        out[i] = df.select([c for c in df.columns if c not in known])
    return out


def _families(df: pl.DataFrame, today: dt.date | None) -> pl.DataFrame:
    """``df`` with every family's columns, in FAMILIES order whichever thread computed them."""
    if df.height > PARALLEL_ROWS:
        for family in FAMILIES:
            df = family(df, today)
        return df
    second = _POOL.submit(_run_families, df, SECOND_THREAD, today)
    first = _run_families(df, [i for i in range(len(FAMILIES)) if i not in SECOND_THREAD], today)
    parts = first | second.result()
    return df.hstack([column for i in range(len(FAMILIES)) for column in parts[i].get_columns()])


def standardize(raw: pl.DataFrame, today: dt.date | None = None) -> pl.DataFrame:
    """The raw frame with every STANDARD_SCHEMA column added and ``dq_flags`` extended."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in RAW_SCHEMA.items() if c not in raw.columns]
    df = _families(raw.with_columns(missing) if missing else raw, today)
    flag_cols = [c for c in df.columns if c.startswith("_flag_") and c != "_flag_cross"]
    dtypes = dict(zip(df.columns, df.dtypes, strict=True))
    casts = tuple(c for c, t in STANDARD_SCHEMA.items() if dtypes.get(c) != t)
    finish = _finish((*flag_cols, "_flag_cross"), casts, df.height <= PARALLEL_ROWS)
    plan = df.lazy().with_columns(_cross()).with_columns(finish)
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
