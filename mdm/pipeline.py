"""`mdm run`: ingested records -> matched -> clustered -> customer IDs and golden records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from matching_rules import RuleSet, load_ruleset
from mdm.matching.train import TrainedModel
from mdm.store import Store

SEED = 42


@dataclass
class MatchResult:
    """Scored pairs, the review band and the clusters of one run."""

    pairs: pl.DataFrame
    review: pl.DataFrame
    clusters: pl.DataFrame


@dataclass
class RunSummary:
    """What one run did, stage by stage."""

    run_id: int
    records: int = 0
    pairs: int = 0
    review_pairs: int = 0
    clusters: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    trained: bool = False

    def lines(self) -> list[str]:
        """Human summary, one fact a line."""
        out = [
            f"run {self.run_id}: {self.records} current records, model {self.model_version}"
            + (" (trained now)" if self.trained else ""),
            f"  scored pairs {self.pairs}, review band {self.review_pairs}, clusters {self.clusters}",
        ]
        out += [f"  {k}: {v}" for k, v in sorted(self.counts.items())]
        out.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        return out


def default_model_path(store: Store, ruleset: str) -> Path:
    """Trained parameters live beside the database they were trained on: ``<db>.<ruleset>.model.json``."""
    return store.path.with_name(f"{store.path.name}.{ruleset}.model.json")


def load_or_train(records: pl.DataFrame, rules: RuleSet, path: Path) -> tuple[TrainedModel, bool]:
    """The saved model at ``path``; trains and saves one (fixed seed) when there is none."""
    from mdm.matching.train import train

    if path.exists():
        return TrainedModel.load(path), False
    model = train(records, rules, seed=SEED)
    model.save(path)
    return model, True


def match_records(records: pl.DataFrame, model: TrainedModel, links: pl.DataFrame) -> MatchResult:
    """Score, apply steward links and identity-document constraints, cluster, and cut the review band."""
    from mdm.matching.cluster import cluster, id_conflicts, review_pairs
    from mdm.matching.predict import predict

    th = model.ruleset.thresholds
    pairs = predict(records, model)
    steward = links.select("kind", pl.col("rid_a").alias("rid_l"), pl.col("rid_b").alias("rid_r"))
    clusters = cluster(
        records["rid"],
        pairs,
        upper=th.upper,
        must_link=steward.filter(pl.col("kind") == "must").drop("kind"),
        cannot_link=steward.filter(pl.col("kind") == "cannot").drop("kind"),
        conflicts=id_conflicts(records),
    )
    review = review_pairs(pairs, lower=th.lower, upper=th.upper, clusters=clusters)
    decided = pl.concat([steward.select("rid_l", "rid_r"), steward.select(rid_l="rid_r", rid_r="rid_l")])
    review = review.join(decided, on=["rid_l", "rid_r"], how="anti")
    return MatchResult(pairs=pairs, review=review, clusters=clusters)


def run_batch(store: Store, model_path: Path | None = None, ruleset: str = "person") -> RunSummary:
    """One full run; every write goes through the store, and a failed run is recorded as failed."""
    from golden_record.pipeline import run_golden

    rules = load_ruleset(ruleset)
    t0 = time.perf_counter()
    records = store.current_records()
    model, trained = load_or_train(records, rules, model_path or default_model_path(store, ruleset))
    run_id = store.start_run(model.version)
    summary = RunSummary(run_id=run_id, records=records.height, model_version=model.version, trained=trained)
    summary.seconds["load+train"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        result = match_records(records, model, store.active_links())
        store.save_match_result(run_id, result.pairs, result.review)
        summary.seconds["match"] = time.perf_counter() - t0
        summary.pairs, summary.review_pairs = result.pairs.height, result.review.height
        summary.clusters = result.clusters["cluster_id"].n_unique()
        t0 = time.perf_counter()
        summary.counts = run_golden(store, result.clusters, run_id)
        summary.seconds["golden"] = time.perf_counter() - t0
    except Exception as exc:
        store.finish_run(run_id, "failed", {}, type(exc).__name__)
        raise
    store.finish_run(run_id, "succeeded", summary.counts, None)
    store.refresh_hmac_index()
    return summary
