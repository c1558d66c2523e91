"""`mdm apikey create|list|revoke`, `mdm audit verify`, `mdm serve`: the API's commands.

Mount with ``app.add_typer(api_app)`` (no name: the commands join the root) or call ``register(app)``.
While a server runs it is the database's single writer: manage keys and verify the audit log through
its admin and auditor endpoints instead (``POST /v1/admin/keys``, ``GET /v1/audit/verify``).
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from api.policy import ROLES
from mdm.cli_common import DEFAULT_DB, DbOption, db_key, fail
from mdm.errors import MdmError

api_app = typer.Typer(help="HTTP API: keys, audit log, server.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys (only a salted, peppered hash is stored).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
api_app.add_typer(apikey_app, name="apikey")
api_app.add_typer(audit_app, name="audit")

EXIT_BROKEN = 4
#: The server's GIL switch interval (Python's default is 5 ms): a thread holding the GIL through a long C
#: call (the audit loader's insert) makes a request's thread wait at most this long, not 5 ms.
SWITCH_SECONDS = 0.001


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key (e.g. crm-prod).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create a key and print it once: it cannot be shown again."""
    from api.app import open_api_store
    from api.auth import create_key

    try:
        with open_api_store(db, db_key()) as store:
            new = create_key(store, name, role, f"cli:{getpass.getuser()}", ROLES)
            store.audit(action="apikey.create", user=getpass.getuser(), target=name, detail=f"role {role}")
    except MdmError as exc:
        fail(exc)
    typer.echo(f"key id {new.key_id} ({role}); store this key now, it is not shown again:")
    typer.echo(new.token)


@apikey_app.command("list")
def apikey_list(db: DbOption = DEFAULT_DB) -> None:
    """Every key: id, name, role, created, last used, revoked (never a secret)."""
    from api.app import open_api_store

    try:
        with open_api_store(db, db_key()) as store:
            rows = store.api_keys().to_dicts()
    except MdmError as exc:
        fail(exc)
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(
            f"{row['key_id']}  {row['role']:<8} {state:<8} {row['name']}  last used {row['last_used_at']}"
        )


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="Key id.")], db: DbOption = DEFAULT_DB) -> None:
    """Revoke a key."""
    from api.app import open_api_store

    try:
        with open_api_store(db, db_key()) as store:
            done = store.revoke_api_key(key_id)
            if done:
                store.audit(action="apikey.revoke", user=getpass.getuser(), target=key_id)
    except MdmError as exc:
        fail(exc)
    if not done:
        typer.secho(f"error: no active key {key_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@audit_app.command("verify")
def audit_verify(db: DbOption = DEFAULT_DB) -> None:
    """Recompute the keyed hash chain; exit 4 and name the first broken entry when it does not verify."""
    from api.app import open_api_store

    try:
        with open_api_store(db, db_key()) as store:
            result = store.verify_audit()
    except MdmError as exc:
        fail(exc)
    if result["first_broken"] is not None:
        typer.secho(
            f"audit log broken at entry {result['first_broken']} (verified to {result['verified_to']} "
            f"of {result['entries']})",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(EXIT_BROKEN)
    typer.echo(f"audit log intact: {result['entries']} entries verified")


@api_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Run the HTTP API (one process: the database's single writer; batch runs via POST /v1/admin/runs)."""
    import uvicorn

    from api.app import create_app

    try:
        app = create_app(db, db_key())
    except MdmError as exc:
        fail(exc)
    sys.setswitchinterval(SWITCH_SECONDS)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")


def register(app: typer.Typer) -> None:
    """Mount the API's commands on the root ``mdm`` app."""
    app.add_typer(apikey_app, name="apikey")
    app.add_typer(audit_app, name="audit")
    app.command("serve")(serve)
