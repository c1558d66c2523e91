"""Birth dates from every spelling the sources use, as polars expressions.

Handled: ISO (with or without a time), ``YYYYMMDD``, ``YYYY/M/D``, ``YYYY.M.D``, ``YYYY年M月D日``,
Outlook ``M/D/YYYY``, Excel serial numbers, unknown markers (``00000000``, ``0/0/00``) and vCard
``--MMDD`` (no year). A date that does not exist, lies before 1900 or in the future is dropped
with the flag ``birth_date:impossible_date``.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mdm.standardize.vec import flag_list

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


def parse_dates(values: pl.Series) -> pl.DataFrame:
    """Columns ``date`` (candidate) and ``status`` for raw date strings, computed in stages.

    status: ``ok`` (parsed), ``unknown`` (an explicit unknown marker or null), ``no_year`` (vCard
    ``--MMDD``), ``impossible`` (right shape, no such date) or ``unparseable``.
    """
    f = pl.DataFrame({"s": values}).with_columns(pl.col("s").str.normalize("NFKC").str.strip_chars())
    s = pl.col("s")
    f = f.with_columns(
        ymd=s.str.extract_groups(_YMD),
        compact=s.str.extract_groups(_COMPACT),
        mdy=s.str.extract_groups(_MDY),
        serial=s.str.extract(_SERIAL, 1).cast(pl.Int64, strict=False),
        unknown=s.is_null() | (s == "") | s.str.contains(_UNKNOWN),
        no_year=s.str.contains(_NO_YEAR),
    )
    ymd, compact, mdy = pl.col("ymd").struct, pl.col("compact").struct, pl.col("mdy").struct
    mdy_year = mdy.field("3")
    mdy_year4 = pl.when(mdy_year.str.len_chars() == 2).then(pl.lit("19") + mdy_year).otherwise(mdy_year)
    f = f.with_columns(
        date=pl.when(pl.col("unknown"))
        .then(pl.lit(None, dtype=pl.Date))
        .when(ymd.field("1").is_not_null())
        .then(_build(ymd.field("1"), ymd.field("2"), ymd.field("3")))
        .when(compact.field("1").is_not_null())
        .then(_build(compact.field("1"), compact.field("2"), compact.field("3")))
        .when(mdy.field("1").is_not_null())
        .then(_build(mdy_year4, mdy.field("1"), mdy.field("2")))
        .when(pl.col("serial").is_not_null())
        .then(pl.lit(EXCEL_EPOCH) + pl.duration(days=pl.col("serial"))),
        shaped=ymd.field("1").is_not_null()
        | compact.field("1").is_not_null()
        | mdy.field("1").is_not_null()
        | pl.col("serial").is_not_null(),
    )
    status = (
        pl.when(pl.col("unknown"))
        .then(pl.lit("unknown"))
        .when(pl.col("no_year"))
        .then(pl.lit("no_year"))
        .when(pl.col("date").is_not_null())
        .then(pl.lit("ok"))
        .when(pl.col("shaped"))
        .then(pl.lit("impossible"))
        .otherwise(pl.lit("unparseable"))
    )
    return f.select("date", status.alias("status"))


def standardize_birth_date(df: pl.DataFrame, today: dt.date | None = None) -> pl.DataFrame:
    """Add ``birth_date_std`` (Date) and ``_flag_dates`` from the raw ``birth_date``."""
    today = today or dt.date.today()
    parsed = parse_dates(df["birth_date"])
    out = df.with_columns(_bd=parsed["date"], _bd_status=parsed["status"]).with_columns(
        _bd_ok=plausible(pl.col("_bd"), today).fill_null(False)
    )
    flag = (
        pl.when(pl.col("_bd_status") == "no_year")
        .then(pl.lit("birth_date:no_year"))
        .when(pl.col("_bd_status") == "unparseable")
        .then(pl.lit("birth_date:unparseable"))
        .when((pl.col("_bd_status") == "impossible") | ((pl.col("_bd_status") == "ok") & ~pl.col("_bd_ok")))
        .then(pl.lit("birth_date:impossible_date"))
    )
    return out.with_columns(
        birth_date_std=pl.when(pl.col("_bd_ok")).then(pl.col("_bd")),
        _flag_dates=flag_list(flag),
    ).drop("_bd", "_bd_status", "_bd_ok")
