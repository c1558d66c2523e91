"""Steward labels as a quality suite: the model's precision and recall against the decisions made.

Every active match / no-match decision in a store is a labelled pair. Each pair is scored with the
store's trained model exactly as real time and batch score it (``mdm.matching.realtime.score``), and the
model's call at a threshold is compared with the steward's: at 0.5 (the model's best guess) and at the
rule set's upper threshold (what the model links on its own). Review-band pairs sit below the upper
threshold by construction, so recall at it measures how much the stewards add to the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from mdm.store import Store


def labelled_pairs(store: Store) -> pl.DataFrame:
    """rid_l, rid_r, label (True for match) of every active steward decision."""
    labels = store.review_labels()
    keys = store.query("SELECT rid, source, source_key FROM record_keys")
    left = keys.rename({"rid": "rid_l", "source": "left_source", "source_key": "left_key"})
    right = keys.rename({"rid": "rid_r", "source": "right_source", "source_key": "right_key"})
    return (
        labels.join(left, on=["left_source", "left_key"])
        .join(right, on=["right_source", "right_key"])
        .select("rid_l", "rid_r", (pl.col("label") == "match").alias("label"))
    )


def scored_labels(store: Store) -> pl.DataFrame:
    """The labelled pairs with the model's match probability today."""
    from mdm.matching import realtime

    pairs = labelled_pairs(store)
    if pairs.is_empty():
        return pairs.with_columns(pl.lit(None, pl.Float64).alias("match_probability"))
    index = realtime.index_for(store)
    rows = index.frame
    probabilities = []
    for rid_l, rid_r in pairs.select("rid_l", "rid_r").iter_rows():
        scored = realtime.score(
            index, rows.filter(pl.col("rid") == rid_l), rows.filter(pl.col("rid") == rid_r)
        )
        probabilities.append(float(scored["match_probability"][0]) if scored.height else 0.0)
    return pairs.with_columns(pl.Series("match_probability", probabilities, pl.Float64))


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def agreement(scored: pl.DataFrame, threshold: float) -> dict[str, Any]:
    """Precision, recall and F1 of the model's calls at ``threshold`` against the labels."""
    said = scored["match_probability"] >= threshold
    truth = scored["label"]
    tp = int((said & truth).sum())
    fp = int((said & ~truth).sum())
    fn = int((~said & truth).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "threshold": threshold,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
    }


def run(db: Path) -> dict[str, Any]:
    """The suite on the store at ``db``."""
    from mdm.matching import realtime

    with Store(db) as store:
        scored = scored_labels(store)
        upper = float(realtime.index_for(store).ruleset.thresholds.upper) if scored.height else 1.0
    matches = int(scored["label"].sum()) if scored.height else 0
    return {
        "db": str(db),
        "labels": scored.height,
        "match_labels": matches,
        "no_match_labels": scored.height - matches,
        "at": [agreement(scored, 0.5), agreement(scored, upper)] if scored.height else [],
    }
