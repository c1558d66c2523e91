"""`mdm review` and `mdm labels`: the steward queue from the command line, for bulk and scripted review."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from mdm import steward
from mdm.cli_common import DEFAULT_DB, DbOption, fail, open_store
from mdm.errors import MdmError

review_app = typer.Typer(
    help="The steward review queue: list tasks, decide them, revoke decisions.", no_args_is_help=True
)
labels_app = typer.Typer(help="Steward decisions as pairwise labels.", no_args_is_help=True)

UserOption = Annotated[str, typer.Option("--user", help="The steward acting (recorded with the decision).")]
#: Columns of `mdm review list`, in order.
LIST_COLUMNS = (
    "task_id",
    "left_source",
    "left_key",
    "right_source",
    "right_key",
    "probability",
    "impact",
    "reasons",
    "status",
    "assignee",
)


class Format(StrEnum):
    """Output format of a listing."""

    csv = "csv"
    table = "table"


class Order(StrEnum):
    """Queue order."""

    impact = "impact"
    oldest = "oldest"


class DecisionArg(StrEnum):
    """A steward's answer to a task."""

    match = "match"
    no_match = "no-match"
    unsure = "unsure"


@labels_app.callback()
def labels_main() -> None:
    """Steward decisions as pairwise labels."""


@review_app.command("list")
def list_cmd(
    status: Annotated[str, typer.Option(help="open, claimed, decided, expired or all.")] = "open",
    source: Annotated[str | None, typer.Option(help="Only tasks with a record of this source.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only tasks claimed by this steward.")] = None,
    order: Annotated[Order, typer.Option(help="impact (highest first) or oldest.")] = Order.impact,
    fmt: Annotated[Format, typer.Option("--format", help="csv or table.")] = Format.table,
    limit: Annotated[int, typer.Option(help="At most this many tasks.")] = 100,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Review tasks, highest impact first."""
    try:
        with open_store(db) as store:
            frame = steward.list_tasks(
                store,
                status=None if status == "all" else status,
                source=source,
                assignee=assignee,
                order="oldest" if order is Order.oldest else "impact",
                limit=limit,
            )
    except MdmError as exc:
        fail(exc)
    frame = frame.select(LIST_COLUMNS)
    if fmt is Format.csv:
        typer.echo(frame.write_csv(), nl=False)
        return
    with pl.Config(tbl_rows=limit, tbl_cols=len(LIST_COLUMNS), fmt_str_lengths=40, tbl_width_chars=250):
        typer.echo(str(frame))


@review_app.command("decide")
def decide_cmd(
    task_id: Annotated[int, typer.Argument(help="The task to decide.")],
    decision: Annotated[DecisionArg, typer.Argument(help="match, no-match or unsure.")],
    user: UserOption,
    note: Annotated[str | None, typer.Option(help="Why (required for unsure).")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Decide a task: match and no-match become links the next run honours."""
    try:
        with open_store(db) as store:
            result = steward.decide_task(store, task_id, decision.value, user, note)  # type: ignore[arg-type]
    except MdmError as exc:
        fail(exc)
    link = f", link {result['link_id']}" if result["link_id"] is not None else ""
    typer.echo(f"task {task_id}: {decision.value} (decision {result['decision_id']}{link})")


@review_app.command("revoke")
def revoke_cmd(
    decision_id: Annotated[int, typer.Argument(help="The decision to revoke.")],
    user: UserOption,
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Revoke a decision (recorded, never deleted); its pair may come back to the queue."""
    try:
        with open_store(db) as store:
            steward.revoke_decision(store, decision_id, user, note)
    except MdmError as exc:
        fail(exc)
    typer.echo(f"decision {decision_id} revoked")


@labels_app.command("export")
def labels_export(
    out: Annotated[
        Path, typer.Option(help="CSV file: left_source,left_key,right_source,right_key,label,...")
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Active match / no-match decisions as pairwise labels."""
    try:
        with open_store(db) as store:
            frame = steward.labels(store)
    except MdmError as exc:
        fail(exc)
    frame.write_csv(out)
    typer.echo(f"wrote {frame.height} labels to {out}")
