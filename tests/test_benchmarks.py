"""Smoke runs of the benchmark harness at tiny sizes: correct wiring and figures, never a timing."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks import quality, speed
from benchmarks.__main__ import main
from benchmarks.external import LOADERS
from benchmarks.report import write_report
from matching_rules import load_ruleset
from matching_rules.compile import input_columns

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
DERIVED = {
    "dob",
    "sex",
    "mobiles_all",
    "phones_all",
    "id_valid",
    "id_body",
    "id_key",
    "mobile_key",
    "street_key",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run in a fresh folder (bench_out/ is relative) with the repo importable by child processes."""
    folder = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        yield folder


@pytest.fixture(scope="module")
def quality_result(workdir: Path) -> dict[str, Any]:
    return quality.run(smoke=True)


@pytest.fixture(scope="module")
def speed_result(workdir: Path) -> dict[str, Any]:
    return speed.run(smoke=True, mem_gb=8.0, timeout_s=300.0)


@pytest.mark.parametrize(
    ("name", "records", "persons"),
    [("historical_50k", 50_578, 5_156), ("febrl3", 5_000, 2_000), ("febrl4", 10_000, 5_000)],
)
def test_external_loaders(name: str, records: int, persons: int) -> None:
    data = LOADERS[name]()
    needed = set(input_columns(load_ruleset(data.ruleset))) - DERIVED
    assert needed <= set(data.records.columns)
    assert (data.records.height, data.truth["person_id"].n_unique()) == (records, persons)
    assert data.records.select("source", "source_key").equals(data.truth.select("source", "source_key"))
    assert data.records["rid"].is_unique().all()


@pytest.mark.parametrize("name", quality.SUITES)
def test_quality_suite_smoke(quality_result: dict[str, Any], name: str) -> None:
    suite = next(s for s in quality_result["suites"] if s["suite"] == name)
    assert suite["errors"] == {}
    for key in ("ours", "splink"):
        run = suite[key]
        assert [row["threshold"] for row in run["curve"]] == sorted({*quality.GRID, run["threshold"]})
        assert all(
            0.0 <= row[m] <= 1.0 for row in run["curve"] for m in ("precision", "recall", "f1", "bcubed_f1")
        )
        assert all(row["records"] == suite["records"] for row in run["curve"])
        assert run["best"]["f1"] >= run["at_threshold"]["f1"]
        assert sum(size * n for size, n in run["cluster_sizes"]) == suite["records"]
    assert suite["targets"] and all(isinstance(t["met"], bool) for t in suite["targets"])
    hist = suite["ours"]["weight_histogram"]
    assert sum(hist["match"]) + sum(hist["non_match"]) == suite["ours"]["pairs"]


@pytest.mark.parametrize(
    ("clusters", "f1"),
    [
        ({1: "a", 2: "a", 3: "b", 4: "b"}, 1.0),  # perfect
        ({1: "a", 2: "a", 3: "a", 4: "a"}, 0.5),  # all merged: 2 of 6 pairs right
        ({1: "a", 2: "b", 3: "c", 4: "d"}, 0.0),  # all split
    ],
)
def test_score_clusterings(clusters: dict[int, str], f1: float) -> None:
    records = pl.DataFrame({"rid": [1, 2, 3, 4], "source": ["s"] * 4, "source_key": ["k1", "k2", "k3", "k4"]})
    truth = records.select("source", "source_key", person_id=pl.Series(["p", "p", "q", "q"]))
    data = quality.Dataset("t", records, truth, "person")
    frame = pl.DataFrame({"rid": list(clusters), "cluster_id": list(clusters.values())})
    (row,) = quality.score_clusterings(data, {0.9: frame})
    assert row["threshold"] == 0.9
    assert row["f1"] == pytest.approx(f1)


def test_speed_smoke(speed_result: dict[str, Any]) -> None:
    (size,) = speed_result["sizes"]
    assert size["complete"], size["stages"]
    assert [s["stage"] for s in size["stages"]] == list(speed.STAGES)
    assert all(s["records"] > 0 and s["seconds"] >= 0 and s["peak_mb"] > 0 for s in size["stages"])
    assert size["total_seconds"] == pytest.approx(sum(s["seconds"] for s in size["stages"]))
    assert set(size["quality"]) == {"ours", "splink"}
    assert size["quality"]["ours"]["records"] == size["records"]
    assert set(size["ratios"]) == {"time", "memory"}


@pytest.mark.parametrize(
    ("code", "mem_gb", "timeout_s", "expect"),
    [
        ("import time; x = bytearray(700 * 2**20); time.sleep(20)", 0.4, 30.0, "memory cap"),
        ("import time; time.sleep(20)", 8.0, 1.0, "time limit"),
        ("import json; print(json.dumps({'seconds': 1.5}))", 8.0, 30.0, None),
    ],
)
def test_run_capped(code: str, mem_gb: float, timeout_s: float, expect: str | None) -> None:
    result = speed.run_capped([sys.executable, "-c", code], mem_gb, timeout_s)
    if expect is None:
        assert result == {"seconds": 1.5}
    else:
        assert result["killed"].startswith(expect)
        assert result["seconds"] < 20


@pytest.mark.parametrize("kind", ["quality", "speed"])
def test_report(
    kind: str, quality_result: dict[str, Any], speed_result: dict[str, Any], tmp_path: Path
) -> None:
    result = quality_result if kind == "quality" else speed_result
    md, html = write_report(kind, result, f"{kind}-test", tmp_path)
    text = md.read_text(encoding="utf-8")
    pngs = list((tmp_path / f"{kind}-test-charts").glob("*.png"))
    expected = 3 * len(quality.SUITES) if kind == "quality" else 1
    assert len(pngs) == expected
    assert all(f"({p.parent.name}/{p.name})" in text for p in pngs)
    page = html.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == expected
    assert "<table>" in page


def test_cli_writes_result_and_report(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["quality", "--smoke", "--suite", "febrl4"])
    out = capsys.readouterr().out
    results = sorted((workdir / "bench_out" / "results").glob("quality-smoke-*.json"))
    body = json.loads(results[-1].read_text())
    assert [s["suite"] for s in body["suites"]] == ["febrl4"]
    assert {"commit", "splink", "cpus"} <= set(body["environment"])
    assert (workdir / "bench_out" / "reports" / f"{results[-1].stem}.html").exists()
    assert "febrl4" in out
