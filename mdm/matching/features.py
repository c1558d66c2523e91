"""Derived columns matching needs, computed with polars from standardized records."""

from __future__ import annotations

import polars as pl

from matching_rules import RuleSet
from matching_rules.compile import input_columns
from mdm.matching.hubs import flag_scalar_hubs, hub_values, split_list_hubs
from mdm.schema import STANDARD_SCHEMA

LIST_COLUMNS: tuple[str, ...] = ("mobiles", "phones", "emails", "email_keys", "bank_cards")


def id_key() -> pl.Expr:
    """ID number with resident-ID century and check digit dropped (its 15-digit legacy form).

    An 18-digit resident ID converted from a 15-digit one with another century guess, or with a
    recomputed check digit, keeps this key; other documents keep their number.
    """
    number = pl.col("id_number_std")
    legacy = number.str.slice(0, 6) + number.str.slice(8, 9)
    resident = (pl.col("id_type_std") == "CN_RESIDENT") & (number.str.len_chars() == 18)
    return pl.when(resident).then(legacy).otherwise(number)


def _with_standard_columns(records: pl.DataFrame) -> pl.DataFrame:
    """Add any STANDARD_SCHEMA column the frame lacks, as typed nulls (a source may carry no e-mail at all)."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in STANDARD_SCHEMA.items() if c not in records.columns]
    return records.with_columns(missing) if missing else records


def _clean_lists(records: pl.DataFrame) -> pl.DataFrame:
    """Lists without nulls, blanks or repeats, sorted; null when empty (so a null level catches "no value").

    Explode + unique + group is linear and much faster than per-row list operations at 1M rows.
    """
    out = records
    for c in LIST_COLUMNS:
        clean = (
            records.select("rid", c)
            .explode(c)
            .filter(pl.col(c).is_not_null() & (pl.col(c) != ""))
            .unique()
            .sort("rid", c)
            .group_by("rid", maintain_order=True)
            .agg(c)
        )
        out = out.drop(c).join(clean, on="rid", how="left", maintain_order="left")
    return out


def _blank_to_null(col: str) -> pl.Expr:
    return pl.when(pl.col(col).str.strip_chars() != "").then(pl.col(col)).alias(col)


def base_frame(records: pl.DataFrame) -> pl.DataFrame:
    """Standardized records with clean lists and the derived columns that need no other record."""
    frame = _clean_lists(_with_standard_columns(records))
    text_cols = [c for c, t in STANDARD_SCHEMA.items() if t == pl.String()]
    return (
        frame.with_columns(_blank_to_null(c) for c in text_cols)
        .with_columns(
            pl.coalesce("birth_date_std", "id_birth_date").dt.to_string("%Y-%m-%d").alias("dob"),
            pl.coalesce("sex_std", "id_sex").alias("sex"),
            pl.col("mobiles").alias("mobiles_all"),
            pl.col("phones").alias("phones_all"),
            pl.col("id_valid").fill_null(False),
            pl.col("id_number_std").str.slice(0, 17).alias("id_body"),
        )
        .with_columns(id_key().alias("id_key"))
    )


def find_hubs(base: pl.DataFrame, ruleset: RuleSet) -> dict[str, pl.DataFrame]:
    """Hub values per hub column of the rule set, found in a :func:`base_frame` of all records."""
    return {c: hub_values(base, c, ruleset.hubs.min_names) for c in ruleset.hubs.columns}


def matching_frame(
    records: pl.DataFrame, ruleset: RuleSet, hubs: dict[str, pl.DataFrame] | None = None
) -> pl.DataFrame:
    """Standardized records -> exactly the columns the rule set reads, derived columns included.

    Adds ``id_key`` (see :func:`id_key`), ``id_body`` (ID without check digit), ``dob`` (record birth date, else the ID's), ``sex`` (record, else the ID's), ``mobiles_all`` /
    ``phones_all``, hub-split lists ``<col>_private`` / ``<col>_hub``, ``address_hub`` and
    ``street_key`` (district plus the street part of the detail, before the first digit: a blocking key
    tighter than the district alone) and ``mobile_key`` (the first private mobile: a scalar key for EM, where Splink cannot explode lists).
    Hubs are found in ``records`` themselves unless given (real time scores one record with the hubs
    of every record).
    """
    frame = base_frame(records)
    if hubs is None:
        hubs = find_hubs(frame, ruleset)
    for column in ruleset.hubs.columns:
        if isinstance(frame.schema[column], pl.List):
            frame = split_list_hubs(frame, column, hubs[column])
        else:
            frame = flag_scalar_hubs(frame, column, hubs[column], f"{column.removesuffix('_std')}_hub")
    street = pl.col("addr_detail").str.extract(r"^([^0-9０-９]+)", 1)
    frame = frame.with_columns(
        pl.col("mobiles_private").list.first().alias("mobile_key"),
        pl.when(street.is_not_null())
        .then(pl.concat_str(pl.col("addr_district").fill_null(""), street))
        .alias("street_key"),
    )
    return frame.select(input_columns(ruleset)).with_columns(pl.col("rid").cast(pl.Int64))
