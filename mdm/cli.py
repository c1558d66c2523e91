"""The `mdm` command line: every command takes --db (default $MDM_DB, else ./mdm.duckdb)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from api.cli import api_app
from mdm.bench_cli import bench_app
from mdm.cli_common import DEFAULT_DB, ConfigOption, DbOption, echo_error, exit_error, fail, open_store
from mdm.compliance.cli import register as register_compliance
from mdm.config import load_sources
from mdm.engines import check_engine
from mdm.erasure_cli import erase_app
from mdm.errors import MdmError
from mdm.review_cli import labels_app, review_app

app = typer.Typer(help="Customer master data: ingest, match, golden records.", no_args_is_help=True)


def show(frame: pl.DataFrame) -> None:
    """Print a frame as a plain table."""
    with pl.Config(
        tbl_rows=200, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=300, tbl_hide_dataframe_shape=True
    ):
        typer.echo(str(frame))


@app.command()
def sources(config: ConfigOption = None, db: DbOption = DEFAULT_DB) -> None:
    """List the configured sources."""
    try:
        cfgs = load_sources(config)
    except MdmError as exc:
        fail(exc)
    rows = [
        {
            "source": c.name,
            "format": c.format,
            "pattern": c.pattern,
            "key": c.natural_key,
            "encoding": c.encoding,
            "trust": c.trust_rank,
            "extract": c.extract,
            "basis": c.legal_basis or "MISSING",
            "retention_days": c.retention_period_days,
            "cross_border": c.cross_border,
            "owner": c.data_owner,
        }
        for c in cfgs.values()
    ]
    show(pl.DataFrame(rows))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Folders in the sources' layout, or files.")],
    source: Annotated[str | None, typer.Option(help="Take every file as this source.")] = None,
    config: ConfigOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Read, standardize and store source files: one batch per source, all or nothing per source."""
    from mdm.ingest import ingest_paths

    try:
        cfgs = load_sources(config)
        with open_store(db) as store:
            results, unclaimed = ingest_paths(store, paths, cfgs, source)
    except MdmError as exc:
        fail(exc)
    show(
        pl.DataFrame(
            [
                {
                    "batch": r.batch_id,
                    "source": r.source,
                    "read": r.n_read,
                    "new": r.n_new,
                    "changed": r.n_changed,
                    "unchanged": r.n_unchanged,
                    "ended": r.n_ended,
                    "rejected": r.n_rejected,
                }
                for r in results
            ]
        )
    )
    for path in unclaimed:
        typer.secho(f"skipped (no source matches): {path}", fg=typer.colors.YELLOW, err=True)


@app.command()
def dq(db: DbOption = DEFAULT_DB) -> None:
    """Data-quality flags and rejected rows per source and field."""
    try:
        with open_store(db) as store:
            show(store.dq_summary())
    except MdmError as exc:
        fail(exc)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the source files and truth.csv into.")],
    persons: Annotated[int, typer.Option(help="Number of distinct persons.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 7,
    profile: Annotated[str, typer.Option(help="Noise profile: sample or hard.")] = "sample",
    kinds: Annotated[str | None, typer.Option(help="Comma-separated file kinds (default: all).")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a synthetic, seeded set of source files with their truth."""
    from mdm.generate import generate as run

    result = run(out, persons=persons, seed=seed, profile=profile, kinds=kinds.split(",") if kinds else None)
    typer.echo(str(result))


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Working folder for generated data and the database.")] = Path(
        "demo"
    ),
    persons: Annotated[int, typer.Option(help="Number of distinct persons to generate.")] = 300,
    seed: int = 7,
    db: Annotated[
        Path | None, typer.Option("--db", envvar="MDM_DB", help="Database (default WORKDIR/mdm.duckdb).")
    ] = None,
) -> None:
    """Generate a small dataset, ingest it and show what happened."""
    from mdm.demo import run_demo

    try:
        run_demo(workdir, persons=persons, seed=seed, db=db or workdir / "mdm.duckdb", echo=typer.echo)
    except MdmError as exc:
        fail(exc)


export_app = typer.Typer(
    help="Write cross-reference, golden records or events to a file.", no_args_is_help=True
)
app.add_typer(export_app, name="export")
app.add_typer(erase_app, name="erase")
register_compliance(app)
app.add_typer(api_app)
app.add_typer(review_app, name="review")
app.add_typer(labels_app, name="labels")
app.add_typer(bench_app, name="bench")


RUN_EXIT_CODES = (
    "Exit codes: 0 success (also when there was nothing to do); 1 internal error (the run is rolled back "
    "and recorded as failed); 2 bad input (unreadable database, missing model file); "
    "3 another run holds the lock (after --wait seconds)."
)


def _stage_logger(tty: bool):  # type: ignore[no-untyped-def]
    """A stage hook and a closer: a progress bar on a terminal, one JSON line per stage on stderr otherwise."""
    import json
    from datetime import UTC, datetime

    from mdm.pipeline import STAGES

    if not tty:

        def log(stage: str, seconds: float, info: dict[str, object]) -> None:
            line = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": "stage"}
            typer.echo(json.dumps({**line, "stage": stage, "seconds": round(seconds, 3), **info}), err=True)

        return log, lambda: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True)
    task = bar.add_task("run: load", total=len(STAGES))
    bar.start()

    def advance(stage: str, seconds: float, info: dict[str, object]) -> None:
        nxt = STAGES.index(stage) + 1
        bar.update(task, completed=nxt, description=f"run: {STAGES[nxt] if nxt < len(STAGES) else 'done'}")

    return advance, bar.stop


@app.command(epilog=RUN_EXIT_CODES)
def run(
    model: Annotated[
        Path | None, typer.Option(help="Trained model JSON (default: the store's latest).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Re-match every record, not only the new ones.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute and report what would change; write nothing.")
    ] = False,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for another run to finish before giving up.")
    ] = 0.0,
    reports: Annotated[
        Path | None, typer.Option(help="Folder of run reports (default: reports/ beside the database).")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Where pairs are scored: duckdb (in process) or spark (a full re-match on Splink's Spark "
            "backend; master from $MDM_SPARK_MASTER, default local[2]; needs pip install 'mdm[spark]')."
        ),
    ] = "duckdb",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Take in every batch since the last run: match the new and changed records, re-cluster the customers
    they touch, assign IDs, build golden records and write a report (JSON + HTML).

    Progress: a bar on a terminal, else one JSON line per stage on stderr.
    """
    from mdm.pipeline import RunInputError, run_batch
    from mdm.runlock import run_lock

    try:
        chosen = check_engine(engine)
    except ValueError as exc:
        fail(RunInputError(str(exc)))
    hook, close = _stage_logger(sys.stderr.isatty())
    try:
        with run_lock(db, wait) as stale:
            if stale is not None:
                typer.secho(
                    f"took over the stale lock of {stale.describe()}", fg=typer.colors.YELLOW, err=True
                )
            try:
                store = open_store(db)
            except MdmError as exc:
                raise RunInputError(str(exc)) from None
            with store:
                summary = run_batch(
                    store,
                    model_path=model,
                    full=full,
                    dry_run=dry_run,
                    reports_dir=reports,
                    on_stage=hook,
                    engine=chosen,
                )
    except MdmError as exc:
        close()
        fail(exc)
    except Exception as exc:
        close()
        exit_error(f"internal error ({type(exc).__name__}); the run was rolled back", 1)
    close()
    for line in summary.lines():
        typer.echo(line)


@app.command(epilog="Exit codes: 0 success; 2 no such run.")
def report(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id, or 'latest'.")] = "latest",
    reports: Annotated[
        Path | None, typer.Option(help="Folder of run reports (default: reports/ beside the database).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print the summary of a run's report and where its JSON and HTML files are (rebuilt if missing)."""
    from mdm.report import build_report, load_report, report_paths, summary_lines, write_report

    folder = reports or db.parent / "reports"
    try:
        if run_id != "latest" and not run_id.isdigit():
            raise typer.BadParameter(f"expected a run id or 'latest', got {run_id!r}")
        with open_store(db) as store:
            wanted = int(run_id) if run_id.isdigit() else store.query("SELECT max(run_id) FROM runs").item()
            doc = None if wanted is None else load_report(folder, int(wanted))
            if doc is None and wanted is not None and store.run_row(int(wanted)) is not None:
                doc = build_report(store, int(wanted))
                write_report(doc, folder)
    except MdmError as exc:
        fail(exc)
    if doc is None:
        exit_error(f"no run {run_id}", 2)
    for line in summary_lines(doc):
        typer.echo(line)
    for path in report_paths(folder, int(doc["run_id"])):
        typer.echo(f"  {path}")


@app.command()
def train(
    out: Annotated[Path | None, typer.Option(help="Model JSON (default: beside the database).")] = None,
    ruleset: Annotated[str, typer.Option(help="Rule set name in matching_rules/rulesets.")] = "person",
    seed: Annotated[int, typer.Option(help="Random seed of u sampling.")] = 42,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Train the matching model (u by random sampling, m by EM) on the current records and save it."""
    from matching_rules import load_ruleset
    from mdm.matching.train import train as fit
    from mdm.pipeline import default_model_path

    try:
        with open_store(db) as store:
            model = fit(store.current_records(), load_ruleset(ruleset), seed=seed)
            path = model.save(out or default_model_path(store, ruleset))
    except MdmError as exc:
        fail(exc)
    typer.echo(f"trained {model.version} on data {model.data_version}; prior {model.prior:.3g}; saved {path}")


def _record_ref(ref: str) -> tuple[str, str]:
    source, sep, key = ref.partition(":")
    if not sep or not key:
        raise typer.BadParameter(f"expected SOURCE:KEY, got {ref!r}")
    return source, key


@app.command()
def explain(
    left: Annotated[str, typer.Argument(help="SOURCE:KEY of the first record")],
    right: Annotated[str, typer.Argument(help="SOURCE:KEY of the second record")],
    model: Annotated[Path | None, typer.Option(help="Model JSON (default: beside the database).")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """The match weight of every comparison and the prior for two records (a waterfall)."""
    from mdm.matching.explain import explain_records, format_waterfall
    from mdm.matching.train import TrainedModel
    from mdm.pipeline import default_model_path

    try:
        with open_store(db) as store:
            left_rid, right_rid = (store.rid_of(*_record_ref(ref)) for ref in (left, right))
            if left_rid is None or right_rid is None:
                missing = [ref for ref, rid in ((left, left_rid), (right, right_rid)) if rid is None]
                raise MdmError(f"no such record: {', '.join(missing)}")
            path = model or default_model_path(store, "person")
            if not path.exists():
                raise MdmError(f"{path}: no trained model; run `mdm train` or `mdm run` first")
            steps = explain_records(store.current_records(), left_rid, right_rid, TrainedModel.load(path))
    except MdmError as exc:
        fail(exc)
    typer.echo(format_waterfall(steps))


@export_app.command("xref")
def export_xref(
    out: Annotated[Path, typer.Option(help="CSV file: source,source_key,customer_id")],
    db: DbOption = DEFAULT_DB,
    as_clusters: Annotated[
        bool,
        typer.Option(
            "--as-clusters", help="name the ID column cluster_id, as ../shared/eval/score.py reads it"
        ),
    ] = False,
) -> None:
    """The current cross-reference of every current source record."""
    try:
        with open_store(db) as store:
            frame = store.current_xref().select(
                "source",
                "source_key",
                pl.col("customer_id").alias("cluster_id" if as_clusters else "customer_id"),
            )
    except MdmError as exc:
        fail(exc)
    frame.write_csv(out)
    typer.echo(f"wrote {frame.height} rows to {out}")


@export_app.command("golden")
def export_golden(
    out: Annotated[
        Path, typer.Option(help="FILE.csv or FILE.parquet (Parquet is encrypted under MDM_DB_KEY)")
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """The latest golden record of every live customer, with lineage."""
    try:
        with open_store(db) as store:
            if out.suffix == ".parquet":
                n = store.export_parquet(
                    "SELECT g.* FROM golden_latest g JOIN customers c USING (customer_id) WHERE c.status = 'live'",
                    out,
                )
            else:
                frame = store.golden_current()
                frame.write_csv(out)
                n = frame.height
    except MdmError as exc:
        fail(exc)
    typer.echo(f"wrote {n} golden records to {out}")


@export_app.command("events")
def export_events(
    out: Annotated[Path, typer.Option(help="CSV file of ID events")],
    since: Annotated[int | None, typer.Option(help="Only events after this run id.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """The change feed: created, merged_into, split_from, record_moved ... events."""
    try:
        with open_store(db) as store:
            frame = store.events_since(run_id=since)
    except MdmError as exc:
        fail(exc)
    frame.write_csv(out)
    typer.echo(f"wrote {frame.height} events to {out}")


@app.command("show")
def show_customer(
    customer_id: Annotated[str, typer.Argument(help="Customer ID (a retired ID shows its successor).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """A golden record with the lineage of every value; identifiers masked."""
    from mdm.privacy import mask_golden

    try:
        with open_store(db) as store:
            doc = store.customer(customer_id)
    except MdmError as exc:
        fail(exc)
    if doc is None:
        exit_error(f"no customer {customer_id}", 1)
    if doc["requested_id"] != doc["customer_id"]:
        typer.echo(f"{doc['requested_id']} was merged into {doc['customer_id']}")
    typer.echo(f"customer {doc['customer_id']} ({doc['status']}), golden version {doc['version']}")
    lineage = doc["lineage"]
    for name, value in mask_golden(doc["attributes"]).items():
        src = lineage.get(name) if isinstance(lineage, dict) else None
        where = (
            f"  <- {src.get('source')}:{src.get('source_key')} {src.get('field')}"
            if isinstance(src, dict)
            else ""
        )
        typer.echo(f"  {name:<12} {value}{where}")
    typer.echo(f"  records ({len(doc['records'])}):")
    for rec in doc["records"]:
        typer.echo(f"    {rec['source']}:{rec['source_key']}")


def main() -> None:
    """Entry point that turns unexpected errors into exit code 70 without a stack trace of data."""
    try:
        app()
    except MdmError as exc:
        echo_error(str(exc))
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
