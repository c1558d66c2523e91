"""Assignment of stable customer IDs to a run's clusters, given the previous cross-reference.

Rules (all deterministic: they use only record ids, ID sequence numbers and counts):

1. Home of an old ID: among the clusters holding its records, the one holding the most of them; a tie goes
   to the cluster whose lowest such record id is smallest. Every old ID with a current record has a home.
2. A cluster that is home to one or more old IDs keeps the oldest of them (lowest sequence number); the
   others are retired ``merged_into`` it. So a cluster whose records all held one ID keeps it.
3. A cluster that is home to none gets a new ID (sequence numbers in order of the cluster's lowest record
   id): ``split_from`` the old ID most of its records held (tie: lowest sequence), else ``created``.
4. A record pinned by a steward to a customer goes to that customer (resolved through retirements), whatever
   its cluster; a pin keeps its customer live even when none of its other records remain.
5. An old ID left with no current record is retired ``merged_into`` the customer that received most of its
   records (pins), or, when all its records ended in their sources, marked ``ended`` (it still resolves to
   itself). New IDs are never reused: sequence numbers only grow.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from golden_record.events import EVENT_SCHEMA, EventKind, Reason, event_frame
from golden_record.ids import new_ids

LIVE = "live"
RETIRED = "retired"
ENDED = "ended"

MERGE_RULE = "oldest ID (lowest sequence) survives"
SPLIT_RULE = "part holding most of the old records keeps the ID"


@dataclass(frozen=True)
class AssignResult:
    """The new current cross-reference and what changed to get there."""

    xref: pl.DataFrame  # rid, customer_id: every current record exactly once
    events: pl.DataFrame  # EVENT_SCHEMA
    new_customers: pl.DataFrame  # customer_id, seq, split_from
    retired: pl.DataFrame  # customer_id, merged_into
    ended: pl.DataFrame  # customer_id
    revived: pl.DataFrame  # customer_id

    def counts(self) -> dict[str, int]:
        """How many customers and records each kind of change touched."""
        kinds = self.events.group_by("kind").len()
        by_kind = dict(zip(kinds["kind"].to_list(), kinds["len"].to_list(), strict=True))
        return {
            "records": self.xref.height,
            "customers": self.xref["customer_id"].n_unique(),
            **{kind.value: int(by_kind.get(kind.value, 0)) for kind in EventKind},
        }


def root_map(customers: pl.DataFrame) -> pl.DataFrame:
    """``customer_id -> root``: where every retired ID's ``merged_into`` chain ends (pointer doubling)."""
    links = customers.filter(pl.col("merged_into").is_not_null()).select(
        pl.col("customer_id").cast(pl.String), pl.col("merged_into").cast(pl.String).alias("root")
    )
    for _ in range(64):
        step = links.join(
            links.rename({"customer_id": "root", "root": "next"}), on="root", how="left"
        ).with_columns(pl.coalesce("next", "root").alias("root"))
        if step.filter(pl.col("next").is_not_null()).height == 0:
            return links
        links = step.drop("next")
    raise ValueError("merged_into chains are cyclic")


def resolve_frame(frame: pl.DataFrame, column: str, customers: pl.DataFrame) -> pl.DataFrame:
    """Replace the IDs in ``column`` by their current successors."""
    roots = root_map(customers).rename({"customer_id": column})
    return (
        frame.join(roots, on=column, how="left")
        .with_columns(pl.coalesce("root", column).alias(column))
        .drop("root")
    )


def resolve(customer_id: str, customers: pl.DataFrame) -> str:
    """The current successor of one ID (itself when it was never retired)."""
    one = pl.DataFrame({"customer_id": [customer_id]})
    return str(resolve_frame(one, "customer_id", customers)["customer_id"][0])


def _check_inputs(clusters: pl.DataFrame, pins: pl.DataFrame, customers: pl.DataFrame) -> None:
    """Refuse inputs that would break the one-record-one-customer promise."""
    if clusters["rid"].is_duplicated().any():
        raise ValueError("clusters: a record id appears twice")
    if pins.height and pins["rid"].is_duplicated().any():
        raise ValueError("pins: a record is pinned twice")
    unknown = pins.join(customers, on="customer_id", how="anti")
    if unknown.height:
        raise ValueError(f"pins: {unknown.height} pins name unknown customers")


def assign_ids(
    prev_xref: pl.DataFrame,
    clusters: pl.DataFrame,
    customers: pl.DataFrame,
    pins: pl.DataFrame,
    next_seq: int,
) -> AssignResult:
    """Customer IDs for this run's clusters (see the module docstring for the rules).

    ``prev_xref``: rid, customer_id (the open cross-reference); ``clusters``: rid, cluster_id for every
    current record; ``customers``: customer_id, seq, status, merged_into (every ID ever issued); ``pins``:
    rid, customer_id, actor (active record pins); ``next_seq``: the first unused sequence number.
    """
    customers = customers.select(
        pl.col("customer_id").cast(pl.String),
        pl.col("seq").cast(pl.Int64),
        pl.col("status").cast(pl.String),
        pl.col("merged_into").cast(pl.String),
    )
    pins = _pin_frame(pins)
    _check_inputs(clusters, pins, customers)
    seqs = customers.select("customer_id", "seq")
    prev = prev_xref.select(pl.col("rid").cast(pl.Int64), pl.col("customer_id").cast(pl.String).alias("old"))
    cur = clusters.select(
        pl.col("rid").cast(pl.Int64),
        pl.when(pl.col("cluster_id").is_null())
        .then(pl.col("rid"))
        .otherwise(pl.col("rid").min().over("cluster_id"))
        .cast(pl.Int64)
        .alias("k"),
    )
    pinned = resolve_frame(pins.join(cur.select("rid"), on="rid", how="semi"), "customer_id", customers)
    free = (
        cur.join(pinned, on="rid", how="anti")
        .with_columns(pl.col("rid").min().over("k").alias("k"))
        .join(prev, on="rid", how="left")
    )

    held = (
        free.filter(pl.col("old").is_not_null())
        .group_by("k", "old")
        .agg(pl.len().alias("n"), pl.col("rid").min().alias("min_rid"))
        .join(seqs, left_on="old", right_on="customer_id", how="left")
    )
    home = held.sort(["old", "n", "min_rid"], descending=[False, True, False]).unique(
        "old", keep="first", maintain_order=True
    )
    keeper = home.sort(["k", "seq"]).unique("k", keep="first", maintain_order=True).select("k", cid="old")
    merged = (
        home.join(keeper, on="k")
        .filter(pl.col("old") != pl.col("cid"))
        .select(pl.col("old").alias("customer_id"), pl.col("cid").alias("merged_into"))
    )

    fresh_k = free.select("k").unique().join(keeper, on="k", how="anti").sort("k")
    fresh = pl.concat([fresh_k, new_ids(fresh_k.height, next_seq)], how="horizontal")
    split_src = (
        held.join(fresh_k, on="k", how="semi")
        .sort(["k", "n", "seq"], descending=[False, True, False])
        .unique("k", keep="first", maintain_order=True)
        .select("k", split_from="old")
    )
    fresh = fresh.join(split_src, on="k", how="left")
    cluster_ids = pl.concat([keeper, fresh.select("k", cid="customer_id")])

    this_run = merged.rename({"merged_into": "to"})
    pinned_final = pinned.join(this_run, on="customer_id", how="left").select(
        "rid", pl.coalesce("to", "customer_id").alias("customer_id"), "actor"
    )
    xref = pl.concat(
        [
            free.join(cluster_ids, on="k").select("rid", pl.col("cid").alias("customer_id")),
            pinned_final.select("rid", "customer_id"),
        ]
    ).sort("rid")

    gone = _gone(customers, xref, merged, prev)
    retired = pl.concat([merged, gone.filter(pl.col("merged_into").is_not_null())]).sort("customer_id")
    ended = gone.filter(pl.col("merged_into").is_null()).select("customer_id").sort("customer_id")
    revived = (
        customers.filter(pl.col("status") == ENDED)
        .join(xref, on="customer_id", how="semi")
        .select("customer_id")
        .sort("customer_id")
    )
    events = _events(prev, xref, cur, fresh, merged, gone, ended, revived, pinned_final)
    return AssignResult(
        xref=xref,
        events=events,
        new_customers=fresh.select("customer_id", "seq", "split_from").sort("seq"),
        retired=retired,
        ended=ended,
        revived=revived,
    )


def _pin_frame(pins: pl.DataFrame) -> pl.DataFrame:
    """rid, customer_id, actor of the record pins (actor optional in the input)."""
    actor = pl.col("actor") if "actor" in pins.columns else pl.lit(None)
    return pins.select(
        pl.col("rid").cast(pl.Int64),
        pl.col("customer_id").cast(pl.String),
        actor.cast(pl.String).alias("actor"),
    )


def _gone(
    customers: pl.DataFrame, xref: pl.DataFrame, merged: pl.DataFrame, prev: pl.DataFrame
) -> pl.DataFrame:
    """Live IDs left without records (customer_id, merged_into or null when every record ended)."""
    lost = (
        customers.filter(pl.col("status") == LIVE)
        .join(xref, on="customer_id", how="anti")
        .join(merged, on="customer_id", how="anti")
        .select("customer_id")
    )
    dest = (
        prev.join(lost, left_on="old", right_on="customer_id", how="semi")
        .join(xref, on="rid")
        .group_by("old", "customer_id")
        .len()
        .join(customers.select("customer_id", "seq"), on="customer_id")
        .sort(["old", "len", "seq"], descending=[False, True, False])
        .unique("old", keep="first", maintain_order=True)
        .select(pl.col("old").alias("customer_id"), pl.col("customer_id").alias("merged_into"))
    )
    return lost.join(dest, on="customer_id", how="left").sort("customer_id")


def _events(
    prev: pl.DataFrame,
    xref: pl.DataFrame,
    cur: pl.DataFrame,
    fresh: pl.DataFrame,
    merged: pl.DataFrame,
    gone: pl.DataFrame,
    ended: pl.DataFrame,
    revived: pl.DataFrame,
    pinned: pl.DataFrame,
) -> pl.DataFrame:
    """Every ID event of the run, in a deterministic order."""
    moves = (
        xref.join(prev, on="rid")
        .filter(pl.col("old") != pl.col("customer_id"))
        .join(merged.rename({"customer_id": "old"}), on="old", how="left")
        .filter(pl.col("merged_into").is_null() | (pl.col("merged_into") != pl.col("customer_id")))
        .join(pinned.select("rid", "actor"), on="rid", how="left")
    )
    steward_moves = moves.filter(pl.col("actor").is_not_null())
    model_moves = moves.filter(pl.col("actor").is_null())
    parts = [
        event_frame(
            fresh.filter(pl.col("split_from").is_null()), EventKind.CREATED, Reason.MODEL, "new cluster"
        ),
        event_frame(
            fresh.filter(pl.col("split_from").is_not_null()),
            EventKind.SPLIT_FROM,
            Reason.RULE,
            SPLIT_RULE,
            related_id="split_from",
        ),
        event_frame(merged, EventKind.MERGED_INTO, Reason.RULE, MERGE_RULE, related_id="merged_into"),
        event_frame(
            gone.filter(pl.col("merged_into").is_not_null()),
            EventKind.MERGED_INTO,
            Reason.STEWARD,
            "every record pinned to another customer",
            related_id="merged_into",
        ),
        event_frame(
            model_moves, EventKind.RECORD_MOVED, Reason.MODEL, "cluster changed", related_id="old", rid="rid"
        ),
        event_frame(
            steward_moves,
            EventKind.RECORD_MOVED,
            Reason.STEWARD,
            "record pinned",
            related_id="old",
            rid="rid",
            actor="actor",
        ),
        event_frame(
            xref.join(prev, on="rid", how="anti"),
            EventKind.RECORD_ADDED,
            Reason.MODEL,
            "new record",
            rid="rid",
        ),
        event_frame(
            prev.join(cur, on="rid", how="anti"),
            EventKind.RECORD_ENDED,
            Reason.SOURCE,
            "record left its source",
            customer_id="old",
            rid="rid",
        ),
        event_frame(ended, EventKind.CUSTOMER_ENDED, Reason.SOURCE, "every record ended"),
        event_frame(revived, EventKind.REVIVED, Reason.STEWARD, "record pinned to an ended customer"),
    ]
    return pl.concat(parts).select(list(EVENT_SCHEMA)).sort(["kind", "customer_id", "rid"], nulls_last=True)
