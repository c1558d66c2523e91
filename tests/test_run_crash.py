"""Crash safety: `mdm run` killed with SIGKILL at each stage boundary, then run again, equals a clean run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from mdm.config import load_sources
from mdm.ingest import ingest_paths
from mdm.pipeline import CRASH_ENV, run_batch
from mdm.store import Store

ROOT = Path(__file__).resolve().parents[1]
FIRST = ("branch_crm.xlsx", "core_banking.dat", "advisor_contacts.vcf")
SECOND = ("advisor_mail.mbox", "wealth_app.jsonl")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared(
    sample_dir: Path, sample_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A database whose first delivery is resolved and whose second is ingested, and a model file (the
    session's, trained on the whole sample)."""
    tmp = tmp_path_factory.mktemp("crash")
    folders = []
    for name, files in (("first", FIRST), ("second", SECOND)):
        (tmp / name).mkdir()
        for f in files:
            shutil.copy(sample_dir / f, tmp / name / f)
        folders.append(tmp / name)
    model = Path(shutil.copy(sample_model, tmp / "model.json"))
    db = tmp / "prepared.duckdb"
    with Store(db) as store:
        ingest_paths(store, [folders[0]], load_sources())
        run_batch(store, model_path=model, reports_dir=tmp / "reports")
        ingest_paths(store, [folders[1]], load_sources())
    return db, model


@pytest.fixture(scope="module")
def clean(prepared: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The cross-reference after an uninterrupted second run."""
    db, model = prepared
    copy = tmp_path_factory.mktemp("clean") / "c.duckdb"
    shutil.copy(db, copy)
    assert mdm_run(copy, model).returncode == 0
    with Store(copy) as store:
        return state(store)


def mdm_run(db: Path, model: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m mdm run` in a child process, optionally killed at a stage."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    cmd = [sys.executable, "-m", "mdm", "run", "--db", str(db), "--model", str(model)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def state(store: Store) -> pl.DataFrame:
    """Cross-reference and customers: what must equal the clean run."""
    xref = store.current_xref().select("source", "source_key", "customer_id")
    customers = store.customers_frame().select("customer_id", "status", "merged_into", "split_from")
    return xref.join(customers, on="customer_id").sort("source", "source_key")


@pytest.mark.parametrize(
    ("stage", "left"),
    [
        ("load", "abandoned"),
        ("match", "abandoned"),
        ("cluster", "abandoned"),
        ("golden", "abandoned"),  # killed inside the run's transaction, before its commit
        ("commit", "succeeded"),  # killed after the commit, before the report was written
    ],
)
def test_kill_at_stage_then_rerun_equals_clean(
    prepared: tuple[Path, Path], clean: pl.DataFrame, tmp_path: Path, stage: str, left: str
) -> None:
    db, model = prepared
    copy = tmp_path / "k.duckdb"
    shutil.copy(db, copy)
    killed = mdm_run(copy, model, crash_at=stage)
    assert killed.returncode == -signal.SIGKILL
    again = mdm_run(copy, model)
    assert again.returncode == 0, again.stderr[-2000:]
    with Store(copy) as store:
        runs = store.runs()
        assert state(store).equals(clean)
    assert runs["status"].to_list() == ["succeeded", left, "succeeded"]
    assert ("0 changes" in again.stdout) == (left == "succeeded")
    assert (tmp_path / "reports" / "run-3.json").exists()
