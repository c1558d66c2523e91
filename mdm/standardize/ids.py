"""Identity documents: type, normalized number, GB 11643 check, birth date and sex from resident IDs.

All polars expressions. A resident ID the reader flagged for Excel precision loss (or written in
scientific notation) is never repaired: it keeps ``id_valid = false`` and a flag.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import polars as pl

from mdm.standardize.dates import plausible
from mdm.standardize.vec import flag_list, run

#: Raw id_type spellings (NFKC, upper-cased, spaces removed) -> standard type.
ID_TYPES: dict[str, str] = {
    "身份证": "CN_RESIDENT",
    "居民身份证": "CN_RESIDENT",
    "二代身份证": "CN_RESIDENT",
    "01": "CN_RESIDENT",
    "1": "CN_RESIDENT",
    "ID": "CN_RESIDENT",
    "ID_CARD": "CN_RESIDENT",
    "IDCARD": "CN_RESIDENT",
    "CN_RESIDENT": "CN_RESIDENT",
    "RESIDENT_ID": "CN_RESIDENT",
    "护照": "PASSPORT",
    "03": "PASSPORT",
    "3": "PASSPORT",
    "PASSPORT": "PASSPORT",
    "港澳通行证": "HK_MACAU_PERMIT",
    "港澳居民来往内地通行证": "HK_MACAU_PERMIT",
    "回乡证": "HK_MACAU_PERMIT",
    "04": "HK_MACAU_PERMIT",
    "4": "HK_MACAU_PERMIT",
    "HK_MACAU_PERMIT": "HK_MACAU_PERMIT",
    "HK_MACAO_PERMIT": "HK_MACAU_PERMIT",
    "台湾通行证": "TAIWAN_PERMIT",
    "台胞证": "TAIWAN_PERMIT",
    "台湾居民来往大陆通行证": "TAIWAN_PERMIT",
    "05": "TAIWAN_PERMIT",
    "5": "TAIWAN_PERMIT",
    "TAIWAN_PERMIT": "TAIWAN_PERMIT",
}
#: Number shape per standard type; a number of another shape is invalid for its declared type.
FORMATS: dict[str, str] = {
    "CN_RESIDENT": r"^\d{17}[\dX]$",
    "PASSPORT": r"^(?:[EGDSP]\d{8}|E[A-HJ-NP-Z]\d{7}|[A-Z]{1,2}\d{7,8})$",
    "HK_MACAU_PERMIT": r"^[HM]\d{8}(?:\d{2})?$",
    "TAIWAN_PERMIT": r"^\d{8}$",
}
CHECK_CHARS = "10X98765432"
ID_COLUMNS = ("id_type_std", "id_number_std", "id_valid", "id_birth_date", "id_sex")


def normalize_number(col: pl.Expr) -> pl.Expr:
    """NFKC (full-width digits), spaces and dashes removed, upper case; empty -> null."""
    out = col.str.normalize("NFKC").str.replace_all(r"[\s\-_]", "").str.to_uppercase()
    return pl.when(out.str.len_chars() > 0).then(out)


def check_char(body: pl.Expr) -> pl.Expr:
    """GB 11643 check character of a 17-digit body (null where the body is not 17 ASCII digits).

    The weights are ``2**(18 - i) mod 11``, so the weighted digit sum is ``2 * N mod 11`` where ``N`` is
    the body read as a base-13 number (13 = 2 mod 11); ``N < 13**17 < 2**63``.
    """
    n = body.str.to_integer(base=13, dtype=pl.Int64, strict=False)
    index = n % 11 * 2 % 11
    return pl.when(body.str.contains(r"^[0-9]{17}$")).then(pl.lit(CHECK_CHARS).str.slice(index, 1))


def check_chars(bodies: pl.Series) -> pl.Series:
    """GB 11643 check character of each 17-digit body (null where the body is not 17 digits)."""
    return bodies.to_frame("_b").select(check_char(pl.col("_b"))).to_series().alias(bodies.name)


def _body_15(number: pl.Expr) -> pl.Expr:
    """17-digit body of a first-generation 15-digit ID: ``19`` inserted before the year."""
    return number.str.slice(0, 6) + pl.lit("19") + number.str.slice(6)


def infer_type(number: pl.Expr) -> pl.Expr:
    """Document type from the shape of a normalized number (when the source gives none)."""
    return (
        pl.when(number.str.contains(r"^(?:\d{17}[\dX]|\d{15})$"))
        .then(pl.lit("CN_RESIDENT"))
        .when(number.str.contains(FORMATS["HK_MACAU_PERMIT"]))
        .then(pl.lit("HK_MACAU_PERMIT"))
        .when(number.str.contains(FORMATS["PASSPORT"]))
        .then(pl.lit("PASSPORT"))
        .when(number.str.contains(FORMATS["TAIWAN_PERMIT"]))
        .then(pl.lit("TAIWAN_PERMIT"))
        .when(number.is_not_null())
        .then(pl.lit("OTHER"))
    )


_TEMP = ("_num", "_raw_type", "_reader_lost", "_sci", "_lost", "_declared", "_upgraded", "_body")
_TEMP_CHECKS = ("_shape", "_check", "_birth", "_birth_ok")


@lru_cache(maxsize=1)
def _steps() -> tuple[list[pl.Expr], ...]:
    """The date-independent steps of :func:`standardize_ids`, built once (each step sees the previous ones)."""
    raw_type, declared = pl.col("_raw_type"), pl.col("_declared")
    given = raw_type.is_not_null() & (raw_type != "")
    resident = pl.col("id_type_std") == "CN_RESIDENT"
    num = pl.col("id_number_std")
    prepared = [
        normalize_number(pl.col("id_number")).alias("_num"),
        pl.col("id_type")
        .str.normalize("NFKC")
        .str.replace_all(r"\s", "")
        .str.to_uppercase()
        .alias("_raw_type"),
        pl.col("dq_flags")
        .list.contains("id_number:excel_precision_loss")
        .fill_null(False)
        .alias("_reader_lost"),
        pl.col("id_number").str.contains(r"(?i)\d[.,]?\d*E\+?\d+").fill_null(False).alias("_sci"),
    ]
    typed = [
        (pl.col("_reader_lost") | pl.col("_sci")).alias("_lost"),
        raw_type.replace_strict(ID_TYPES, default="OTHER", return_dtype=pl.String).alias("_declared"),
    ]
    declared_type = [
        pl.when(pl.col("_num").is_null())
        .then(pl.when(given).then(declared))
        .when(given)
        .then(declared)
        .otherwise(infer_type(pl.col("_num")))
        .alias("id_type_std"),
    ]
    is15 = (resident & pl.col("_num").str.contains(r"^\d{15}$") & ~pl.col("_lost")).fill_null(False)
    upgraded = [is15.alias("_upgraded"), _body_15(pl.col("_num")).alias("_body")]
    numbered = [
        pl.when(pl.col("_upgraded"))
        .then(pl.col("_body") + check_char(pl.col("_body")))
        .otherwise(pl.col("_num"))
        .alias("id_number_std")
    ]
    shape_ok = pl.coalesce(
        *(pl.when(pl.col("id_type_std") == t).then(num.str.contains(p)) for t, p in FORMATS.items()),
        pl.lit(None, dtype=pl.Boolean),
    )
    checked = [
        shape_ok.fill_null(pl.col("id_type_std") == "OTHER").alias("_shape"),
        pl.when(resident).then(num.str.slice(17, 1) == check_char(num.str.slice(0, 17))).alias("_check"),
        pl.when(resident).then(num.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)).alias("_birth"),
    ]
    valid = (
        pl.when(num.is_null())
        .then(None)
        .when(pl.col("_lost"))
        .then(False)
        .when(resident)
        .then(pl.col("_shape") & pl.col("_check").fill_null(False) & pl.col("_birth_ok"))
        .otherwise(pl.col("_shape"))
    )
    flag = flag_list(
        pl.when(pl.col("_sci") & ~pl.col("_reader_lost")).then(pl.lit("id_number:excel_precision_loss")),
        pl.when(num.is_not_null() & ~pl.col("_lost") & ~pl.col("_shape")).then(
            pl.lit("id_number:invalid_format")
        ),
        pl.when(resident & ~pl.col("_lost") & pl.col("_shape") & ~pl.col("_check").fill_null(True)).then(
            pl.lit("id_number:invalid_checksum")
        ),
        pl.when(resident & ~pl.col("_lost") & pl.col("_shape") & ~pl.col("_birth_ok")).then(
            pl.lit("id_number:impossible_birth_date")
        ),
        pl.when(pl.col("_upgraded")).then(pl.lit("id_number:upgraded_15_to_18")),
    )
    outputs = [
        pl.when(pl.col("id_valid")).then(pl.col("_birth")).alias("id_birth_date"),
        pl.when(pl.col("id_valid") & resident)
        .then(
            pl.when(num.str.slice(16, 1).cast(pl.Int32, strict=False) % 2 == 1)
            .then(pl.lit("M"))
            .otherwise(pl.lit("F"))
        )
        .alias("id_sex"),
        flag.alias("_flag_ids"),
    ]
    return prepared, typed, declared_type, upgraded, numbered, checked, [valid.alias("id_valid")], outputs


@lru_cache(maxsize=4)
def _birth_ok(today: dt.date) -> pl.Expr:
    return plausible(pl.col("_birth"), today).fill_null(False).alias("_birth_ok")


def standardize_ids(df: pl.DataFrame, today: dt.date | None = None) -> pl.DataFrame:
    """Add ID_COLUMNS and ``_flag_ids`` (List[String]) from id_type, id_number and dq_flags."""
    prepared, typed, declared_type, upgraded, numbered, checked, valid, outputs = _steps()
    plan = df.lazy().with_columns(prepared).with_columns(typed).with_columns(declared_type)
    plan = plan.with_columns(upgraded).with_columns(numbered).with_columns(checked)
    plan = plan.with_columns(_birth_ok(today or dt.date.today())).with_columns(valid).with_columns(outputs)
    return run(plan.drop(*_TEMP, *_TEMP_CHECKS))
