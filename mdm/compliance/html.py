"""The compliance report as one self-contained HTML page: tables and inline SVG charts, no script, no CDN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

CLASS_COLOURS = {"C1": "#7fb77e", "C2": "#e3a33b", "C3": "#c8443b"}
SEVERITY_COLOURS = {"blocking": "#c8443b", "warning": "#e3a33b", "info": "#6c8ebf"}


def stacked_bars(
    rows: Sequence[tuple[str, Mapping[str, int]]], colours: Mapping[str, str], title: str
) -> str:
    """Horizontal stacked bar chart as an SVG element: one bar per label, one segment per series."""
    width, label_w, bar_h, gap = 760, 170, 18, 8
    total_max = max((sum(v.values()) for _, v in rows), default=0) or 1
    height = 40 + len(rows) * (bar_h + gap) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    scale = (width - label_w - 80) / total_max
    for i, (label, values) in enumerate(rows):
        y = 30 + i * (bar_h + gap)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{escape(label)}</text>')
        x = float(label_w)
        for series, colour in colours.items():
            n = values.get(series, 0)
            if n <= 0:
                continue
            w = n * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                f"<title>{escape(label)} {escape(series)}: {n}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}" font-size="11">{sum(values.values())}</text>')
    legend_y = height - 12
    for j, (series, colour) in enumerate(colours.items()):
        lx = label_w + j * 110
        parts.append(f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{legend_y}" font-size="12">{escape(series)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of dict rows (values escaped)."""
    if not rows:
        return "<p><em>none</em></p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _class_rows(report: Mapping[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """Per source, values held per class (for the inventory chart)."""
    out: dict[str, dict[str, int]] = {}
    for row in report["by_class"]:
        out.setdefault(row["source"], {})[row["class"]] = int(row["values"])
    return sorted(out.items())


def _erasure_rows(report: Mapping[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """Erasure requests by completion (for the erasure chart)."""
    e = report["erasure"]
    return [
        (
            "requests",
            {
                "completed": int(e.get("erased_completed", 0)),
                "pending": int(e.get("erased_pending", 0)),
                "restricted": int(e.get("restricted", 0)),
            },
        )
    ]


def render_html(report: Mapping[str, Any]) -> str:
    """The report page."""
    verdict = "BLOCKED: blocking findings" if report["blocking"] else "no blocking finding"
    colour = SEVERITY_COLOURS["blocking"] if report["blocking"] else "#4a8c4a"
    findings = sorted(report["findings"], key=lambda f: ["blocking", "warning", "info"].index(f["severity"]))
    perms = report["permissions"]
    sections = [
        f"<h1>Compliance self-check</h1><p>as of {escape(report['as_of'])}, database "
        f"{escape(report['database']['path'])} (encrypted: {report['database']['encrypted']}); "
        f"classification {escape(report['classification'])}</p>",
        f'<p style="font-size:18px;color:{colour}"><strong>{escape(verdict)}</strong></p>',
        "<h2>Findings</h2>",
        table(findings, ["severity", "code", "message"]),
        "<h2>Legal basis per source</h2>",
        table(
            report["sources"],
            [
                "source",
                "legal_basis",
                "article",
                "proof_ref",
                "purpose",
                "retention_days",
                "cross_border",
                "data_owner",
                "records",
                "batches_without_basis",
                "missing",
            ],
        ),
        "<h2>Inventory</h2>",
        stacked_bars(_class_rows(report), CLASS_COLOURS, "Values held per source and class"),
        table(report["inventory"], ["source", "field", "class", "records", "encrypted", "hmac_indexed"]),
        "<h2>Retention</h2>",
        table(
            [
                {"source": s, "records past retention": n}
                for s, n in report["retention"]["past_retention"].items()
            ]
        ),
        "<h2>Cross-border sources</h2>",
        table([{"source": s} for s in report["cross_border"]]),
        "<h2>Access review</h2>",
        table(report["access_review"].get("per_key", []))
        if report["access_review"].get("status") == "ok"
        else f"<p>{escape(str(report['access_review']))}</p>",
        "<h3>Unmasks</h3>",
        table(report["access_review"].get("unmasks", [])),
        "<h3>Keys unused for 90 days</h3>",
        table(report["access_review"].get("unused_keys", [])),
        "<h2>Permission simulation</h2>",
        f"<p>live check: {escape(str(perms['live_check']))}</p>",
        table(perms["matrix"], ["role", "field", "class", "view", "unmask"]),
        "<h2>Audit chain</h2>",
        f"<p>{escape(str(report['audit_chain']))}</p>",
        "<h2>Erasure requests</h2>",
        stacked_bars(
            _erasure_rows(report),
            {"completed": "#7fb77e", "pending": "#c8443b", "restricted": "#e3a33b"},
            "Erasure requests by completion",
        ),
        table(report["erasure"].get("items", [])),
        "<h2>Partner exports</h2>",
        table(
            report["exports"], ["export_id", "kind", "profile", "partner", "n_rows", "actor", "exported_at"]
        ),
        "<h2>Webhook subscriptions</h2>",
        table(report["webhooks"]),
    ]
    style = (
        "body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;text-align:left}th{background:#eee}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mdm compliance self-check</title>'
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )
