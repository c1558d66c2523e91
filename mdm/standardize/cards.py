"""Bank cards: digits only, deduplicated, Luhn-checked (a failure is flagged, never dropped)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl

from mdm.standardize.vec import (
    EMPTY_STRINGS,
    ROW,
    add_columns,
    all_null,
    digit_rows,
    flag_list,
    per_element_plan,
    row_numbers,
    run,
)

MAX_LEN = 19


def luhn_valid(cards: pl.Series) -> pl.Series:
    """Luhn check of digit strings of up to 19 digits, vectorized (left zero-padding keeps the sum)."""
    digits, ok = digit_rows(cards, MAX_LEN, pad=True)
    doubled = (MAX_LEN - 1 - np.arange(MAX_LEN)) % 2 == 1
    d2 = digits * 2
    terms = np.where(doubled, np.where(d2 > 9, d2 - 9, d2), digits)
    return pl.Series(cards.name, (terms.sum(axis=1) % 10 == 0) & ok)


def _clean(card: pl.Expr) -> pl.Expr:
    digits = card.str.normalize("NFKC").str.replace_all(r"\D", "")
    return pl.when(digits.str.len_chars() > 0).then(digits)


@lru_cache(maxsize=1)
def _flag() -> pl.Expr:
    return flag_list(pl.when(~pl.col("bank_card_valid")).then(pl.lit("bank_card:luhn_failed"))).alias(
        "_flag_cards"
    )


#: What a frame without any bank card gets (the general path gives exactly these).
_NO_CARDS = (
    EMPTY_STRINGS.alias("bank_cards"),
    pl.lit(None, dtype=pl.Boolean).alias("bank_card_valid"),
    EMPTY_STRINGS.alias("_flag_cards"),
)


def standardize_cards(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``bank_cards``, ``bank_card_valid`` (all cards pass Luhn; null without a card) and ``_flag_cards``."""
    if all_null(df, "bank_card"):
        return df.with_columns(_NO_CARDS)
    rows = row_numbers(df.height)
    cards = run(
        rows.join(per_element_plan(df.lazy(), "bank_card", _clean), on=ROW, how="left", maintain_order="left")
        .select(pl.col("_v").fill_null(EMPTY_STRINGS).list.unique(maintain_order=True).alias("bank_cards"))
        .with_row_index(ROW)
    ).lazy()
    checked = (
        cards.explode("bank_cards")
        .drop_nulls()
        .with_columns(_ok=pl.col("bank_cards").map_batches(luhn_valid, return_dtype=pl.Boolean))
        .group_by(ROW)
        .agg(pl.col("_ok").all())
    )
    result = run(
        cards.join(checked, on=ROW, how="left", maintain_order="left")
        .select("bank_cards", pl.col("_ok").alias("bank_card_valid"))
        .with_columns(_flag())
    )
    return add_columns(df, result)
