"""Retention per source (PIPL art. 19): which stored records are past their source's retention, and erasing them.

The retention clock of a record starts when the relationship it documents ends: for a full-extract source,
when the record left the extract (its end-dating batch's extract date, else ingest date); for a delta
source (one message, one event), at the record's own date (``source_updated_at``, else ingest date).
Current records of full-extract sources are live relationships and never past retention.
Erasure goes through the erasure feature: tombstones, audit, AML holds (a held record is restricted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from mdm.config import SourceConfig
from mdm.erasure import RetentionPolicy, load_retention

#: Columns ``past_retention`` reads, one row per stored record (its latest version).
RETENTION_INPUT: dict[str, pl.DataType] = {
    "rid": pl.Int64(),
    "source": pl.String(),
    "source_key": pl.String(),
    "ended": pl.Boolean(),
    "ended_on": pl.Date(),
    "updated_on": pl.Date(),
    "ingested_on": pl.Date(),
}

_INPUT_SQL = """SELECT r.rid, r.source, r.source_key, r.ended,
    CASE WHEN r.ended THEN coalesce(TRY_CAST(b.extract_date AS DATE),
        CAST(try_strptime(b.extract_date, '%Y%m%d') AS DATE), CAST(r.ingested_at AS DATE)) END AS ended_on,
    TRY_CAST(left(r.source_updated_at, 10) AS DATE) AS updated_on,
    CAST(r.ingested_at AS DATE) AS ingested_on
FROM records r JOIN batches b ON b.batch_id = r.batch_id
WHERE NOT EXISTS (SELECT 1 FROM restrictions x WHERE x.rid = r.rid)
QUALIFY row_number() OVER (PARTITION BY r.rid ORDER BY r.version DESC) = 1"""


def retention_input(store: Any) -> pl.DataFrame:
    """``RETENTION_INPUT`` of every stored, unrestricted record."""
    frame: pl.DataFrame = store.query(_INPUT_SQL)
    return frame.select([pl.col(c).cast(t) for c, t in RETENTION_INPUT.items()])


def past_retention(records: pl.DataFrame, cfgs: Mapping[str, SourceConfig], today: date) -> pl.DataFrame:
    """Records whose retention has run out by ``today``: input columns + clock_start, retention_days, expired_on.

    Sources without a declared retention are not evaluated (the report lists them as undeclared).
    """
    periods = pl.DataFrame(
        {
            "source": list(cfgs),
            "retention_days": [c.retention_period_days for c in cfgs.values()],
            "delta": [c.extract == "delta" for c in cfgs.values()],
        },
        schema={"source": pl.String, "retention_days": pl.Int64, "delta": pl.Boolean},
    )
    start = (
        pl.when(pl.col("ended"))
        .then(pl.col("ended_on").fill_null(pl.col("ingested_on")))
        .when(pl.col("delta"))
        .then(pl.col("updated_on").fill_null(pl.col("ingested_on")))
    )
    return (
        records.join(periods, on="source", how="inner")
        .filter(pl.col("retention_days").is_not_null())
        .with_columns(start.alias("clock_start"))
        .with_columns(
            (pl.col("clock_start") + pl.duration(days=pl.col("retention_days"))).alias("expired_on")
        )
        .filter(pl.col("expired_on") < pl.lit(today))
        .drop("delta")
        .sort("source", "rid")
    )


@dataclass
class RetentionRun:
    """What `mdm retention apply` did (or would do with --dry-run)."""

    dry_run: bool
    due: dict[str, int] = field(default_factory=dict)
    erased: int = 0
    restricted: int = 0
    tombstones: list[int] = field(default_factory=list)
    recomputed_run: int | None = None

    def lines(self) -> list[str]:
        """Human summary, one fact a line (no personal data)."""
        total = sum(self.due.values())
        verb = "would erase" if self.dry_run else "processed"
        out = [f"{total} records past retention; {verb} them"]
        out += [f"  {source}: {n}" for source, n in sorted(self.due.items())]
        if not self.dry_run:
            out.append(f"  erased {self.erased}, restricted under AML hold {self.restricted}")
            if self.recomputed_run is not None:
                out.append(f"  golden records recomputed by run {self.recomputed_run}")
        return out


def apply_retention(
    store: Any,
    cfgs: Mapping[str, SourceConfig],
    *,
    user: str,
    now: datetime | None = None,
    dry_run: bool = False,
    policy: RetentionPolicy | None = None,
    recompute: bool = True,
) -> RetentionRun:
    """Erase (or, under an AML hold, restrict) every record past its source's retention, then recompute golden records."""
    moment = now or datetime.now(UTC)
    due = past_retention(retention_input(store), cfgs, moment.date())
    counts = due.group_by("source").len().sort("source")
    run = RetentionRun(dry_run=dry_run, due=dict(zip(counts["source"], counts["len"], strict=True)))
    if dry_run or due.height == 0:
        return run
    rules = policy or load_retention()
    for source, key, days, expired in due.select(
        "source", "source_key", "retention_days", "expired_on"
    ).iter_rows():
        reason = f"retention: source {source} keeps records {days} days; expired {expired}"
        result = store.erase_record(source, key, reason, user, moment, rules)
        run.tombstones.append(result.tombstone_id)
        if result.action == "erased":
            run.erased += 1
        else:
            run.restricted += 1
    if recompute and store.query("SELECT count(*) AS n FROM runs").item():
        from mdm.pipeline import run_batch

        run.recomputed_run = run_batch(store).run_id
    return run
