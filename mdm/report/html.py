"""The run report as one self-contained HTML page: tables plus inline SVG charts drawn with matplotlib.

Charts are SVG with text drawn as paths, so the page renders offline, without fonts or scripts.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:2em}"""


def bar_svg(x: Sequence[float], y: Sequence[float], title: str, xlabel: str, log_y: bool = False) -> str:
    """A bar chart as an inline ``<svg>`` element (empty-data charts say so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.fonttype"] = "path"
    fig, ax = plt.subplots(figsize=(6, 3.2))
    try:
        if x:
            ax.bar(list(x), list(y), width=0.9 * (min(x[1] - x[0], 1.0) if len(x) > 1 else 1.0), align="edge")
            if log_y:
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    finally:
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of dict rows (escaped)."""
    if not rows:
        return "<p>none</p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any]) -> str:
    """The whole page of one run report."""
    esc = html.escape
    title = f"mdm run {report['run_id']}" + (" (dry run)" if report.get("dry_run") else "")
    weights = report["charts"]["match_weight"]
    sizes = report["charts"]["cluster_size"]
    facts = [
        {"": "status", "value": report["status"]},
        {"": "mode", "value": report["mode"]},
        {"": "model version", "value": report["model_version"]},
        {"": "started", "value": report["started_at"]},
        {"": "finished", "value": report["finished_at"]},
        {"": "batches taken", "value": f"{report['batches']['from']} < batch <= {report['batches']['to']}"},
        {"": "records re-resolved", "value": report["scope_records"]},
    ]
    ingested = [{"source": s, **c} for s, c in report["ingested"].items()]
    changes = [{"change": k, "count": v} for k, v in report["changes"].items()]
    review = [
        {"": k, "value": f"{v:.1f}" if isinstance(v, float) else v} for k, v in report["review_queue"].items()
    ]
    seconds = [{"stage": k, "seconds": f"{v:.2f}"} for k, v in report.get("seconds", {}).items()]
    charts = [
        bar_svg(
            weights["edges"], weights["counts"], "Match weight of kept pairs", "match weight (log2 odds)"
        ),
        bar_svg(
            [float(r["size"]) for r in sizes],
            [float(r["customers"]) for r in sizes],
            "Cluster size",
            "records per customer",
            log_y=True,
        ),
    ]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>
{table(facts)}
<h2>Records ingested per source</h2>{table(ingested)}
<h2>Rejected rows and data-quality flags per source and field</h2>{table(report["quality"])}
<h2>Changes</h2>{table(changes)}
<h2>Review queue</h2>{table(review)}
<h2>Timings</h2>{table(seconds)}
<h2>Charts</h2><div class="charts">{"".join(f"<figure>{c}</figure>" for c in charts)}</div>
</body></html>
"""
