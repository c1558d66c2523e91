"""Ingest throughput on generated legacy (fixed-width GB18030) and JSON Lines files.

Target (issue 2): at least 100,000 records/s for the legacy and JSONL readers on a 2-core machine.
Each measurement runs in its own process so that its peak memory is its own.
Usage: python -m benchmarks.ingest [--sizes 100k,1m]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import OUT, SIZES, Measure, peak_rss_mb, run_isolated, write_result

KINDS = {"core_banking": "core_banking.dat", "wealth_app": "wealth_app.jsonl"}


def dataset(size: str) -> Path:
    """Generated legacy + JSONL files of about ``size`` records in all, made once and cached."""
    from mdm.generate import generate

    folder = OUT / "data" / f"ingest-{size}"
    if not (folder / "truth.csv").exists():
        persons = max(SIZES[size], 100)  # two kinds give about 1.03 records per person
        generate(folder, persons=persons, seed=11, kinds=list(KINDS))
    return folder


def child(stage: str, source: str, path: Path) -> dict[str, object]:
    """Measure one stage for one file in this process: read (reader only) or ingest (read+standardize+store)."""
    from mdm.config import load_sources
    from mdm.ingest import read_source, standardize
    from mdm.store import Store

    cfg = load_sources()[source]
    t0 = time.perf_counter()
    if stage == "read":
        n = read_source(cfg, [path]).raw.height
    elif stage == "standardize":
        raw = read_source(cfg, [path]).raw
        t0 = time.perf_counter()
        n = standardize(raw).height
    else:
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.duckdb") as store:
            read = read_source(cfg, [path])
            n = store.ingest_batch(source, [path], standardize(read.raw), read.rejects).n_read
    seconds = time.perf_counter() - t0
    return Measure(stage=f"{stage}:{source}", seconds=seconds, peak_mb=peak_rss_mb(), records=n).__dict__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100k,1m")
    parser.add_argument("--stages", default="read,standardize,ingest")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "SOURCE", "PATH"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], Path(args.child[2]))))
        return
    results = []
    for size in args.sizes.split(","):
        folder = dataset(size)
        for source, name in KINDS.items():
            for stage in args.stages.split(","):
                r = run_isolated("benchmarks.ingest", "--child", stage, source, str(folder / name))
                r["size"] = size
                r["records_per_s"] = round(r["records"] / r["seconds"]) if r["seconds"] else 0
                results.append(r)
                print(
                    f"{size:>5} {r['stage']:<28} {r['records']:>9,} rec {r['seconds']:>7.2f} s "
                    f"{r['records_per_s']:>9,} rec/s  peak {r['peak_mb']:>7.0f} MB"
                )
    path = write_result("ingest", {"target_records_per_s": 100_000, "results": results})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
