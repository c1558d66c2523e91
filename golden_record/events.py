"""ID events: the change feed of customer IDs (what happened, to which record, why).

Events made by a run carry no time and no run id here: the store stamps ``run_id`` and the time when it
writes them, so the pure assignment stays deterministic.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class EventKind(StrEnum):
    """What happened to a customer ID."""

    CREATED = "created"  # a new customer from records no customer held
    MERGED_INTO = "merged_into"  # customer_id retired; related_id is its successor
    SPLIT_FROM = "split_from"  # a new customer_id made of records split off related_id
    RECORD_MOVED = "record_moved"  # rid left related_id for customer_id
    RECORD_ADDED = "record_added"  # a new source record joined an existing customer
    RECORD_ENDED = "record_ended"  # rid disappeared from its source; it belonged to customer_id
    CUSTOMER_ENDED = "customer_ended"  # every record of customer_id ended; the ID stays resolvable
    REVIVED = "revived"  # an ended customer holds records again (steward pin)
    PINNED = "pinned"  # steward pinned a record or an attribute value
    UNPINNED = "unpinned"


class Reason(StrEnum):
    """Why it happened."""

    MODEL = "model"  # the run's clusters (match scores)
    RULE = "rule"  # a documented assignment rule (e.g. oldest ID survives a merge)
    STEWARD = "steward"  # a steward decision; the event names the user
    SOURCE = "source"  # the source system (record ended)


#: Columns of an event frame produced by golden_record (the store adds event_id, run_id and time).
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "customer_id": pl.String(),
    "related_id": pl.String(),
    "rid": pl.Int64(),
    "reason": pl.String(),
    "actor": pl.String(),
    "detail": pl.String(),
}


def empty_events() -> pl.DataFrame:
    """An event frame with no rows."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def event_frame(
    frame: pl.DataFrame,
    kind: EventKind,
    reason: Reason,
    detail: str,
    *,
    customer_id: str = "customer_id",
    related_id: str | None = None,
    rid: str | None = None,
    actor: str | None = None,
) -> pl.DataFrame:
    """Events of one kind, one per row of ``frame`` (column names say where ids and rids are)."""
    return frame.select(
        pl.lit(kind.value).alias("kind"),
        pl.col(customer_id).cast(pl.String).alias("customer_id"),
        (pl.col(related_id) if related_id else pl.lit(None)).cast(pl.String).alias("related_id"),
        (pl.col(rid) if rid else pl.lit(None)).cast(pl.Int64).alias("rid"),
        pl.lit(reason.value).alias("reason"),
        (pl.col(actor) if actor else pl.lit(None)).cast(pl.String).alias("actor"),
        pl.lit(detail).alias("detail"),
    )
