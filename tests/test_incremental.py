"""Incremental runs: pure pieces, incremental == full on the sample in two deliveries, idempotence, dry run,
and a full extract with records removed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import SampleRun, copy_store

from mdm.config import load_sources
from mdm.ingest import ingest_paths
from mdm.pipeline import close_scope, delta_rids, flipped_links, run_batch, whole_clusters
from mdm.store import Store

FIRST = ("branch_crm.xlsx", "core_banking.dat", "advisor_contacts.vcf")
SECOND = ("advisor_mail.mbox", "wealth_app.jsonl")
REMOVED = 10
#: Ingest timestamps in golden lineage differ between two databases built at different times.
STAMP = r"\d{4}-\d\d-\d\dT[0-9:.+]+"


@pytest.fixture(scope="module")
def model_path(sample_model: Path) -> Path:
    """One model trained on the whole sample (no truth involved), shared by the session."""
    return sample_model


def deliveries(sample_dir: Path, tmp: Path) -> list[Path]:
    """The sample as two deliveries: three sources first, the other two later."""
    folders = []
    for name, files in (("first", FIRST), ("second", SECOND)):
        folder = tmp / name
        folder.mkdir()
        for f in files:
            shutil.copy(sample_dir / f, folder / f)
        folders.append(folder)
    return folders


def xref(store: Store) -> pl.DataFrame:
    return store.current_xref().select("source", "source_key", "customer_id").sort("source", "source_key")


def partition(frame: pl.DataFrame) -> set[tuple[tuple[str, str], ...]]:
    """The clusters of an xref as a set of sorted member tuples (independent of the ID names)."""
    groups = frame.group_by("customer_id").agg(pl.concat_str("source", "source_key", separator=":").sort())
    return {tuple(g) for g in groups["source"].to_list()}


# ----- pure pieces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "held", "expect_changed", "expect_gone"),
    [
        (None, [1, 2, 3], [1, 2, 3, 4], []),  # first run / full: everything
        (1, [1, 2, 3], [3, 4], []),  # batch 2 changed rid 3 and brought rid 4
        (2, [1, 2, 3, 4], [], []),  # nothing since
        (2, [1, 2, 3, 4, 9], [], [9]),  # rid 9 ended or erased since the last run
        (2, [1, 2], [3, 4], []),  # a crashed run never assigned 3 and 4: they are still new
    ],
)
def test_delta_rids(
    since: int | None, held: list[int], expect_changed: list[int], expect_gone: list[int]
) -> None:
    records = pl.DataFrame({"rid": [1, 2, 3, 4], "batch_id": [1, 1, 2, 2]})
    changed, gone = delta_rids(records, pl.DataFrame({"rid": held}), since)
    assert changed.to_list() == expect_changed
    assert gone.to_list() == expect_gone


@pytest.mark.parametrize(
    ("seeds", "expect"),
    [
        ([1], [1, 2, 3]),  # component {1,2} and customer A = {2,3}
        ([4], [4]),  # a singleton on its own
        ([5], [5, 6, 7, 8]),  # chain: comp {5,6}, customer B = {6,7}, comp {7,8}
        ([9], [9, 10]),  # 10 is pinned to customer C that holds 9
        ([], []),
    ],
)
def test_close_scope(seeds: list[int], expect: list[int]) -> None:
    comps = pl.DataFrame({"rid": list(range(1, 11)), "comp": [1, 1, 3, 4, 5, 5, 7, 7, 9, 10]})
    owners = pl.DataFrame(
        {
            "rid": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "owner": ["X", "A", "A", "D", "E", "B", "B", "F", "C", "G"],
        }
    ).vstack(pl.DataFrame({"rid": [10], "owner": ["C"]}))
    assert close_scope(pl.Series(seeds, dtype=pl.Int64), comps, owners).to_list() == expect


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ([(1, 2, 0.995)], [(1, 2, 0.999)], []),  # still a link
        ([(1, 2, 0.995)], [(1, 2, 0.8)], [1, 2]),  # fell below the upper threshold
        ([], [(3, 4, 0.999)], [3, 4]),  # became a link
        ([(1, 2, 0.7)], [], []),  # was never a link
    ],
)
def test_flipped_links(
    old: list[tuple[int, int, float]], new: list[tuple[int, int, float]], expect: list[int]
) -> None:
    schema = {"rid_l": pl.Int64, "rid_r": pl.Int64, "match_probability": pl.Float64}
    frames = [pl.DataFrame(rows, schema=schema, orient="row") for rows in (old, new)]
    assert flipped_links(frames[0], frames[1], 0.99).to_list() == expect


def test_whole_clusters_keeps_customers_outside_the_scope() -> None:
    held = pl.DataFrame({"rid": [1, 2, 3, 4], "customer_id": ["A", "A", "B", "B"]})
    scoped = pl.DataFrame({"rid": [3, 4, 5], "cluster_id": [3, 5, 5]})
    out = whole_clusters(scoped, held, pl.Series([3, 4, 5], dtype=pl.Int64))
    assert out.rows() == [(1, 1), (2, 1), (3, 3), (4, 5), (5, 5)]


# ----- on the sample -------------------------------------------------------------------


@pytest.mark.parametrize("second_full", [False, True])
def test_two_deliveries_equal_one_full_run(
    sample_dir: Path, sample_resolved: SampleRun, tmp_path: Path, model_path: Path, second_full: bool
) -> None:
    first, second = deliveries(sample_dir, tmp_path)
    with Store(copy_store(sample_resolved.db, tmp_path / "once")) as store:
        once = xref(store)
    with Store(tmp_path / "twice.duckdb") as store:
        ingest_paths(store, [first], load_sources())
        run_batch(store, model_path=model_path)
        ingest_paths(store, [second], load_sources())
        summary = run_batch(store, model_path=model_path, full=second_full)
        twice = xref(store)
    assert summary.mode == ("full" if second_full else "incremental")
    assert summary.changed == (5426 if second_full else 1700)
    assert twice.height == once.height == 5426
    assert partition(twice) == partition(once)


def test_incremental_ids_equal_full_ids(sample_dir: Path, tmp_path: Path, model_path: Path) -> None:
    first, second = deliveries(sample_dir, tmp_path)
    results = {}
    for full in (False, True):
        with Store(tmp_path / f"{full}.duckdb") as store:
            ingest_paths(store, [first], load_sources())
            run_batch(store, model_path=model_path)
            ingest_paths(store, [second], load_sources())
            run_batch(store, model_path=model_path, full=full)
            golden = store.golden_current().select(
                "customer_id", "version", "run_id", pl.col("attributes", "lineage").str.replace_all(STAMP, "")
            )
            results[full] = (xref(store), golden)
    assert results[False][0].equals(results[True][0])
    assert results[False][1].equals(results[True][1])


def test_second_run_without_new_data_changes_nothing(
    sample_resolved: SampleRun, tmp_path: Path, model_path: Path
) -> None:
    with Store(copy_store(sample_resolved.db, tmp_path)) as store:
        before = (xref(store), store.query("SELECT count(*) FROM id_events").item())
        versions = store.query("SELECT count(*) FROM golden_versions").item()
        again = run_batch(store, model_path=model_path)
        after = (xref(store), store.query("SELECT count(*) FROM id_events").item())
        assert store.query("SELECT count(*) FROM golden_versions").item() == versions
    assert again.changes == 0 and again.changed == 0 and again.scope == 0
    assert again.report["changes"]["total"] == 0
    assert "none (0 changes)" in "\n".join(again.lines())
    assert after[0].equals(before[0]) and after[1] == before[1]


def test_dry_run_writes_nothing(sample_dir: Path, tmp_path: Path, model_path: Path) -> None:
    first, second = deliveries(sample_dir, tmp_path)
    tables = ("runs", "xref", "id_events", "golden_versions", "customers", "match_pairs", "run_info")
    with Store(tmp_path / "s.duckdb") as store:
        ingest_paths(store, [first], load_sources())
        run_batch(store, model_path=model_path, reports_dir=tmp_path / "reports")
        ingest_paths(store, [second], load_sources())
        counts = {t: store.query(f"SELECT count(*) FROM {t}").item() for t in tables}
        dry = run_batch(store, model_path=model_path, dry_run=True, reports_dir=tmp_path / "reports")
        assert {t: store.query(f"SELECT count(*) FROM {t}").item() for t in tables} == counts
        real = run_batch(store, model_path=model_path, reports_dir=tmp_path / "reports")
    assert dry.dry_run and dry.report_paths == []
    written = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert written == sorted(f"run-{r}.{ext}" for r in (1, real.run_id) for ext in ("html", "json"))
    assert dry.changes == real.changes > 0
    assert dry.report["changes"] == real.report["changes"]


def test_full_extract_missing_records_end_exactly_those(
    sample_dir: Path, sample_resolved: SampleRun, tmp_path: Path, model_path: Path
) -> None:
    lines = (sample_dir / "wealth_app.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    removed = {json.loads(line)["user_id"] for line in lines[:REMOVED]}
    later = tmp_path / "later"
    later.mkdir()
    (later / "wealth_app.jsonl").write_text("".join(lines[REMOVED:]), encoding="utf-8")
    with Store(copy_store(sample_resolved.db, tmp_path)) as store:
        held = store.current_xref().filter(pl.col("source") == "wealth_app")
        touched = set(held.filter(pl.col("source_key").is_in(list(removed)))["customer_id"])
        ingest_paths(store, [later], load_sources())
        summary = run_batch(store, model_path=model_path)
        after = store.current_xref()
        ended = store.query(
            "SELECT source, source_key FROM id_events WHERE run_id = ? AND kind = 'record_ended'",
            [summary.run_id],
        )
        customers = store.customers_frame()
        goldens = store.golden_current()
        check = run_batch(store, model_path=model_path, full=True)
    live = customers.filter(pl.col("status") == "live")
    assert summary.ended == REMOVED
    assert set(ended["source_key"]) == removed and set(ended["source"]) == {"wealth_app"}
    assert after.height == 5426 - REMOVED
    assert not set(after.filter(pl.col("source") == "wealth_app")["source_key"]) & removed
    assert set(live["customer_id"]) == set(after["customer_id"]) == set(goldens["customer_id"])
    emptied = touched - set(after["customer_id"])
    assert set(customers.filter(pl.col("customer_id").is_in(list(emptied)))["status"]) <= {"ended"}
    assert check.changes == 0


@pytest.mark.slow
def test_incremental_benchmark_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from benchmarks import incremental

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    result = incremental.run("smoke")
    assert result["complete"], result["stages"]
    assert list(result["stages"]) == list(incremental.STAGES)
    assert all(s["seconds"] > 0 and s["peak_mb"] > 0 for s in result["stages"].values())
    assert result["delta_records"] >= incremental.SIZES["smoke"][1] // 2
    assert result["stages"]["incremental"]["changed"] == result["delta_records"]
    quality = result["quality"]
    assert quality["identical_ids"] and quality["incremental_vs_full"]["f1"] == 1.0
    assert quality["incremental_vs_truth"] == quality["full_vs_truth"]
