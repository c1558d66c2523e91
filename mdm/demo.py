"""`mdm demo`: the main job end to end on a small generated dataset."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from mdm.config import load_sources
from mdm.ingest import ingest_paths
from mdm.metrics import score_frames
from mdm.pipeline import run_batch
from mdm.privacy import mask_golden
from mdm.store import Store


def run_demo(workdir: Path, persons: int, seed: int, db: Path, echo: Callable[[str], None]) -> None:
    """Generate, ingest (and, as the pipeline grows, match and build golden records), printing each step."""
    from mdm.generate import generate

    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    t0 = time.perf_counter()
    result = generate(data, persons=persons, seed=seed)
    echo(f"1. generated {result} in {time.perf_counter() - t0:.1f}s into {data}")
    for suffix in ("", ".wal", ".person.model.json"):
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
        t0 = time.perf_counter()
        summary = run_batch(store)
        echo(f"5. matched, clustered and built golden records in {time.perf_counter() - t0:.1f}s:")
        for line in summary.lines():
            echo("   " + line)
        xref = store.current_xref()
        echo(f"6. {xref['customer_id'].n_unique()} customers for {xref.height} source records")
        score_against_truth(xref, data / "truth.csv", echo)
        biggest = xref.group_by("customer_id").len().sort(["len", "customer_id"], descending=[True, False])
        show_customer(store, biggest.row(0)[0], echo)
        echo(f"database: {db}  (try: mdm show <customer_id> --db {db}, mdm dq --db {db})")


def score_against_truth(xref: pl.DataFrame, truth_csv: Path, echo: Callable[[str], None]) -> None:
    """How the run did against the generator's truth (the demo's data is synthetic, so truth exists)."""
    truth = pl.read_csv(truth_csv, schema_overrides={"source_key": pl.String})
    s = score_frames(truth, xref.rename({"customer_id": "cluster_id"}))
    echo(
        f"7. against the generator's truth: pairwise precision {s.precision:.4f} recall {s.recall:.4f} "
        f"F1 {s.f1:.4f}; false-merge clusters {s.false_merge_clusters}; split persons {s.split_persons}"
    )


def show_customer(store: Store, customer_id: str, echo: Callable[[str], None]) -> None:
    """Print one golden record, masked, with where each value came from."""
    doc = store.customer(customer_id)
    if doc is None:
        return
    echo(f"8. the customer with the most source records, {customer_id} (values masked):")
    lineage = doc["lineage"]
    for name, value in mask_golden(doc["attributes"]).items():
        if value in (None, [], ""):
            continue
        src = lineage.get(name) if isinstance(lineage, dict) else None
        origin = (
            f"  <- {src['source']}:{src['source_key']}" if isinstance(src, dict) and "source" in src else ""
        )
        echo(f"   {name:<12} {value}{origin}")
    for rec in doc["records"]:
        echo(f"   record {rec['source']}:{rec['source_key']}")
