"""The Spark engine: Splink's Spark backend for blocking, training and scoring, Parquet in and out.

Imported only when ``engine="spark"`` is asked for, so the DuckDB default never imports pyspark.
The session runs in local mode (``local[2]``) unless a master URL is given or set in ``MDM_SPARK_MASTER``
(``spark://host:7077``, ``yarn``, ``k8s://...``). Splink's Scala similarity functions (``jaro_winkler``,
``damerau_levenshtein``) ship as a jar inside splink and are added to the session here.

Flow of a Spark match: the rule set's matching frame (derived columns, hubs) is written as Parquet to a
work folder, Spark reads it, Splink blocks and scores on Spark with the model's trained parameters,
and the tidy scored pairs are written back as Parquet. Constrained clustering then runs on those pairs
(:func:`mdm.matching.cluster.cluster`), and the stores of IDs, xref, events and audit stay in the DuckDB
store, fed through the same golden-record code. See docs/SPARK.md.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from matching_rules import RuleSet
from mdm.engines import settings_for_dialect
from mdm.matching.features import matching_frame
from mdm.matching.predict import apply_guards

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from splink import Linker
    from splink.backends.spark import SparkAPI

    from mdm.matching.train import TrainedModel

MASTER_ENV = "MDM_SPARK_MASTER"
CHECKPOINT_ENV = "MDM_SPARK_CHECKPOINT_DIR"
WORKDIR_ENV = "MDM_SPARK_WORKDIR"
#: Set by spark-submit's launch scripts in the driver's environment.
SUBMIT_ENV = "SPARK_ENV_LOADED"
DEFAULT_MASTER = "local[2]"
SPARK_DIALECT = "spark"

#: Session defaults; any of them can be overridden by `conf` or spark-submit's ``--conf``.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}
#: Extra defaults in local mode only (on a cluster the deployment decides).
LOCAL_CONF: dict[str, str] = {"spark.driver.memory": "6g", "spark.ui.enabled": "false"}


def spark_master(master: str | None = None) -> str:
    """The master URL: the argument, else ``$MDM_SPARK_MASTER``, else ``local[2]``."""
    return master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER


def session_conf(master: str, conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """Session configuration: defaults, local-mode defaults when local, Splink's UDF jar, then `conf`."""
    from splink.backends.spark import similarity_jar_location

    out = dict(DEFAULT_CONF)
    if master.startswith("local"):
        out.update(LOCAL_CONF)
    out["spark.jars"] = similarity_jar_location()
    out.update(conf or {})
    return out


def spark_session(
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    checkpoint_dir: str | None = None,
    app_name: str = "mdm",
) -> SparkSession:
    """A Spark session for matching.

    Started by ``spark-submit`` (or with a session already active), the deployment's master and
    configuration are kept and only `conf` is applied (pass Splink's jar with ``--jars``, see
    docs/SPARK.md); otherwise the session gets :func:`spark_master` and :func:`session_conf`.
    Splink breaks long query lineages by writing Parquet to the checkpoint directory: `checkpoint_dir`,
    else ``$MDM_SPARK_CHECKPOINT_DIR``, else a local temporary folder (fine in local mode only; on a
    cluster it must be shared storage such as ``hdfs:///tmp/mdm-checkpoints`` or ``s3a://...``).
    """
    from pyspark.sql import SparkSession

    submitted = SparkSession.getActiveSession() is not None or bool(os.environ.get(SUBMIT_ENV))
    builder = SparkSession.builder.appName(app_name)
    if not submitted:
        builder = builder.master(spark_master(master))
    settings = dict(conf or {}) if submitted else session_conf(spark_master(master), conf)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    where = checkpoint_dir or os.environ.get(CHECKPOINT_ENV)
    if not where:
        where = tempfile.mkdtemp(prefix="mdm-spark-ckpt-")
        atexit.register(shutil.rmtree, where, True)
    session.sparkContext.setCheckpointDir(where)
    return session


def spark_api(spark: SparkSession | None = None, **session_opts: Any) -> SparkAPI:
    """Splink's Spark backend on `spark`, or on :func:`spark_session` built from `session_opts`."""
    from splink.backends.spark import SparkAPI

    return SparkAPI(spark_session=spark or spark_session(**session_opts))


@contextmanager
def work_folder(workdir: str | Path | None = None) -> Iterator[Path]:
    """Folder for the Parquet hand-over between polars and Spark: the argument, ``$MDM_SPARK_WORKDIR``, or a
    temporary folder removed afterwards (it holds personal data). On a cluster it must be storage the
    driver and executors both see."""
    chosen = workdir or os.environ.get(WORKDIR_ENV)
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        yield Path(chosen)
        return
    with tempfile.TemporaryDirectory(prefix="mdm-spark-work-") as tmp:
        yield Path(tmp)


def records_to_spark(frame: pl.DataFrame, spark: SparkSession, path: Path) -> DataFrame:
    """Write a matching frame as Parquet and read it back as a Spark DataFrame."""
    frame.write_parquet(path)
    return spark.read.parquet(str(path))


def spark_linker(frame: DataFrame, settings: Any, api: SparkAPI) -> Linker:
    """A Splink linker over a Spark DataFrame of matching columns."""
    from splink import Linker

    table = api.register(frame)
    return Linker(table, settings, log_level=logging.WARNING)


def tidy_sql(ruleset: RuleSet) -> list[str]:
    """Spark SQL select expressions turning Splink's prediction into the tidy pair layout.

    Same layout as :func:`mdm.matching.predict.predict`: ``rid_l < rid_r``, weights, ``gamma_<cmp>``
    and ``mw_<cmp>`` (level weight plus the term-frequency term); matching columns are dropped, so
    pairs written to Parquet carry no personal data.
    """
    uid = ruleset.unique_id_column
    out = [
        f"CAST(least({uid}_l, {uid}_r) AS BIGINT) AS rid_l",
        f"CAST(greatest({uid}_l, {uid}_r) AS BIGINT) AS rid_r",
        "CAST(match_weight AS DOUBLE) AS match_weight",
        "CAST(match_probability AS DOUBLE) AS match_probability",
    ]
    out += [f"CAST(gamma_{c.name} AS TINYINT) AS gamma_{c.name}" for c in ruleset.comparisons]
    for c in ruleset.comparisons:
        tf = f" + coalesce(CAST(mw_tf_adj_{c.name} AS DOUBLE), 0.0)" if _has_tf(c.name, ruleset) else ""
        out.append(f"CAST(mw_{c.name} AS DOUBLE){tf} AS mw_{c.name}")
    return out


def _has_tf(comparison: str, ruleset: RuleSet) -> bool:
    """Does a comparison have a term-frequency adjusted level (so Splink writes ``mw_tf_adj_<cmp>``)?"""
    return any(lv.tf_column for c in ruleset.comparisons if c.name == comparison for lv in c.levels)


def predict_spark(
    records: pl.DataFrame,
    model: TrainedModel,
    min_probability: float | None = None,
    spark: SparkSession | None = None,
    workdir: str | Path | None = None,
) -> pl.DataFrame:
    """Scored pairs of `records` computed on Spark with `model`'s trained parameters.

    Splink blocks on Spark with the rule set's blocking rules (equality, lists exploded, nulls never
    equal: the pairs :func:`mdm.matching.predict.blocked_pairs` finds) and keeps pairs at or above
    `min_probability` (default: the lower threshold). The pairs are written to
    ``<workdir>/pairs.parquet`` and returned sorted by ``rid_l, rid_r``.
    """
    session = spark or spark_session()
    ruleset = model.ruleset
    floor = ruleset.thresholds.lower if min_probability is None else min_probability
    settings = settings_for_dialect(model.splink_settings, ruleset, SPARK_DIALECT)
    with work_folder(workdir) as folder:
        frame = records_to_spark(matching_frame(records, ruleset), session, folder / "records.parquet")
        linker = spark_linker(frame, settings, spark_api(session))
        scored = linker.inference.predict(threshold_match_probability=floor).as_spark_dataframe()
        out = folder / "pairs.parquet"
        scored.selectExpr(*tidy_sql(ruleset)).write.mode("overwrite").parquet(str(out))
        pairs = pl.read_parquet(out / "*.parquet").sort("rid_l", "rid_r")
    return apply_guards(pairs, ruleset)


def train_spark(
    records: pl.DataFrame,
    ruleset: RuleSet,
    seed: int = 42,
    spark: SparkSession | None = None,
) -> TrainedModel:
    """Train the rule set's model on Spark; the saved settings are rendered for DuckDB (the canonical form).

    Same estimation as :func:`mdm.matching.train.train` (λ from the prior rules, u by seeded random
    sampling, m by EM per rule). Spark's seeded sampling draws other pairs than DuckDB's, so u (and the
    model version) differ slightly from a DuckDB-trained model on the same records.
    """
    from mdm.matching.train import train

    session = spark or spark_session()
    session.catalog.dropTempView("records")  # train's linker registers its frame under this name
    model = train(records, ruleset, seed, db_api=spark_api(session))
    model.splink_settings = settings_for_dialect(model.splink_settings, ruleset, "duckdb")
    return model
