"""What every store mixin stands on: the one DuckDB connection, the database path, transactions, reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl


class StoreBase:
    """The connection and its transaction discipline; ``Store`` opens it, the mixins use it."""

    con: duckdb.DuckDBPyConnection
    path: Path
    _in_tx: bool = False

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: an exception inside rolls every statement back; nested calls join the outer one."""
        if self._in_tx:
            yield self.con
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_tx = True
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
        finally:
            self._in_tx = False

    def query(self, sql: str, params: Sequence[object] | dict[str, object] | None = None) -> pl.DataFrame:
        """Run a read-only query and return a polars frame."""
        return self.con.execute(sql, params).pl()
