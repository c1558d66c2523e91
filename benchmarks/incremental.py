"""Incremental suite: a nightly run of a small delta against a large resolved store, beside a full re-match.

Base: generated records (core_banking + wealth_app kinds, sample profile, the speed suite's data), ingested
and resolved by a full ``mdm run``. Delta: half new records (a second generated population, keys and
person ids prefixed so they cannot collide) and half changed records (base records given one more mobile
number), ingested as delta batches. Then the incremental run is timed in its own process (wall time and
peak resident memory), and a full run on a copy of the same store gives the reference: the incremental
result is scored against it and both against the generator's truth (mdm.metrics).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.common import OUT, peak_rss_mb
from benchmarks.quality import generated_folder
from benchmarks.speed import run_capped

KINDS = ["core_banking", "wealth_app"]
SEED = 11
#: (base records, delta records) per size label.
SIZES: dict[str, tuple[int, int]] = {"smoke": (800, 80), "100k": (100_000, 1_000), "1m": (1_000_000, 10_000)}
STAGES: tuple[str, ...] = ("base", "delta", "incremental", "full")
TARGET_SECONDS = 60.0
NEW_PREFIX = "N"


def standardized(folder: Path, work: Path, tag: str) -> dict[str, pl.DataFrame]:
    """Standardized records per source of a generated folder, cached as Parquet in ``work``."""
    from mdm.config import load_sources
    from mdm.ingest import discover, read_source, standardize

    cfgs = load_sources()
    found, _ = discover([folder], cfgs)
    out: dict[str, pl.DataFrame] = {}
    for name, files in sorted(found.items()):
        cached = work / f"std_{tag}_{name}.parquet"
        if not cached.exists():
            standardize(read_source(cfgs[name], files).raw).write_parquet(cached)
        out[name] = pl.read_parquet(cached)
    return out


def changed_records(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """``n`` records of ``frame`` given one more (unique, synthetic) mobile number: a changed record."""
    picked = frame.sample(n=min(n, frame.height), seed=seed).with_row_index("i")
    number = pl.lit("1390") + pl.col("i").cast(pl.String).str.zfill(7)
    return picked.with_columns(
        pl.col("mobile").fill_null([]).list.concat(pl.concat_list(number)),
        pl.col("mobiles").fill_null([]).list.concat(pl.concat_list(pl.lit("+86") + number)),
    ).drop("i")


def copy_store(source: Path, target: Path) -> None:
    """Copy a closed database with its side files (model, API secret) under the new name."""
    for path in source.parent.glob(source.name + "*"):
        shutil.copy(path, target.with_name(target.name + path.name.removeprefix(source.name)))


def stage_base(label: str, work: Path) -> dict[str, Any]:
    """Ingest the base as one full batch per source, train, and resolve it with a full run."""
    from mdm.pipeline import run_batch
    from mdm.store import Store

    base, _ = SIZES[label]
    folder = generated_folder(base, seed=SEED, kinds=KINDS)
    frames = standardized(folder, work, "base")
    db = work / "base.duckdb"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with Store(db) as store:
        for source, std in frames.items():
            store.ingest_batch(source, [], std, [], extract_kind="full")
        summary = run_batch(store, model_path=None, full=True, reports_dir=work / "reports")
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak_rss_mb(), "records": summary.records}


def stage_delta(label: str, work: Path) -> dict[str, Any]:
    """Ingest the delta (new + changed records) as delta batches into a copy of the resolved base."""
    from mdm.store import Store

    base, delta = SIZES[label]
    frames = standardized(generated_folder(base, seed=SEED, kinds=KINDS), work, "base")
    fresh_folder = generated_folder(max(delta // 2, 20), seed=SEED + 1, kinds=KINDS)
    fresh = standardized(fresh_folder, work, "new")
    db = work / "delta.duckdb"
    copy_store(work / "base.duckdb", db)
    per_source = max(delta // 2 // len(frames), 1)
    n = 0
    t0 = time.perf_counter()
    with Store(db) as store:
        for source in sorted(frames):
            new = fresh[source].with_columns((pl.lit(NEW_PREFIX) + pl.col("source_key")).alias("source_key"))
            both = pl.concat([new, changed_records(frames[source], per_source, SEED)], how="vertical_relaxed")
            store.ingest_batch(source, [], both, [], extract_kind="delta")
            n += both.height
    truth = pl.concat(
        [
            pl.read_csv(folder / "truth.csv", infer_schema=False).with_columns(
                (pl.lit(prefix) + pl.col(c)).alias(c) for c in ("source_key", "person_id")
            )
            for folder, prefix in (
                (generated_folder(base, seed=SEED, kinds=KINDS), ""),
                (fresh_folder, NEW_PREFIX),
            )
        ]
    )
    truth.write_csv(work / "truth.csv")
    copy_store(db, work / "full.duckdb")
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak_rss_mb(), "records": n}


def stage_run(work: Path, name: str, full: bool) -> dict[str, Any]:
    """One ``mdm run`` (incremental or full) on ``<name>.duckdb``; export its cross-reference."""
    from mdm.pipeline import run_batch
    from mdm.store import Store

    t0 = time.perf_counter()
    with Store(work / f"{name}.duckdb") as store:
        summary = run_batch(store, full=full, reports_dir=work / "reports")
        seconds = time.perf_counter() - t0
        store.current_xref().write_parquet(work / f"xref_{name}.parquet")
    return {
        "seconds": seconds,
        "peak_mb": peak_rss_mb(),
        "records": summary.records,
        "changed": summary.changed,
        "scope": summary.scope,
        "pairs": summary.pairs,
        "stage_seconds": summary.seconds,
        "changes": summary.changes,
    }


def child(stage: str, label: str, work: Path) -> dict[str, Any]:
    """Run one stage in this process."""
    match stage:
        case "base":
            return stage_base(label, work)
        case "delta":
            return stage_delta(label, work)
        case "incremental":
            return stage_run(work, "delta", full=False)
        case "full":
            return stage_run(work, "full", full=True)
    raise ValueError(f"unknown stage {stage!r}")


def compare(work: Path) -> dict[str, Any]:
    """Incremental against full (full's customers as the truth), and both against the generator's truth."""
    from mdm.metrics import score_frames

    truth = pl.read_csv(work / "truth.csv", infer_schema=False)
    inc, full = (
        pl.read_parquet(work / f"xref_{n}.parquet").select("source", "source_key", cluster_id="customer_id")
        for n in ("delta", "full")
    )
    return {
        "incremental_vs_full": score_frames(full.rename({"cluster_id": "person_id"}), inc).as_dict(),
        "identical_ids": inc.sort("source", "source_key").equals(full.sort("source", "source_key")),
        "incremental_vs_truth": score_frames(truth, inc).as_dict(),
        "full_vs_truth": score_frames(truth, full).as_dict(),
    }


def run(label: str = "100k") -> dict[str, Any]:
    """The suite at one size: each stage in its own process, then the comparison."""
    work = OUT / "work" / f"incremental-{label}"
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        stages[stage] = run_capped(
            [sys.executable, "-m", "benchmarks.incremental", "--child", stage, label, str(work)], 1e3, 1e5
        )
        if "error" in stages[stage]:
            return {"size": label, "stages": stages, "complete": False}
    inc = stages["incremental"]
    return {
        "size": label,
        "base_records": SIZES[label][0],
        "delta_records": stages["delta"]["records"],
        "stages": stages,
        "complete": True,
        "incremental_seconds": inc["seconds"],
        "incremental_peak_mb": inc["peak_mb"],
        "target_seconds": TARGET_SECONDS,
        "target_met": inc["seconds"] < TARGET_SECONDS,
        "quality": compare(work),
    }


def main() -> None:
    """``python -m benchmarks.incremental --child STAGE SIZE WORK`` prints one JSON line (internal)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "SIZE", "WORK"), required=True)
    args = parser.parse_args()
    stage, label, work = args.child
    print(json.dumps(child(stage, label, Path(work)), default=str))


if __name__ == "__main__":
    main()
