"""Train a Splink model for a rule set: prior from deterministic rules, u by random sampling, m by EM.

Training is compute only: a frame of standardized records in, a ``TrainedModel`` out (saved as JSON
beside the rule set by the caller). Splink runs on a private in-memory DuckDB connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from splink import DuckDBAPI, Linker
from splink.internals import expectation_maximisation as splink_em
from splink.internals.comparison_level import M_U_CLAMP_MIN, ComparisonLevel
from splink.internals.database_api import DatabaseAPI

from matching_rules import RuleSet
from matching_rules.compile import to_blocking_rule, to_splink_settings
from matching_rules.models import BlockingRule
from mdm.errors import MdmError
from mdm.matching.features import matching_frame

MODEL_FORMAT = 1
#: Random pairs scored per Splink call when re-estimating u (bounds the memory of the scored rows).
POSTERIOR_CHUNK = 500_000
log = logging.getLogger(__name__)


class MatchingError(MdmError):
    """The matching model cannot be trained or used on the data given."""


@dataclass
class TrainedModel:
    """A rule set with its trained Splink parameters and the data version it was trained on."""

    ruleset: RuleSet
    splink_settings: dict[str, Any]
    data_version: str
    seed: int
    trained_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def version(self) -> str:
        """Short content hash of the parameters: names the model in runs and events."""
        blob = json.dumps(self.splink_settings, sort_keys=True, default=str).encode()
        return f"{self.ruleset.name}-{hashlib.sha256(blob).hexdigest()[:12]}"

    @property
    def prior(self) -> float:
        """Probability that two random records match (λ)."""
        return float(self.splink_settings["probability_two_random_records_match"])

    def to_json(self) -> dict[str, Any]:
        """Plain JSON document of the model."""
        return {
            "format": MODEL_FORMAT,
            "version": self.version,
            "ruleset": self.ruleset.model_dump(mode="json"),
            "data_version": self.data_version,
            "seed": self.seed,
            "trained_at": self.trained_at,
            "splink_settings": self.splink_settings,
        }

    def save(self, path: Path) -> Path:
        """Write the model as JSON; returns the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(self.to_json(), ensure_ascii=False, indent=1, default=str), encoding="utf-8"
        )
        return path

    @classmethod
    def load(cls, path: Path) -> TrainedModel:
        """Read a model written by ``save``."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: unsupported model format {doc.get('format')!r}")
        return cls(
            ruleset=RuleSet.model_validate(doc["ruleset"]),
            splink_settings=doc["splink_settings"],
            data_version=doc["data_version"],
            seed=doc["seed"],
            trained_at=doc["trained_at"],
        )


def data_version(records: pl.DataFrame) -> str:
    """Order-independent fingerprint of a record frame: record count plus a hash of row hashes."""
    rows = records.sort("rid").hash_rows(seed=0)
    digest = hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]
    return f"{records.height}:{digest}"


def new_db_api() -> DuckDBAPI:
    """Splink's DuckDB backend on a private in-memory connection (matching never touches the store)."""
    return DuckDBAPI(connection=duckdb.connect())


def new_linker(frame: pl.DataFrame, settings: Any, db_api: DatabaseAPI[Any] | None = None) -> Linker:
    """A Splink linker over `frame`, on `db_api` or a fresh in-memory DuckDB connection."""
    table = (db_api or new_db_api()).register(frame.to_arrow(), table_name="records")
    return Linker(table, settings, log_level=logging.WARNING)


def _finds_pairs(frame: pl.DataFrame, rule: BlockingRule) -> bool:
    """Does an EM blocking rule (scalar columns) find at least one pair? (A failed EM session in Splink
    leaves a corrupt prior behind, so rules without pairs are skipped before Splink sees them.)"""
    return bool(frame.select(rule.columns).drop_nulls().is_duplicated().any())


def random_pairs(ids: pl.Series, count: int, seed: int) -> pl.DataFrame:
    """``count`` distinct record pairs (all of them when there are fewer) drawn uniformly at random
    (seeded), in Splink's blocked-pairs layout (``match_key``, ``join_key_l < join_key_r``)."""
    n = ids.len()
    total = n * (n - 1) // 2
    wanted = min(count, total)
    rng = np.random.default_rng(seed)
    if total <= 4 * wanted:
        left, right = np.triu_indices(n, 1)
        chosen = np.sort(rng.choice(total, size=wanted, replace=False))
        left, right = left[chosen], right[chosen]
    else:
        left, right = rng.integers(0, n, size=2 * wanted + 16), rng.integers(0, n, size=2 * wanted + 16)
    values = ids.to_numpy()
    pairs = pl.DataFrame({"a": values[left], "b": values[right]}).filter(pl.col("a") != pl.col("b"))
    return (
        pairs.select(
            pl.lit("0").alias("match_key"),
            pl.min_horizontal("a", "b").alias("join_key_l"),
            pl.max_horizontal("a", "b").alias("join_key_r"),
        )
        .unique(["join_key_l", "join_key_r"], maintain_order=True)
        .head(wanted)
    )


def _level_values(comparison: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(gamma value, level) of a comparison's non-null levels: Splink numbers them from the top down."""
    levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
    return [(len(levels) - 1 - k, lv) for k, lv in enumerate(levels)]


def posterior_u(
    frame: pl.DataFrame, settings: dict[str, Any], pairs: pl.DataFrame, u_floor: float, rounds: int
) -> dict[str, Any]:
    """u re-estimated on random pairs, each weighted by the model's probability that it is NOT a match.

    Splink's random-sampling u counts every sampled pair as a non-match. On small, duplicate-rich data
    the true matches among random pairs inflate u of the identifying levels (same e-mail, same mobile)
    and cap their weight near log2(1/λ). Weighting each random pair by 1 - p(match) is the M-step for u
    over the population u is defined on; no truth is involved. The pairs are scored once by Splink;
    each round then moves every pair's match weight by the change in its levels' log2 u and re-weights.
    Levels with term-frequency adjustments keep their u (their weight comes from the value's frequency),
    and u never drops below `u_floor` (one pair in the sample) unless it was already lower.
    """
    if rounds <= 0:
        return settings
    db_api = new_db_api()
    linker = new_linker(frame, settings, db_api)
    out = json.loads(json.dumps(settings))
    keep = ["match_weight", *[f"gamma_{c['output_column_name']}" for c in out["comparisons"]]]
    parts = []
    for start in range(0, pairs.height, POSTERIOR_CHUNK):
        chunk = pairs.slice(start, POSTERIOR_CHUNK).to_arrow()
        linker.table_management.register_blocked_pairs_for_predict(
            db_api.register(chunk, table_name=f"random_pairs_{start}")
        )
        predicted = linker.inference.predict()
        parts.append(predicted.as_duckdbpyrelation().select(*keep).pl())
        predicted.drop_table_from_database_and_remove_from_cache()
    scored = pl.concat(parts)
    updatable = [
        (comparison["output_column_name"], value, level)
        for comparison in out["comparisons"]
        for value, level in _level_values(comparison)
        if not level.get("fix_u_probability")
        and not level.get("tf_adjustment_column")
        and level.get("u_probability") is not None
    ]
    original = {id(level): float(level["u_probability"]) for _, _, level in updatable}
    base = scored.with_columns(pl.col("match_weight").cast(pl.Float64).alias("mw0"))
    for _ in range(rounds):
        shift = pl.sum_horizontal(
            pl.lit(0.0),
            *[
                pl.when(pl.col(f"gamma_{name}") == value)
                .then(math.log2(original[id(level)] / float(level["u_probability"])))
                .otherwise(0.0)
                for name, value, level in updatable
            ],
        )
        odds = (2.0 ** (pl.col("mw0") + shift)).clip(upper_bound=1e300)
        weighted = base.with_columns((1.0 / (1.0 + odds)).alias("w"))
        sums = weighted.select(
            *[
                (pl.col("w") * (pl.col(f"gamma_{c['output_column_name']}") != -1))
                .sum()
                .alias(c["output_column_name"])
                for c in out["comparisons"]
            ],
            *[
                (pl.col("w") * (pl.col(f"gamma_{name}") == value)).sum().alias(f"{name}:{value}")
                for name, value, _ in updatable
            ],
        ).row(0, named=True)
        for name, value, level in updatable:
            if sums[name]:
                level["u_probability"] = max(
                    sums[f"{name}:{value}"] / sums[name], min(original[id(level)], u_floor)
                )
    return out


def floor_m(settings: dict[str, Any], m_floor: float) -> dict[str, Any]:
    """Raise every m below `m_floor` to it and renormalize each comparison's m to sum to 1.

    A regularizing prior, not a fit: EM drives the m of rare disagreement levels towards 0 on small
    data (seen: 1e-92 for "address different"), which turns one disagreeing field into a veto.
    """
    out = json.loads(json.dumps(settings))
    for comparison in out["comparisons"]:
        levels = [
            lv
            for lv in comparison["comparison_levels"]
            if not lv.get("is_null_level")
            and not lv.get("fix_m_probability")
            and lv.get("m_probability") is not None
        ]
        if not levels:
            continue
        mass = sum(float(lv["m_probability"]) for lv in levels)
        raised = [max(float(lv["m_probability"]), m_floor) for lv in levels]
        total = sum(raised) / mass
        for lv, m in zip(levels, raised, strict=True):
            lv["m_probability"] = m / total
    return out


@contextmanager
def clamped_em_updates() -> Iterator[None]:
    """While EM runs, lift an m or u it estimates as exactly 0 to Splink's own minimum (1e-300).

    On some data every pair at a level scores as a non-match, EM's new m is 0.0, and Splink 5 refuses
    it with a ValueError that loses the whole session (and with it, say, the only session where
    romanized names occur). The clamped level weighs as a veto until ``floor_m`` raises it.
    """
    original = splink_em.populate_m_u_from_lookup

    def clamped(
        training_fixed_probabilities: set[str],
        comparison_level: ComparisonLevel,
        output_column_name: str,
        m_u_records_lookup: dict[str, dict[int, Any]],
    ) -> None:
        safe = {
            column: {
                value: {
                    key: max(number, M_U_CLAMP_MIN) if isinstance(number, float) else number
                    for key, number in record.items()
                }
                for value, record in levels.items()
            }
            for column, levels in m_u_records_lookup.items()
        }
        original(training_fixed_probabilities, comparison_level, output_column_name, safe)

    splink_em.populate_m_u_from_lookup = clamped
    try:
        yield
    finally:
        splink_em.populate_m_u_from_lookup = original


def train(
    records: pl.DataFrame,
    ruleset: RuleSet,
    seed: int = 42,
    version: str | None = None,
    db_api: DatabaseAPI[Any] | None = None,
) -> TrainedModel:
    """Estimate the model: λ from the prior rules, u by seeded random sampling, m by EM per rule.

    Runs on `db_api` (default: a private in-memory DuckDB; ``mdm.engines.get_db_api("spark")`` for Spark).
    """
    frame = matching_frame(records, ruleset)
    # DuckDB's seeded sampling repeats only on one thread: training must give the same model twice.
    db_api = db_api or DuckDBAPI(connection=duckdb.connect(config={"threads": 1}))
    linker = new_linker(frame, to_splink_settings(ruleset), db_api)
    t = ruleset.training
    linker.training.estimate_probability_two_random_records_match(
        [to_blocking_rule(r) for r in t.prior_rules], recall=t.prior_recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=t.u_max_pairs, seed=seed)
    usable = [rule for rule in t.em_blocking if _finds_pairs(frame, rule)]
    skipped = [rule.columns for rule in t.em_blocking if rule not in usable]
    if skipped:
        log.warning("EM rules finding no record pairs in this data were skipped: %s", skipped)
    if not usable:
        raise MatchingError("no EM training rule finds record pairs: too little data to train a model")
    trained = 0
    for rule in usable:
        lam = linker._settings_obj._probability_two_random_records_match
        try:
            with clamped_em_updates():
                linker.training.estimate_parameters_using_expectation_maximisation(to_blocking_rule(rule))
            trained += 1
        except ValueError as exc:
            linker._settings_obj._probability_two_random_records_match = lam
            log.warning("EM on %s did not converge on this data (%s); skipped", rule.columns, exc)
    if not trained:
        raise MatchingError("EM training failed on every rule: too little data to train a model")
    settings = floor_m(linker.misc.save_model_to_json(), t.m_floor)
    sample = random_pairs(frame[ruleset.unique_id_column], int(t.u_max_pairs), seed)
    settings = posterior_u(frame, settings, sample, u_floor=1.0 / t.u_max_pairs, rounds=t.u_rounds)
    settings.pop("linker_uid", None)  # random per linker: would make identical models look different
    return TrainedModel(ruleset, settings, version or data_version(records), seed)
