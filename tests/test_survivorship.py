"""Survivorship against a brute-force reference, table-driven rule cases, lineage and rule validation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from golden_record.survivorship import SurvivorshipRules, build_golden, empty_pins, load_rules

UTC = dt.UTC
T0 = dt.datetime(2024, 6, 1, tzinfo=UTC)
T1 = dt.datetime(2025, 1, 1, tzinfo=UTC)
UPDATED = ["2024-01-01", "2025-03-05T10:00:00+08:00", "2025-03-05 02:00:00", None, "garbage"]
SCHEMA: dict[str, pl.DataType] = {
    "rid": pl.Int64(),
    "customer_id": pl.String(),
    "source": pl.String(),
    "source_key": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
    "source_updated_at": pl.String(),
    "trust_rank": pl.Int64(),
    "name_simplified": pl.String(),
    "id_valid": pl.Boolean(),
    "mobiles": pl.List(pl.String()),
}
RULE_NAMES = ["trust", "valid", "recent", "frequent"]


def frames(recs: list[dict[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """records and xref frames from record dicts (missing keys are null)."""
    full = [{c: r.get(c) for c in SCHEMA} for r in recs]
    df = pl.DataFrame(full, schema=SCHEMA)
    return df.drop("customer_id"), df.select("rid", "customer_id")


def rules(scalar: list[str], multi: list[str], hub: int = 3) -> SurvivorshipRules:
    return SurvivorshipRules.model_validate(
        {
            "hub_min_customers": hub,
            "scalar": {"name": {"column": "name_simplified", "valid": "id_valid", "rules": scalar}},
            "multi": {"mobiles": {"column": "mobiles", "valid": "not_hub", "order": multi}},
        }
    )


def recency(rec: dict[str, Any]) -> dt.datetime:
    """Reference: the source timestamp when ISO-parseable, else ingestion time."""
    try:
        parsed = dt.datetime.fromisoformat(rec["source_updated_at"])
    except (TypeError, ValueError):
        return rec["ingested_at"]
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def desc(value: Any) -> tuple[bool, Any]:
    """Sort key: larger first, unknown last."""
    if value is None:
        return (True, 0)
    if isinstance(value, dt.datetime):
        return (False, -value.timestamp())
    return (False, -int(value))


def ref_scalar(
    recs: list[dict[str, Any]], order: list[str], pins: dict[str, str]
) -> dict[str, tuple[Any, Any]]:
    """Reference winner (value, rid) per customer by plain Python loops."""
    out: dict[str, tuple[Any, Any]] = {}
    for cid in {r["customer_id"] for r in recs}:
        if cid in pins:
            out[cid] = (pins[cid], None)
            continue
        cands = [r for r in recs if r["customer_id"] == cid and r["name_simplified"] is not None]
        if not cands:
            out[cid] = (None, None)
            continue

        def key(r: dict[str, Any], cands: list[dict[str, Any]] = cands) -> tuple[Any, ...]:
            n = len({c["rid"] for c in cands if c["name_simplified"] == r["name_simplified"]})
            values = {
                "trust": r["trust_rank"],
                "valid": bool(r["id_valid"]),
                "recent": recency(r),
                "frequent": n,
            }
            return (*[desc(values[o]) for o in order], r["rid"], r["name_simplified"])

        best = min(cands, key=key)
        out[cid] = (best["name_simplified"], best["rid"])
    return out


def ref_multi(
    recs: list[dict[str, Any]], order: list[str], hub: int
) -> dict[str, list[tuple[str, list[int]]]]:
    """Reference ordered (value, rids) lists per customer."""
    holders: dict[str, set[str]] = {}
    for r in recs:
        for m in r["mobiles"]:
            holders.setdefault(m, set()).add(r["customer_id"])
    out: dict[str, list[tuple[str, list[int]]]] = {}
    for cid in {r["customer_id"] for r in recs}:
        mine = [r for r in recs if r["customer_id"] == cid]
        entries = []
        for m in sorted({m for r in mine for m in r["mobiles"]}):
            having = [r for r in mine if m in r["mobiles"]]
            trusts = [r["trust_rank"] for r in having if r["trust_rank"] is not None]
            values = {
                "trust": max(trusts) if trusts else None,
                "valid": len(holders[m]) < hub,
                "recent": max(recency(r) for r in having),
                "frequent": len({r["rid"] for r in having}),
            }
            rids = sorted({r["rid"] for r in having})
            entries.append(((*[desc(values[o]) for o in order], rids[0], m), (m, rids)))
        out[cid] = [e for _, e in sorted(entries)]
    return out


record = st.fixed_dictionaries(
    {
        "customer_id": st.sampled_from(["C1", "C2", "C3", "C4"]),
        "source": st.sampled_from(["crm", "core", "app"]),
        "ingested_at": st.sampled_from([T0, T1]),
        "source_updated_at": st.sampled_from(UPDATED),
        "trust_rank": st.sampled_from([10, 20, None]),
        "name_simplified": st.sampled_from(["张三", "张叁", "章三", None]),
        "id_valid": st.sampled_from([True, False, None]),
        "mobiles": st.lists(st.sampled_from(["m1", "m2", "m3", "m4"]), max_size=3),
    }
)
orders = st.lists(st.sampled_from(RULE_NAMES), min_size=1, max_size=4, unique=True)


@settings(max_examples=150, deadline=None)
@given(
    recs=st.lists(record, min_size=1, max_size=14),
    scalar=orders,
    multi=orders,
    hub=st.integers(min_value=2, max_value=4),
    pin=st.booleans(),
)
def test_matches_brute_force_reference(
    recs: list[dict[str, Any]], scalar: list[str], multi: list[str], hub: int, pin: bool
) -> None:
    for i, r in enumerate(recs, start=1):
        r["rid"], r["source_key"] = i, f"k{i}"
    records, xref = frames(recs)
    pins = {recs[0]["customer_id"]: "钉住"} if pin else {}
    pin_frame = pl.DataFrame(
        [(c, "name", v, "alice") for c, v in pins.items()], schema=empty_pins().schema, orient="row"
    )
    golden = build_golden(records, xref, rules(scalar, multi, hub), pin_frame)
    assert golden["customer_id"].to_list() == sorted({r["customer_id"] for r in recs})
    by_cid = {row["customer_id"]: row for row in golden.to_dicts()}
    by_rid = {r["rid"]: r for r in recs}
    for cid, (value, rid) in ref_scalar(recs, scalar, pins).items():
        row = by_cid[cid]
        assert row["name"] == value
        lineage = row["name_lineage"]
        if cid in pins:
            assert lineage["source"] == "steward" and lineage["pinned_by"] == "alice"
        elif value is None:
            assert lineage is None
        else:
            assert lineage["rid"] == rid
            assert (lineage["source"], lineage["source_key"]) == (by_rid[rid]["source"], f"k{rid}")
            assert by_rid[lineage["rid"]]["name_simplified"] == value
            assert lineage["field"] == "name_simplified"
    for cid, expected in ref_multi(recs, multi, hub).items():
        got = by_cid[cid]["mobiles"] or []
        assert [(e["value"], e["rids"]) for e in got] == expected
        for e in got:
            assert all(e["value"] in by_rid[r]["mobiles"] for r in e["rids"])
            assert e["sources"] == sorted({by_rid[r]["source"] for r in e["rids"]})


def rec(rid: int, cid: str = "C1", **values: Any) -> dict[str, Any]:
    return {
        "rid": rid,
        "customer_id": cid,
        "source": "s",
        "source_key": f"k{rid}",
        "ingested_at": T0,
        **values,
    }


@pytest.mark.parametrize(
    ("name", "recs", "order", "expected_rid"),
    [
        (
            "valid beats higher trust",
            [
                rec(1, trust_rank=90, name_simplified="甲", id_valid=False),
                rec(2, trust_rank=10, name_simplified="乙", id_valid=True),
            ],
            ["valid", "trust"],
            2,
        ),
        (
            "trust first",
            [
                rec(1, trust_rank=90, name_simplified="甲", id_valid=False),
                rec(2, trust_rank=10, name_simplified="乙", id_valid=True),
            ],
            ["trust", "valid"],
            1,
        ),
        (
            "most recent by source timestamp, zones honoured",
            [
                rec(1, source_updated_at="2025-03-05T09:00:00+08:00", name_simplified="甲"),
                rec(2, source_updated_at="2025-03-05 02:00:00", name_simplified="乙"),
            ],
            ["recent"],
            2,
        ),
        (
            "most frequent",
            [rec(1, name_simplified="甲"), rec(2, name_simplified="乙"), rec(3, name_simplified="乙")],
            ["frequent"],
            2,
        ),
        (
            "tie goes to the lowest rid",
            [rec(5, name_simplified="甲"), rec(3, name_simplified="乙")],
            ["trust"],
            3,
        ),
        ("nulls are never candidates", [rec(1, trust_rank=99), rec(2, name_simplified="乙")], ["trust"], 2),
    ],
)
def test_scalar_rules(name: str, recs: list[dict[str, Any]], order: list[str], expected_rid: int) -> None:
    records, xref = frames(recs)
    golden = build_golden(records, xref, rules(order, ["recent"]))
    assert golden["name_lineage"][0]["rid"] == expected_rid, name


@pytest.mark.parametrize(
    ("hub", "expected"),
    [(2, ["m_own", "m_hub"]), (4, ["m_hub", "m_own"])],
)
def test_hub_mobile_goes_last(hub: int, expected: list[str]) -> None:
    recs = [
        rec(1, "C1", mobiles=["m_hub"], source_updated_at="2025-01-01"),
        rec(2, "C1", mobiles=["m_own"], source_updated_at="2020-01-01"),
        rec(3, "C2", mobiles=["m_hub"]),
        rec(4, "C3", mobiles=["m_hub"]),
    ]
    records, xref = frames(recs)
    golden = build_golden(records, xref, rules(["trust"], ["valid", "recent"], hub))
    first = golden.filter(pl.col("customer_id") == "C1")["mobiles"][0]
    assert [e["value"] for e in first] == expected
    assert [e["valid"] for e in first] == [True, hub > 3]


def test_pinned_multi_value_comes_first() -> None:
    records, xref = frames([rec(1, mobiles=["m1"]), rec(2, mobiles=["m2"])])
    pins = pl.DataFrame([("C1", "mobiles", "m2", "bob")], schema=empty_pins().schema, orient="row")
    golden = build_golden(records, xref, rules(["trust"], ["recent"]), pins)
    entries = golden["mobiles"][0]
    assert [(e["value"], e["pinned_by"]) for e in entries] == [("m2", "bob"), ("m1", None)]


def test_shipped_rules_load() -> None:
    shipped = load_rules()
    assert shipped.scalar["id_number"].rules[0] == "valid"
    assert shipped.multi["mobiles"].valid == "not_hub"
    assert {"rid", "trust_rank", "id_valid", "id_type_std"} <= set(shipped.record_columns())


@pytest.mark.parametrize(
    "data",
    [
        {"scalar": {"a": {"column": "x", "rules": ["valid"]}}},
        {"scalar": {"a": {"column": "x", "rules": ["loudest"]}}},
        {"scalar": {"a": {"column": "x", "rules": []}}},
        {"scalar": {"a": {"column": "x", "rules": ["trust", "trust"]}}},
        {
            "scalar": {"a": {"column": "x", "rules": ["trust"]}},
            "multi": {"a": {"column": "y", "order": ["trust"]}},
        },
        {"scalar": {"a": {"column": "x", "rules": ["trust"], "extra": 1}}},
        {"scalar": {}, "hub_min_customers": 1},
    ],
)
def test_bad_rules_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SurvivorshipRules.model_validate(data)


def test_missing_columns_refused() -> None:
    records, xref = frames([rec(1)])
    with pytest.raises(ValueError, match="lack columns"):
        build_golden(records.drop("mobiles"), xref, rules(["trust"], ["recent"]))
