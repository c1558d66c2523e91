"""Golden-record persistence on a real store: runs, stable IDs, intervals, events, versions, pins, links."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from golden_record.assign import assign_ids
from golden_record.pipeline import closed_scope, run_golden
from golden_record.survivorship import build_golden, load_rules
from mdm.errors import MdmError
from mdm.schema import RAW_SCHEMA
from mdm.store import Store

PEOPLE = {"a": "张伟", "b": "张伟", "c": "王芳", "d": "李娜"}


def batch(people: dict[str, str]) -> pl.DataFrame:
    rows = [
        {"source": "crm", "source_key": k, "name": v, "mobile": [f"+86138{k}"], "dq_flags": []}
        for k, v in people.items()
    ]
    raw = pl.DataFrame([{c: r.get(c) for c in RAW_SCHEMA} for r in rows], schema=RAW_SCHEMA)
    return raw.with_columns(name_simplified=pl.col("name"), mobiles=pl.col("mobile"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    src = tmp_path / "crm.csv"
    src.write_text("x")
    with Store(tmp_path / "db.duckdb") as s:
        s.ingest_batch("crm", [src], batch(PEOPLE), [], trust_rank=60)
        yield s


def rids(store: Store) -> dict[str, int]:
    return dict(store.query("SELECT source_key, rid FROM record_keys").rows())


def run(store: Store, groups: list[str]) -> tuple[int, dict[str, int]]:
    """One run with clusters given as strings of source keys ("ab" = a and b together)."""
    keys = rids(store)
    clusters = pl.DataFrame(
        [(keys[k], i) for i, g in enumerate(groups) for k in g],
        schema={"rid": pl.Int64, "cluster_id": pl.Int64},
        orient="row",
    )
    run_id = store.start_run("test-model")
    counts = run_golden(store, clusters, run_id)
    store.finish_run(run_id, "succeeded", counts)
    return run_id, counts


def owner(store: Store) -> dict[str, str]:
    return dict(store.current_xref().select("source_key", "customer_id").rows())


def test_rerun_is_stable_and_merge_keeps_history(store: Store) -> None:
    r1, c1 = run(store, ["ab", "c", "d"])
    first = owner(store)
    assert (c1["created"], c1["golden_versions"], c1["xref_opened"]) == (3, 3, 4)
    assert first["a"] == first["b"] != first["c"]

    _, c2 = run(store, ["ab", "c", "d"])
    assert owner(store) == first
    assert (c2["xref_opened"], c2["xref_closed"], c2["golden_versions"], c2["record_added"]) == (0, 0, 0, 0)

    r3, c3 = run(store, ["abc", "d"])
    after = owner(store)
    survivor, gone = first["a"], first["c"]
    assert after == {"a": survivor, "b": survivor, "c": survivor, "d": first["d"]}
    assert (c3["merged_into"], c3["xref_closed"], c3["xref_opened"]) == (1, 1, 1)
    assert store.resolve_customer_id(gone) == survivor
    shown = store.customer(gone)
    assert shown is not None and shown["customer_id"] == survivor and len(shown["records"]) == 3
    assert shown["lineage"]["name_lineage"]["source"] == "crm"
    assert store.xref_as_of("crm", "c", run_id=r1) == gone
    assert store.xref_as_of("crm", "c", run_id=r3) == survivor
    assert store.xref_as_of("crm", "c", run_id=0) is None
    interval = store.xref_history("crm", "c").row(0, named=True)
    assert store.xref_as_of("crm", "c", at=interval["valid_from"]) == gone
    assert store.golden_history(survivor)["version"].to_list() == [1, 2]
    assert store.golden_current()["customer_id"].to_list() == sorted({survivor, first["d"]})
    events = store.events_since(run_id=r1 + 1)
    assert events.select("kind", "customer_id", "related_id").rows() == [("merged_into", gone, survivor)]
    assert store.runs()["status"].to_list() == ["succeeded"] * 3
    assert json.loads(store.runs()["counts"][2])["merged_into"] == 1


def test_ended_record_is_end_dated(store: Store, tmp_path: Path) -> None:
    run(store, ["ab", "c", "d"])
    first = owner(store)
    store.ingest_batch(
        "crm", [tmp_path / "crm.csv"], batch({k: v for k, v in PEOPLE.items() if k != "d"}), []
    )
    r2, counts = run(store, ["ab", "c"])
    assert (counts["record_ended"], counts["customer_ended"], counts["xref_closed"]) == (1, 1, 1)
    assert "d" not in owner(store)
    assert store.xref_history("crm", "d")["valid_to_run"].to_list() == [r2]
    ended = store.customer(first["d"])
    assert ended is not None and ended["status"] == "ended" and ended["records"] == []


def test_pins_move_records_and_values(store: Store) -> None:
    run(store, ["ab", "c", "d"])
    first = owner(store)
    keys = rids(store)
    pin = store.pin_record(keys["c"], first["d"], "alice", "same person, checked by phone")
    _, counts = run(store, ["ab", "c", "d"])
    assert owner(store)["c"] == first["d"]
    assert counts["record_moved"] == 1 and counts["merged_into"] == 1
    moved = store.events_since(event_id=0).filter(pl.col("actor") == "alice")
    assert moved["kind"].to_list() == ["pinned", "record_moved"]
    store.unpin(pin, "alice")
    with pytest.raises(MdmError):
        store.unpin(pin, "alice")

    value_pin = store.pin_attribute(first["a"], "name", "张 伟", "bob")
    run(store, ["ab", "c", "d"])
    shown = store.customer(first["a"])
    assert shown is not None and shown["attributes"]["name"] == "张 伟"
    assert shown["lineage"]["name_lineage"]["pinned_by"] == "bob"
    store.unpin(value_pin, "bob")
    run(store, ["ab", "c", "d"])
    shown = store.customer(first["a"])
    assert shown is not None and shown["attributes"]["name"] == "张伟" and shown["version"] == 3


@pytest.mark.parametrize(
    ("kind", "a", "b", "ok"),
    [
        ("must", "a", "c", True),
        ("cannot", "a", "b", True),
        ("maybe", "a", "b", False),
        ("must", "a", "a", False),
    ],
)
def test_steward_links(store: Store, kind: str, a: str, b: str, ok: bool) -> None:
    keys = rids(store)
    if not ok:
        with pytest.raises(MdmError):
            store.add_link(kind, keys[a], keys[b], "carol")
        assert store.active_links().height == 0
        return
    link = store.add_link(kind, keys[a], keys[b], "carol")
    assert store.active_links().select("kind", "actor").rows() == [(kind, "carol")]
    store.revoke_link(link, "carol")
    assert store.active_links().height == 0
    assert store.query("SELECT revoked_by FROM steward_links").item() == "carol"


def duplicate_rid(xref: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([xref, xref.head(1).with_columns(pl.lit("C0000000001X").alias("customer_id"))])


def unknown_customer(xref: pl.DataFrame) -> pl.DataFrame:
    return xref.with_columns(
        pl.when(pl.col("rid") == xref["rid"][0])
        .then(pl.lit("C00000000990"))
        .otherwise(pl.col("customer_id"))
        .alias("customer_id")
    )


def orphan_customer(xref: pl.DataFrame) -> pl.DataFrame:
    return xref.with_columns(pl.lit(xref["customer_id"][0]).alias("customer_id"))


@pytest.mark.parametrize(
    ("breaker", "message"),
    [(duplicate_rid, "two customers"), (unknown_customer, "not live"), (orphan_customer, "no record")],
)
def test_apply_run_is_all_or_nothing(
    store: Store, breaker: Callable[[pl.DataFrame], pl.DataFrame], message: str
) -> None:
    run(store, ["ab", "c", "d"])
    tables = ("xref", "customers", "id_events", "golden_versions")
    before = {t: store.query(f"SELECT * FROM {t}").sort(pl.all()) for t in tables}
    keys = rids(store)
    clusters = pl.DataFrame({"rid": [keys["a"], keys["b"], keys["c"], keys["d"]], "cluster_id": [1, 2, 3, 4]})
    result = assign_ids(
        store.current_xref(),
        clusters,
        store.customers_frame(),
        store.active_record_pins(),
        store.next_customer_seq(),
    )
    rules = load_rules()
    golden = build_golden(store.golden_inputs(rules.record_columns()), result.xref, rules)
    with pytest.raises(MdmError, match=message):
        store.apply_run(99, replace(result, xref=breaker(result.xref)), golden)
    for table, frame in before.items():
        assert store.query(f"SELECT * FROM {table}").sort(pl.all()).equals(frame), table


@pytest.mark.parametrize(("status", "ok"), [("succeeded", True), ("failed", True), ("done", False)])
def test_finish_run_status(store: Store, status: str, ok: bool) -> None:
    run_id = store.start_run()
    if ok:
        store.finish_run(run_id, status, {"records": 4}, "msg")
        assert store.runs().select("status", "counts").rows() == [(status, '{"records": 4}')]
    else:
        with pytest.raises(MdmError):
            store.finish_run(run_id, status)


def scoped_run(store: Store, groups: list[str], touched: str) -> dict[str, int]:
    """A scoped run over the closure of the records ``touched`` (source keys), clusters as in :func:`run`."""
    keys = rids(store)
    scope = closed_scope(store, [keys[k] for k in touched])
    clusters = pl.DataFrame(
        [(keys[k], i) for i, g in enumerate(groups) for k in g if keys[k] in scope],
        schema={"rid": pl.Int64, "cluster_id": pl.Int64},
        orient="row",
    )
    run_id = store.start_run("scoped")
    counts = run_golden(store, clusters, run_id, scope=scope)
    store.finish_run(run_id, "succeeded", counts)
    return counts


def open_rows(store: Store) -> dict[str, int]:
    """source_key -> run that opened its current cross-reference row."""
    return dict(store.query("SELECT source_key, valid_from_run FROM xref WHERE valid_to_run IS NULL").rows())


@pytest.mark.parametrize(
    ("touched", "closure"),
    [("a", "ab"), ("b", "ab"), ("c", "c"), ("ac", "abc"), ("abcd", "abcd")],
)
def test_closed_scope_holds_whole_customers(store: Store, touched: str, closure: str) -> None:
    run(store, ["ab", "c", "d"])
    keys = rids(store)
    assert closed_scope(store, [keys[k] for k in touched]) == sorted(keys[k] for k in closure)


def test_scoped_run_changes_only_its_customers(store: Store) -> None:
    run(store, ["ab", "c", "d"])
    before, opened = owner(store), open_rows(store)
    counts = scoped_run(store, ["a", "b", "c", "d"], touched="a")
    after = owner(store)
    assert counts["split_from"] == 1 and counts["merged_into"] == 0
    assert after["c"] == before["c"] and after["d"] == before["d"]
    assert open_rows(store)["c"] == opened["c"] and open_rows(store)["d"] == opened["d"]
    assert before["a"] in {after["a"], after["b"]} and after["a"] != after["b"]
    live = store.query("SELECT count(*) AS n FROM customers WHERE status = 'live'").item()
    assert live == 4


def test_scoped_run_merges_and_matches_a_full_run(store: Store, tmp_path: Path) -> None:
    run(store, ["ab", "c", "d"])
    scoped_run(store, ["abc", "d"], touched="ac")
    scoped_owner = owner(store)
    assert scoped_owner["a"] == scoped_owner["b"] == scoped_owner["c"] != scoped_owner["d"]
    unchanged = scoped_run(store, ["abc", "d"], touched="abcd")
    assert (unchanged["xref_closed"], unchanged["xref_opened"], unchanged["golden_versions"]) == (0, 0, 0)

    src = tmp_path / "crm.csv"
    with Store(tmp_path / "full.duckdb") as full:
        full.ingest_batch("crm", [src], batch(PEOPLE), [], trust_rank=60)
        run(full, ["ab", "c", "d"])
        run(full, ["abc", "d"])
        assert owner(full) == scoped_owner


def test_scoped_run_refuses_clusters_missing_scope_records(store: Store) -> None:
    run(store, ["ab", "c", "d"])
    keys = rids(store)
    clusters = pl.DataFrame({"rid": [keys["a"]], "cluster_id": [0]})
    run_id = store.start_run("scoped")
    with pytest.raises(ValueError, match="leave out 1"):
        run_golden(store, clusters, run_id, scope=[keys["a"]])
    assert owner(store)["a"] == owner(store)["b"]
