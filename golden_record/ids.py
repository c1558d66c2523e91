"""Opaque customer IDs: ``C`` + a zero-padded sequence number + an ISO 7064 MOD 11-2 check character.

An ID is a promise to other systems, so it is a pure surrogate: the digits are a counter the store hands
out (never reused, never derived from a phone or document number) and the check character catches typos.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

PREFIX = "C"
SEQ_DIGITS = 10
_CHECK_CHARS = np.array(list("0123456789X"))
_PATTERN = re.compile(rf"^{PREFIX}(\d{{{SEQ_DIGITS}}})([0-9X])$")
#: ISO 7064 MOD 11-2 weights 2^(n-i) mod 11 of the n digit positions, left to right.
_WEIGHTS = np.array([pow(2, SEQ_DIGITS - i, 11) for i in range(SEQ_DIGITS)], dtype=np.int64)


def check_chars(seqs: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check character of each zero-padded sequence number (vectorized)."""
    values = np.asarray(seqs, dtype=np.int64)
    powers = 10 ** np.arange(SEQ_DIGITS - 1, -1, -1, dtype=np.int64)
    digits = (values[:, None] // powers[None, :]) % 10
    total = (digits * _WEIGHTS[None, :]).sum(axis=1)
    return _CHECK_CHARS[(12 - total % 11) % 11]


def new_ids(n: int, start_seq: int) -> pl.DataFrame:
    """``n`` fresh IDs with sequence numbers ``start_seq .. start_seq + n - 1`` (columns seq, customer_id)."""
    if start_seq < 1 or start_seq + n > 10**SEQ_DIGITS:
        raise ValueError(f"customer sequence out of range: {start_seq}+{n}")
    seqs = np.arange(start_seq, start_seq + n, dtype=np.int64)
    checks = check_chars(seqs) if n else np.array([], dtype=str)
    return pl.DataFrame({"seq": seqs, "check": checks.astype(str)}).select(
        pl.col("seq"),
        (pl.lit(PREFIX) + pl.col("seq").cast(pl.String).str.zfill(SEQ_DIGITS) + pl.col("check")).alias(
            "customer_id"
        ),
    )


def customer_id(seq: int) -> str:
    """The ID of one sequence number."""
    return str(new_ids(1, seq)["customer_id"][0])


def is_valid_customer_id(value: object) -> bool:
    """Prefix, length and check character are right (says nothing about whether the ID exists)."""
    if not isinstance(value, str):
        return False
    match = _PATTERN.match(value)
    if match is None:
        return False
    return bool(check_chars(np.array([int(match.group(1))]))[0] == match.group(2))


def seq_of(value: str) -> int:
    """Sequence number of a valid ID; a malformed ID raises ValueError."""
    if not is_valid_customer_id(value):
        raise ValueError("not a valid customer ID")
    return int(value[1 : 1 + SEQ_DIGITS])


def seq_expr(column: str = "customer_id") -> pl.Expr:
    """Polars expression: the sequence number inside an ID column."""
    return pl.col(column).str.slice(len(PREFIX), SEQ_DIGITS).cast(pl.Int64)
