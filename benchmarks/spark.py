"""Spark engine beside DuckDB: the match stages at 100k and 1M generated records, and a 100M projection.

Generated data: the core_banking (fixed-width) and wealth_app (JSON Lines) kinds, sample profile, as in
the speed suite. Records are prepared once per size by the speed suite's own stages (ingest,
standardize, store) and one model is trained on DuckDB (fixed seed); then each engine scores with that
same model JSON and the constrained clustering runs on its pairs. Spark also trains its own model.
Every stage runs in a fresh child process; peak memory is the resident memory of the child's whole
process tree (Python driver plus the Spark JVM), sampled by the parent with psutil.

    python -m benchmarks.spark --sizes 100k 1m        # writes bench_out/results/spark-*.json
    python -m benchmarks.spark --combine A.json B.json  # one result (and projection) from two runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from benchmarks.common import OUT, SIZES, write_result
from benchmarks.quality import generated_folder
from benchmarks.speed import KINDS, SEED

PREP: tuple[str, ...] = ("ingest", "standardize", "store", "train")
DUCKDB_STAGES: tuple[str, ...] = ("match", "cluster")
SPARK_STAGES: tuple[str, ...] = ("spark_match", "spark_cluster", "spark_train")
#: Spark session settings of the benchmark (local mode on this 2-core machine).
LOCAL_CONF = {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "8g"}
#: Projection: the cluster the 100M estimate is for (see `project`).
CLUSTER = {"executors": 50, "cores_per_executor": 8, "memory_per_executor_gb": 32}
LOCAL_CORES = 2


def _session() -> Any:
    from mdm.engines.spark import spark_session

    return spark_session("local[2]", conf=LOCAL_CONF)


def stage_spark_match(work: Path) -> dict[str, Any]:
    """Score on Spark with the DuckDB-trained model, step by step: start, features, Splink, write."""
    from mdm.engines import settings_for_dialect
    from mdm.engines.spark import SPARK_DIALECT, records_to_spark, spark_api, spark_linker, tidy_sql
    from mdm.matching.features import matching_frame
    from mdm.matching.train import TrainedModel

    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    spark = _session()
    steps["session_start"] = time.perf_counter() - t0
    records = pl.read_parquet(work / "records.parquet")
    model = TrainedModel.load(work / "model.json")
    t = time.perf_counter()
    frame = records_to_spark(matching_frame(records, model.ruleset), spark, work / "spark_records.parquet")
    steps["features_to_parquet"] = time.perf_counter() - t
    t = time.perf_counter()
    settings = settings_for_dialect(model.splink_settings, model.ruleset, SPARK_DIALECT)
    linker = spark_linker(frame, settings, spark_api(spark))
    scored = linker.inference.predict(threshold_match_probability=model.ruleset.thresholds.lower)
    steps["splink_block_and_score"] = time.perf_counter() - t
    t = time.perf_counter()
    out = work / "spark_pairs.parquet"
    scored.as_spark_dataframe().selectExpr(*tidy_sql(model.ruleset)).write.mode("overwrite").parquet(str(out))
    pairs = pl.read_parquet(out / "*.parquet")
    steps["write_pairs"] = time.perf_counter() - t
    return {
        "stage": "spark_match",
        "seconds": time.perf_counter() - t0,
        "records": records.height,
        "extra": {"pairs": pairs.height, "steps": steps},
    }


def stage_spark_cluster(work: Path) -> dict[str, Any]:
    """Constrained clustering of the Spark pairs (the same numpy/polars code as the DuckDB engine)."""
    from mdm.matching.cluster import cluster, id_conflicts
    from mdm.matching.train import TrainedModel

    records = pl.read_parquet(work / "records.parquet")
    upper = TrainedModel.load(work / "model.json").ruleset.thresholds.upper
    pairs = pl.read_parquet(work / "spark_pairs.parquet" / "*.parquet")
    t0 = time.perf_counter()
    clusters = cluster(records["rid"], pairs, upper=upper, conflicts=id_conflicts(records))
    seconds = time.perf_counter() - t0
    clusters.write_parquet(work / "spark_clusters.parquet")
    return {
        "stage": "spark_cluster",
        "seconds": seconds,
        "records": records.height,
        "extra": {"clusters": clusters["cluster_id"].n_unique()},
    }


def stage_spark_train(work: Path) -> dict[str, Any]:
    """Train the person model on Spark (same estimation and seed as DuckDB's)."""
    from matching_rules import load_ruleset
    from mdm.engines.spark import train_spark

    spark = _session()
    records = pl.read_parquet(work / "records.parquet")
    t0 = time.perf_counter()
    model = train_spark(records, load_ruleset("person"), seed=42, spark=spark)
    seconds = time.perf_counter() - t0
    model.save(work / "spark_model.json")
    return {
        "stage": "spark_train",
        "seconds": seconds,
        "records": records.height,
        "extra": {"model": model.version},
    }


def child(stage: str, work: Path) -> dict[str, Any]:
    """Run one Spark stage in this process."""
    match stage:
        case "spark_match":
            return stage_spark_match(work)
        case "spark_cluster":
            return stage_spark_cluster(work)
        case "spark_train":
            return stage_spark_train(work)
        case _:
            raise ValueError(f"unknown stage {stage!r}")


def run_tree(args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run a child stage; its JSON result plus ``wall_seconds`` and ``tree_peak_mb``: the peak summed
    resident memory of the child and all its descendants (the Spark JVM), sampled every 0.2 s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        if time.perf_counter() - t0 > timeout_s:
            proc.kill()
        time.sleep(0.2)
    out, err = proc.communicate()
    measured = {"wall_seconds": time.perf_counter() - t0, "tree_peak_mb": peak / 2**20}
    if proc.returncode != 0:
        return {"error": err[-2000:], **measured}
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return {**result, **measured}


def compare(work: Path) -> dict[str, Any]:
    """How far the two engines' outputs agree: pairs, linked pairs, clusters."""
    duck = pl.read_parquet(work / "pairs.parquet")
    spark = pl.read_parquet(work / "spark_pairs.parquet" / "*.parquet")
    both = duck.join(spark, on=["rid_l", "rid_r"], suffix="_s")
    c_duck = pl.read_parquet(work / "clusters.parquet")
    c_spark = pl.read_parquet(work / "spark_clusters.parquet")
    moved = c_duck.join(c_spark, on="rid", suffix="_s").filter(pl.col("cluster_id") != pl.col("cluster_id_s"))
    return {
        "pairs_duckdb": duck.height,
        "pairs_spark": spark.height,
        "pairs_common": both.height,
        "weight_max_abs_diff": both.select(
            (pl.col("match_weight") - pl.col("match_weight_s")).abs().max()
        ).item(),
        "records_in_other_cluster": moved.height,
        "clusters_identical": c_duck.sort("rid").equals(c_spark.sort("rid")),
    }


def run_size(label: str, timeout_s: float, spark_train: bool) -> dict[str, Any]:
    """Prepare records and a model at one size, then the DuckDB and Spark stages."""
    folder = generated_folder(SIZES[label], seed=SEED, kinds=KINDS)
    work = OUT / "work" / f"spark-{label}"
    work.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    for stage in (*PREP, *DUCKDB_STAGES):
        args = [sys.executable, "-m", "benchmarks.speed", "--child", stage, str(folder), str(work)]
        runs[stage] = run_tree(args, timeout_s)
    for stage in SPARK_STAGES if spark_train else SPARK_STAGES[:2]:
        args = [sys.executable, "-m", "benchmarks.spark", "--child", stage, str(work)]
        runs[stage] = run_tree(args, timeout_s)
    return {
        "size": label,
        "records": runs["store"].get("records"),
        "stages": runs,
        "agreement": compare(work),
    }


def project(sizes: list[dict[str, Any]], target: int = 100_000_000) -> dict[str, Any]:
    """Time for `target` records on `CLUSTER`, extrapolated from how Spark stage times grew 100k -> 1M.

    Assumptions (written into the result): each stage's time grows as a power of the record count,
    fitted on the two measured sizes (t = a * n^k; k from the 10x step); pairs per record stay as in
    the generated data; the work parallelizes across the cluster's cores with an efficiency of 0.5
    against this machine's 2 local cores (shuffles, skew, stragglers); session start and the
    driver-side steps (matching features in polars, constrained clustering in numpy) do not scale
    out and are extrapolated at 1 core with the same exponent.
    """
    by_size = {s["size"]: s for s in sizes}
    if not {"100k", "1m"} <= by_size.keys():
        return {"skipped": "needs both 100k and 1m"}
    small, large = by_size["100k"]["stages"], by_size["1m"]["stages"]
    cores = CLUSTER["executors"] * CLUSTER["cores_per_executor"]
    speedup = cores / LOCAL_CORES * 0.5
    factor = target / 1_000_000
    parts: dict[str, Any] = {}
    for step in ("features_to_parquet", "splink_block_and_score", "write_pairs"):
        t1 = float(small["spark_match"]["extra"]["steps"][step])
        t2 = float(large["spark_match"]["extra"]["steps"][step])
        k = _exponent(t1, t2)
        local = t2 * factor**k
        scales_out = step != "features_to_parquet"
        parts[step] = {
            "exponent": k,
            "local_seconds": local,
            "cluster_seconds": local / speedup if scales_out else local,
        }
    t1, t2 = float(small["spark_cluster"]["seconds"]), float(large["spark_cluster"]["seconds"])
    k = _exponent(t1, t2)
    parts["constrained_cluster_on_driver"] = {"exponent": k, "cluster_seconds": t2 * factor**k}
    total = sum(float(p["cluster_seconds"]) for p in parts.values())
    return {
        "target_records": target,
        "cluster": CLUSTER,
        "effective_speedup_vs_local": speedup,
        "parts": parts,
        "total_seconds": total,
        "assumptions": project.__doc__,
    }


def _exponent(t_small: float, t_large: float) -> float:
    """Growth exponent k of t = a * n^k over a 10x step in n (at least 1: nothing grows sublinearly at scale)."""
    import math

    return max(math.log10(max(t_large, 1e-3) / max(t_small, 1e-3)), 1.0)


def main() -> None:
    """``python -m benchmarks.spark [--sizes 100k 1m]`` or, internally, ``--child STAGE WORK``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "WORK"))
    parser.add_argument("--sizes", nargs="+", default=["100k", "1m"], choices=sorted(SIZES))
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--no-spark-train", action="store_true")
    parser.add_argument(
        "--combine", nargs="+", type=Path, metavar="RESULT", help="merge earlier result files and project"
    )
    args = parser.parse_args()
    if args.child:
        stage, work = args.child
        print(json.dumps(child(stage, Path(work)), default=str))
        return
    if args.combine:
        sizes = [size for path in args.combine for size in json.loads(path.read_text())["sizes"]]
    else:
        sizes = [run_size(s, args.timeout, not args.no_spark_train) for s in args.sizes]
    path = write_result("spark", {"kinds": KINDS, "sizes": sizes, "projection": project(sizes)})
    print(path)


if __name__ == "__main__":
    main()
