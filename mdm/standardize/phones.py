"""Phone numbers to E.164, split into mobiles and landlines (region CN).

The common Chinese spellings are classified in polars with the mobile and fixed-line patterns taken
from phonenumbers' own CN metadata; anything else (other countries, odd prefixes) goes through
``phonenumbers.parse`` once per distinct value. Mobiles found in a ``phone`` field move to
``mobiles`` and landlines found in a ``mobile`` field move to ``phones``; invalid numbers are
flagged and dropped.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata, PhoneNumberType

from mdm.standardize.vec import EMPTY_STRINGS, ROW, add_columns, all_null, flag_list, row_numbers, run

REGION = "CN"


@lru_cache(maxsize=1)
def cn_patterns() -> tuple[str, str]:
    """Anchored (mobile, fixed-line) national-number patterns from phonenumbers' CN metadata."""
    meta = PhoneMetadata.metadata_for_region(REGION)
    if meta is None or meta.mobile is None or meta.fixed_line is None:
        raise RuntimeError("phonenumbers has no CN metadata")
    mobile = meta.mobile.national_number_pattern
    fixed = meta.fixed_line.national_number_pattern
    return f"^(?:{mobile})$", f"^(?:{fixed})$"


def classify_one(value: str) -> str:
    """``M<e164>`` (mobile), ``L<e164>`` (other valid number) or ``X`` (invalid), via phonenumbers."""
    try:
        num = phonenumbers.parse(value, REGION)
    except phonenumbers.NumberParseException:
        return "X"
    if not phonenumbers.is_valid_number(num):
        return "X"
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    kind = phonenumbers.number_type(num)
    return ("M" if kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE) else "L") + e164


@lru_cache(maxsize=1)
def _code_steps() -> tuple[list[pl.Expr], ...]:
    """The steps of :func:`fast_codes` on column ``v`` (working columns ``_p_*``), built once; the last yields ``code``."""
    mobile, fixed = cn_patterns()
    s = pl.col("_p_s")
    digits, plus, national = pl.col("_p_digits"), pl.col("_p_plus"), pl.col("_p_national")
    return (
        [pl.col("v").str.normalize("NFKC").str.strip_chars().alias("_p_s")],
        [
            s.str.replace_all(r"\D", "").alias("_p_digits"),
            s.str.starts_with("+").alias("_p_plus"),
            s.str.contains(r"^\+?[\d\s\-().]+$").alias("_p_clean"),
        ],
        [
            pl.when(plus & digits.str.starts_with("86"))
            .then(digits.str.slice(2))
            .when(~plus & digits.str.starts_with("0086"))
            .then(digits.str.slice(4))
            .when(~plus & digits.str.contains(r"^861\d{10}$"))
            .then(digits.str.slice(2))
            .when(~plus)
            .then(digits)
            .str.replace(r"^0", "")
            .alias("_p_national")
        ],
        [
            pl.when(pl.col("_p_clean") & national.str.contains(mobile))
            .then(pl.lit("M+86") + national)
            .when(pl.col("_p_clean") & national.str.contains(fixed))
            .then(pl.lit("L+86") + national)
            .alias("code")
        ],
    )


def _codes_plan(plan: pl.LazyFrame) -> pl.LazyFrame:
    """``plan`` (with string column ``v``) plus ``code`` as :func:`fast_codes` gives it."""
    for step in _code_steps():
        plan = plan.with_columns(step)
    return plan.drop("_p_s", "_p_digits", "_p_plus", "_p_clean", "_p_national")


def fast_codes(values: pl.Series) -> pl.Series:
    """``M<e164>`` / ``L<e164>`` for Chinese numbers in common spellings; null when undecided here.

    Computed in stages (each intermediate a column of one chain) to keep the expression trees small.
    """
    return run(_codes_plan(pl.LazyFrame({"v": values})))["code"]


def _pick(prefix: str) -> pl.Expr:
    return (
        pl.col("code").filter(pl.col("code").str.starts_with(prefix)).str.slice(1).unique(maintain_order=True)
    )


def _invalid(origin: str) -> pl.Expr:
    return ((pl.col("origin") == origin) & (pl.col("code") == "X")).any()


@lru_cache(maxsize=1)
def _group_steps() -> tuple[list[pl.Expr], list[pl.Expr]]:
    """(per-row aggregations, output columns) of :func:`standardize_phones`, built once."""
    aggs = [
        _pick("M").alias("mobiles"),
        _pick("L").alias("phones"),
        _invalid("mobile").alias("_bad_m"),
        _invalid("phone").alias("_bad_p"),
    ]
    outputs = [
        pl.col("mobiles").fill_null(EMPTY_STRINGS),
        pl.col("phones").fill_null(EMPTY_STRINGS),
        flag_list(
            pl.when(pl.col("_bad_m").fill_null(False)).then(pl.lit("mobile:invalid")),
            pl.when(pl.col("_bad_p").fill_null(False)).then(pl.lit("phone:invalid")),
        ).alias("_flag_phones"),
    ]
    return aggs, outputs


#: What a frame without any number gets (the general path gives exactly these).
_NO_PHONES = (
    EMPTY_STRINGS.alias("mobiles"),
    EMPTY_STRINGS.alias("phones"),
    EMPTY_STRINGS.alias("_flag_phones"),
)


def standardize_phones(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``mobiles``, ``phones`` (E.164, order kept, deduplicated) and ``_flag_phones``."""
    if all_null(df, "mobile", "phone"):
        return df.with_columns(_NO_PHONES)
    lazy = df.lazy()
    flat = run(
        _codes_plan(
            pl.concat(
                [
                    lazy.select(pl.col(c).alias("v"))
                    .with_row_index(ROW)
                    .with_columns(origin=pl.lit(c))
                    .explode("v")
                    for c in ("mobile", "phone")
                ],
                how="vertical",
            ).filter(pl.col("v").str.strip_chars().str.len_chars() > 0)
        )
    )
    plan = flat.lazy()
    if flat["code"].has_nulls():
        open_ = run(plan.filter(pl.col("code").is_null()).select(pl.col("v").unique()))["v"].to_list()
        mapping = {v: classify_one(v) for v in open_}
        plan = plan.with_columns(
            code=pl.coalesce("code", pl.col("v").replace_strict(mapping, default="X", return_dtype=pl.String))
        )
    aggs, outputs = _group_steps()
    grouped = plan.group_by(ROW, maintain_order=True).agg(aggs)
    joined = run(
        row_numbers(df.height).join(grouped, on=ROW, how="left", maintain_order="left").select(outputs)
    )
    return add_columns(df, joined)
