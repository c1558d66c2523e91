"""The embedded default engine: Splink on a private in-memory DuckDB connection."""

from __future__ import annotations

import duckdb
from splink import DuckDBAPI


def duckdb_api(connection: duckdb.DuckDBPyConnection | None = None) -> DuckDBAPI:
    """Splink's DuckDB backend on `connection`, or on a fresh in-memory one (matching never touches the store)."""
    return DuckDBAPI(connection=connection or duckdb.connect())
