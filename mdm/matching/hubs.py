"""Shared contact points: values (mobiles, landlines, addresses) held by records of many distinct names.

A family's landline, an advisor's own mobile typed into each customer's record, a branch address: sharing
one is not identity. Hubs are found from the data alone: a value is a hub when the records holding it
carry at least ``min_names`` distinct names (name compared order-insensitively in pinyin).
"""

from __future__ import annotations

import polars as pl

#: Order-insensitive name identity used to count distinct holders of a value.
NAME_KEY = pl.coalesce("name_pinyin_sorted", "name_simplified")


def hub_values(records: pl.DataFrame, column: str, min_names: int) -> pl.DataFrame:
    """Values of `column` (scalar or list) held by >= min_names distinct names: value, records, names."""
    frame = records.select("rid", pl.col(column).alias("value"), NAME_KEY.alias("name_key"))
    if isinstance(records.schema[column], pl.List):
        frame = frame.explode("value")
    return (
        frame.filter(pl.col("value").is_not_null() & (pl.col("value") != ""))
        .group_by("value")
        .agg(
            pl.col("rid").n_unique().alias("records"),
            pl.col("name_key").drop_nulls().n_unique().alias("names"),
        )
        .filter(pl.col("names") >= min_names)
        .sort("names", "value", descending=[True, False])
    )


def split_list_hubs_plan(
    records: pl.LazyFrame, column: str, hubs: pl.DataFrame, rows_apart: bool = False
) -> pl.LazyFrame:
    """Add `<column>_private` and `<column>_hub` lists (null when empty), split by hub membership.

    Done by explode + join + group (no per-row broadcast of the hub list), so it stays linear at 1M rows.
    ``rows_apart`` (the frame's ``rid`` values are distinct and not null) with distinct hub values lets
    per-row list filters do the work: they keep the same values in the same order as explode + join + group.
    """
    private, hub = f"{column}_private", f"{column}_hub"
    values = hubs["value"]
    if rows_apart and values.n_unique() == values.len():
        present = pl.element().is_not_null()
        in_hubs = pl.element().is_in(pl.lit(values).implode(), nulls_equal=False)
        parts = (
            (pl.col(column).list.eval(pl.element().filter(present & ~in_hubs)), private),
            (
                pl.col(column).list.eval(pl.element().filter(present & in_hubs)),
                hub,
            ),
        )
        return records.with_columns(pl.when(v.list.len() > 0).then(v).alias(name) for v, name in parts)
    flags = hubs.lazy().select(pl.col("value"), pl.lit(True).alias("is_hub"))
    split = (
        records.select("rid", pl.col(column).alias("value"))
        .explode("value")
        .filter(pl.col("value").is_not_null())
        .join(flags, on="value", how="left")
        .group_by("rid")
        .agg(
            pl.col("value").filter(pl.col("is_hub").is_null()).alias(private),
            pl.col("value").filter(pl.col("is_hub").is_not_null()).alias(hub),
        )
        .with_columns(pl.when(pl.col(c).list.len() > 0).then(pl.col(c)).alias(c) for c in (private, hub))
    )
    return records.join(split, on="rid", how="left", maintain_order="left")


def flag_scalar_hubs_plan(records: pl.LazyFrame, column: str, hubs: pl.DataFrame, flag: str) -> pl.LazyFrame:
    """Add boolean `flag`: the record's `column` value is a hub (False when not, or when null)."""
    flags = hubs.lazy().select(pl.col("value").alias(column), pl.lit(True).alias(flag))
    return records.join(flags, on=column, how="left", maintain_order="left", nulls_equal=False).with_columns(
        pl.col(flag).fill_null(False)
    )
