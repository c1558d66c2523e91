"""Pipeline: schema contract, flags, cross-checks with the ID, and batch == real-time path."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from mdm.schema import RAW_SCHEMA, STANDARD_SCHEMA
from mdm.standardize.pipeline import standardize, standardize_one

TODAY = dt.date(2026, 3, 1)
RECORDS: list[dict[str, object]] = [
    {
        "source": "core_banking",
        "source_key": "1",
        "name": "曾帥",
        "sex": "1",
        "birth_date": "19491231",
        "id_type": "01",
        "id_number": "11010519491231002X",
        "mobile": ["131-1208-8439"],
        "phone": ["010-58887261"],
        "address": "北京西城金融大街3号",
        "dq_flags": [],
    },
    {
        "source": "wealth_app",
        "source_key": "2",
        "name": "Kangxin He",
        "sex": "F",
        "birth_date": "1949-12-30",
        "id_type": "ID_CARD",
        "id_number": "11010519491231002X",
        "email": ["He.K@FOXMAIL.com"],
        "bank_card": ["4111111111111112"],
        "dq_flags": ["mobile:advisor_phone_suspected"],
    },
    {"source": "branch_crm", "source_key": "3", "name": None, "dq_flags": None},
]


def raw_frame() -> pl.DataFrame:
    rows = [{c: r.get(c) for c in RAW_SCHEMA} for r in RECORDS]
    return pl.DataFrame(rows, schema=RAW_SCHEMA)


def test_schema_contract() -> None:
    out = standardize(raw_frame(), TODAY)
    for column, dtype in {**RAW_SCHEMA, **STANDARD_SCHEMA}.items():
        assert out.schema[column] == dtype, column
    assert out.height == len(RECORDS)


@pytest.mark.parametrize(
    ("key", "expected_flags"),
    [
        ("1", ["sex:conflicts_with_id"]),
        (
            "2",
            [
                "mobile:advisor_phone_suspected",
                "bank_card:luhn_failed",
                "birth_date:conflicts_with_id",
            ],
        ),
        ("3", []),
    ],
)
def test_flags(key: str, expected_flags: list[str]) -> None:
    out = standardize(raw_frame(), TODAY).filter(pl.col("source_key") == key)
    assert sorted(out["dq_flags"].item().to_list()) == sorted(expected_flags)


def test_values() -> None:
    row = standardize(raw_frame(), TODAY).row(0, named=True)
    assert row["name_pinyin"] == "zeng shuai" and row["id_valid"] is True
    assert row["mobiles"] == ["+8613112088439"] and row["phones"] == ["+861058887261"]
    assert row["address_std"] == "北京市西城区金融大街3号"
    assert row["birth_date_std"] == dt.date(1949, 12, 31) == row["id_birth_date"]


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_standardize_one_equals_batch(index: int) -> None:
    batch = standardize(raw_frame(), TODAY).row(index, named=True)
    single = standardize_one(dict(RECORDS[index]), TODAY)
    assert single == batch


def test_standardize_one_accepts_scalar_for_list_field() -> None:
    out = standardize_one({"source_key": "x", "mobile": "13112088439"}, TODAY)
    assert out["mobiles"] == ["+8613112088439"]
