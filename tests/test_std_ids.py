"""ID documents: type mapping and inference, normalization, 15->18, GB 11643, precision loss."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from mdm.standardize.ids import check_chars, standardize_ids

TODAY = dt.date(2026, 3, 1)


def run(id_type: str | None, number: str | None, flags: list[str] | None = None) -> dict[str, object]:
    df = pl.DataFrame(
        {"id_type": [id_type], "id_number": [number], "dq_flags": [flags or []]},
        schema={"id_type": pl.String, "id_number": pl.String, "dq_flags": pl.List(pl.String)},
    )
    return standardize_ids(df, TODAY).row(0, named=True)


@pytest.mark.parametrize(
    ("body", "check"),
    [("11010519491231002", "X"), ("44030419510213985", "2"), ("11010219540918005", "9")],
)
def test_check_char(body: str, check: str) -> None:
    assert check_chars(pl.Series([body, "123"])).to_list() == [check, None]


@pytest.mark.parametrize(
    ("id_type", "number", "std_type", "std_number", "valid", "birth", "sex", "flag"),
    [
        (
            "身份证",
            "11010519491231002X",
            "CN_RESIDENT",
            "11010519491231002X",
            True,
            dt.date(1949, 12, 31),
            "F",
            None,
        ),
        (
            "01",
            "11010519491231002x",
            "CN_RESIDENT",
            "11010519491231002X",
            True,
            dt.date(1949, 12, 31),
            "F",
            None,
        ),
        (
            "ID_CARD",
            "１１０１０５１９４９１２３１００２Ｘ",
            "CN_RESIDENT",
            "11010519491231002X",
            True,
            None,
            None,
            None,
        ),
        ("居民身份证", "110105 1949 1231 002X", "CN_RESIDENT", "11010519491231002X", True, None, None, None),
        (None, "110105-19491231-002X", "CN_RESIDENT", "11010519491231002X", True, None, None, None),
        (
            "身份证",
            "110105491231002",
            "CN_RESIDENT",
            "11010519491231002X",
            True,
            dt.date(1949, 12, 31),
            "F",
            "id_number:upgraded_15_to_18",
        ),
        (
            "身份证",
            "110105194912310021",
            "CN_RESIDENT",
            "110105194912310021",
            False,
            None,
            None,
            "id_number:invalid_checksum",
        ),
        (
            "身份证",
            "110105194913310021",
            "CN_RESIDENT",
            "110105194913310021",
            False,
            None,
            None,
            "id_number:impossible_birth_date",
        ),
        (
            "01",
            "１１０１０５１９９",
            "CN_RESIDENT",
            "110105199",
            False,
            None,
            None,
            "id_number:invalid_format",
        ),
        ("护照", "E12345678", "PASSPORT", "E12345678", True, None, None, None),
        ("03", "12", "PASSPORT", "12", False, None, None, "id_number:invalid_format"),
        (None, "G12345678", "PASSPORT", "G12345678", True, None, None, None),
        ("港澳居民来往内地通行证", "H12345678", "HK_MACAU_PERMIT", "H12345678", True, None, None, None),
        ("HK_MACAO_PERMIT", "M1234567890", "HK_MACAU_PERMIT", "M1234567890", True, None, None, None),
        (None, "H1234567890", "HK_MACAU_PERMIT", "H1234567890", True, None, None, None),
        ("台湾居民来往大陆通行证", "87921794", "TAIWAN_PERMIT", "87921794", True, None, None, None),
        ("05", "8792179", "TAIWAN_PERMIT", "8792179", False, None, None, "id_number:invalid_format"),
        (None, "87921794", "TAIWAN_PERMIT", "87921794", True, None, None, None),
        ("军官证", "ABC123", "OTHER", "ABC123", True, None, None, None),
        ("身份证", None, "CN_RESIDENT", None, None, None, None, None),
        (None, None, None, None, None, None, None, None),
    ],
)
def test_standardize_ids(
    id_type: str | None,
    number: str | None,
    std_type: str | None,
    std_number: str | None,
    valid: bool | None,
    birth: dt.date | None,
    sex: str | None,
    flag: str | None,
) -> None:
    row = run(id_type, number)
    assert (row["id_type_std"], row["id_number_std"], row["id_valid"]) == (std_type, std_number, valid)
    if birth is not None:
        assert (row["id_birth_date"], row["id_sex"]) == (birth, sex)
    assert row["_flag_ids"] == ([flag] if flag else [])


@pytest.mark.parametrize(
    ("number", "flags", "expected_flags"),
    [
        ("440305199001061120", ["id_number:excel_precision_loss"], []),
        ("4.40305E+17", [], ["id_number:excel_precision_loss"]),
    ],
)
def test_precision_loss_is_never_repaired(number: str, flags: list[str], expected_flags: list[str]) -> None:
    row = run("身份证", number, flags)
    assert row["id_valid"] is False
    assert row["id_birth_date"] is None and row["id_sex"] is None
    assert row["_flag_ids"] == expected_flags
