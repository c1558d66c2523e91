"""The run report (JSON + offline HTML), `mdm report`, the run lock, JSON stage logs and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SampleRun, copy_store
from typer.testing import CliRunner

from mdm.cli import app
from mdm.pipeline import STAGES, RunSummary, run_batch
from mdm.report.build import changes, per_source, weight_histogram
from mdm.runlock import LockHeld, lock_path, parse_info, run_lock
from mdm.store import Store

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def resolved(
    sample_resolved: SampleRun, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, RunSummary]:
    """The sample ingested (the session's copy) and resolved once through `run_batch` with the session's
    model: database, model and the run's summary."""
    tmp = tmp_path_factory.mktemp("report")
    db = copy_store(sample_resolved.ingested, tmp)
    model = Path(shutil.copy(sample_resolved.model, tmp / "model.json"))
    with Store(db) as store:
        summary = run_batch(store, model_path=model)
    return db, model, summary


# ----- pure pieces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "edges", "counts"),
    [
        ([], [], []),
        ([0.2, 0.7, 1.5], [0.0, 1.0], [2, 1]),
        ([-2.5, 10.0], [-3.0 + i for i in range(14)], [1] + [0] * 12 + [1]),
    ],
)
def test_weight_histogram(weights: list[float], edges: list[float], counts: list[int]) -> None:
    import polars as pl

    hist = weight_histogram(pl.Series(weights, dtype=pl.Float64))
    assert hist == {"edges": edges, "counts": counts}


@pytest.mark.parametrize(
    ("events", "versions", "expect"),
    [
        ({}, 0, {"new_customers": 0, "merges": 0, "total": 0}),
        (
            {"created": 3, "split_from": 1, "merged_into": 2},
            5,
            {"new_customers": 4, "merges": 2, "total": 11},
        ),
        ({"record_moved": 7}, 0, {"moved_records": 7, "splits": 0, "total": 7}),
    ],
)
def test_changes(events: dict[str, int], versions: int, expect: dict[str, int]) -> None:
    got = changes(events, versions)
    assert {k: got[k] for k in expect} == expect
    assert got["golden_versions"] == versions


def test_per_source_sums_batches() -> None:
    import polars as pl

    cols = ["n_read", "n_new", "n_changed", "n_unchanged", "n_ended", "n_rejected"]
    batches = pl.DataFrame({"source": ["a", "b", "a"], **{c: [1, 2, 3] for c in cols}})
    assert per_source(batches) == {
        "a": dict.fromkeys(["read", "new", "changed", "unchanged", "ended", "rejected"], 4),
        "b": dict.fromkeys(["read", "new", "changed", "unchanged", "ended", "rejected"], 2),
    }


# ----- the report of a run ---------------------------------------------------------------


def test_report_figures(resolved: tuple[Path, Path, RunSummary]) -> None:
    _, _, summary = resolved
    report: dict[str, Any] = json.loads(summary.report_paths[0].read_text(encoding="utf-8"))
    assert report["run_id"] == summary.run_id and report["status"] == "succeeded"
    assert report["mode"] == "full" and report["model_version"] == summary.model_version
    assert set(report["ingested"]) == {
        "branch_crm",
        "advisor_mail",
        "advisor_contacts",
        "core_banking",
        "wealth_app",
    }
    assert sum(s["new"] for s in report["ingested"].values()) == 5426
    assert {"source", "field", "flag", "records"} == set(report["quality"][0])
    rejected = sum(q["records"] for q in report["quality"] if q["flag"] == "rejected")
    assert rejected == sum(s["rejected"] for s in report["ingested"].values())
    assert sum(q["records"] for q in report["quality"] if q["flag"] != "rejected") > 0
    ch = report["changes"]
    assert ch["new_customers"] == summary.counts["created"] + summary.counts["split_from"]
    assert ch["added_records"] == 5426 and ch["total"] == summary.changes
    assert report["review_queue"]["pairs"] == summary.review_pairs
    assert list(report["seconds"]) == list(STAGES[:-1])
    sizes = report["charts"]["cluster_size"]
    assert sum(r["size"] * r["customers"] for r in sizes) == 5426
    assert sum(report["charts"]["match_weight"]["counts"]) == summary.pairs


def test_report_html_is_offline(resolved: tuple[Path, Path, RunSummary]) -> None:
    _, _, summary = resolved
    page = summary.report_paths[1].read_text(encoding="utf-8")
    assert page.count("<svg") == 2
    assert "<script" not in page and "src=" not in page and 'href="http' not in page
    for heading in (
        "Records ingested per source",
        "data-quality flags",
        "Changes",
        "Review queue",
        "Timings",
    ):
        assert heading in page


@pytest.mark.parametrize("drop_files", [False, True])
def test_report_command_prints_summary_and_paths(
    resolved: tuple[Path, Path, RunSummary], drop_files: bool
) -> None:
    db, _, summary = resolved
    if drop_files:
        for path in summary.report_paths:
            path.unlink()
    result = runner.invoke(app, ["report", str(summary.run_id), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert f"run {summary.run_id} (full, succeeded)" in result.output
    assert str(summary.report_paths[1]) in result.output
    assert all(p.exists() for p in summary.report_paths)


@pytest.mark.parametrize(("args", "code"), [(["report", "99"], 2), (["report", "x"], 2)])
def test_report_command_bad_run(resolved: tuple[Path, Path, RunSummary], args: list[str], code: int) -> None:
    db, _, _ = resolved
    result = runner.invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == code


# ----- `mdm run`: logs, exit codes, lock ---------------------------------------------------


def test_run_logs_json_lines_per_stage_when_not_a_terminal(resolved: tuple[Path, Path, RunSummary]) -> None:
    db, model, _ = resolved
    result = runner.invoke(app, ["run", "--db", str(db), "--model", str(model)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [line["stage"] for line in lines] == list(STAGES)
    assert all(line["event"] == "stage" and line["seconds"] >= 0 for line in lines)
    assert "none (0 changes)" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "/nonexistent/model.json"], 2, "no such model file"),
        (["--wait", "-1"], 2, "greater than or equal to 0"),
    ],
)
def test_run_bad_input_exit_codes(
    resolved: tuple[Path, Path, RunSummary], args: list[str], code: int, message: str
) -> None:
    db, _, _ = resolved
    result = runner.invoke(app, ["run", "--db", str(db), *args])
    assert result.exit_code == code
    assert message in result.output + result.stderr


def hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """A child process that holds the run lock of ``db`` for ``seconds``; returns once it holds it."""
    code = (
        "import sys, time; from pathlib import Path; from mdm.runlock import run_lock\n"
        f"with run_lock(Path({str(db)!r})):\n    print('held', flush=True); time.sleep({seconds})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_exits_with_lock_code(resolved: tuple[Path, Path, RunSummary]) -> None:
    db, model, _ = resolved
    holder = hold_lock(db, 30)
    try:
        result = runner.invoke(app, ["run", "--db", str(db), "--model", str(model), "--wait", "0.5"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == LockHeld.exit_code == 3
    assert f"pid {holder.pid}" in result.stderr and "another run holds the lock" in result.stderr


@pytest.mark.parametrize(("hold", "wait", "gets_it"), [(1.0, 20.0, True), (20.0, 0.3, False)])
def test_lock_waits_for_the_holder(tmp_path: Path, hold: float, wait: float, gets_it: bool) -> None:
    db = tmp_path / "w.duckdb"
    holder = hold_lock(db, hold)
    t0 = time.monotonic()
    try:
        with run_lock(db, wait=wait):
            got = True
    except LockHeld:
        got = False
    finally:
        holder.kill()
        holder.wait()
    assert got == gets_it
    assert time.monotonic() - t0 < wait + 2


def test_stale_lock_of_dead_process_is_taken_over(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = {"pid": int(dead.stdout), "host": "h", "started_at": "2026-01-01T00:00:00+00:00"}
    lock_path(db).write_text(json.dumps(stale), encoding="utf-8")
    with run_lock(db, wait=0) as taken:
        mine = parse_info(lock_path(db).read_text(encoding="utf-8"))
    assert taken is not None and taken.pid == stale["pid"]
    assert mine is not None and mine.pid == os.getpid()
    assert lock_path(db).read_text(encoding="utf-8") == ""
