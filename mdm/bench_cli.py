"""``mdm bench quality|speed|incremental|api|labels``: the benchmark suites from the command line.

A thin front to ``python -m benchmarks`` (same options, same JSON results under ``bench_out/results`` and
reports under ``bench_out/reports``); timings are reported, never asserted.
"""

from __future__ import annotations

from typing import Annotated

import typer

bench_app = typer.Typer(
    help="Benchmarks: match quality against plain Splink, speed, incremental runs, API latency."
)

Smoke = Annotated[bool, typer.Option(help="Tiny sizes: checks the harness, not the figures.")]
Size = Annotated[str, typer.Option(help="Size: 100k, 1m (speed also takes 100k,1m).")]


def _run(argv: list[str]) -> None:
    from benchmarks.__main__ import main

    main(argv)


@bench_app.command("quality")
def quality(
    suite: Annotated[
        list[str] | None,
        typer.Option(
            help="Suite to run (repeatable): sample, generated_10k, generated_100k, febrl3, febrl4, historical_50k (the default set), or generated_1m (opt-in: longer than the rest together)."
        ),
    ] = None,
    smoke: Smoke = False,
) -> None:
    """Our matching beside plain Splink on every quality suite (pairwise and B-cubed P/R/F1)."""
    _run(["quality", *[a for s in suite or [] for a in ("--suite", s)], *(["--smoke"] if smoke else [])])


@bench_app.command("speed")
def speed(size: Size = "100k", smoke: Smoke = False) -> None:
    """Every batch stage timed (wall time, peak memory) on generated data, plain Splink beside it."""
    _run(["speed", "--size", size, *(["--smoke"] if smoke else [])])


@bench_app.command("incremental")
def incremental(size: Size = "1m", smoke: Smoke = False) -> None:
    """A nightly run of a small delta against a large resolved store."""
    _run(["incremental", "--size", size, *(["--smoke"] if smoke else [])])


@bench_app.command("api")
def api(
    size: Size = "100k",
    smoke: Smoke = False,
    endpoints: Annotated[
        str, typer.Option(help="Comma list of xref, customer, match.")
    ] = "xref,customer,match",
) -> None:
    """API latency under open-loop load: xref lookup, customer read, real-time match."""
    _run(["api", "--size", size, "--endpoints", endpoints, *(["--smoke"] if smoke else [])])


@bench_app.command("labels")
def labels(
    db: Annotated[str, typer.Option(help="The store whose steward decisions are the labels.")],
) -> None:
    """The model's precision and recall against the stewards' match / no-match decisions."""
    _run(["labels", "--db", db])
