"""Sex codes of every source (男/女, M/F, 1/2, male/female, 先生/女士) folded to ``M`` / ``F``."""

from __future__ import annotations

import polars as pl

from mdm.standardize.vec import flag_list

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


def sex_expr(col: pl.Expr) -> pl.Expr:
    """``M`` / ``F`` / null for a raw sex column."""
    key = col.str.normalize("NFKC").str.strip_chars().str.to_lowercase()
    return key.replace_strict(SEX_CODES, default=None, return_dtype=pl.String)


def standardize_sex(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``sex_std`` and ``_flag_sex`` (``sex:unrecognized`` for an unknown spelling)."""
    key = pl.col("sex").str.normalize("NFKC").str.strip_chars().str.to_lowercase()
    unknown = key.is_null() | key.is_in(UNKNOWN)
    return df.with_columns(
        sex_std=sex_expr(pl.col("sex")),
        _flag_sex=flag_list(
            pl.when(~unknown & sex_expr(pl.col("sex")).is_null()).then(pl.lit("sex:unrecognized"))
        ),
    )
