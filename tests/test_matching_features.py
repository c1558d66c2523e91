"""Derived matching columns and hub detection."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from matching_rules import load_ruleset
from mdm.matching.features import matching_frame
from mdm.matching.hubs import hub_values


def _records() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rid": [1, 2, 3, 4],
            "name_pinyin_sorted": ["wei zhang", "fang wang", "jing li", "wei zhang"],
            "name_simplified": ["张伟", "王芳", "李静", "张伟"],
            "mobiles": [["+8613800000001", "+8613900000009"], ["+8613800000001"], ["+8613800000001", ""], []],
            "address_std": ["朝阳区建国路1号", "朝阳区建国路1号", "朝阳区建国路1号", "海淀区中关村2号"],
            "birth_date_std": [dt.date(1990, 1, 2), None, None, None],
            "id_birth_date": [dt.date(1991, 1, 1), dt.date(1985, 5, 6), None, None],
            "id_type_std": ["CN_RESIDENT", "CN_RESIDENT", "PASSPORT", None],
            "id_number_std": ["110105199001021234", "110105198505061234", "E1234567", None],
        }
    )


@pytest.mark.parametrize(
    ("column", "min_names", "expected"),
    [
        ("mobiles", 3, ["+8613800000001"]),
        ("mobiles", 4, []),
        ("address_std", 3, ["朝阳区建国路1号"]),
        ("address_std", 2, ["朝阳区建国路1号"]),
    ],
)
def test_hub_values(column: str, min_names: int, expected: list[str]) -> None:
    assert hub_values(_records(), column, min_names)["value"].to_list() == expected


@pytest.mark.parametrize(
    ("rid", "column", "expected"),
    [
        (1, "dob", "1990-01-02"),
        (2, "dob", "1985-05-06"),
        (3, "dob", None),
        (1, "mobiles_private", ["+8613900000009"]),
        (1, "mobiles_hub", ["+8613800000001"]),
        (2, "mobiles_private", None),
        (4, "mobiles_all", None),
        (1, "address_hub", True),
        (4, "address_hub", False),
        (1, "id_key", "110105900102123"),
        (3, "id_key", "E1234567"),
        (1, "mobile_key", "+8613900000009"),
    ],
)
def test_matching_frame_derived_columns(rid: int, column: str, expected: object) -> None:
    frame = matching_frame(_records(), load_ruleset())
    assert frame.filter(pl.col("rid") == rid)[column].to_list() == [expected]


def test_matching_frame_has_exactly_the_rule_set_columns() -> None:
    from matching_rules.compile import input_columns

    assert matching_frame(_records(), load_ruleset()).columns == input_columns(load_ruleset())
