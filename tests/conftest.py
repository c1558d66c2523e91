"""Shared fixtures: where the shared sample lives, a small generated dataset made once per session, and the
sample ingested and resolved once per session (ingest and training dominate the suite's time), which tests
copy rather than rebuild."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mdm.pipeline import RunSummary

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = SHARED / "data" / "sample"
EXTRA = SHARED / "data" / "extra"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not (SAMPLE / "truth.csv").exists():
        pytest.skip("the shared sample is not next to this checkout")
    return SAMPLE


@pytest.fixture(scope="session")
def extra_dir() -> Path:
    if not (EXTRA / "truth.csv").exists():
        pytest.skip("the shared extra delivery is not next to this checkout")
    return EXTRA


@pytest.fixture(scope="session")
def person_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A person model trained (fixed seed) on a small generated delivery: for tests whose own data is too
    small to train on. Saved as JSON; copy it beside a test database as ``<db>.person.model.json``."""
    from matching_rules import load_ruleset
    from mdm.config import load_sources
    from mdm.generate import generate
    from mdm.ingest import ingest_paths
    from mdm.matching.train import train
    from mdm.store import Store

    out = tmp_path_factory.mktemp("person-model")
    generate(out / "data", persons=300, seed=11)
    with Store(out / "train.duckdb") as store:
        ingest_paths(store, [out / "data"], load_sources())
        model = train(store.current_records(), load_ruleset("person"), seed=42)
    return model.save(out / "person.model.json")


@dataclass(frozen=True)
class SampleRun:
    """The shared sample after ingest and one ``run_batch`` that trained its own model (fixed seed).

    ``ingested`` holds the sample ingested and never run; ``db`` the same after the run, its model beside it
    as ``<db>.person.model.json`` (``model``); ``summary`` is what that run returned. Read-only: copy first.
    """

    ingested: Path
    db: Path
    model: Path
    summary: RunSummary


_SAMPLE_RUNS: dict[Path, SampleRun] = {}


def copy_store(db: Path, target: Path) -> Path:
    """Copy the database ``db`` and its side files (``<db>.*``: model, WAL) into the folder ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for file in db.parent.glob(f"{db.name}*"):
        if file.is_file():
            shutil.copy(file, target / file.name)
    return target / db.name


def sample_run(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> SampleRun:
    """The sample ingested and run once per session (per xdist worker): built on first use, then cached."""
    base = tmp_path_factory.getbasetemp() / "sample-run"
    if base not in _SAMPLE_RUNS:
        from mdm.config import load_sources
        from mdm.ingest import ingest_paths
        from mdm.pipeline import run_batch
        from mdm.store import Store

        shutil.rmtree(base, ignore_errors=True)
        ingested = base / "ingested" / "s.duckdb"
        ingested.parent.mkdir(parents=True)
        with Store(ingested) as store:
            ingest_paths(store, [sample_dir], load_sources())
        db = copy_store(ingested, base / "resolved")
        with Store(db) as store:
            summary = run_batch(store)
        model = db.with_name(f"{db.name}.person.model.json")
        _SAMPLE_RUNS[base] = SampleRun(ingested, db, model, summary)
    return _SAMPLE_RUNS[base]


@pytest.fixture(scope="session")
def sample_resolved(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> SampleRun:
    """The sample ingested and resolved once per session; see :class:`SampleRun` (copy before writing)."""
    return sample_run(tmp_path_factory, sample_dir)


@pytest.fixture(scope="session")
def sample_model(sample_resolved: SampleRun) -> Path:
    """The person model trained on the whole sample with the production settings (seed 42, no truth)."""
    return sample_resolved.model
