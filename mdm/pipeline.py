"""`mdm run`: ingested records -> matched -> clustered -> customer IDs and golden records.

A run is incremental by default: only records new or changed since the last succeeded run are scored
against every current record (plus a re-score of the previous run's kept pairs, so term frequencies and
hubs are those of today's data, as a full run would have them); only the link components they touch are
re-clustered, and only the customers of those components are re-assigned. ``full=True`` re-matches
everything. Every write of a run happens in one store transaction after a committed 'running' row, so a
killed run leaves that row (marked 'abandoned' by the next run) and nothing else.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from matching_rules import RuleSet, load_ruleset
from mdm.engines import check_engine, score_pairs
from mdm.errors import MdmError
from mdm.matching.predict import rule_keys
from mdm.matching.train import TrainedModel
from mdm.schema import STANDARD_SCHEMA
from mdm.store import Store

SEED = 42
#: Stage boundaries, in order; ``MDM_CRASH_AT=<stage>`` kills the process with SIGKILL right after one.
STAGES: tuple[str, ...] = ("load", "match", "cluster", "golden", "commit", "report")
CRASH_ENV = "MDM_CRASH_AT"
#: Columns a run reads of every current record: what matching, clustering and the delta need.
MATCH_COLUMNS: tuple[str, ...] = ("rid", "batch_id", *STANDARD_SCHEMA)
#: Counts of a run that are changes (ID events and new golden versions); zero for a run without new data.
CHANGE_COUNTS: tuple[str, ...] = (
    "created",
    "merged_into",
    "split_from",
    "record_moved",
    "record_added",
    "record_ended",
    "customer_ended",
    "revived",
    "golden_versions",
)

#: Called after each stage with its name, seconds and a few facts.
StageHook = Callable[[str, float, dict[str, Any]], None]
#: Scores every candidate pair of a frame of records with a model (the engine's predict).
Scorer = Callable[[pl.DataFrame, TrainedModel], pl.DataFrame]


class RunInputError(MdmError):
    """The run was given something it cannot use (exit code 2)."""

    exit_code = 2


class _DryRun(Exception):
    """Raised at the end of a dry run to roll its transaction back."""


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
    mode: str = "full"
    dry_run: bool = False
    records: int = 0
    changed: int = 0
    ended: int = 0
    scope: int = 0
    pairs: int = 0
    review_pairs: int = 0
    clusters: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    trained: bool = False
    abandoned: list[int] = field(default_factory=list)
    batches: tuple[int, int] = (0, 0)
    report: dict[str, Any] = field(default_factory=dict)
    report_paths: list[Path] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """ID events plus new golden versions: 0 means the run changed nothing."""
        return sum(int(self.counts.get(k, 0)) for k in CHANGE_COUNTS)

    def lines(self) -> list[str]:
        """Human summary, one fact a line."""
        head = "dry run (nothing written)" if self.dry_run else f"run {self.run_id}"
        out = [
            f"{head}: {self.mode}, {self.records} current records, model {self.model_version}"
            + (" (trained now)" if self.trained else ""),
            f"  new or changed records {self.changed}, ended {self.ended}, re-resolved {self.scope}",
            f"  scored pairs {self.pairs}, review band {self.review_pairs}, clusters {self.clusters}",
        ]
        if self.abandoned:
            out.append(f"  abandoned earlier runs: {', '.join(map(str, self.abandoned))}")
        out += [f"  {k}: {v}" for k, v in sorted(self.counts.items())]
        out.append("  changes: " + (str(self.changes) if self.changes else "none (0 changes)"))
        out.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        out += [f"  report: {p}" for p in self.report_paths]
        return out


def default_model_path(store: Store, ruleset: str) -> Path:
    """Trained parameters live beside the database they were trained on: ``<db>.<ruleset>.model.json``."""
    return store.path.with_name(f"{store.path.name}.{ruleset}.model.json")


def default_reports_dir(store: Store) -> Path:
    """Run reports live in a ``reports`` folder beside the database."""
    return store.path.parent / "reports"


def load_or_train(
    records: pl.DataFrame, rules: RuleSet, path: Path, save: bool = True
) -> tuple[TrainedModel, bool]:
    """The saved model at ``path``; trains one (fixed seed) when there is none, and saves it if ``save``."""
    from mdm.matching.train import train

    if path.exists():
        return TrainedModel.load(path), False
    model = train(records, rules, seed=SEED)
    if save:
        model.save(path)
    return model, True


def crash_point(stage: str) -> None:
    """Test hook: SIGKILL this process at ``stage`` when ``MDM_CRASH_AT`` names it."""
    if os.environ.get(CRASH_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _steward_frames(links: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Steward links as (must, cannot, both directions of every decided pair), in rid_l/rid_r form."""
    steward = links.select(
        "kind", pl.col("rid_a").cast(pl.Int64).alias("rid_l"), pl.col("rid_b").cast(pl.Int64).alias("rid_r")
    )
    decided = pl.concat([steward.select("rid_l", "rid_r"), steward.select(rid_l="rid_r", rid_r="rid_l")])
    must = steward.filter(pl.col("kind") == "must").drop("kind")
    cannot = steward.filter(pl.col("kind") == "cannot").drop("kind")
    return must, cannot, decided


def cluster_records(
    records: pl.DataFrame, pairs: pl.DataFrame, links: pl.DataFrame, upper: float
) -> pl.DataFrame:
    """Constrained clusters (rid, cluster_id) of ``records`` from their pairs and steward links."""
    from mdm.matching.cluster import cluster, id_conflicts

    must, cannot, _ = _steward_frames(links)
    return cluster(
        records["rid"],
        pairs,
        upper=upper,
        must_link=must,
        cannot_link=cannot,
        conflicts=id_conflicts(records),
    )


def review_band(
    pairs: pl.DataFrame, clusters: pl.DataFrame, links: pl.DataFrame, lower: float, upper: float
) -> pl.DataFrame:
    """Pairs in the review band whose records are apart and that no steward has decided."""
    from mdm.matching.cluster import review_pairs

    _, _, decided = _steward_frames(links)
    review = review_pairs(pairs, lower=lower, upper=upper, clusters=clusters)
    return review.join(decided, on=["rid_l", "rid_r"], how="anti")


def match_records(records: pl.DataFrame, model: TrainedModel, links: pl.DataFrame) -> MatchResult:
    """Score, apply steward links and identity-document constraints, cluster, and cut the review band."""
    from mdm.matching.predict import predict

    th = model.ruleset.thresholds
    pairs = predict(records, model)
    clusters = cluster_records(records, pairs, links, th.upper)
    review = review_band(pairs, clusters, links, th.lower, th.upper)
    return MatchResult(pairs=pairs, review=review, clusters=clusters)


# ----- incremental pieces (pure) --------------------------------------------------------


def delta_rids(
    records: pl.DataFrame, xref: pl.DataFrame, since_batch: int | None
) -> tuple[pl.Series, pl.Series]:
    """(changed, gone): current records new or changed since batch ``since_batch`` (all when None), and
    records of the open cross-reference that are no longer current (ended in their source or erased)."""
    held = xref.select(pl.col("rid").cast(pl.Int64))
    current = records.select(pl.col("rid").cast(pl.Int64), "batch_id")
    if since_batch is None:
        changed = current["rid"]
    else:
        fresh = current.filter(pl.col("batch_id") > since_batch).select("rid")
        unheld = current.select("rid").join(held, on="rid", how="anti")
        changed = pl.concat([fresh, unheld]).unique()["rid"]
    gone = held.join(current.select("rid"), on="rid", how="anti")["rid"]
    return changed.sort(), gone.sort()


def touching_pairs(frame: pl.DataFrame, changed: pl.Series, ruleset: RuleSet) -> pl.DataFrame:
    """Blocked candidate pairs with at least one ``changed`` record, in Splink's blocked-pairs layout.

    Same keys as :func:`mdm.matching.predict.blocked_pairs`, but each rule's join starts from the keys
    of the changed records only, so the cost follows the delta, not the store.
    """
    uid = ruleset.unique_id_column
    ids = changed.cast(pl.Int64).to_frame(uid)
    parts = []
    for key, rule in enumerate(ruleset.blocking):
        keys = rule_keys(frame, rule, uid)
        mine = keys.join(ids, on=uid, how="semi")
        parts.append(
            mine.join(keys, on=rule.columns, suffix="_r")
            .filter(pl.col(uid) != pl.col(f"{uid}_r"))
            .select(
                pl.lit(str(key)).alias("match_key"),
                pl.min_horizontal(uid, f"{uid}_r").alias("join_key_l"),
                pl.max_horizontal(uid, f"{uid}_r").alias("join_key_r"),
            )
            .unique(["join_key_l", "join_key_r"])
        )
    empty = pl.DataFrame(schema={"match_key": pl.String, "join_key_l": pl.Int64, "join_key_r": pl.Int64})
    return (
        pl.concat([empty, *parts])
        .sort("match_key", "join_key_l", "join_key_r")
        .unique(["join_key_l", "join_key_r"], keep="first", maintain_order=True)
    )


def rescore_keys(kept: pl.DataFrame, current: pl.Series, changed: pl.Series, match_key: str) -> pl.DataFrame:
    """The previous run's kept pairs whose records are both current and unchanged, as blocked pairs."""
    stay = (
        current.cast(pl.Int64)
        .to_frame("rid")
        .join(changed.cast(pl.Int64).to_frame("rid"), on="rid", how="anti")
    )
    return (
        kept.select(pl.col("rid_l").cast(pl.Int64), pl.col("rid_r").cast(pl.Int64))
        .join(stay.rename({"rid": "rid_l"}), on="rid_l", how="semi")
        .join(stay.rename({"rid": "rid_r"}), on="rid_r", how="semi")
        .select(pl.lit(match_key).alias("match_key"), join_key_l="rid_l", join_key_r="rid_r")
    )


def flipped_links(old: pl.DataFrame, new: pl.DataFrame, upper: float) -> pl.Series:
    """Records of pairs that are a link (probability >= ``upper``) in one of ``old``/``new`` but not the other.

    Re-scoring kept pairs on today's data shifts term frequencies and hubs; a pair crossing the upper
    threshold changes its component even when neither record changed, so its records join the scope.
    """
    keys = ["rid_l", "rid_r"]

    def links(pairs: pl.DataFrame) -> pl.DataFrame:
        return pairs.filter(pl.col("match_probability") >= upper).select(pl.col(keys).cast(pl.Int64))

    a, b = links(old), links(new)
    flipped = pl.concat([a.join(b, on=keys, how="anti"), b.join(a, on=keys, how="anti")])
    return pl.concat([flipped["rid_l"], flipped["rid_r"]]).unique().sort().alias("rid")


def link_components(rids: pl.Series, pairs: pl.DataFrame, links: pl.DataFrame, upper: float) -> pl.DataFrame:
    """rid, comp: connected components of links (pairs >= ``upper``, steward must-links) over ``rids``."""
    from mdm.matching.cluster import connected_components

    must, _, _ = _steward_frames(links)
    ids = rids.cast(pl.Int64).unique().sort()
    index = pl.DataFrame({"rid": ids}).with_row_index("i").with_columns(pl.col("i").cast(pl.Int64))
    edges = (
        pl.concat(
            [
                pairs.filter(pl.col("match_probability") >= upper).select(
                    pl.col("rid_l").cast(pl.Int64), pl.col("rid_r").cast(pl.Int64)
                ),
                must,
            ]
        )
        .join(index.rename({"rid": "rid_l", "i": "a"}), on="rid_l")
        .join(index.rename({"rid": "rid_r", "i": "b"}), on="rid_r")
    )
    labels = connected_components(ids.len(), edges["a"].to_numpy(), edges["b"].to_numpy())
    return pl.DataFrame({"rid": ids, "comp": labels})


def close_scope(seeds: pl.Series, comps: pl.DataFrame, owners: pl.DataFrame) -> pl.Series:
    """Smallest superset of ``seeds`` holding whole link components and whole customers.

    ``comps`` is rid, comp (current records); ``owners`` is rid, owner (the open cross-reference and
    record pins). Alternates the two closures until nothing is added: a customer is then either wholly
    inside or untouched, and so is every component, so clustering the scope alone equals clustering all.
    """
    scope = seeds.cast(pl.Int64).unique().to_frame("rid")
    while True:
        by_comp = comps.join(comps.join(scope, on="rid", how="semi").select("comp").unique(), on="comp")
        grown = pl.concat([scope, by_comp.select("rid")]).unique()
        by_owner = owners.join(owners.join(grown, on="rid", how="semi").select("owner").unique(), on="owner")
        grown = pl.concat([grown, by_owner.select("rid")]).unique()
        if grown.height == scope.height:
            return scope["rid"].sort()
        scope = grown


def whole_clusters(scoped: pl.DataFrame, xref: pl.DataFrame, scope: pl.Series) -> pl.DataFrame:
    """rid, cluster_id of every current record: ``scoped`` inside the scope, the held customer outside."""
    outside = (
        xref.select(pl.col("rid").cast(pl.Int64), "customer_id")
        .join(scope.to_frame("rid"), on="rid", how="anti")
        .join(scoped.select("rid"), on="rid", how="anti")
        .with_columns(pl.col("rid").min().over("customer_id").alias("cluster_id"))
        .select("rid", "cluster_id")
    )
    return pl.concat([scoped.select("rid", pl.col("cluster_id").cast(pl.Int64)), outside]).sort("rid")


# ----- the run ----------------------------------------------------------------------------


class _Clock:
    """Stage timer: records seconds, tells the hook, and honours the crash hook at each boundary."""

    def __init__(self, summary: RunSummary, hook: StageHook | None) -> None:
        self.summary = summary
        self.hook = hook
        self.t0 = time.perf_counter()

    def done(self, stage: str, **info: Any) -> None:
        now = time.perf_counter()
        seconds = now - self.t0
        self.summary.seconds[stage] = seconds
        if self.hook:
            self.hook(stage, seconds, {"run_id": self.summary.run_id, **info})
        self.t0 = time.perf_counter()
        crash_point(stage)


def score_incremental(
    frame: pl.DataFrame, changed: pl.Series, kept: pl.DataFrame, model: TrainedModel
) -> pl.DataFrame:
    """Pairs touching ``changed`` plus the still-valid kept pairs, scored on today's whole frame."""
    from mdm.matching.predict import tidy_pairs
    from mdm.matching.train import new_db_api, new_linker

    ruleset = model.ruleset
    blocked = pl.concat(
        [
            touching_pairs(frame, changed, ruleset),
            rescore_keys(kept, frame["rid"], changed, str(len(ruleset.blocking))),
        ]
    ).unique(["join_key_l", "join_key_r"], keep="first", maintain_order=True)
    db_api = new_db_api()
    linker = new_linker(frame, model.splink_settings, db_api)
    table = db_api.register(blocked.to_arrow(), table_name="blocked_pairs")
    linker.table_management.register_blocked_pairs_for_predict(table)
    floor = ruleset.thresholds.lower
    raw = linker.inference.predict(threshold_match_probability=floor).as_duckdbpyrelation().pl()
    return tidy_pairs(raw, model)


def run_batch(
    store: Store,
    model_path: Path | None = None,
    ruleset: str = "person",
    *,
    full: bool = False,
    dry_run: bool = False,
    reports_dir: Path | None = None,
    on_stage: StageHook | None = None,
    engine: str = "duckdb",
    engine_opts: dict[str, Any] | None = None,
) -> RunSummary:
    """One run (incremental unless ``full``); ``dry_run`` computes and reports, then rolls everything back.

    ``engine="spark"`` scores the pairs on Splink's Spark backend (``engine_opts`` go to
    :func:`mdm.engines.spark.predict_spark`: ``spark``, ``workdir``); a Spark run always re-matches
    everything, since a night's delta is small work that DuckDB does in-process.

    Writes the run report (JSON and HTML) under ``reports_dir`` (default: ``reports`` beside the database)
    unless dry. A failed run is recorded as failed; a killed one is marked abandoned by the next run.
    """
    from mdm.report import write_report

    if model_path is not None and not model_path.exists():
        raise RunInputError(f"{model_path}: no such model file")
    rules = load_ruleset(ruleset)
    summary = RunSummary(run_id=0, mode="full" if full else "incremental", dry_run=dry_run)
    clock = _Clock(summary, on_stage)
    summary.abandoned = [] if dry_run else store.abandon_running()
    last = store.last_succeeded_run()
    summary.batches = (int(last["batch_to"]) if last else 0, store.last_batch_id())
    records = store.current_records(MATCH_COLUMNS)
    xref = store.current_xref().select("rid", "customer_id")
    changed, gone = delta_rids(records, xref, None if full or last is None else summary.batches[0])
    steward = pl.Series("rid", store.steward_rids_since(last["started_at"] if last else None), pl.Int64)
    summary.mode = "full" if full or last is None or check_engine(engine) == "spark" else "incremental"
    summary.records, summary.changed, summary.ended = records.height, changed.len(), gone.len()
    delta = Delta(changed=changed, gone=gone, steward=steward)
    path = model_path or default_model_path(store, ruleset)
    model: TrainedModel | None = None
    if records.height and (summary.mode == "full" or not delta.empty):
        model, summary.trained = load_or_train(records, rules, path, save=not dry_run)
    elif path.exists():
        model = TrainedModel.load(path)
    summary.model_version = model.version if model else ""
    scorer = partial(score_pairs, engine=engine, **(engine_opts or {}))
    if dry_run:
        try:
            with store.transaction():
                summary.run_id = store.start_run(summary.model_version or None)
                _body(store, summary, clock, records, xref, delta, model, scorer)
                raise _DryRun
        except _DryRun:
            clock.done("commit")
        return summary
    summary.run_id = store.start_run(summary.model_version or None)
    try:
        with store.transaction():
            _body(store, summary, clock, records, xref, delta, model, scorer)
    except Exception as exc:
        store.finish_run(summary.run_id, "failed", {}, type(exc).__name__)
        raise
    clock.done("commit")
    summary.report["seconds"] = dict(summary.seconds)
    summary.report_paths = write_report(summary.report, reports_dir or default_reports_dir(store))
    clock.done("report")
    return summary


@dataclass(frozen=True)
class Delta:
    """What a run must re-resolve: new or changed records, records gone, records stewards acted on."""

    changed: pl.Series
    gone: pl.Series
    steward: pl.Series

    @property
    def empty(self) -> bool:
        return self.changed.len() + self.gone.len() + self.steward.len() == 0


def _body(
    store: Store,
    summary: RunSummary,
    clock: _Clock,
    records: pl.DataFrame,
    xref: pl.DataFrame,
    delta: Delta,
    model: TrainedModel | None,
    scorer: Scorer,
) -> None:
    """Everything a run writes, inside its one transaction: results, run info, report figures."""
    from mdm.report import build_report

    clock.done("load", records=records.height, changed=delta.changed.len(), ended=delta.gone.len())
    if model is not None and (summary.mode == "full" or not delta.empty):
        _resolve(store, summary, clock, records, xref, delta, model, scorer)
    else:
        for stage in ("match", "cluster", "golden"):
            clock.done(stage)
    store.refresh_hmac_index()
    store.finish_run(summary.run_id, "succeeded", summary.counts, None)
    store.save_run_info(summary.run_id, summary.mode, summary.batches, summary.scope, summary.seconds)
    summary.report = build_report(store, summary.run_id, dry_run=summary.dry_run)


def _resolve(
    store: Store,
    summary: RunSummary,
    clock: _Clock,
    records: pl.DataFrame,
    xref: pl.DataFrame,
    delta: Delta,
    model: TrainedModel,
    scorer: Scorer,
) -> None:
    """Match, cluster and assign IDs (everything, or the scope the delta touches); ``scorer`` scores a
    full re-match (DuckDB or Spark)."""
    from golden_record.assign import resolve_frame
    from golden_record.pipeline import run_golden
    from mdm.matching.features import matching_frame

    th = model.ruleset.thresholds
    links = store.active_links()
    flipped = pl.Series("rid", [], pl.Int64)
    if summary.mode == "full":
        pairs = scorer(records, model)
    else:
        kept = store.kept_pairs()
        pairs = score_incremental(matching_frame(records, model.ruleset), delta.changed, kept, model)
        flipped = flipped_links(kept, pairs, th.upper)
    summary.pairs = pairs.height
    clock.done("match", pairs=pairs.height)

    scope: pl.Series | None = None
    if summary.mode == "full":
        clusters = cluster_records(records, pairs, links, th.upper)
        summary.scope = records.height
    else:
        comps = link_components(records["rid"], pairs, links, th.upper)
        pins = resolve_frame(store.active_record_pins(), "customer_id", store.customers_frame())
        owners = pl.concat(
            [
                held.select(pl.col("rid").cast(pl.Int64), pl.col("customer_id").alias("owner"))
                for held in (xref, pins)
            ]
        )
        seeds = pl.concat([delta.changed, delta.gone, delta.steward, flipped])
        scope = close_scope(seeds, comps, owners)
        inside = records.join(scope.to_frame("rid"), on="rid", how="semi")
        within = pairs.join(inside.select(rid_l="rid"), on="rid_l", how="semi").join(
            inside.select(rid_r="rid"), on="rid_r", how="semi"
        )
        scoped = cluster_records(inside, within, links, th.upper)
        clusters = whole_clusters(scoped, xref, scope)
        summary.scope = scope.len()
    summary.clusters = clusters["cluster_id"].n_unique()
    review = review_band(pairs, clusters, links, th.lower, th.upper)
    summary.review_pairs = review.height
    clock.done("cluster", clusters=summary.clusters, scope=summary.scope)

    if scope is None:
        summary.counts = run_golden(store, clusters, summary.run_id)
    else:
        inside_clusters = clusters.join(scope.to_frame("rid"), on="rid", how="semi")
        summary.counts = run_golden(store, inside_clusters, summary.run_id, scope=scope.to_list())
    store.save_match_result(summary.run_id, pairs, review)
    clock.done("golden", **{k: v for k, v in summary.counts.items() if k in CHANGE_COUNTS})
