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

from mdm.standardize.vec import ROW, flag_list

REGION = "CN"
_EMPTY = pl.lit([], dtype=pl.List(pl.String))


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


def fast_codes(values: pl.Series) -> pl.Series:
    """``M<e164>`` / ``L<e164>`` for Chinese numbers in common spellings; null when undecided here.

    Computed in stages (each intermediate materialized once) to keep the expression trees small.
    """
    mobile, fixed = cn_patterns()
    frame = pl.DataFrame({"s": values}).with_columns(pl.col("s").str.normalize("NFKC").str.strip_chars())
    frame = frame.with_columns(
        digits=pl.col("s").str.replace_all(r"\D", ""),
        plus=pl.col("s").str.starts_with("+"),
        clean=pl.col("s").str.contains(r"^\+?[\d\s\-().]+$"),
    )
    digits, plus = pl.col("digits"), pl.col("plus")
    frame = frame.with_columns(
        national=pl.when(plus & digits.str.starts_with("86"))
        .then(digits.str.slice(2))
        .when(~plus & digits.str.starts_with("0086"))
        .then(digits.str.slice(4))
        .when(~plus & digits.str.contains(r"^861\d{10}$"))
        .then(digits.str.slice(2))
        .when(~plus)
        .then(digits)
        .str.replace(r"^0", "")
    )
    national = pl.col("national")
    return frame.select(
        pl.when(pl.col("clean") & national.str.contains(mobile))
        .then(pl.lit("M+86") + national)
        .when(pl.col("clean") & national.str.contains(fixed))
        .then(pl.lit("L+86") + national)
        .alias("code")
    ).to_series()


def standardize_phones(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``mobiles``, ``phones`` (E.164, order kept, deduplicated) and ``_flag_phones``."""
    flat = pl.concat(
        [
            df.select(pl.col(c).alias("v")).with_row_index(ROW).with_columns(origin=pl.lit(c)).explode("v")
            for c in ("mobile", "phone")
        ],
        how="vertical",
    ).filter(pl.col("v").str.strip_chars().str.len_chars() > 0)
    flat = flat.with_columns(code=fast_codes(flat["v"]))
    open_ = flat.filter(pl.col("code").is_null())["v"].unique().to_list()
    mapping = {v: classify_one(v) for v in open_}
    if mapping:
        flat = flat.with_columns(
            code=pl.coalesce("code", pl.col("v").replace_strict(mapping, default="X", return_dtype=pl.String))
        )

    def pick(prefix: str) -> pl.Expr:
        return (
            pl.col("code")
            .filter(pl.col("code").str.starts_with(prefix))
            .str.slice(1)
            .unique(maintain_order=True)
        )

    def invalid(origin: str) -> pl.Expr:
        return ((pl.col("origin") == origin) & (pl.col("code") == "X")).any()

    grouped = flat.group_by(ROW, maintain_order=True).agg(
        mobiles=pick("M"), phones=pick("L"), _bad_m=invalid("mobile"), _bad_p=invalid("phone")
    )
    rows = pl.DataFrame({ROW: pl.arange(0, df.height, eager=True).cast(pl.UInt32)})
    joined = rows.join(grouped, on=ROW, how="left", maintain_order="left")
    return df.with_columns(
        mobiles=joined["mobiles"].fill_null(_EMPTY),
        phones=joined["phones"].fill_null(_EMPTY),
        _flag_phones=flag_list(
            pl.when(joined["_bad_m"].fill_null(False)).then(pl.lit("mobile:invalid")),
            pl.when(joined["_bad_p"].fill_null(False)).then(pl.lit("phone:invalid")),
        ),
    )
