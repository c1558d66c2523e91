"""Rule-set guards: pairs a decision rule sends to review whatever the model scores."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from matching_rules import RuleSet, load_ruleset
from matching_rules.compile import gamma_values, guard_sql
from mdm.matching.explain import explain, total_weight
from mdm.matching.predict import apply_guards
from mdm.matching.train import TrainedModel

PERSON = load_ruleset("person")
#: gamma codes of the person rule set's name and id_number comparisons.
NAME = gamma_values(next(c for c in PERSON.comparisons if c.name == "name"))
ID = gamma_values(next(c for c in PERSON.comparisons if c.name == "id_number"))


def _with_guard(**changes: Any) -> dict[str, Any]:
    doc = PERSON.model_dump(mode="json")
    guard = {
        "label": "test",
        "rationale": "test",
        "when": {"name": ["different"]},
        "max_probability": 0.9,
    } | changes
    doc["guards"] = [guard]
    return doc


def test_level_codes_follow_splink_numbering() -> None:
    assert NAME == {
        "hanzi exact": 5,
        "romanized equal (one side without hanzi, any order)": 4,
        "homophone (same pinyin, other hanzi)": 3,
        "pinyin similar": 2,
        "surname only": 1,
        "different": 0,
    }


def test_person_guard_compiles_to_gamma_sql() -> None:
    (guard,) = PERSON.guards
    assert guard_sql(PERSON, guard) == (
        "(gamma_name IN (2, 1, 0)) AND NOT (gamma_id_number IN (4, 3, 2) OR gamma_bank_card IN (1))"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"when": {"nope": ["different"]}}, "no comparison 'nope'"),
        ({"when": {"name": ["no such level"]}}, "has no level ['no such level']"),
        ({"unless": {"id_number": ["ID missing"]}}, "has no level ['ID missing']"),
        ({"max_probability": 0.995}, "max_probability must be in [lower, upper)"),
        ({"max_probability": 0.1}, "max_probability must be in [lower, upper)"),
    ],
)
def test_bad_guards_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RuleSet.model_validate(_with_guard(**changes))


def _pair(name: int, id_number: int, card: int, weight: float) -> dict[str, Any]:
    row: dict[str, Any] = {"rid_l": 1, "rid_r": 2, "match_weight": weight}
    row["match_probability"] = 1.0 / (1.0 + 2.0**-weight)
    for c in PERSON.comparisons:
        row[f"gamma_{c.name}"] = -1
        row[f"mw_{c.name}"] = 0.0
    row |= {"gamma_name": name, "gamma_id_number": id_number, "gamma_bank_card": card}
    return row


CAP = math.log2(0.95 / 0.05)


@pytest.mark.parametrize(
    ("name", "id_number", "card", "weight", "expected_weight"),
    [
        (NAME["different"], -1, -1, 20.0, CAP),  # contact points only, names differ: held
        (NAME["surname only"], ID["different"], -1, 12.0, CAP),  # a different ID does not release it
        (NAME["surname only"], -1, -1, 2.0, 2.0),  # already below the cap: untouched
        (NAME["different"], ID["exact"], -1, 30.0, 30.0),  # the same ID number releases it
        (NAME["different"], -1, 1, 30.0, 30.0),  # a shared card releases it
        (NAME["pinyin similar"], -1, -1, 25.0, CAP),  # similar pinyin is another given name
        (NAME["homophone (same pinyin, other hanzi)"], -1, -1, 25.0, 25.0),  # names agree: no guard
        (NAME["hanzi exact"], -1, -1, 25.0, 25.0),
    ],
)
def test_apply_guards_caps_held_pairs(
    name: int, id_number: int, card: int, weight: float, expected_weight: float
) -> None:
    pairs = pl.DataFrame([_pair(name, id_number, card, weight)])
    out = apply_guards(pairs, PERSON).row(0, named=True)
    assert out["match_weight"] == pytest.approx(expected_weight)
    assert out["mw_guard"] == pytest.approx(expected_weight - weight)
    assert out["match_probability"] == pytest.approx(1.0 / (1.0 + 2.0**-expected_weight))
    if expected_weight == CAP:
        assert PERSON.thresholds.lower <= out["match_probability"] < PERSON.thresholds.upper


def test_rule_sets_without_guards_leave_pairs_alone() -> None:
    rules = load_ruleset("febrl")
    pairs = pl.DataFrame([{"rid_l": 1, "rid_r": 2, "match_weight": 9.0, "match_probability": 0.998}])
    assert not rules.guards
    assert apply_guards(pairs, rules).equals(pairs)


def test_waterfall_names_the_guard_that_held_the_pair(person_model: Path) -> None:
    model = TrainedModel.load(person_model)
    row = _pair(NAME["different"], -1, -1, 0.0)
    row["mw_mobile"] = 30.0
    row["match_weight"] = math.log2(model.prior / (1.0 - model.prior)) + 30.0
    held = apply_guards(pl.DataFrame([row]), model.ruleset).row(0, named=True)
    steps = explain(held, model)
    assert steps[-1].comparison == "guard"
    assert steps[-1].level == PERSON.guards[0].label
    assert total_weight(steps) == pytest.approx(held["match_weight"])
    assert held["match_probability"] == pytest.approx(0.95)
