"""Glue of one golden-record run: store reads -> assign_ids -> build_golden -> store.apply_run.

Needs nothing but Store methods and the pure functions of this package; the store type is imported for
typing only, so golden_record stays free of SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from golden_record.assign import assign_ids, resolve_frame
from golden_record.survivorship import SurvivorshipRules, build_golden, load_rules

if TYPE_CHECKING:
    from mdm.store import Store


def run_golden(
    store: Store, clusters: pl.DataFrame, run_id: int, rules: SurvivorshipRules | None = None
) -> dict[str, int]:
    """Assign IDs to ``clusters`` (rid, cluster_id), build golden records, store both; returns counts."""
    rules = rules or load_rules()
    customers = store.customers_frame()
    result = assign_ids(
        store.current_xref(),
        clusters,
        customers,
        store.active_record_pins(),
        store.next_customer_seq(),
    )
    after = pl.concat(
        [
            customers.select("customer_id", "merged_into"),
            result.retired.select("customer_id", "merged_into"),
        ]
    ).unique("customer_id", keep="last", maintain_order=True)
    pins = resolve_frame(store.active_attribute_pins(), "customer_id", after)
    golden = build_golden(store.golden_inputs(rules.record_columns()), result.xref, rules, pins)
    written = store.apply_run(run_id, result, golden)
    return {**result.counts(), **written}
