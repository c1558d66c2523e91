"""Readable benchmark reports: Markdown (charts as PNG files beside it) and one self-contained HTML file.

Charts are drawn with matplotlib's Agg backend and embedded in the HTML as base64 PNGs, so both render
offline: precision-recall over the threshold, match-weight histogram, cluster-size distribution (quality
suites) and stage timings with peak memory (speed suite). Every target is stated with its measured
figure and whether it was met.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from benchmarks.common import OUT

SCORE_COLUMNS = (
    ("precision", "pairwise P"),
    ("recall", "pairwise R"),
    ("f1", "pairwise F1"),
    ("bcubed_f1", "B-cubed F1"),
    ("false_merge_clusters", "false-merge clusters"),
    ("split_persons", "split persons"),
)
SYSTEM_LABEL = {"ours": "mdm", "splink": "plain Splink"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1.0 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pr_chart(suite: dict[str, Any]) -> bytes:
    """Pairwise precision and recall against the threshold, for both systems."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for key, style in (("ours", "-"), ("splink", "--")):
        run = suite.get(key)
        if not run:
            continue
        curve = run["curve"]
        ts = [row["threshold"] for row in curve]
        ax.plot(
            ts, [row["precision"] for row in curve], style, marker="o", label=f"{SYSTEM_LABEL[key]} precision"
        )
        ax.plot(ts, [row["recall"] for row in curve], style, marker="s", label=f"{SYSTEM_LABEL[key]} recall")
    ax.set_xlabel("match-probability threshold")
    ax.set_ylabel("pairwise")
    ax.set_title(f"{suite['suite']}: precision and recall over the threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def weight_chart(suite: dict[str, Any]) -> bytes:
    """Our scored pairs' match weights, true matches and non-matches stacked."""
    hist = suite["ours"]["weight_histogram"]
    edges = hist["edges"]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    if edges:
        lefts, widths = edges[:-1], [b - a for a, b in itertools.pairwise(edges)]
        ax.bar(lefts, hist["match"], widths, align="edge", label="true match", color="tab:green")
        ax.bar(
            lefts,
            hist["non_match"],
            widths,
            bottom=hist["match"],
            align="edge",
            label="non-match",
            color="tab:red",
        )
        ax.set_yscale("symlog")
    ax.set_xlabel("match weight (log2 Bayes factor incl. prior)")
    ax.set_ylabel("pairs")
    ax.set_title(f"{suite['suite']}: match weights of scored pairs (mdm)")
    ax.legend(fontsize=7)
    return _png(fig)


def cluster_chart(suite: dict[str, Any]) -> bytes:
    """Cluster-size distribution of both systems at their own thresholds."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for offset, key in ((-0.2, "ours"), (0.2, "splink")):
        run = suite.get(key)
        if not run:
            continue
        sizes = run["cluster_sizes"]
        ax.bar(
            [s + offset for s, _ in sizes],
            [c for _, c in sizes],
            0.4,
            label=f"{SYSTEM_LABEL[key]} (p >= {run['threshold']})",
        )
    ax.set_yscale("log")
    ax.set_xlabel("cluster size (records)")
    ax.set_ylabel("clusters")
    ax.set_title(f"{suite['suite']}: cluster sizes")
    ax.legend(fontsize=7)
    return _png(fig)


def stage_chart(size: dict[str, Any]) -> bytes:
    """Wall time and peak memory of each stage, plain Splink's match-only run last."""
    rows = [s for s in size["stages"] if "seconds" in s]
    names = [s["stage"] for s in rows]
    secs = [float(s["seconds"]) for s in rows]
    mem = [float(s.get("peak_mb", 0.0)) / 1024 for s in rows]
    splink = size["splink"]
    if "seconds" in splink and not splink.get("skipped"):
        names.append("plain Splink" + (" (killed)" if "killed" in splink else ""))
        secs.append(float(splink["seconds"]))
        mem.append(float(splink.get("peak_mb", 0.0)) / 1024 or float(splink.get("at_gb", 0.0)))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.barh(names, secs, color="tab:blue")
    a1.set_xlabel("seconds")
    a1.invert_yaxis()
    a2.barh(names, mem, color="tab:orange")
    a2.set_xlabel("peak memory (GB)")
    a2.invert_yaxis()
    fig.suptitle(f"speed at {size['records']:,} records: stages")
    return _png(fig)


def quality_rows(result: dict[str, Any]) -> list[list[Any]]:
    """Summary rows: one per suite, system and threshold kind."""
    rows: list[list[Any]] = []
    for suite in result["suites"]:
        for key in ("ours", "splink"):
            run = suite.get(key)
            if not run:
                rows.append([suite["suite"], SYSTEM_LABEL[key], "failed", "", *[""] * len(SCORE_COLUMNS)])
                continue
            for kind in ("at_threshold", "best"):
                row = run[kind]
                label = f"{row['threshold']}" + (" (best, from truth)" if kind == "best" else "")
                rows.append(
                    [
                        suite["suite"],
                        SYSTEM_LABEL[key],
                        label,
                        suite["records"],
                        *[row[c] for c, _ in SCORE_COLUMNS],
                    ]
                )
    return rows


def target_rows(result: dict[str, Any]) -> list[list[Any]]:
    """Every target with its measured figure and whether it was met."""
    return [
        [suite["suite"], t["target"], t["measured"], "met" if t["met"] else "**missed**"]
        for suite in result["suites"]
        for t in suite["targets"]
    ]


def speed_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One row per stage per size, plus the total and plain Splink."""
    rows: list[list[Any]] = []
    for size in result["sizes"]:
        for s in size["stages"]:
            status = s.get("killed") or ("error" if "error" in s else "")
            rows.append(
                [size["size"], s["stage"], float(s.get("seconds", 0.0)), float(s.get("peak_mb", 0.0)), status]
            )
        rows.append(
            [
                size["size"],
                "**whole batch**",
                size["total_seconds"],
                size["peak_mb"],
                "" if size["complete"] else "incomplete",
            ]
        )
        sp = size["splink"]
        if not sp.get("skipped"):
            status = (
                f"killed ({sp['killed']}) at {sp['at_gb']} GB"
                if "killed" in sp
                else ("error" if "error" in sp else "")
            )
            rows.append(
                [
                    size["size"],
                    "plain Splink match-only",
                    float(sp.get("seconds", 0.0)),
                    float(sp.get("peak_mb", 0.0)) or float(sp.get("at_gb", 0.0)) * 1024,
                    status,
                ]
            )
    return rows


def _speed_quality_rows(result: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for size in result["sizes"]:
        for key, scores in size["quality"].items():
            rows.append([size["size"], SYSTEM_LABEL[key], *[scores[c] for c, _ in SCORE_COLUMNS]])
    return rows


def _sections(suite_name: str, result: dict[str, Any]) -> tuple[list[str], list[tuple[str, bytes]]]:
    """Markdown blocks and named charts of one result."""
    env = result.get("environment", {})
    blocks = [
        f"# Benchmark report: {suite_name}" + (" (smoke)" if result.get("smoke") else ""),
        "Machine and versions: "
        + ", ".join(f"{k} {v}" for k, v in env.items())
        + ". Figures are measured in this run; plain Splink runs in the same command on the same data.",
    ]
    charts: list[tuple[str, bytes]] = []
    if suite_name == "quality":
        blocks.append(
            "## Targets\n\n" + _table(["suite", "target", "measured", "status"], target_rows(result))
        )
        blocks.append(
            "## Scores\n\nOur threshold is the rule set's upper threshold (chosen without truth); plain Splink "
            "is reported at p >= 0.9. The 'best' rows pick the grid threshold with the highest pairwise F1 by "
            "reading truth: an upper bound, not an operating point.\n\n"
            + _table(
                ["suite", "system", "threshold", "records", *[h for _, h in SCORE_COLUMNS]],
                quality_rows(result),
            )
        )
        for suite in result["suites"]:
            for kind, err in suite.get("errors", {}).items():
                blocks.append(
                    f"**{suite['suite']}: {SYSTEM_LABEL[kind]} failed**\n\n```\n{err.strip()[-1500:]}\n```"
                )
            if suite.get("ours") or suite.get("splink"):
                charts.append((f"{suite['suite']}-pr", pr_chart(suite)))
                charts.append((f"{suite['suite']}-sizes", cluster_chart(suite)))
            if suite.get("ours"):
                charts.append((f"{suite['suite']}-weights", weight_chart(suite)))
    else:
        blocks.append(
            f"## Stages\n\nGenerated kinds: {', '.join(result.get('kinds', []))}. Each stage runs in its own "
            "process (peak = that process's peak resident memory). Plain Splink's match-only run is capped at "
            f"{result.get('splink_memory_cap_gb')} GB and {result.get('splink_time_limit_s')} s.\n\n"
            + _table(["size", "stage", "seconds", "peak MB", "status"], speed_rows(result))
        )
        ratios = [
            [s["size"], s["ratios"].get("time", "n/a"), s["ratios"].get("memory", "n/a")]
            for s in result["sizes"]
        ]
        blocks.append("## Ours / plain Splink\n\n" + _table(["size", "time ratio", "memory ratio"], ratios))
        blocks.append(
            "## Quality against the generator's truth\n\n"
            + _table(["size", "system", *[h for _, h in SCORE_COLUMNS]], _speed_quality_rows(result))
        )
        charts += [(f"stages-{s['size']}", stage_chart(s)) for s in result["sizes"]]
    return blocks, charts


def write_report(
    suite_name: str, result: dict[str, Any], stem: str, folder: Path | None = None
) -> tuple[Path, Path]:
    """Write ``<stem>.md`` (charts as PNG files in ``<stem>-charts/``) and a self-contained ``<stem>.html``."""
    target = folder or OUT / "reports"
    chart_dir = target / f"{stem}-charts"
    chart_dir.mkdir(parents=True, exist_ok=True)
    blocks, charts = _sections(suite_name, result)
    md_charts, html_charts = [], []
    for name, png in charts:
        (chart_dir / f"{name}.png").write_bytes(png)
        md_charts.append(f"![{name}]({chart_dir.name}/{name}.png)")
        html_charts.append(
            f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        )
    md_path = target / f"{stem}.md"
    md_path.write_text("\n\n".join([*blocks, "## Charts", *md_charts]) + "\n", encoding="utf-8")
    html_path = target / f"{stem}.html"
    html_path.write_text(_html(blocks, html_charts), encoding="utf-8")
    return md_path, html_path


def _html(blocks: list[str], images: list[str]) -> str:
    """The Markdown blocks rendered to HTML (markdown-it, tables on), then the embedded charts."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render("\n\n".join(blocks))
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}img{margin:6px;max-width:48%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>mdm benchmarks</title><style>{style}</style>"
        f"</head><body>{body}<h2>Charts</h2>{''.join(images)}</body></html>\n"
    )
