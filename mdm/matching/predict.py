"""Score record pairs with a trained model: frames in, scored pairs out (with per-comparison weights)."""

from __future__ import annotations

import math

import polars as pl

from matching_rules import RuleSet
from matching_rules.compile import guard_sql
from matching_rules.models import BlockingRule, Guard
from mdm.matching.features import matching_frame
from mdm.matching.train import TrainedModel, new_db_api, new_linker

PAIR_KEYS = ("rid_l", "rid_r")


def probability_to_weight(p: float) -> float:
    """Match weight (log2 posterior odds) of a match probability."""
    return math.log2(p / (1.0 - p))


def tidy_pairs(raw: pl.DataFrame, model: TrainedModel) -> pl.DataFrame:
    """Splink's output -> rid_l < rid_r, weights, gamma_<cmp> and mw_<cmp> (level weight plus TF term).

    Matching columns Splink retains (names, numbers) are dropped here: pairs carry no personal data.
    """
    names = [c.name for c in model.ruleset.comparisons]
    uid = model.ruleset.unique_id_column
    weights = []
    for name in names:
        mw = pl.col(f"mw_{name}").cast(pl.Float64)
        if f"mw_tf_adj_{name}" in raw.columns:
            mw = mw + pl.col(f"mw_tf_adj_{name}").cast(pl.Float64).fill_null(0.0)
        weights.append(mw.alias(f"mw_{name}"))
    lo = pl.min_horizontal(f"{uid}_l", f"{uid}_r")
    hi = pl.max_horizontal(f"{uid}_l", f"{uid}_r")
    tidy = raw.select(
        lo.cast(pl.Int64).alias("rid_l"),
        hi.cast(pl.Int64).alias("rid_r"),
        pl.col("match_weight").cast(pl.Float64),
        pl.col("match_probability").cast(pl.Float64),
        *[pl.col(f"gamma_{n}").cast(pl.Int8) for n in names],
        *weights,
    ).sort(PAIR_KEYS)
    return apply_guards(tidy, model.ruleset)


def guard_cap(guard: Guard) -> float:
    """The match weight a guard caps a pair at: its ``max_probability`` as log2 odds."""
    return math.log2(guard.max_probability / (1.0 - guard.max_probability))


def apply_guards(pairs: pl.DataFrame, ruleset: RuleSet) -> pl.DataFrame:
    """Cap the pairs a rule-set guard holds for at the guard's ``max_probability`` (so they go to review).

    The cap is an explicit ``mw_guard`` term (0 when no guard bites), so the weights still add up to
    ``match_weight`` and the waterfall shows why the pair was held back. No-op without guards.
    """
    if not ruleset.guards or pairs.is_empty():
        return pairs
    weight = pl.col("match_weight")
    terms = [
        pl.when(pl.sql_expr(guard_sql(ruleset, guard)) & (weight > cap)).then(cap - weight).otherwise(0.0)
        for guard in ruleset.guards
        for cap in [guard_cap(guard)]
    ]
    capped = pairs.with_columns(pl.min_horizontal(*terms).alias("mw_guard")).with_columns(
        (weight + pl.col("mw_guard")).alias("match_weight")
    )
    return capped.with_columns(
        pl.when(pl.col("mw_guard") < 0)
        .then(1.0 / (1.0 + 2.0 ** (-pl.col("match_weight"))))
        .otherwise(pl.col("match_probability"))
        .alias("match_probability")
    )


def rule_keys(frame: pl.DataFrame, rule: BlockingRule, uid: str) -> pl.DataFrame:
    """``uid`` and the rule's columns of every record, lists exploded, rows with a null dropped: the
    equality keys of one blocking rule (nulls never block together)."""
    keys = frame.select(uid, *rule.columns)
    for column in rule.explode:
        keys = keys.explode(column)
    return keys.drop_nulls().unique()


def blocked_pairs(frame: pl.DataFrame, ruleset: RuleSet) -> pl.DataFrame:
    """Candidate pairs of the rule set's blocking rules, computed with polars joins.

    Same semantics as Splink's own blocking (equality on the rule's columns, lists exploded first,
    nulls never equal), but hash joins per rule plus one dedupe are far cheaper at 1M records than
    Splink's SQL, which excludes each earlier rule's pairs with a condition on every later join.
    Returns Splink's blocked-pairs layout: ``match_key`` (index of the first rule finding the pair),
    ``join_key_l < join_key_r``.
    """
    uid = ruleset.unique_id_column
    parts = []
    for key, rule in enumerate(ruleset.blocking):
        keys = rule_keys(frame, rule, uid)
        parts.append(
            keys.join(keys, on=rule.columns, suffix="_r")
            .filter(pl.col(uid) < pl.col(f"{uid}_r"))
            .select(
                pl.lit(str(key)).alias("match_key"),
                pl.col(uid).alias("join_key_l"),
                pl.col(f"{uid}_r").alias("join_key_r"),
            )
            .unique(["join_key_l", "join_key_r"])
        )
    return pl.concat(parts).sort("match_key").unique(["join_key_l", "join_key_r"], keep="first")


def predict(records: pl.DataFrame, model: TrainedModel, min_probability: float | None = None) -> pl.DataFrame:
    """Scored pairs among `records` found by the rule set's blocking rules.

    Returns ``rid_l < rid_r, match_weight, match_probability, gamma_<cmp>, mw_<cmp>``; pairs below
    `min_probability` (default: the rule set's lower threshold) are dropped, since nothing uses them.
    """
    floor = model.ruleset.thresholds.lower if min_probability is None else min_probability
    frame = matching_frame(records, model.ruleset)
    db_api = new_db_api()
    linker = new_linker(frame, model.splink_settings, db_api)
    pairs = db_api.register(blocked_pairs(frame, model.ruleset).to_arrow(), table_name="blocked_pairs")
    linker.table_management.register_blocked_pairs_for_predict(pairs)
    raw = linker.inference.predict(threshold_match_probability=floor).as_duckdbpyrelation().pl()
    return tidy_pairs(raw, model)
