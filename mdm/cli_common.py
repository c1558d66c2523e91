"""What every `mdm` command module shares: the --db and --config options, the database key, opening the store
and printing an error with its exit code. Kept in one place so that every command spells them alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mdm.errors import MdmError

if TYPE_CHECKING:
    from mdm.store import Store

#: The database file when neither --db nor $MDM_DB names one.
DEFAULT_DB = Path("mdm.duckdb")
DbOption = Annotated[Path, typer.Option("--db", envvar="MDM_DB", help="DuckDB database file (env MDM_DB).")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Folder of source YAML files (default: the shipped ones).")
]


def db_key() -> str | None:
    """The database encryption key from $MDM_DB_KEY; None when unset or empty (a plain file)."""
    return os.environ.get("MDM_DB_KEY") or None


def open_store(db: Path) -> Store:
    """The store at ``db``, encrypted when MDM_DB_KEY is set (imported here so that --help stays quick)."""
    from mdm.store import Store

    return Store(db, key=db_key())


def echo_error(message: str) -> None:
    """Print ``error: <message>`` in red on stderr."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def exit_error(message: str, code: int) -> NoReturn:
    """Print an error (already masked) and end the command with exit code ``code``.

    The exception being handled, if any, is not chained: its text may hold data the message leaves out.
    """
    echo_error(message)
    raise typer.Exit(code) from None


def fail(exc: MdmError) -> NoReturn:
    """Print an mdm error (already masked) and exit with its code."""
    exit_error(str(exc), exc.exit_code)
