"""Bookkeeping of batch runs: what each run took in, abandoned runs, and the figures of a run report.

A mixin of ``Store``. ``run_info`` records, per finished run, its mode, the batch range it took in and its
stage timings; it is written in the same transaction as the run's results, so a run row marked
'succeeded' always has its results and its batch range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from mdm.schema import FLAGS
from mdm.store.base import StoreBase

RUN_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS run_info (
    run_id INTEGER PRIMARY KEY,
    mode VARCHAR NOT NULL,
    batch_from INTEGER NOT NULL,
    batch_to INTEGER NOT NULL,
    scope_records BIGINT NOT NULL,
    seconds VARCHAR NOT NULL
)""",
]


class RunRepo(StoreBase):
    """Store methods of the nightly run: its inputs since the last run, and its report figures."""

    # ----- run state --------------------------------------------------------------

    def abandon_running(self) -> list[int]:
        """Mark runs left 'running' by a dead process as 'abandoned' (call only while holding the run lock)."""
        with self.transaction() as con:
            rows = con.execute(
                """UPDATE runs SET status = 'abandoned', finished_at = now(),
                message = 'the process ended before the run finished; nothing of it was kept'
                WHERE status = 'running' RETURNING run_id"""
            ).fetchall()
        return sorted(int(r[0]) for r in rows)

    def last_succeeded_run(self) -> dict[str, Any] | None:
        """run_id, started_at and batch_to (last batch taken in) of the latest succeeded run, if any.

        Only batch runs count: real-time and steward runs resolve a few records, not every batch.
        A run without ``run_info`` (written by other tools) took in the batches finished before it started.
        """
        rows = self.query(
            """SELECT r.run_id, r.started_at, coalesce(i.batch_to, (SELECT coalesce(max(b.batch_id), 0)
                FROM batches b WHERE b.finished_at <= r.started_at)) AS batch_to
            FROM runs r LEFT JOIN run_info i USING (run_id)
            WHERE r.status = 'succeeded' AND coalesce(r.kind, 'batch') = 'batch'
            ORDER BY r.run_id DESC LIMIT 1"""
        ).to_dicts()
        return rows[0] if rows else None

    def last_batch_id(self) -> int:
        """The newest batch id (0 when nothing was ingested)."""
        return int(self.query("SELECT coalesce(max(batch_id), 0) AS b FROM batches").item())

    def steward_rids_since(self, since: object) -> list[int]:
        """Records named by steward pins or links made or revoked after ``since`` (all when None)."""
        frame = self.query(
            """SELECT rid FROM pins WHERE kind = 'record' AND ($1 IS NULL OR created_at > $1 OR revoked_at > $1)
            UNION SELECT rid_a FROM steward_links WHERE $1 IS NULL OR created_at > $1 OR revoked_at > $1
            UNION SELECT rid_b FROM steward_links WHERE $1 IS NULL OR created_at > $1 OR revoked_at > $1""",
            [since],
        )
        return sorted(int(r) for r in frame.to_series().drop_nulls())

    def kept_pairs(self) -> pl.DataFrame:
        """rid_l, rid_r, match_probability of the latest run's kept pairs (at or above the lower threshold)."""
        return self.query("SELECT rid_l, rid_r, match_probability FROM match_pairs ORDER BY rid_l, rid_r")

    def save_run_info(
        self,
        run_id: int,
        mode: str,
        batches: tuple[int, int],
        scope_records: int,
        seconds: Mapping[str, float],
    ) -> None:
        """Record a run's mode, batch range (from, to] and timings (inside the run's transaction)."""
        with self.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO run_info VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, mode, batches[0], batches[1], scope_records, json.dumps(dict(seconds))],
            )

    def run_row(self, run_id: int) -> dict[str, Any] | None:
        """One run with its info (mode, batch range, timings as JSON text), if it exists."""
        rows = self.query(
            """SELECT r.*, i.mode, i.batch_from, i.batch_to, i.scope_records, i.seconds
            FROM runs r LEFT JOIN run_info i USING (run_id) WHERE r.run_id = ?""",
            [run_id],
        ).to_dicts()
        return rows[0] if rows else None

    # ----- report figures -----------------------------------------------------------

    def batches_in(self, batch_from: int, batch_to: int) -> pl.DataFrame:
        """Batches with batch_from < batch_id <= batch_to and their counts."""
        return self.query(
            """SELECT batch_id, source, extract_kind, n_read, n_new, n_changed, n_unchanged, n_ended,
                n_rejected FROM batches WHERE batch_id > ? AND batch_id <= ? ORDER BY batch_id""",
            [batch_from, batch_to],
        )

    def batch_quality(self, batch_from: int, batch_to: int) -> pl.DataFrame:
        """source, field, flag, records: data-quality flags of the versions and rejects of those batches."""
        return self.query(
            f"""WITH f AS (SELECT source, unnest("{FLAGS}") AS flag FROM records
                WHERE batch_id > $1 AND batch_id <= $2 AND NOT ended)
            SELECT source, split_part(flag, ':', 1) AS field, split_part(flag, ':', 2) AS flag,
                count(*) AS records FROM f GROUP BY ALL
            UNION ALL
            SELECT source, coalesce(field, '') AS field, 'rejected' AS flag, count(*) AS records
            FROM rejects WHERE batch_id > $1 AND batch_id <= $2 GROUP BY ALL
            ORDER BY source, field, flag""",
            [batch_from, batch_to],
        )

    def event_counts(self, run_id: int) -> dict[str, int]:
        """ID events of a run counted by kind."""
        rows = self.con.execute(
            "SELECT kind, count(*) FROM id_events WHERE run_id = ? GROUP BY kind", [run_id]
        ).fetchall()
        return {str(k): int(n) for k, n in rows}

    def review_queue(self) -> dict[str, Any]:
        """Size of the latest review band and the age of its pairs (days since each first entered review)."""
        row = self.con.execute(
            """WITH latest AS (SELECT max(run_id) AS run_id FROM review_pairs),
            q AS (SELECT p.rid_l, p.rid_r FROM review_pairs p, latest WHERE p.run_id = latest.run_id),
            first_seen AS (SELECT q.rid_l, q.rid_r, min(r.started_at) AS since FROM q
                JOIN review_pairs p USING (rid_l, rid_r) JOIN runs r ON r.run_id = p.run_id
                WHERE r.status = 'succeeded' GROUP BY ALL)
            SELECT (SELECT count(*) FROM q),
                coalesce(max(date_diff('second', since, now())) / 86400.0, 0),
                coalesce(median(date_diff('second', since, now())) / 86400.0, 0)
            FROM first_seen"""
        ).fetchone()
        size, oldest, median = row if row else (0, 0.0, 0.0)
        return {"pairs": int(size), "oldest_days": float(oldest), "median_days": float(median)}

    def pair_weights(self) -> pl.Series:
        """Match weights of the latest run's kept pairs."""
        return self.query("SELECT match_weight FROM match_pairs").to_series()

    def cluster_sizes(self) -> pl.DataFrame:
        """size, customers: how many live customers hold how many current records."""
        return self.query(
            """SELECT n AS size, count(*) AS customers FROM (SELECT customer_id, count(*) AS n FROM xref
            WHERE valid_to_run IS NULL GROUP BY customer_id) GROUP BY n ORDER BY n"""
        )
