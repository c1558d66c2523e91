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
