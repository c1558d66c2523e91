"""``python -m benchmarks quality|speed|incremental|api|labels [--suite NAME] [--size 100k|1m] [--smoke] [--db DB]``.

Runs a suite, writes one JSON result under bench_out/results (machine, versions, git commit, every
figure) and, for quality and speed, a Markdown + HTML report under bench_out/reports, and prints a short
summary. ``incremental`` times a nightly run of a small delta against a large resolved store.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SIZES, write_result
from benchmarks.report import write_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("kind", choices=["quality", "speed", "incremental", "api", "labels"])
    parser.add_argument("--db", type=Path, help="labels: the store whose steward decisions are the labels")
    parser.add_argument("--suite", action="append", help="quality suite to run (repeatable; default all)")
    parser.add_argument("--size", default="100k", help="speed: 100k, 1m or both as 100k,1m")
    parser.add_argument(
        "--endpoints", default="xref,customer,match", help="api: comma list of xref, customer, match"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the harness, not the figures"
    )
    parser.add_argument(
        "--splink-mem-gb", type=float, default=12.0, help="speed: memory cap for plain Splink"
    )
    parser.add_argument(
        "--splink-timeout", type=float, default=300.0, help="speed: time limit for plain Splink"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[Path, list[Path], dict[str, Any]]:
    """Run the chosen suite; returns the result JSON, the report paths and the result."""
    t0 = time.perf_counter()
    if args.kind == "labels":
        from benchmarks import labels

        if args.db is None:
            raise SystemExit("labels needs --db: the store holding the steward decisions")
        result = labels.run(args.db)
    elif args.kind == "api":
        from benchmarks import api_latency

        endpoints = tuple(e for e in args.endpoints.split(",") if e)
        result = api_latency.run(args.size, smoke=args.smoke, endpoints=endpoints)
    elif args.kind == "incremental":
        from benchmarks import incremental

        label = "smoke" if args.smoke else args.size
        if label not in incremental.SIZES:
            raise SystemExit(f"unknown size {label!r}; known: {', '.join(incremental.SIZES)}")
        result = incremental.run(label)
    elif args.kind == "quality":
        from benchmarks import quality

        result = quality.run(args.suite, smoke=args.smoke)
    else:
        from benchmarks import speed

        sizes = [s for s in args.size.split(",") if s]
        unknown = [s for s in sizes if s not in SIZES]
        if unknown:
            raise SystemExit(f"unknown size {unknown}; known: {', '.join(SIZES)}")
        runs = [
            speed.run(s, args.smoke, args.splink_mem_gb, args.splink_timeout)
            for s in sizes[: 1 if args.smoke else None]
        ]
        result = {**runs[0], "sizes": [size for r in runs for size in r["sizes"]]}
    result["wall_seconds"] = time.perf_counter() - t0
    path = write_result(args.kind + ("-smoke" if args.smoke else ""), result)
    from json import loads

    body = loads(path.read_text())
    if args.kind in ("incremental", "api", "labels"):
        return path, [], body
    md, html = write_report(args.kind, body, path.stem)
    return path, [md, html], body


def summary(kind: str, result: dict[str, Any]) -> list[str]:
    """A few lines for the terminal."""
    if kind == "labels":
        return [
            f"{result['labels']} steward labels ({result['match_labels']} match): at p >= {a['threshold']} "
            f"precision {a['precision']:.3f} recall {a['recall']:.3f} F1 {a['f1']:.3f}"
            for a in result["at"]
        ]
    if kind == "api":
        return [
            f"{result['size']}: {r['endpoint']:<8} max {r['max_rps']}/s; offered {r['offered_rps']}/s achieved {r['achieved_rps']}/s "
            f"p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms (target p99 < {r['target_p99_ms']} ms) {r['statuses']}"
            for r in result["results"]
        ] + [
            f"{result['size']}: {ep:<8} wrk {w['connections']} connections: {w.get('rps')}/s p50 {w.get('p50_ms')} ms "
            f"p99 {w.get('p99_ms')} ms"
            for ep, runs in (result["wrk"] if isinstance(result["wrk"], dict) else {}).items()
            for w in runs
        ]
    if kind == "incremental":
        q = result.get("quality", {})
        return [
            f"{result['size']}: incremental run of {result.get('delta_records', 0):,} records against "
            f"{result.get('base_records', 0):,}: {result.get('incremental_seconds', float('nan')):.1f} s, "
            f"peak {result.get('incremental_peak_mb', float('nan')):.0f} MB (target < {result.get('target_seconds')} s); "
            f"vs full F1 {q.get('incremental_vs_full', {}).get('f1', float('nan')):.4f}, "
            f"identical IDs {q.get('identical_ids')}"
        ]
    if kind == "quality":
        lines = []
        for s in result["suites"]:
            figures = [
                f"{name} F1 {run['at_threshold']['f1']:.4f} (p>={run['threshold']})"
                for name, run in (("ours", s["ours"]), ("splink", s["splink"]))
                if run
            ]
            missed = sum(not t["met"] for t in s["targets"])
            lines.append(
                f"{s['suite']:<16} {s['records']:>7,} rec  "
                + ", ".join(figures)
                + f"  targets missed: {missed}"
            )
        return lines
    return [
        f"{s['size']:<6} {s['records']:>9,} rec  whole batch {s['total_seconds']:.1f} s, peak {s['peak_mb']:.0f} MB; "
        f"plain Splink {s['splink'].get('killed') or round(float(s['splink'].get('seconds', 0)), 1)}"
        for s in result["sizes"]
    ]


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("splink").setLevel(logging.ERROR)
    args = parse_args(argv)
    path, reports, result = run(args)
    for line in summary(args.kind, result):
        print(line)
    print(f"result: {path}")
    for i, report in enumerate(reports):
        print(f"{'report:' if i == 0 else '       '} {report}")


if __name__ == "__main__":
    main()
