"""The one object that owns the DuckDB connection and every SQL write."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from mdm.errors import MdmError, RowReject
from mdm.schema import FLAGS, RAW_FIELDS
from mdm.store.api_repo import API_DDL, ApiRepo
from mdm.store.compliance_repo import COMPLIANCE_DDL, ComplianceRepo
from mdm.store.connection import open_database
from mdm.store.erasure_repo import ERASURE_DDL, ErasureRepo
from mdm.store.golden_repo import GOLDEN_DDL, GoldenRepo
from mdm.store.match_repo import MATCH_DDL, MatchRepo
from mdm.store.review_repo import REVIEW_DDL, ReviewRepo
from mdm.store.run_repo import RUN_DDL, RunRepo
from mdm.store.schema import DDL, RECORD_COLUMNS


class StoreError(MdmError):
    """The store refused an operation; nothing was changed."""


@dataclass
class BatchResult:
    """Counts of one ingest batch."""

    batch_id: int
    source: str
    n_read: int = 0
    n_new: int = 0
    n_changed: int = 0
    n_unchanged: int = 0
    n_ended: int = 0
    n_rejected: int = 0
    files: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    """Content hash of a source file, stored with its batch."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Store(MatchRepo, ReviewRepo, ErasureRepo, GoldenRepo, RunRepo, ComplianceRepo, ApiRepo):
    """DuckDB-backed store of source records, batches and everything derived from them."""

    def __init__(self, path: Path | str, key: str | None = None, read_only: bool = False) -> None:
        self.path = Path(path)
        self._db_key = key
        self.con: duckdb.DuckDBPyConnection = open_database(self.path, key, read_only)
        self._parquet_key = hashlib.sha256(f"mdm-export:{key}".encode()).hexdigest()[:32] if key else None
        self._in_tx = False
        if not read_only:
            self._migrate()

    def close(self) -> None:
        """Checkpoint and close the connection."""
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self.transaction():
            for stmt in (
                DDL + GOLDEN_DDL + MATCH_DDL + RUN_DDL + ERASURE_DDL + COMPLIANCE_DDL + API_DDL + REVIEW_DDL
            ):
                self.con.execute(stmt)

    # ----- ingest -----------------------------------------------------------------

    def ingest_batch(
        self,
        source: str,
        files: Sequence[Path],
        records: pl.DataFrame,
        rejects: Sequence[RowReject],
        *,
        extract_kind: str = "full",
        extract_date: str | None = None,
        trust_rank: int | None = None,
        legal_basis: str | None = None,
    ) -> BatchResult:
        """Store one source's standardized records as a batch, in one transaction.

        Records are versioned by content hash: an unchanged record adds nothing, a changed one a new
        version. For a full extract, records of the source missing from it are end-dated.
        ``legal_basis`` is the source's legal declaration in force (JSON), kept as the batch's lineage.
        """
        records, erased = self.filter_erased(records, source)
        rejects = [*rejects, *erased]
        dupes = records.group_by("source_key").len().filter(pl.col("len") > 1)
        if dupes.height:
            raise StoreError(f"{source}: {dupes.height} duplicate source keys in one batch")
        incoming = records.select(
            pl.col("source_key"),
            *[
                pl.col(c).cast(t) if c in records.columns else pl.lit(None, t).alias(c)
                for c, t in RECORD_COLUMNS.items()
            ],
        )
        hashes = [file_sha256(p) for p in files]
        with self.transaction() as con:
            batch_id = con.execute("SELECT nextval('batch_seq')").fetchone()[0]  # type: ignore[index]
            con.execute(
                """INSERT INTO batches (batch_id, source, files, file_sha256, extract_kind, extract_date,
                   trust_rank, started_at, legal_basis) VALUES (?, ?, ?, ?, ?, ?, ?, now(), ?)""",
                [
                    batch_id,
                    source,
                    [str(p) for p in files],
                    hashes,
                    extract_kind,
                    extract_date,
                    trust_rank,
                    legal_basis,
                ],
            )
            con.register("incoming_raw", incoming.to_arrow())
            raw_struct = ", ".join(f"'{f}': \"{f}\"" for f in RAW_FIELDS)
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE incoming AS
                SELECT *, md5(CAST({{{raw_struct}}} AS VARCHAR)) AS content_hash FROM incoming_raw"""
            )
            con.unregister("incoming_raw")
            con.execute(
                """INSERT INTO record_keys (rid, source, source_key, first_batch)
                SELECT nextval('rid_seq'), ?, i.source_key, ? FROM incoming i
                WHERE NOT EXISTS (SELECT 1 FROM record_keys k WHERE k.source = ? AND k.source_key = i.source_key)
                ORDER BY i.source_key""",
                [source, batch_id, source],
            )
            con.execute(
                """CREATE OR REPLACE TEMP TABLE latest AS
                SELECT r.rid, r.version, r.content_hash, r.ended FROM records r
                WHERE r.source = ?
                QUALIFY row_number() OVER (PARTITION BY r.rid ORDER BY r.version DESC) = 1""",
                [source],
            )
            con.execute(
                """CREATE OR REPLACE TEMP TABLE staged AS
                SELECT k.rid, coalesce(l.version, 0) + 1 AS version,
                       l.rid IS NULL AS is_new, i.*
                FROM incoming i JOIN record_keys k ON k.source = ? AND k.source_key = i.source_key
                LEFT JOIN latest l ON l.rid = k.rid
                WHERE l.rid IS NULL OR l.ended OR l.content_hash <> i.content_hash""",
                [source],
            )
            cols = ", ".join(f'"{c}"' for c in RECORD_COLUMNS)
            con.execute(
                f"""INSERT INTO records (rid, version, source, source_key, batch_id, content_hash,
                    ingested_at, ended, {cols})
                SELECT rid, version, ?, source_key, ?, content_hash, now(), false, {cols} FROM staged""",
                [source, batch_id],
            )
            n_new, n_changed = con.execute(
                "SELECT count(*) FILTER (is_new), count(*) FILTER (NOT is_new) FROM staged"
            ).fetchone()  # type: ignore[misc]
            n_ended = 0
            if extract_kind == "full":
                n_ended = self._end_missing(source, batch_id)
            if rejects:
                con.executemany(
                    "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [[batch_id, source, r.file, r.locator, r.field, r.reason, r.source_key] for r in rejects],
                )
            n_read = incoming.height
            result = BatchResult(
                batch_id=batch_id,
                source=source,
                n_read=n_read,
                n_new=n_new,
                n_changed=n_changed,
                n_unchanged=n_read - n_new - n_changed,
                n_ended=n_ended,
                n_rejected=len(rejects),
                files=[str(p) for p in files],
            )
            con.execute(
                """UPDATE batches SET finished_at = now(), n_read = ?, n_new = ?, n_changed = ?,
                   n_unchanged = ?, n_ended = ?, n_rejected = ? WHERE batch_id = ?""",
                [n_read, n_new, n_changed, result.n_unchanged, n_ended, len(rejects), batch_id],
            )
            for tmp in ("incoming", "latest", "staged"):
                con.execute(f"DROP TABLE IF EXISTS {tmp}")
        return result

    def _end_missing(self, source: str, batch_id: int) -> int:
        """End-date current records of ``source`` absent from the incoming full extract."""
        cols = ", ".join(f'"{c}"' for c in RECORD_COLUMNS)
        missing = """FROM current_records c WHERE c.source = ?
            AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.source_key = c.source_key)"""
        (count,) = self.con.execute(f"SELECT count(*) {missing}", [source]).fetchone()  # type: ignore[misc]
        if count:
            self.con.execute(
                f"""INSERT INTO records (rid, version, source, source_key, batch_id, content_hash,
                    ingested_at, ended, {cols})
                SELECT c.rid, c.version + 1, c.source, c.source_key, ?, c.content_hash, now(), true, {cols}
                {missing}""",
                [batch_id, source],
            )
        return int(count)

    def export_parquet(self, sql: str, out: Path) -> int:
        """Write a query's rows to Parquet, encrypted (AES-GCM) with a key derived from MDM_DB_KEY when set."""
        (rows,) = self.con.execute(f"SELECT count(*) FROM ({sql})").fetchone()  # type: ignore[misc]
        target = str(out).replace("'", "''")
        if self._parquet_key:
            self.con.execute(f"PRAGMA add_parquet_key('mdm_export', '{self._parquet_key}')")
            opts = ", ENCRYPTION_CONFIG {footer_key: 'mdm_export'}"
        else:
            opts = ""
        self.con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet{opts})")
        return int(rows)

    def read_parquet(self, path: Path) -> pl.DataFrame:
        """Read a Parquet file this store exported (decrypting it with the store's key)."""
        source = str(path).replace("'", "''")
        if self._parquet_key:
            self.con.execute(f"PRAGMA add_parquet_key('mdm_export', '{self._parquet_key}')")
            return self.query(
                f"SELECT * FROM read_parquet('{source}', encryption_config = {{footer_key: 'mdm_export'}})"
            )
        return self.query(f"SELECT * FROM read_parquet('{source}')")

    # ----- reads ------------------------------------------------------------------

    def current_records(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The current version of every live source record that may be processed (not restricted)."""
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return self.query(f"SELECT {cols} FROM processable_records ORDER BY rid")

    def batches(self) -> pl.DataFrame:
        """Every ingest batch with its counts."""
        return self.query("SELECT * FROM batches ORDER BY batch_id")

    def dq_summary(self) -> pl.DataFrame:
        """Data-quality flags of current records counted per source and flag, plus rejects."""
        return self.query(
            f"""WITH f AS (SELECT source, unnest("{FLAGS}") AS flag FROM current_records)
            SELECT source, split_part(flag, ':', 1) AS field, split_part(flag, ':', 2) AS flag,
                   count(*) AS records
            FROM f GROUP BY ALL
            UNION ALL
            SELECT source, coalesce(field, '') AS field, 'rejected' AS flag, count(*) AS records
            FROM rejects GROUP BY ALL
            ORDER BY source, field, flag"""
        )
