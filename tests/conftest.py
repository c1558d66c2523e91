"""Shared fixtures: where the shared sample lives, and a small generated dataset made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

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
