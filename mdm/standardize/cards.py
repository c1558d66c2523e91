"""Bank cards: digits only, deduplicated, Luhn-checked (a failure is flagged, never dropped)."""

from __future__ import annotations

import numpy as np
import polars as pl

from mdm.standardize.vec import ROW, digit_matrix, flag_list, per_element

MAX_LEN = 19


def luhn_valid(cards: pl.Series) -> pl.Series:
    """Luhn check of digit strings of up to 19 digits, vectorized (left zero-padding keeps the sum)."""
    ok = cards.str.contains(rf"^[0-9]{{1,{MAX_LEN}}}$").fill_null(False)
    digits = digit_matrix(cards.str.zfill(MAX_LEN), MAX_LEN)
    doubled = (MAX_LEN - 1 - np.arange(MAX_LEN)) % 2 == 1
    d2 = digits * 2
    terms = np.where(doubled, np.where(d2 > 9, d2 - 9, d2), digits)
    return pl.Series(cards.name, (terms.sum(axis=1) % 10 == 0)) & ok


def _clean(card: pl.Expr) -> pl.Expr:
    digits = card.str.normalize("NFKC").str.replace_all(r"\D", "")
    return pl.when(digits.str.len_chars() > 0).then(digits)


def standardize_cards(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``bank_cards``, ``bank_card_valid`` (all cards pass Luhn; null without a card) and ``_flag_cards``."""
    cards = per_element(df, "bank_card", _clean).list.unique(maintain_order=True).alias("bank_cards")
    flat = pl.DataFrame({"bank_cards": cards}).with_row_index(ROW).explode("bank_cards").drop_nulls()
    checked = flat.with_columns(_ok=luhn_valid(flat["bank_cards"])).group_by(ROW).agg(pl.col("_ok").all())
    valid = (
        pl.DataFrame({ROW: pl.arange(0, df.height, eager=True).cast(pl.UInt32)})
        .join(checked, on=ROW, how="left", maintain_order="left")["_ok"]
        .alias("bank_card_valid")
    )
    return df.with_columns(cards, valid).with_columns(
        _flag_cards=flag_list(pl.when(~pl.col("bank_card_valid")).then(pl.lit("bank_card:luhn_failed")))
    )
