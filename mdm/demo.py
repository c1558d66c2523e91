"""`mdm demo`: the main job end to end on a small generated dataset."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from mdm.config import load_sources
from mdm.ingest import ingest_paths
from mdm.store import Store


def run_demo(workdir: Path, persons: int, seed: int, db: Path, echo: Callable[[str], None]) -> None:
    """Generate, ingest (and, as the pipeline grows, match and build golden records), printing each step."""
    from mdm.generate import generate

    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    t0 = time.perf_counter()
    result = generate(data, persons=persons, seed=seed)
    echo(f"1. generated {result} in {time.perf_counter() - t0:.1f}s into {data}")
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with Store(db, key=os.environ.get("MDM_DB_KEY") or None) as store:
        t0 = time.perf_counter()
        batches, _ = ingest_paths(store, [data], load_sources())
        total = sum(b.n_read for b in batches)
        echo(f"2. ingested {total} records from {len(batches)} sources in {time.perf_counter() - t0:.1f}s:")
        for b in batches:
            echo(f"   {b.source:<18} read {b.n_read:>6}  new {b.n_new:>6}  rejected {b.n_rejected:>4}")
        again, _ = ingest_paths(store, [data], load_sources())
        echo(f"3. ingested the same files again: {sum(b.n_new + b.n_changed for b in again)} records added")
        flags = store.dq_summary()
        top = flags.sort("records", descending=True).head(8)
        echo("4. data-quality flags (top 8; `mdm dq` shows all):")
        for row in top.iter_rows(named=True):
            echo(f"   {row['source']:<18} {row['field']:<12} {row['flag']:<28} {row['records']:>6}")
        n = store.query("SELECT count(*) AS n FROM current_records").item()
        echo(f"   database {db}: {n} current source records")
