"""`mdm erase`: erasure requests (PIPL) by customer or by source key, and release of expired AML holds."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mdm.cli_common import DEFAULT_DB, DbOption, fail, open_store
from mdm.erasure import ErasureResult, RetentionPolicy, load_retention
from mdm.errors import MdmError

if TYPE_CHECKING:
    from mdm.store.erasure_repo import ErasureRepo

erase_app = typer.Typer(
    help="Erase a person's data, or restrict it while an anti-money-laundering hold lasts.",
    invoke_without_command=True,
    no_args_is_help=True,
)

PolicyOption = Annotated[
    Path | None, typer.Option("--policy", help="Retention policy YAML (default: the shipped one).")
]


def _open(db: Path) -> ErasureRepo:
    """The store at ``db`` (encrypted when MDM_DB_KEY is set), refused when it cannot erase."""
    store = open_store(db)
    if not hasattr(store, "erase_customer"):
        store.close()
        raise MdmError("this store has no erasure support (ErasureRepo is not mixed into Store)")
    return store  # type: ignore[return-value]


def _say(result: ErasureResult) -> None:
    """Print what a request did: erased or restricted, never a value of the person."""
    colour = typer.colors.GREEN if result.action == "erased" else typer.colors.YELLOW
    typer.secho(result.message(), fg=colour)


def _policy(path: Path | None) -> RetentionPolicy:
    """The retention policy to apply."""
    return load_retention(path)


@erase_app.callback()
def erase(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option("--customer", help="Customer ID to erase.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source of the record to erase.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Source key of the record to erase.")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (e.g. the request's reference).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Who asks (default: the OS user).")] = None,
    policy: PolicyOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Erase a customer (--customer) or one record (--source and --key); under a hold, restrict instead."""
    ctx.obj = {"db": db, "policy": policy}
    if ctx.invoked_subcommand is not None:
        return
    if not reason:
        fail(MdmError("--reason is required"))
    if (customer is None) == (source is None or key is None):
        fail(MdmError("give either --customer, or --source and --key"))
    actor = user or getpass.getuser()
    now = datetime.now(UTC)
    try:
        rules = _policy(policy)
        store = _open(db)
        try:
            if customer is not None:
                result = store.erase_customer(customer, str(reason), actor, now, rules)
            else:
                result = store.erase_record(str(source), str(key), str(reason), actor, now, rules)
        finally:
            store.close()  # type: ignore[attr-defined]
    except MdmError as exc:
        fail(exc)
    _say(result)


@erase_app.command("release-holds")
def release_holds(ctx: typer.Context) -> None:
    """Erase restricted data whose anti-money-laundering hold has ended."""
    db: Path = ctx.obj["db"]
    try:
        rules = _policy(ctx.obj["policy"])
        store = _open(db)
        try:
            done = store.release_expired_holds(datetime.now(UTC), rules)
            still = store.query("SELECT count(*) AS n FROM tombstones WHERE action = 'restricted'").item()
        finally:
            store.close()  # type: ignore[attr-defined]
    except MdmError as exc:
        fail(exc)
    for result in done:
        _say(result)
    typer.echo(f"{len(done)} holds ended and erased; {still} still restricted")
