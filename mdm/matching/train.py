"""Train a Splink model for a rule set: prior from deterministic rules, u by random sampling, m by EM.

Training is compute only: a frame of standardized records in, a ``TrainedModel`` out (saved as JSON
beside the rule set by the caller). Splink runs on a private in-memory DuckDB connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from splink import DuckDBAPI, Linker
from splink.internals.database_api import DatabaseAPI

from matching_rules import RuleSet
from matching_rules.compile import to_blocking_rule, to_splink_settings
from matching_rules.models import BlockingRule
from mdm.errors import MdmError
from mdm.matching.features import matching_frame

MODEL_FORMAT = 1
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


def decontaminate_u(settings: dict[str, Any], u_floor: float) -> dict[str, Any]:
    """Remove the true matches from u estimated by random sampling: u = (u_hat - λ·m) / (1 - λ).

    Random pairs include true matches at rate λ, so for strong agreement levels (same ID, same mobile)
    u_hat ≈ λ·m + (1-λ)·u is inflated on small data and caps their weight near log2(1/λ). The
    correction uses only the model's own λ and m; u never drops below `u_floor` (one pair in the sample).
    """
    lam = float(settings["probability_two_random_records_match"])
    out = json.loads(json.dumps(settings))
    for comparison in out["comparisons"]:
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            if level.get("is_null_level") or level.get("fix_u_probability") or m is None or u is None:
                continue
            level["u_probability"] = max((u - lam * m) / (1.0 - lam), min(u, u_floor))
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
            linker.training.estimate_parameters_using_expectation_maximisation(to_blocking_rule(rule))
            trained += 1
        except ValueError as exc:
            linker._settings_obj._probability_two_random_records_match = lam
            log.warning("EM on %s did not converge on this data (%s); skipped", rule.columns, exc)
    if not trained:
        raise MatchingError("EM training failed on every rule: too little data to train a model")
    settings = floor_m(linker.misc.save_model_to_json(), t.m_floor)
    settings = decontaminate_u(settings, u_floor=1.0 / t.u_max_pairs)
    settings.pop("linker_uid", None)  # random per linker: would make identical models look different
    return TrainedModel(ruleset, settings, version or data_version(records), seed)
