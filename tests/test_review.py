"""Steward workbench on a small real store: tasks, claims, decisions, four eyes, merge, split, labels, CLI."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from golden_record.pipeline import run_golden
from mdm import steward
from mdm.errors import Conflict, MdmError, NotFound
from mdm.review_cli import labels_app, review_app
from mdm.schema import RAW_SCHEMA
from mdm.store import Store
from mdm.store.review_repo import task_impact

#: source_key -> (name, surname, id number or None); fake resident IDs (valid flag set by hand).
PEOPLE: dict[str, tuple[str, str, str | None]] = {
    "a": ("张伟", "张", "110101199001010011"),
    "b": ("张伟", "张", None),
    "c": ("王芳", "王", "110101199202020022"),
    "d": ("李娜", "李", None),
    "e": ("张伟", "张", "110101198503030033"),
    "f": ("王芳", "王", None),
}


def batch(people: dict[str, tuple[str, str, str | None]], note: str = "") -> pl.DataFrame:
    """Standardized-enough records: names, surnames and valid resident IDs."""
    rows: list[dict[str, Any]] = [
        {"source": "crm", "source_key": k, "name": n, "id_number": i, "note": note or None, "dq_flags": []}
        for k, (n, _, i) in people.items()
    ]
    raw = pl.DataFrame([{c: r.get(c) for c in RAW_SCHEMA} for r in rows], schema=RAW_SCHEMA)
    surnames = pl.Series([s for _, s, _ in people.values()])
    return raw.with_columns(
        name_simplified=pl.col("name"),
        surname=surnames,
        surname_pinyin=surnames.replace({"张": "zhang", "王": "wang", "李": "li"}),
        name_script=pl.lit("hanzi"),
        id_type_std=pl.when(pl.col("id_number").is_not_null()).then(pl.lit("CN_RESIDENT")),
        id_number_std=pl.col("id_number"),
        id_valid=pl.col("id_number").is_not_null(),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """Six records, one customer each (a+b together), after one run."""
    src = tmp_path / "crm.csv"
    src.write_text("x")
    with Store(tmp_path / "db.duckdb") as s:
        s.ingest_batch("crm", [src], batch(PEOPLE), [], trust_rank=60)
        run(s, ["ab", "c", "d", "e", "f"])
        yield s


def rids(store: Store) -> dict[str, int]:
    return dict(store.query("SELECT source_key, rid FROM record_keys").rows())


def owner(store: Store) -> dict[str, str]:
    return dict(store.current_xref().select("source_key", "customer_id").rows())


def run(store: Store, groups: list[str]) -> int:
    """A golden run with clusters given as strings of source keys."""
    keys = rids(store)
    clusters = pl.DataFrame(
        [(keys[k], i) for i, g in enumerate(groups) for k in g],
        schema={"rid": pl.Int64, "cluster_id": pl.Int64},
        orient="row",
    )
    run_id = store.start_run("test-model")
    store.finish_run(run_id, "succeeded", run_golden(store, clusters, run_id))
    return run_id


def pairs(store: Store, spec: dict[str, float]) -> pl.DataFrame:
    """Scored pairs from {"ac": probability}, with one comparison's detail columns."""
    keys = rids(store)
    rows = []
    for pair, p in spec.items():
        lo, hi = sorted((keys[pair[0]], keys[pair[1]]))
        w = math.log2(p / (1 - p))
        rows.append(
            {
                "rid_l": lo,
                "rid_r": hi,
                "match_weight": w,
                "match_probability": p,
                "gamma_name": 2,
                "mw_name": w,
            }
        )
    schema = {
        "rid_l": pl.Int64,
        "rid_r": pl.Int64,
        "match_weight": pl.Float64,
        "match_probability": pl.Float64,
    }
    return pl.DataFrame(rows, schema={**schema, "gamma_name": pl.Int8, "mw_name": pl.Float64})


def band_run(store: Store, band: dict[str, float], scored: dict[str, float] | None = None) -> int:
    """A run whose review band is ``band`` (and scored pairs ``scored``, default the band)."""
    run_id = store.start_run("test-model")
    store.save_match_result(run_id, pairs(store, scored or band), pairs(store, band))
    store.finish_run(run_id, "succeeded", {})
    return run_id


def task_of(store: Store, pair: str) -> dict[str, Any]:
    keys = rids(store)
    lo, hi = sorted((keys[pair[0]], keys[pair[1]]))
    tasks = steward.list_tasks(store, status=None, limit=1000).filter(
        (pl.col("rid_l") == lo) & (pl.col("rid_r") == hi)
    )
    return tasks.sort("task_id").row(-1, named=True)


# ----- impact ----------------------------------------------------------------------------------


def member(rid: int, unit: str, surname: str, doc: str | None) -> dict[str, object]:
    return {
        "unit": unit,
        "rid": rid,
        "id_type_std": "PASSPORT" if doc else None,
        "id_number_std": doc,
        "id_valid": doc is not None,
        "surname": surname,
        "surname_pinyin": surname,
        "name_script": "hanzi",
    }


@pytest.mark.parametrize(
    ("weight", "left", "right", "impact", "reasons"),
    [
        (0.0, [member(1, "A", "张", None)], [member(2, "B", "张", None)], 1.0, "uncertain"),
        (3.0, [member(1, "A", "张", None)], [member(2, "B", "张", None)], 0.25, ""),
        (3.0, [member(1, "A", "张", "E1")], [member(2, "B", "张", "E2")], 2.25, "different valid IDs"),
        (3.0, [member(1, "A", "张", "E1")], [member(2, "B", "张", "E1")], 0.25, ""),
        (3.0, [member(1, "A", "张", None)], [member(2, "B", "王", None)], 1.25, "surname differs"),
        (
            -0.5,
            [member(1, "A", "张", None), member(3, "A", "张", None), member(4, "A", "张", None)],
            [member(2, "B", "张", None)],
            1 / 1.5 + 0.25,
            "joins 4 records; uncertain",
        ),
    ],
)
def test_task_impact(
    weight: float, left: list[dict[str, object]], right: list[dict[str, object]], impact: float, reasons: str
) -> None:
    cand = pl.DataFrame({"rid_l": [1], "rid_r": [2], "match_weight": [weight]})
    out = task_impact(cand, pl.DataFrame(left + right)).row(0, named=True)
    assert out["impact"] == pytest.approx(impact, abs=1e-3)
    assert out["reasons"] == reasons


def test_sensitive_pair_ranks_first(store: Store) -> None:
    band_run(store, {"ae": 0.9, "cf": 0.5, "bd": 0.9})
    order = steward.list_tasks(store)
    keys = {v: k for k, v in rids(store).items()}
    first = order.row(0, named=True)
    assert {keys[first["rid_l"]], keys[first["rid_r"]]} == {"a", "e"}
    assert "different valid IDs" in first["reasons"]
    assert order["impact"].is_sorted(descending=True)


# ----- task life cycle -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_band", "expected"),
    [
        ({"ac": 0.7, "cd": 0.6}, {"ac": "open", "cd": "open"}),
        ({"cd": 0.6}, {"ac": "expired", "cd": "open"}),
        ({"ac": 0.8, "de": 0.6}, {"ac": "open", "cd": "expired", "de": "open"}),
    ],
)
def test_band_sync_keeps_expires_and_creates(
    store: Store, second_band: dict[str, float], expected: dict[str, str]
) -> None:
    band_run(store, {"ac": 0.7, "cd": 0.6})
    first_ids = {p: task_of(store, p)["task_id"] for p in ("ac", "cd")}
    band_run(store, second_band)
    for pair, status in expected.items():
        task = task_of(store, pair)
        assert task["status"] == status
        if pair in first_ids:
            assert task["task_id"] == first_ids[pair]
    assert steward.list_tasks(store).height == sum(s == "open" for s in expected.values())


def test_claimed_task_survives_leaving_the_band(store: Store) -> None:
    band_run(store, {"ac": 0.7})
    steward.claim_task(store, int(task_of(store, "ac")["task_id"]), "li")
    band_run(store, {"cd": 0.6})
    assert task_of(store, "ac")["status"] == "claimed"


@pytest.mark.parametrize(
    ("decision", "change_record", "comes_back"),
    [
        ("no-match", False, False),
        ("no-match", True, True),
        ("match", False, False),
        ("unsure", False, True),
    ],
)
def test_decided_pair_comes_back_only_when_allowed(
    store: Store, tmp_path: Path, decision: str, change_record: bool, comes_back: bool
) -> None:
    band_run(store, {"ac": 0.7})
    task_id = int(task_of(store, "ac")["task_id"])
    steward.decide_task(store, task_id, decision, "li", "not sure" if decision == "unsure" else None)  # type: ignore[arg-type]
    if change_record:
        src = tmp_path / "crm2.csv"
        src.write_text("y")
        store.ingest_batch("crm", [src], batch({"c": PEOPLE["c"]}, note="moved"), [], extract_kind="delta")
    band_run(store, {"ac": 0.7} if decision == "unsure" else {}, scored={"ac": 0.7})
    newest = task_of(store, "ac")
    assert (newest["task_id"] != task_id and newest["status"] == "open") is comes_back


# ----- claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        ([("claim", "li"), ("claim", "wang")], Conflict),
        ([("claim", "li"), ("claim", "li"), ("decide", "wang")], Conflict),
        ([("claim", "li"), ("release", "wang")], Conflict),
        ([("claim", "li"), ("release", "li"), ("claim", "wang"), ("decide", "wang")], None),
        ([("decide", "li"), ("claim", "wang")], Conflict),
        ([("decide", "li"), ("decide", "li")], Conflict),
    ],
)
def test_claim_lock(store: Store, steps: list[tuple[str, str]], error: type[Exception] | None) -> None:
    band_run(store, {"ac": 0.7})
    task_id = int(task_of(store, "ac")["task_id"])
    actions = {
        "claim": lambda u: steward.claim_task(store, task_id, u),
        "release": lambda u: steward.release_task(store, task_id, u),
        "decide": lambda u: steward.decide_task(store, task_id, "no-match", u),
    }
    for action, user in steps[:-1]:
        actions[action](user)
    last_action, last_user = steps[-1]
    if error is None:
        actions[last_action](last_user)
        assert task_of(store, "ac")["status"] == "decided"
    else:
        with pytest.raises(error):
            actions[last_action](last_user)


def test_unknown_task_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        steward.claim_task(store, 999, "li")
    with pytest.raises(NotFound):
        steward.task_detail(store, 999)


# ----- decisions -------------------------------------------------------------------------------


def test_decisions_are_append_only_and_revocable(store: Store) -> None:
    band_run(store, {"ac": 0.7, "cd": 0.6})
    ac, cd = (int(task_of(store, p)["task_id"]) for p in ("ac", "cd"))
    with pytest.raises(MdmError):
        steward.decide_task(store, ac, "unsure", "li")
    first = steward.decide_task(store, ac, "no-match", "li", "different people")
    second = steward.decide_task(store, cd, "match", "li")
    links = store.active_links()
    assert set(links["kind"]) == {"cannot", "must"}
    assert steward.labels(store)["label"].to_list() == ["no-match", "match"]
    steward.revoke_decision(store, first["decision_id"], "wang", "too hasty")
    with pytest.raises(Conflict):
        steward.revoke_decision(store, first["decision_id"], "wang")
    with pytest.raises(NotFound):
        steward.revoke_decision(store, 999, "wang")
    rows = store.query("SELECT decision_id, revoked_by, revoke_note FROM review_decisions ORDER BY 1").rows()
    assert rows == [(first["decision_id"], "wang", "too hasty"), (second["decision_id"], None, None)]
    assert store.active_links()["link_id"].to_list() == [second["link_id"]]
    assert steward.labels(store)["label"].to_list() == ["match"]
    events = store.query(
        "SELECT kind, actor FROM id_events WHERE kind LIKE 'review_%' ORDER BY event_id"
    ).rows()
    assert events == [("review_decided", "li"), ("review_decided", "li"), ("review_revoked", "wang")]
    audit = store.verify_audit()
    assert (audit["entries"], audit["first_broken"]) == (3, None)
    actions = store.audit_entries()["action"].to_list()
    assert actions == ["steward.review_decided", "steward.review_decided", "steward.review_revoked"]


def test_task_detail(store: Store) -> None:
    band_run(store, {"ac": 0.7})
    detail = steward.task_detail(store, int(task_of(store, "ac")["task_id"]))
    by_field = {f["field"]: f for f in detail["fields"]}
    assert by_field["name"] == {"field": "name", "left": "张伟", "right": "王芳", "differs": True}
    assert by_field["id_type_std"]["differs"] is False
    assert [b["comparison"] for b in detail["waterfall"]] == ["name"]
    assert detail["prior_weight"] + sum(b["weight"] for b in detail["waterfall"]) == pytest.approx(
        detail["match_weight"]
    )
    effect = detail["effect"]
    assert effect["same_customer"] is False
    assert f"({effect['left_customer']} survives)" in effect["if_match"]
    assert detail["left"]["source"] == "crm"


# ----- merge, four eyes, split -----------------------------------------------------------------


def test_merge_without_id_conflict_applies_at_once(store: Store) -> None:
    before = owner(store)
    result = steward.merge_customers(store, before["d"], before["a"], "li", "same person per branch")
    after = owner(store)
    assert result == {"status": "merged", "customer_id": before["a"], "retired": before["d"]}
    assert after["a"] == after["b"] == after["d"] == before["a"]
    assert {k: v for k, v in after.items() if k in "cef"} == {k: before[k] for k in "cef"}
    assert store.resolve_customer_id(before["d"]) == before["a"]
    assert store.active_links()["kind"].to_list() == ["must"]
    kinds = store.query("SELECT kind, actor FROM id_events WHERE actor = 'li' OR kind = 'merged_into'").rows()
    assert ("steward_merged", "li") in kinds
    assert any(k == "merged_into" for k, _ in kinds)
    assert store.query("SELECT status, kind FROM runs ORDER BY run_id DESC LIMIT 1").row(0) == (
        "succeeded",
        steward.STEWARD_RUN,
    )


@pytest.mark.parametrize(("approver", "error"), [("li", Conflict), ("wang", None)])
def test_merge_of_different_ids_needs_four_eyes(
    store: Store, approver: str, error: type[Exception] | None
) -> None:
    before = owner(store)
    pending = steward.merge_customers(store, before["a"], before["e"], "li", "twins? no, typo")
    assert pending["status"] == "pending_approval"
    assert owner(store) == before
    if error is not None:
        with pytest.raises(error):
            steward.approve_merge(store, pending["request_id"], approver, "ok")
        assert owner(store) == before
        return
    done = steward.approve_merge(store, pending["request_id"], approver, "checked the documents")
    assert done["status"] == "merged"
    assert owner(store)["e"] == owner(store)["a"] == before["a"]
    request = store.merge_request(pending["request_id"])
    assert (request["status"], request["decided_by"], request["result_customer"]) == (
        "approved",
        "wang",
        before["a"],
    )
    with pytest.raises(Conflict):
        steward.approve_merge(store, pending["request_id"], "zhao", "again")


@pytest.mark.parametrize(
    ("a", "b", "error"),
    [("a", "b", Conflict), ("a", "C99999999999", NotFound)],
)
def test_merge_refusals(store: Store, a: str, b: str, error: type[Exception]) -> None:
    ids = owner(store)
    with pytest.raises(error):
        steward.merge_customers(store, ids.get(a, a), ids.get(b, b), "li", "why not")


def test_split_record(store: Store) -> None:
    before = owner(store)
    keys = rids(store)
    result = steward.split_record(store, before["a"], keys["b"], "li", "different mother's name")
    after = owner(store)
    assert result["status"] == "split"
    assert result["from"] == before["a"]
    assert after["a"] != after["b"]
    assert result["customer_id"] == after["b"]
    link = ("cannot", min(keys["a"], keys["b"]), max(keys["a"], keys["b"]))
    assert store.active_links().select("kind", "rid_a", "rid_b").rows() == [link]
    kinds = set(
        store.query(
            "SELECT kind FROM id_events WHERE run_id IS NULL OR run_id = (SELECT max(run_id) FROM runs)"
        )["kind"]
    )
    assert {"steward_split", "split_from"} <= kinds
    with pytest.raises(Conflict):
        steward.split_record(store, after["b"], keys["b"], "li", "alone")
    with pytest.raises(NotFound):
        steward.split_record(store, after["a"], keys["c"], "li", "not a member")


def test_pin_attribute_rebuilds_golden_record(store: Store) -> None:
    cid = owner(store)["c"]
    pin_id = steward.pin_attribute(store, cid, "name", "王芳芳", "li", "customer letter")
    doc = store.customer(cid)
    assert pin_id > 0
    assert doc is not None and doc["attributes"]["name"] == "王芳芳"


# ----- command line ----------------------------------------------------------------------------


def test_cli_list_decide_revoke_export(tmp_path: Path) -> None:
    src = tmp_path / "crm.csv"
    src.write_text("x")
    db = tmp_path / "cli.duckdb"
    with Store(db) as s:
        s.ingest_batch("crm", [src], batch(PEOPLE), [], trust_rank=60)
        run(s, ["ab", "c", "d", "e", "f"])
        band_run(s, {"ac": 0.7, "cd": 0.6})
    runner = CliRunner()
    listed = runner.invoke(review_app, ["list", "--db", str(db), "--format", "csv"])
    assert listed.exit_code == 0, listed.output
    frame = pl.read_csv(listed.stdout.encode())
    assert frame.columns[:6] == [
        "task_id",
        "left_source",
        "left_key",
        "right_source",
        "right_key",
        "probability",
    ]
    assert frame.height == 2
    task_id = str(frame["task_id"][0])
    decided = runner.invoke(review_app, ["decide", task_id, "no-match", "--user", "li", "--db", str(db)])
    assert decided.exit_code == 0, decided.output
    again = runner.invoke(review_app, ["decide", task_id, "match", "--user", "wang", "--db", str(db)])
    assert again.exit_code == Conflict.exit_code
    out = tmp_path / "labels.csv"
    exported = runner.invoke(labels_app, ["export", "--db", str(db), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert pl.read_csv(out)["label"].to_list() == ["no-match"]
    revoked = runner.invoke(review_app, ["revoke", "1", "--user", "li", "--db", str(db)])
    assert revoked.exit_code == 0, revoked.output
    runner.invoke(labels_app, ["export", "--db", str(db), "--out", str(out)])
    assert pl.read_csv(out).height == 0
    table = runner.invoke(review_app, ["list", "--db", str(db), "--status", "all"])
    assert table.exit_code == 0 and "decided" in table.stdout


def test_claim_while_another_claim_is_uncommitted_conflicts(store: Store) -> None:
    band_run(store, {"ac": 0.7})
    task_id = int(task_of(store, "ac")["task_id"])
    first, second = store.thread_view(), store.thread_view()
    with first.transaction():
        first.claim_review_task(task_id, "li")
        with pytest.raises(Conflict):
            second.claim_review_task(task_id, "wang")
    assert task_of(store, "ac")["assignee"] == "li"
