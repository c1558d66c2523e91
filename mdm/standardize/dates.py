"""Birth dates from every spelling the sources use, as polars expressions.

Handled: ISO (with or without a time), ``YYYYMMDD``, ``YYYY/M/D``, ``YYYY.M.D``, ``YYYY年M月D日``,
Outlook ``M/D/YYYY``, Excel serial numbers, unknown markers (``00000000``, ``0/0/00``) and vCard
``--MMDD`` (no year). A date that does not exist, lies before 1900 or in the future is dropped
with the flag ``birth_date:impossible_date``.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import polars as pl

from mdm.standardize.vec import flag_list, run

EXCEL_EPOCH = dt.date(1899, 12, 30)
MIN_YEAR = 1900
_YMD = (
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_COMPACT = r"^(\d{4})(\d{2})(\d{2})$"
_MDY = r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$"
_SERIAL = r"^(\d{4,5})(?:\.0+)?$"
_UNKNOWN = r"^(?:0+|0{1,2}/0{1,2}/0{2,4}|0{4}-0{2}-0{2})$"
_NO_YEAR = r"^--\d{2}-?\d{2}$"


def plausible(date: pl.Expr, today: dt.date) -> pl.Expr:
    """True for a birth date from 1900 up to ``today``."""
    return (date.dt.year() >= MIN_YEAR) & (date <= pl.lit(today))


def _build(y: pl.Expr, m: pl.Expr, d: pl.Expr) -> pl.Expr:
    text = pl.format("{}-{}-{}", y.str.zfill(4), m.str.zfill(2), d.str.zfill(2))
    return text.str.to_date("%Y-%m-%d", strict=False)


@lru_cache(maxsize=4)
def _parse_steps(src: str, prefix: str) -> tuple[list[pl.Expr], ...]:
    """The steps of :func:`parse_dates` on column ``src``, working columns named ``<prefix><name>``, built once.

    The last step yields ``<prefix>date`` and ``<prefix>status``.
    """

    def c(name: str) -> pl.Expr:
        return pl.col(prefix + name)

    s = c("s")
    ymd, compact, mdy = c("ymd").struct, c("compact").struct, c("mdy").struct
    mdy_year = mdy.field("3")
    mdy_year4 = pl.when(mdy_year.str.len_chars() == 2).then(pl.lit("19") + mdy_year).otherwise(mdy_year)
    status = (
        pl.when(c("unknown"))
        .then(pl.lit("unknown"))
        .when(c("no_year"))
        .then(pl.lit("no_year"))
        .when(c("date").is_not_null())
        .then(pl.lit("ok"))
        .when(c("shaped"))
        .then(pl.lit("impossible"))
        .otherwise(pl.lit("unparseable"))
    )
    matched = (ymd.field("1").is_not_null(), compact.field("1").is_not_null(), mdy.field("1").is_not_null())
    parts = (
        (ymd.field("1"), ymd.field("2"), ymd.field("3")),
        (compact.field("1"), compact.field("2"), compact.field("3")),
        (mdy_year4, mdy.field("1"), mdy.field("2")),
    )
    chosen = [
        pl.when(matched[0]).then(p[0]).when(matched[1]).then(p[1]).when(matched[2]).then(p[2])
        for p in zip(*parts, strict=True)
    ]
    return (
        [pl.col(src).str.normalize("NFKC").str.strip_chars().alias(prefix + "s")],
        [
            s.str.extract_groups(_YMD).alias(prefix + "ymd"),
            s.str.extract_groups(_COMPACT).alias(prefix + "compact"),
            s.str.extract_groups(_MDY).alias(prefix + "mdy"),
            s.str.extract(_SERIAL, 1).cast(pl.Int64, strict=False).alias(prefix + "serial"),
            (s.is_null() | (s == "") | s.str.contains(_UNKNOWN)).alias(prefix + "unknown"),
            s.str.contains(_NO_YEAR).alias(prefix + "no_year"),
        ],
        [*(part.alias(prefix + name) for part, name in zip(chosen, "ymd", strict=True))],
        [
            pl.when(c("unknown"))
            .then(pl.lit(None, dtype=pl.Date))
            .when(c("y").is_not_null())
            .then(_build(c("y"), c("m"), c("d")))
            .when(c("serial").is_not_null())
            .then(pl.lit(EXCEL_EPOCH) + pl.duration(days=c("serial")))
            .alias(prefix + "date"),
            (c("y").is_not_null() | c("serial").is_not_null()).alias(prefix + "shaped"),
        ],
        [status.alias(prefix + "status")],
    )


def _parse_plan(plan: pl.LazyFrame, src: str, prefix: str) -> pl.LazyFrame:
    for step in _parse_steps(src, prefix):
        plan = plan.with_columns(step)
    return plan


def parse_dates(values: pl.Series) -> pl.DataFrame:
    """Columns ``date`` (candidate) and ``status`` for raw date strings, computed in stages.

    status: ``ok`` (parsed), ``unknown`` (an explicit unknown marker or null), ``no_year`` (vCard
    ``--MMDD``), ``impossible`` (right shape, no such date) or ``unparseable``.
    """
    return run(_parse_plan(pl.LazyFrame({"s": values}), "s", "").select("date", "status"))


_PREFIX = "_bd_"
_WORK = (
    "s",
    "ymd",
    "compact",
    "mdy",
    "serial",
    "unknown",
    "no_year",
    "y",
    "m",
    "d",
    "date",
    "shaped",
    "status",
    "ok",
)


@lru_cache(maxsize=4)
def _date_outputs(today: dt.date) -> tuple[pl.Expr, list[pl.Expr]]:
    """(plausibility column, output columns) of :func:`standardize_birth_date` for ``today``, built once."""
    status, ok = pl.col(_PREFIX + "status"), pl.col(_PREFIX + "ok")
    flag = (
        pl.when(status == "no_year")
        .then(pl.lit("birth_date:no_year"))
        .when(status == "unparseable")
        .then(pl.lit("birth_date:unparseable"))
        .when((status == "impossible") | ((status == "ok") & ~ok))
        .then(pl.lit("birth_date:impossible_date"))
    )
    plausible_col = plausible(pl.col(_PREFIX + "date"), today).fill_null(False).alias(_PREFIX + "ok")
    outputs = [
        pl.when(ok).then(pl.col(_PREFIX + "date")).alias("birth_date_std"),
        flag_list(flag).alias("_flag_dates"),
    ]
    return plausible_col, outputs


def standardize_birth_date(df: pl.DataFrame, today: dt.date | None = None) -> pl.DataFrame:
    """Add ``birth_date_std`` (Date) and ``_flag_dates`` from the raw ``birth_date``."""
    plausible_col, outputs = _date_outputs(today or dt.date.today())
    plan = _parse_plan(df.lazy(), "birth_date", _PREFIX).with_columns(plausible_col).with_columns(outputs)
    return run(plan.drop([_PREFIX + w for w in _WORK]))
