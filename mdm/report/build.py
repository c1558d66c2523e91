"""Collect a run's report figures from the store, and read or write the report files.

The figures come from the store, not from the running process, so a report can be rebuilt later
(``mdm report RUN``) and a dry run reports the state inside its transaction before rolling it back.
No figure carries personal data: counts, sources, field names, weights and sizes only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from mdm.store import Store

#: Report keys of the changes, from ID event kinds.
CHANGE_KINDS: dict[str, tuple[str, ...]] = {
    "new_customers": ("created", "split_from"),
    "merges": ("merged_into",),
    "splits": ("split_from",),
    "moved_records": ("record_moved",),
    "added_records": ("record_added",),
    "ended_records": ("record_ended",),
    "ended_customers": ("customer_ended",),
    "revived_customers": ("revived",),
}


def weight_histogram(weights: pl.Series, width: float = 1.0) -> dict[str, list[float]]:
    """Counts of match weights in bins of ``width`` (left edges and counts); empty lists for no pairs."""
    values = weights.drop_nulls().to_numpy().astype(float)
    if values.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = np.floor(values.min() / width) * width, np.floor(values.max() / width) * width + width
    counts, edges = np.histogram(values, bins=np.arange(lo, hi + width / 2, width))
    return {"edges": [float(e) for e in edges[:-1]], "counts": [int(c) for c in counts]}


def per_source(batches: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Batch counts summed per source: read, new, changed, unchanged, ended, rejected."""
    cols = ["n_read", "n_new", "n_changed", "n_unchanged", "n_ended", "n_rejected"]
    if batches.height == 0:
        return {}
    sums = batches.group_by("source").agg(pl.col(c).fill_null(0).sum() for c in cols).sort("source")
    return {
        row["source"]: {c.removeprefix("n_"): int(row[c]) for c in cols} for row in sums.iter_rows(named=True)
    }


def changes(events: dict[str, int], golden_versions: int) -> dict[str, int]:
    """The report's change figures from event counts; ``total`` is 0 exactly when nothing changed."""
    out = {name: sum(events.get(k, 0) for k in kinds) for name, kinds in CHANGE_KINDS.items()}
    out["golden_versions"] = golden_versions
    out["total"] = sum(events.values()) + golden_versions
    return out


def build_report(store: Store, run_id: int, dry_run: bool = False) -> dict[str, Any]:
    """Every figure of run ``run_id`` (see the issue's report list) as a JSON-ready dict."""
    row = store.run_row(run_id)
    if row is None:
        from mdm.errors import MdmError

        raise MdmError(f"no run {run_id}")
    counts = json.loads(row["counts"] or "{}")
    batch_from, batch_to = int(row["batch_from"] or 0), int(row["batch_to"] or 0)
    batches = store.batches_in(batch_from, batch_to)
    events = store.event_counts(run_id)
    return {
        "run_id": run_id,
        "dry_run": dry_run,
        "status": row["status"],
        "mode": row["mode"],
        "model_version": row["model_version"],
        "started_at": str(row["started_at"]),
        "finished_at": None if row["finished_at"] is None else str(row["finished_at"]),
        "batches": {"from": batch_from, "to": batch_to, "list": batches.to_dicts()},
        "ingested": per_source(batches),
        "quality": store.batch_quality(batch_from, batch_to).to_dicts(),
        "changes": changes(events, int(counts.get("golden_versions", 0))),
        "events": events,
        "counts": counts,
        "scope_records": int(row["scope_records"] or 0),
        "review_queue": store.review_queue(),
        "seconds": json.loads(row["seconds"] or "{}"),
        "charts": {
            "match_weight": weight_histogram(store.pair_weights()),
            "cluster_size": store.cluster_sizes().to_dicts(),
        },
    }


def report_paths(folder: Path, run_id: int) -> tuple[Path, Path]:
    """JSON and HTML file of a run's report."""
    return folder / f"run-{run_id}.json", folder / f"run-{run_id}.html"


def write_report(report: dict[str, Any], folder: Path) -> list[Path]:
    """Write the report as JSON and HTML under ``folder`` (each file replaced atomically)."""
    from mdm.report.html import render_html

    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = report_paths(folder, int(report["run_id"]))
    for path, text in (
        (json_path, json.dumps(report, indent=1, ensure_ascii=False, default=str)),
        (html_path, render_html(report)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return [json_path, html_path]


def load_report(folder: Path, run_id: int) -> dict[str, Any] | None:
    """A report written earlier, or None."""
    json_path, _ = report_paths(folder, run_id)
    if not json_path.exists():
        return None
    doc: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8"))
    return doc


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for the terminal."""
    ch = report["changes"]
    rq = report["review_queue"]
    head = "dry run" if report.get("dry_run") else f"run {report['run_id']}"
    lines = [
        f"{head} ({report['mode']}, {report['status']}), model {report['model_version']}, "
        f"batches {report['batches']['from']}..{report['batches']['to']}",
        "  ingested: "
        + (
            ", ".join(
                f"{s} {c['read']} read/{c['new']} new/{c['changed']} changed/{c['ended']} ended/"
                f"{c['rejected']} rejected"
                for s, c in report["ingested"].items()
            )
            or "nothing new"
        ),
        f"  new customers {ch['new_customers']}, merges {ch['merges']}, splits {ch['splits']}, "
        f"moved records {ch['moved_records']}, ended records {ch['ended_records']}",
        f"  review queue {rq['pairs']} pairs, oldest {rq['oldest_days']:.1f} days",
        "  changes: " + (str(ch["total"]) if ch["total"] else "none (0 changes)"),
    ]
    if report.get("seconds"):
        lines.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds"].items()))
    return lines
