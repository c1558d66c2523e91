"""Customer IDs: format, ISO 7064 MOD 11-2 check character, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golden_record.ids import SEQ_DIGITS, customer_id, is_valid_customer_id, new_ids, seq_of


def reference_check(digits: str) -> str:
    """ISO 7064 MOD 11-2 by the textbook recursion (independent of the vectorized code)."""
    p = 0
    for ch in digits:
        p = ((p + int(ch)) * 2) % 11
    return "0123456789X"[(12 - p) % 11]


@pytest.mark.parametrize(
    ("seq", "expected"),
    [(1, "C0000000001X"), (2, "C00000000028"), (10, "C00000000108"), (9_999_999_999, None)],
)
def test_known_ids(seq: int, expected: str | None) -> None:
    made = customer_id(seq)
    assert made == (expected or f"C{seq}{reference_check(str(seq))}")
    assert seq_of(made) == seq


def test_check_character_matches_gb11643_example() -> None:
    # the same algorithm checks Chinese resident IDs: 11010519491231002X is the standard example
    assert reference_check("11010519491231002") == "X"


@given(st.integers(min_value=1, max_value=10**SEQ_DIGITS - 1))
def test_vectorized_check_equals_reference(seq: int) -> None:
    made = customer_id(seq)
    digits = made[1:-1]
    assert made[-1] == reference_check(digits)
    assert is_valid_customer_id(made)


@pytest.mark.parametrize(
    "value",
    [
        "C00000000029",
        "C0000000002",
        "D00000000028",
        "c00000000028",
        "C0000000002X8",
        "",
        None,
        28,
        "C000000000X8",
    ],
)
def test_invalid_ids_rejected(value: object) -> None:
    assert not is_valid_customer_id(value)
    if isinstance(value, str):
        with pytest.raises(ValueError):
            seq_of(value)


@given(st.integers(min_value=1, max_value=10**SEQ_DIGITS - 1), st.integers(min_value=1, max_value=SEQ_DIGITS))
def test_single_digit_typos_detected(seq: int, idx: int) -> None:
    made = customer_id(seq)
    wrong = str((int(made[idx]) + 1) % 10)
    assert not is_valid_customer_id(made[:idx] + wrong + made[idx + 1 :])


@pytest.mark.parametrize(("n", "start"), [(0, 1), (1, 5), (1000, 123_456)])
def test_new_ids_are_consecutive_and_unique(n: int, start: int) -> None:
    ids = new_ids(n, start)
    assert ids["seq"].to_list() == list(range(start, start + n))
    assert ids["customer_id"].n_unique() == n
    assert all(is_valid_customer_id(x) for x in ids["customer_id"].to_list())


@pytest.mark.parametrize(("n", "start"), [(1, 0), (2, 10**SEQ_DIGITS - 1)])
def test_new_ids_out_of_range(n: int, start: int) -> None:
    with pytest.raises(ValueError):
        new_ids(n, start)
