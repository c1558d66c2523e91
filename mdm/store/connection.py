"""Opening the DuckDB database file, encrypted at rest when a key is given."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from mdm.errors import MdmError

DB_ALIAS = "mdm"


def _httpfs_path() -> str:
    """The httpfs extension shipped as a wheel: DuckDB needs it to write encrypted files securely."""
    import duckdb_extension_httpfs

    base = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    found = sorted(base.glob(f"v{duckdb.__version__}/httpfs.duckdb_extension"))
    if not found:
        raise MdmError(f"httpfs extension for duckdb {duckdb.__version__} is not installed")
    return str(found[0])


def _quote(text: str) -> str:
    """A SQL string literal (ATTACH takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def open_database(
    path: Path | str, key: str | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Connect to the database file; with ``key`` the file (and its WAL) is AES-GCM encrypted."""
    con = duckdb.connect(config={"threads": os.cpu_count() or 2})
    options = []
    if key:
        con.execute(f"LOAD '{_httpfs_path()}'")
        options.append(f"ENCRYPTION_KEY {_quote(key)}")
    if read_only:
        options.append("READ_ONLY")
    opts = f" ({', '.join(options)})" if options else ""
    try:
        con.execute(f"ATTACH {_quote(str(path))} AS {DB_ALIAS}{opts}")
    except duckdb.Error as exc:
        con.close()
        text = str(exc)
        if key and ("ncrypt" in text or "key" in text.lower()):
            raise MdmError(
                f"{path}: cannot open the database: wrong MDM_DB_KEY or not an encrypted file"
            ) from None
        if not key and "ncrypt" in text:
            raise MdmError(f"{path}: the database is encrypted: set MDM_DB_KEY") from None
        raise MdmError(f"{path}: cannot open the database: {text.splitlines()[0]}") from None
    con.execute(f"USE {DB_ALIAS}")
    return con
