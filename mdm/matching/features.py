"""Derived columns matching needs, computed with polars from standardized records."""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from matching_rules import RuleSet
from matching_rules.compile import input_columns
from mdm.matching.hubs import flag_scalar_hubs_plan, hub_values, split_list_hubs_plan
from mdm.schema import STANDARD_SCHEMA
from mdm.standardize.vec import run

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


def _clean_list(records: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """``rid`` and ``column`` without nulls, blanks or repeats, sorted; rids left without values are absent."""
    return (
        records.select("rid", column)
        .explode(column)
        .filter(pl.col(column).is_not_null() & (pl.col(column) != ""))
        .unique()
        .sort("rid", column)
        .group_by("rid", maintain_order=True)
        .agg(column)
    )


#: Frames up to this many rows clean their lists row by row (list expressions) instead of explode + group.
SMALL_FRAME = 256


def rows_apart(records: pl.DataFrame) -> bool:
    """A small frame whose ``rid`` values are distinct and not null: grouping by ``rid`` is grouping by row.

    On such a frame the per-row list expressions give exactly what explode + group by ``rid`` gives.
    """
    rid = records["rid"]
    return records.height <= SMALL_FRAME and not rid.has_nulls() and rid.n_unique() == records.height


@lru_cache(maxsize=1)
def _clean_in_rows() -> list[pl.Expr]:
    """:func:`_clean_lists` as per-row list expressions (for frames where :func:`rows_apart` holds)."""
    kept = pl.element().filter(pl.element().is_not_null() & (pl.element() != "")).unique().sort()
    return [
        pl.when(pl.col(c).list.eval(kept).list.len() > 0).then(pl.col(c).list.eval(kept)).alias(c)
        for c in LIST_COLUMNS
    ]


def _clean_lists(records: pl.DataFrame) -> pl.LazyFrame:
    """Lists without nulls, blanks or repeats, sorted; null when empty (so a null level catches "no value").

    Explode + unique + group is linear and much faster than per-row list operations at 1M rows; a small
    frame of distinct records (real time) takes the per-row list expressions, which give the same lists.
    The list columns end up last, in LIST_COLUMNS order.
    """
    source = records.lazy()
    if rows_apart(records):
        return source.select(pl.exclude(LIST_COLUMNS), *_clean_in_rows())
    out = source
    for c in LIST_COLUMNS:
        out = out.drop(c).join(_clean_list(source, c), on="rid", how="left", maintain_order="left")
    return out


@lru_cache(maxsize=1)
def _derived() -> tuple[list[pl.Expr], list[pl.Expr], pl.Expr]:
    """(blank text to null, columns derived from one record, ``id_key``) of :func:`base_frame`, built once."""
    blank = [
        pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c)).alias(c)
        for c, t in STANDARD_SCHEMA.items()
        if t == pl.String()
    ]
    derived = [
        pl.coalesce("birth_date_std", "id_birth_date").dt.to_string("%Y-%m-%d").alias("dob"),
        pl.coalesce("sex_std", "id_sex").alias("sex"),
        pl.col("mobiles").alias("mobiles_all"),
        pl.col("phones").alias("phones_all"),
        pl.col("id_valid").fill_null(False),
        pl.col("id_number_std").str.slice(0, 17).alias("id_body"),
    ]
    return blank, derived, id_key().alias("id_key")


def base_frame(records: pl.DataFrame) -> pl.DataFrame:
    """Standardized records with clean lists and the derived columns that need no other record."""
    blank, derived, key = _derived()
    plan = _clean_lists(_with_standard_columns(records))
    return run(plan.with_columns(blank).with_columns(derived).with_columns(key))


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
    plan = frame.lazy()
    apart = rows_apart(frame)
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    for column in ruleset.hubs.columns:
        if isinstance(dtypes[column], pl.List):
            plan = split_list_hubs_plan(plan, column, hubs[column], apart)
            if not apart:
                plan = run(plan).lazy()  # the explode path reads its input twice: compute it once
        else:
            plan = flag_scalar_hubs_plan(plan, column, hubs[column], f"{column.removesuffix('_std')}_hub")
    return run(
        plan.with_columns(_keys()).select(input_columns(ruleset)).with_columns(pl.col("rid").cast(pl.Int64))
    )


@lru_cache(maxsize=1)
def _keys() -> list[pl.Expr]:
    """``mobile_key`` and ``street_key`` of :func:`matching_frame`, built once."""
    street = pl.col("addr_detail").str.extract(r"^([^0-9０-９]+)", 1)
    return [
        pl.col("mobiles_private").list.first().alias("mobile_key"),
        pl.when(street.is_not_null())
        .then(pl.concat_str(pl.col("addr_district").fill_null(""), street))
        .alias("street_key"),
    ]
