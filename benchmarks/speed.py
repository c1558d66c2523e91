"""Speed suite: each stage of a whole batch, ingest to golden records, in its own process, beside plain Splink.

Stages hand over through Parquet files in a work folder, so each runs in a fresh child process whose
peak resident memory is its own: ingest (read + map), standardize, store (DuckDB write), train, match
(predict), cluster (constrained), golden (customer IDs + golden records). Plain Splink's match-only run
(BASELINE.md's settings) runs on the same records under a memory cap and a time limit enforced from the
parent; a run that hits either is recorded as killed, with the memory it had reached.
Generated data: the core_banking (fixed-width) and wealth_app (JSON Lines) kinds, sample profile.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from benchmarks.common import OUT, SIZES, Measure, peak_rss_mb
from benchmarks.quality import generated_folder

KINDS = ["core_banking", "wealth_app"]
STAGES: tuple[str, ...] = ("ingest", "standardize", "store", "train", "match", "cluster", "golden")
SMOKE_RECORDS = 800
SEED = 11


def _sources(work: Path) -> list[str]:
    return sorted(p.name.removeprefix("raw_").removesuffix(".parquet") for p in work.glob("raw_*.parquet"))


def stage_ingest(folder: Path, work: Path) -> Measure:
    """Read and map every source file under ``folder``; one raw Parquet per source."""
    from mdm.config import load_sources
    from mdm.ingest import discover, read_source

    cfgs = load_sources()
    t0 = time.perf_counter()
    found, _ = discover([folder], cfgs)
    n = 0
    for name, files in sorted(found.items()):
        raw = read_source(cfgs[name], files).raw
        raw.write_parquet(work / f"raw_{name}.parquet")
        n += raw.height
    return Measure("ingest", time.perf_counter() - t0, peak_rss_mb(), n)


def stage_standardize(work: Path) -> Measure:
    """Standardize each source's raw records."""
    from mdm.ingest import standardize

    frames = {s: pl.read_parquet(work / f"raw_{s}.parquet") for s in _sources(work)}
    t0 = time.perf_counter()
    n = 0
    for source, raw in frames.items():
        std = standardize(raw)
        n += std.height
        std.write_parquet(work / f"std_{source}.parquet")
    return Measure("standardize", time.perf_counter() - t0, peak_rss_mb(), n)


def stage_store(folder: Path, work: Path) -> Measure:
    """Write each source's standardized records to a fresh store as one batch; export current records."""
    from mdm.config import load_sources
    from mdm.store import Store

    cfgs = load_sources()
    frames = {s: pl.read_parquet(work / f"std_{s}.parquet") for s in _sources(work)}
    db = work / "bench.duckdb"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with Store(db) as store:
        for source, std in frames.items():
            files = sorted(p for p in folder.iterdir() if p.name.startswith(source))
            store.ingest_batch(source, files, std, [], extract_kind=cfgs[source].extract)
        records = store.current_records()
    seconds = time.perf_counter() - t0
    records.write_parquet(work / "records.parquet")
    return Measure("store", seconds, peak_rss_mb(), records.height)


def stage_train(work: Path) -> Measure:
    """Train the person model (fixed seed)."""
    from matching_rules import load_ruleset
    from mdm.matching.train import train

    records = pl.read_parquet(work / "records.parquet")
    t0 = time.perf_counter()
    model = train(records, load_ruleset("person"), seed=42)
    seconds = time.perf_counter() - t0
    model.save(work / "model.json")
    return Measure("train", seconds, peak_rss_mb(), records.height)


def stage_match(work: Path) -> Measure:
    """Score the blocked pairs with the trained model."""
    from mdm.matching.predict import predict
    from mdm.matching.train import TrainedModel

    records = pl.read_parquet(work / "records.parquet")
    model = TrainedModel.load(work / "model.json")
    t0 = time.perf_counter()
    pairs = predict(records, model)
    seconds = time.perf_counter() - t0
    pairs.write_parquet(work / "pairs.parquet")
    return Measure("match", seconds, peak_rss_mb(), records.height, {"pairs": pairs.height})


def stage_cluster(work: Path) -> Measure:
    """Constrained clustering at the rule set's upper threshold."""
    from mdm.matching.cluster import cluster, id_conflicts
    from mdm.matching.train import TrainedModel

    records = pl.read_parquet(work / "records.parquet")
    pairs = pl.read_parquet(work / "pairs.parquet")
    upper = TrainedModel.load(work / "model.json").ruleset.thresholds.upper
    t0 = time.perf_counter()
    clusters = cluster(records["rid"], pairs, upper=upper, conflicts=id_conflicts(records))
    seconds = time.perf_counter() - t0
    clusters.write_parquet(work / "clusters.parquet")
    return Measure(
        "cluster", seconds, peak_rss_mb(), records.height, {"clusters": clusters["cluster_id"].n_unique()}
    )


def stage_golden(work: Path) -> Measure:
    """Assign customer IDs and build golden records from the clusters, in the store."""
    from golden_record.pipeline import run_golden
    from mdm.matching.train import TrainedModel
    from mdm.store import Store

    clusters = pl.read_parquet(work / "clusters.parquet")
    version = TrainedModel.load(work / "model.json").version
    t0 = time.perf_counter()
    with Store(work / "bench.duckdb") as store:
        run_id = store.start_run(version)
        counts = run_golden(store, clusters, run_id)
        store.finish_run(run_id, "succeeded", counts, None)
    return Measure("golden", time.perf_counter() - t0, peak_rss_mb(), clusters.height, {"counts": counts})


def stage_splink(work: Path) -> Measure:
    """Plain Splink's match-only run (train, predict, connected components at 0.9) on the raw records."""
    from benchmarks.baseline import plain_splink

    raw = pl.concat([pl.read_parquet(work / f"raw_{s}.parquet") for s in _sources(work)], how="vertical")
    raw = raw.with_row_index("rid", offset=1).with_columns(pl.col("rid").cast(pl.Int64))
    t0 = time.perf_counter()
    clusters = plain_splink(raw, (0.9,))[0.9]
    seconds = time.perf_counter() - t0
    raw.select("rid", "source", "source_key").join(clusters, on="rid", how="left").select(
        "source", "source_key", "cluster_id"
    ).write_parquet(work / "splink_clusters.parquet")
    return Measure("splink", seconds, peak_rss_mb(), raw.height)


def child(stage: str, folder: Path, work: Path) -> dict[str, Any]:
    """Run one stage in this process and return its measure as a dict."""
    match stage:
        case "ingest":
            m = stage_ingest(folder, work)
        case "standardize":
            m = stage_standardize(work)
        case "store":
            m = stage_store(folder, work)
        case "train":
            m = stage_train(work)
        case "match":
            m = stage_match(work)
        case "cluster":
            m = stage_cluster(work)
        case "golden":
            m = stage_golden(work)
        case "splink":
            m = stage_splink(work)
        case _:
            raise ValueError(f"unknown stage {stage!r}")
    return m.__dict__


def run_capped(args: list[str], mem_gb: float, timeout_s: float) -> dict[str, Any]:
    """Run a child, killing it when its resident memory (with its children) passes ``mem_gb`` or time runs out.

    Returns the child's last JSON line, or ``{"killed": reason, "at_gb": peak seen, "seconds": ...}``.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0.0
    killed = ""
    while proc.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]) / 2**30
        except psutil.Error:
            rss = 0.0
        peak = max(peak, rss)
        if rss > mem_gb:
            killed = f"memory cap {mem_gb:g} GB"
        elif time.perf_counter() - t0 > timeout_s:
            killed = f"time limit {timeout_s:g} s"
        if killed:
            proc.kill()
            proc.wait()
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if killed:
        return {"killed": killed, "at_gb": round(peak, 2), "seconds": seconds}
    if proc.returncode != 0:
        return {"error": err[-2000:], "seconds": seconds}
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def score_against_truth(folder: Path, clusters: pl.DataFrame) -> dict[str, Any]:
    """Scores of ``source, source_key, cluster_id`` against the generator's truth."""
    from mdm.metrics import score_frames

    truth = pl.read_csv(folder / "truth.csv", infer_schema=False)
    return score_frames(truth, clusters).as_dict()


def run_size(
    records: int, label: str, mem_gb: float, timeout_s: float, with_splink: bool = True
) -> dict[str, Any]:
    """Every stage at one size, plain Splink beside it, and both scored against truth."""
    t0 = time.perf_counter()
    folder = generated_folder(records, seed=SEED, kinds=KINDS)
    generate_seconds = time.perf_counter() - t0
    work = OUT / "work" / f"speed-{label}"
    work.mkdir(parents=True, exist_ok=True)
    stages: list[dict[str, Any]] = []
    for stage in STAGES:
        res = run_capped(
            [sys.executable, "-m", "benchmarks.speed", "--child", stage, str(folder), str(work)], 1e3, 1e5
        )
        stages.append({"stage": stage, **res})
        if "seconds" not in res or "error" in res:
            break
    ok = all("error" not in s and "killed" not in s for s in stages) and len(stages) == len(STAGES)
    quality: dict[str, Any] = {}
    if ok:
        keys = pl.read_parquet(work / "records.parquet").select("rid", "source", "source_key")
        ours = keys.join(pl.read_parquet(work / "clusters.parquet"), on="rid").drop("rid")
        quality["ours"] = score_against_truth(folder, ours)
    splink: dict[str, Any] = {"skipped": True}
    if with_splink:
        splink = run_capped(
            [sys.executable, "-m", "benchmarks.speed", "--child", "splink", str(folder), str(work)],
            mem_gb,
            timeout_s,
        )
        if "killed" not in splink and "error" not in splink:
            quality["splink"] = score_against_truth(folder, pl.read_parquet(work / "splink_clusters.parquet"))
    total = sum(float(s.get("seconds", 0.0)) for s in stages)
    peak = max((float(s.get("peak_mb", 0.0)) for s in stages), default=0.0)
    return {
        "size": label,
        "records": stages[0].get("records", 0) if stages else 0,
        "generate_seconds": generate_seconds,
        "stages": stages,
        "complete": ok,
        "total_seconds": total,
        "peak_mb": peak,
        "splink": splink,
        "quality": quality,
        "ratios": _ratios(total, peak, splink),
    }


def _ratios(total: float, peak_mb: float, splink: dict[str, Any]) -> dict[str, Any]:
    """Our whole batch over plain Splink's match-only run, for time and memory (when Splink finished)."""
    if "seconds" not in splink or "killed" in splink or "error" in splink or splink.get("skipped"):
        return {}
    return {
        "time": total / float(splink["seconds"]) if splink["seconds"] else None,
        "memory": peak_mb / float(splink["peak_mb"]) if splink.get("peak_mb") else None,
    }


def run(
    size: str = "100k", smoke: bool = False, mem_gb: float = 12.0, timeout_s: float = 300.0
) -> dict[str, Any]:
    """The speed suite at one size (``--smoke``: a few hundred records)."""
    label = "smoke" if smoke else size
    records = SMOKE_RECORDS if smoke else SIZES[size]
    return {
        "smoke": smoke,
        "kinds": KINDS,
        "splink_memory_cap_gb": mem_gb,
        "splink_time_limit_s": timeout_s,
        "sizes": [run_size(records, label, mem_gb, timeout_s)],
    }


def main() -> None:
    """Internal entry point: ``python -m benchmarks.speed --child STAGE FOLDER WORK`` prints one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "FOLDER", "WORK"), required=True)
    args = parser.parse_args()
    stage, folder, work = args.child
    print(json.dumps(child(stage, Path(folder), Path(work)), default=str))


if __name__ == "__main__":
    main()
