"""Glue of one golden-record run: store reads -> assign_ids -> build_golden -> store.apply_run.

Needs nothing but Store methods and the pure functions of this package; the store type is imported for
typing only, so golden_record stays free of SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from golden_record.assign import assign_ids, resolve_frame
from golden_record.survivorship import SurvivorshipRules, build_golden, load_rules

if TYPE_CHECKING:
    from mdm.store import Store


def closed_scope(store: Store, rids: Sequence[int]) -> list[int]:
    """``rids`` plus every current record of the customers they belong or are pinned to.

    A scoped :func:`run_golden` needs such a closed set: a customer is either wholly inside it or
    untouched, so assigning IDs inside it cannot strand records outside it.
    """
    closure, _ = store.scope_closure(rids)
    return closure


def run_golden(
    store: Store,
    clusters: pl.DataFrame,
    run_id: int,
    rules: SurvivorshipRules | None = None,
    scope: Sequence[int] | None = None,
) -> dict[str, int]:
    """Assign IDs to ``clusters`` (rid, cluster_id), build golden records, store both; returns counts.

    With ``scope`` (see :func:`closed_scope`), ``clusters`` covers just those records: only their
    customers are re-assigned and rebuilt (real-time upserts, steward actions, incremental runs).
    """
    rules = rules or load_rules()
    live: list[str] | None = None
    if scope is not None:
        scope, live = store.scope_closure(scope)
        clusters = clusters.filter(pl.col("rid").is_in(scope))
    inputs = store.golden_inputs(rules.record_columns(), scope)
    missing = inputs.join(clusters, on="rid", how="anti").height
    if scope is not None and missing:
        raise ValueError(f"clusters leave out {missing} current records of the scope")
    customers = store.customers_frame(live)
    result = assign_ids(
        store.current_xref(scope),
        clusters,
        customers,
        store.active_record_pins(scope),
        store.next_customer_seq(),
    )
    after = pl.concat(
        [
            customers.select("customer_id", "merged_into"),
            result.retired.select("customer_id", "merged_into"),
        ]
    ).unique("customer_id", keep="last", maintain_order=True)
    pins = resolve_frame(store.active_attribute_pins(), "customer_id", after)
    golden = build_golden(inputs, result.xref, rules, pins)
    written = store.apply_run(run_id, result, golden, scope)
    return {**result.counts(), **written}
