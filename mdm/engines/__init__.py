"""Execution engines for matching: which Splink backend runs blocking, training and scoring.

``duckdb`` (default) runs in process; ``spark`` runs on a Spark session (local mode or a cluster), with
``pyspark`` imported only when the Spark engine is asked for. Both engines run the same rule set and
the same trained-model JSON: a saved model holds SQL rendered for one dialect, so
:func:`settings_for_dialect` re-renders the rule set for the target backend and carries the trained
parameters over level by level.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, get_args

import polars as pl

from matching_rules import RuleSet
from matching_rules.compile import to_splink_settings

if TYPE_CHECKING:
    from splink.internals.database_api import DatabaseAPI

    from mdm.matching.train import TrainedModel

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[str, ...] = get_args(Engine)

#: Level fields that are learned (or fixed) by training; everything else is re-rendered from the rule set.
TRAINED_LEVEL_FIELDS = ("m_probability", "u_probability", "fix_m_probability", "fix_u_probability")
#: Settings fields that are learned by training.
TRAINED_FIELDS = ("probability_two_random_records_match",)


def check_engine(engine: str) -> Engine:
    """The engine name, validated; an unknown name raises ValueError listing the known ones."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return engine  # type: ignore[return-value]


def get_db_api(engine: str = "duckdb", **opts: Any) -> DatabaseAPI[Any]:
    """A Splink database API for `engine`: ``DuckDBAPI`` or ``SparkAPI(spark_session=...)``.

    Options go to :func:`mdm.engines.duckdb.duckdb_api` (``connection``) or
    :func:`mdm.engines.spark.spark_api` (``spark``, or the session options of ``spark_session``).
    """
    if check_engine(engine) == "spark":
        from mdm.engines.spark import spark_api

        return spark_api(**opts)
    from mdm.engines.duckdb import duckdb_api

    return duckdb_api(**opts)


def _levels_by_label(settings: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Comparison levels of a Splink settings dict keyed by (comparison name, level label)."""
    return {
        (c["output_column_name"], lv["label_for_charts"]): lv
        for c in settings["comparisons"]
        for lv in c["comparison_levels"]
    }


def settings_for_dialect(trained: dict[str, Any], ruleset: RuleSet, dialect: str) -> dict[str, Any]:
    """Trained Splink settings rendered for `dialect` (``duckdb`` or ``spark``).

    The rule set is compiled again for the target dialect (Splink's level creators write each backend's
    SQL: quoting, ``jaro_winkler`` vs ``jaro_winkler_similarity``, array functions) and the trained
    parameters (λ, m and u per level) are copied over by comparison name and level label. A rule set
    that no longer has the model's levels raises ValueError instead of silently scoring with defaults.
    """
    rendered = to_splink_settings(ruleset).create_settings_dict(dialect)
    rendered.pop("linker_uid", None)
    learned = _levels_by_label(trained)
    target = _levels_by_label(rendered)
    if learned.keys() != target.keys():
        diff = sorted(learned.keys() ^ target.keys())
        raise ValueError(f"the model's comparison levels differ from rule set {ruleset.name!r}: {diff}")
    for key, level in target.items():
        level.update({f: learned[key][f] for f in TRAINED_LEVEL_FIELDS if f in learned[key]})
    rendered.update({f: trained[f] for f in TRAINED_FIELDS if f in trained})
    out: dict[str, Any] = json.loads(json.dumps(rendered))
    return out


def score_pairs(
    records: pl.DataFrame, model: TrainedModel, engine: str = "duckdb", **opts: Any
) -> pl.DataFrame:
    """Scored pairs of `records` on `engine`, in :func:`mdm.matching.predict.predict`'s layout.

    ``opts`` go to :func:`mdm.engines.spark.predict_spark` (``spark``, ``workdir``) for the Spark engine.
    """
    if check_engine(engine) == "spark":
        from mdm.engines.spark import predict_spark

        return predict_spark(records, model, **opts)
    from mdm.matching.predict import predict

    return predict(records, model, **opts)


def train_model(
    records: pl.DataFrame, ruleset: RuleSet, seed: int = 42, engine: str = "duckdb", **opts: Any
) -> TrainedModel:
    """Train `ruleset` on `engine`; the model is saved in the DuckDB dialect whichever engine trained it.

    ``opts`` go to :func:`mdm.engines.spark.train_spark` (``spark``) for the Spark engine.
    """
    if check_engine(engine) == "spark":
        from mdm.engines.spark import train_spark

        return train_spark(records, ruleset, seed, **opts)
    from mdm.matching.train import train

    return train(records, ruleset, seed, **opts)


__all__ = [
    "ENGINES",
    "Engine",
    "check_engine",
    "get_db_api",
    "score_pairs",
    "settings_for_dialect",
    "train_model",
]
