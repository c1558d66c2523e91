"""Rule sets: the shipped YAML validates, compiles for DuckDB and Spark, and bad rule sets are refused."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import matching_rules
from matching_rules import RuleSet, load_ruleset, ruleset_path
from matching_rules.compile import input_columns, to_splink_settings


def _raw() -> dict[str, Any]:
    return yaml.safe_load(ruleset_path("person").read_text(encoding="utf-8"))


def test_person_ruleset_loads_with_documented_thresholds() -> None:
    rules = load_ruleset("person")
    assert rules.thresholds.lower < rules.thresholds.upper
    assert "truth" in rules.thresholds.rationale
    assert {c.name for c in rules.comparisons} >= {"name", "id_number", "dob", "mobile", "email", "address"}


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_compiles_for_each_backend(dialect: str) -> None:
    settings = to_splink_settings(load_ruleset()).create_settings_dict(dialect)
    names = [c["output_column_name"] for c in settings["comparisons"]]
    assert names == [c.name for c in load_ruleset().comparisons]
    assert len(settings["blocking_rules_to_generate_predictions"]) == len(load_ruleset().blocking)
    name_levels = settings["comparisons"][0]["comparison_levels"]
    assert any(lv.get("tf_adjustment_column") == "name_simplified" for lv in name_levels)


def test_input_columns_include_columns_read_only_by_custom_sql() -> None:
    cols = input_columns(load_ruleset())
    assert {"id_type_std", "id_valid", "address_hub", "rid"} <= set(cols)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["comparisons"][0]["levels"].pop(), "else"),
        (
            lambda d: d["comparisons"][0]["levels"].append({"kind": "null", "label": "x", "columns": ["a"]}),
            "else",
        ),
        (lambda d: d["thresholds"].update(lower=0.999), "lower"),
        (lambda d: d["comparisons"].append(copy.deepcopy(d["comparisons"][0])), "unique"),
        (
            lambda d: d["comparisons"][0]["levels"].insert(1, {"kind": "exact", "label": "no column"}),
            "column",
        ),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_invalid_rulesets_are_refused(mutate: Any, message: str) -> None:
    data = _raw()
    mutate(data)
    with pytest.raises(ValidationError, match=message):
        RuleSet.model_validate(data)


def test_unknown_ruleset_names_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="person"):
        load_ruleset("organisation")


def test_rules_package_imports_nothing_from_mdm_or_api() -> None:
    sources = [p.read_text(encoding="utf-8") for p in matching_rules.RULESET_DIR.parent.glob("*.py")]
    assert sources
    forbidden = re.compile(r"^\s*(from|import)\s+(mdm|api)\b", re.MULTILINE)
    assert not any(forbidden.search(s) for s in sources)


def test_floor_m_raises_vetoes_and_keeps_fixed_levels() -> None:
    from mdm.matching.train import floor_m

    settings = {
        "comparisons": [
            {
                "comparison_levels": [
                    {"is_null_level": True},
                    {"m_probability": 0.9, "u_probability": 0.01},
                    {"m_probability": 0.1, "u_probability": 0.2},
                    {"m_probability": 1e-92, "u_probability": 0.79},
                ]
            },
            {
                "comparison_levels": [
                    {"m_probability": 0.6, "u_probability": 0.1},
                    {"m_probability": 1.0, "u_probability": 1.0, "fix_m_probability": True},
                ]
            },
        ]
    }
    out = floor_m(settings, 0.01)
    first = [lv.get("m_probability") for lv in out["comparisons"][0]["comparison_levels"]]
    assert first[0] is None
    assert sum(first[1:]) == pytest.approx(1.0)
    assert min(first[1:]) == pytest.approx(0.01 / 1.01)
    assert first[1] > first[2] > first[3]
    second = out["comparisons"][1]["comparison_levels"]
    assert second[1]["m_probability"] == 1.0
    assert second[0]["m_probability"] == pytest.approx(0.6)
    assert settings["comparisons"][0]["comparison_levels"][3]["m_probability"] == 1e-92
