"""Sex codes of every source (男/女, M/F, 1/2, male/female, 先生/女士) folded to ``M`` / ``F``."""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from mdm.standardize.vec import flag_list, run

#: Raw spelling (NFKC, trimmed, lower-cased) -> M | F.
SEX_CODES: dict[str, str] = {
    "男": "M",
    "女": "F",
    "m": "M",
    "f": "F",
    "1": "M",
    "2": "F",
    "male": "M",
    "female": "F",
    "先生": "M",
    "女士": "F",
    "小姐": "F",
    "男性": "M",
    "女性": "F",
    "man": "M",
    "woman": "F",
}
#: Values meaning "not stated": null without a flag.
UNKNOWN = ("", "0", "9", "u", "unknown", "未知", "未说明", "x")


def _key(col: pl.Expr) -> pl.Expr:
    return col.str.normalize("NFKC").str.strip_chars().str.to_lowercase()


def sex_expr(col: pl.Expr) -> pl.Expr:
    """``M`` / ``F`` / null for a raw sex column."""
    return _key(col).replace_strict(SEX_CODES, default=None, return_dtype=pl.String)


@lru_cache(maxsize=1)
def _steps() -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(spelling key, ``sex_std``, ``_flag_sex``) of :func:`standardize_sex`, built once, in that order."""
    key = pl.col("_sex_key")
    unknown = key.is_null() | key.is_in(UNKNOWN)
    flag = flag_list(pl.when(~unknown & pl.col("sex_std").is_null()).then(pl.lit("sex:unrecognized")))
    return (
        _key(pl.col("sex")).alias("_sex_key"),
        key.replace_strict(SEX_CODES, default=None, return_dtype=pl.String).alias("sex_std"),
        flag.alias("_flag_sex"),
    )


def standardize_sex(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``sex_std`` and ``_flag_sex`` (``sex:unrecognized`` for an unknown spelling)."""
    key, sex, flag = _steps()
    return run(df.lazy().with_columns(key).with_columns(sex).with_columns(flag).drop("_sex_key"))
