"""Persistence of a run's scored pairs and review band (mixin of Store)."""

from __future__ import annotations

import polars as pl

from mdm.store.review_repo import ReviewRepo

MATCH_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS match_pairs (
    run_id INTEGER NOT NULL,
    rid_l BIGINT NOT NULL,
    rid_r BIGINT NOT NULL,
    match_weight DOUBLE NOT NULL,
    match_probability DOUBLE NOT NULL,
    detail VARCHAR NOT NULL,
    PRIMARY KEY (run_id, rid_l, rid_r)
)""",
    """CREATE TABLE IF NOT EXISTS review_pairs (
    run_id INTEGER NOT NULL,
    rid_l BIGINT NOT NULL,
    rid_r BIGINT NOT NULL,
    match_weight DOUBLE NOT NULL,
    match_probability DOUBLE NOT NULL,
    detail VARCHAR NOT NULL,
    PRIMARY KEY (run_id, rid_l, rid_r)
)""",
]

PAIR_COLUMNS = ("rid_l", "rid_r", "match_weight", "match_probability")


def _with_detail(pairs: pl.DataFrame) -> pl.DataFrame:
    """Pairs with every per-comparison column (gamma_*, mw_*) folded into one JSON ``detail`` column."""
    extra = [c for c in pairs.columns if c not in PAIR_COLUMNS]
    detail = pl.struct(extra).struct.json_encode() if extra else pl.lit("{}")
    return pairs.select(*PAIR_COLUMNS, detail.alias("detail"))


class MatchRepo(ReviewRepo):
    """Store methods for scored pairs: the latest run's pairs (for explanation) and every run's review band."""

    def save_match_result(self, run_id: int, pairs: pl.DataFrame, review: pl.DataFrame) -> None:
        """Replace the kept pairs with this run's, append this run's review band and turn it into steward
        tasks (see ``ReviewRepo.sync_review_tasks``), all in one transaction."""
        with self.transaction() as con:
            con.register("new_pairs", _with_detail(pairs).to_arrow())
            con.register("new_review", _with_detail(review).to_arrow())
            con.execute("DELETE FROM match_pairs")
            con.execute("INSERT INTO match_pairs SELECT ?, * FROM new_pairs", [run_id])
            con.execute("INSERT INTO review_pairs SELECT ?, * FROM new_review", [run_id])
            con.unregister("new_pairs")
            con.unregister("new_review")
            self.sync_review_tasks(run_id, pairs, review)

    def scored_pair(self, rid_a: int, rid_b: int) -> dict[str, object] | None:
        """The latest run's score of a pair, if it was scored."""
        lo, hi = sorted((rid_a, rid_b))
        rows = self.query("SELECT * FROM match_pairs WHERE rid_l = ? AND rid_r = ?", [lo, hi]).to_dicts()
        return rows[0] if rows else None

    def review_band(self, run_id: int | None = None) -> pl.DataFrame:
        """The review-band pairs of a run (default: the latest run that has any)."""
        if run_id is None:
            run_id = self.query("SELECT max(run_id) FROM review_pairs").item()
        return self.query("SELECT * FROM review_pairs WHERE run_id = ? ORDER BY rid_l, rid_r", [run_id])

    def rid_of(self, source: str, source_key: str) -> int | None:
        """The record id of a source record."""
        row = self.con.execute(
            "SELECT rid FROM record_keys WHERE source = ? AND source_key = ?", [source, source_key]
        ).fetchone()
        return None if row is None else int(row[0])
