"""Real-time match and upsert: one record against every resolved record, with the batch's model.

An :class:`Index` is built once per data version and kept in memory: the matching frame of every
current record with the hubs and name frequencies a full run would compute, and per blocking rule a
sorted key column searched by bisection. A request standardizes its record exactly as a batch does,
finds candidates through the same blocking rules, and scores them with the SQL Splink generates for
the trained model (prepared once per thread), so batch and real time give a pair the same probability.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl
from splink.internals import realtime as splink_realtime

from matching_rules import RuleSet
from matching_rules.models import BlockingRule
from mdm.errors import MdmError
from mdm.matching.explain import level_labels
from mdm.matching.features import base_frame, find_hubs, matching_frame
from mdm.matching.predict import rule_keys, tidy_pairs
from mdm.matching.train import MatchingError, TrainedModel, new_db_api
from mdm.schema import RAW_SCHEMA

if TYPE_CHECKING:
    from mdm.store import Store

RULESET = "person"
QUERY_RID = -1
KEY_SEPARATOR = "\x1f"
MAX_CANDIDATES = 2000
_ROWS = "rt_rows"


def tf_columns(model: TrainedModel) -> list[str]:
    """Columns the trained model adjusts by term frequency."""
    found = {
        level["tf_adjustment_column"]
        for comparison in model.splink_settings["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get("tf_adjustment_column")
    }
    return sorted(found)


def block_keys(frame: pl.DataFrame, rule: BlockingRule) -> pl.DataFrame:
    """``key, rid`` of one blocking rule: its columns joined into one string, lists exploded, nulls out."""
    joined = pl.concat_str([pl.col(c).cast(pl.String) for c in rule.columns], separator=KEY_SEPARATOR)
    keys = rule_keys(frame, rule, "rid")
    return keys.select(joined.alias("key"), "rid").unique().sort("key", "rid")


def row_keys(values: Mapping[str, Any], columns: list[str]) -> list[str]:
    """One record's keys for a blocking rule (as :func:`block_keys` makes them): every combination of
    its list values, none when a column is empty."""
    parts: list[list[str]] = []
    for column in columns:
        value = values.get(column)
        items = (
            [v for v in value if v is not None]
            if isinstance(value, list)
            else [value]
            if value is not None
            else []
        )
        if not items:
            return []
        parts.append([str(v) for v in items])
    return sorted({KEY_SEPARATOR.join(combo) for combo in itertools.product(*parts)})


@dataclass
class Index:
    """Everything one record is scored against; rebuilt when the data stamp moves.

    Records upserted since the build sit in ``extra`` (and their earlier versions in ``replaced``), so an
    upsert never rebuilds the blocking keys of every record.
    """

    model: TrainedModel
    frame: pl.DataFrame
    hubs: dict[str, pl.DataFrame]
    tf: dict[str, dict[str, float]]
    tf_unseen: dict[str, float]
    blocks: list[tuple[pl.Series, np.ndarray]]
    stamp: tuple[int, int]
    sql: str
    extra: pl.DataFrame = field(init=False)
    replaced: set[int] = field(default_factory=set)
    positions: pl.Series = field(init=False)

    def __post_init__(self) -> None:
        self.frame = self.frame.sort("rid")
        self.positions = self.frame["rid"]
        self.extra = self.frame.clear()

    @property
    def ruleset(self) -> RuleSet:
        """The rule set of the model."""
        return self.model.ruleset

    def prepare(self, record: pl.DataFrame) -> pl.DataFrame:
        """One standardized record -> its matching row, with this index's hubs and term frequencies."""
        row = matching_frame(record, self.ruleset, self.hubs)
        return row.with_columns(
            pl.Series(
                f"tf_{c}",
                [None if v is None else self.tf[c].get(v, self.tf_unseen[c]) for v in row[c].to_list()],
                dtype=pl.Float64,
            )
            for c in self.tf
        )

    def candidates(self, row: pl.DataFrame, exclude: Iterable[int] = ()) -> pl.DataFrame:
        """Index rows sharing a blocking key with ``row`` (the rule set's blocking rules, exactly)."""
        found: list[np.ndarray] = []
        wanted_all: list[str] = []
        values = row.row(0, named=True)
        for rule, (keys, rids) in zip(self.ruleset.blocking, self.blocks, strict=True):
            wanted = row_keys(values, rule.columns)
            if not wanted:
                continue
            wanted_all += wanted
            probe = pl.Series(wanted, dtype=pl.String)
            lo = keys.search_sorted(probe, "left").to_numpy()
            hi = keys.search_sorted(probe, "right").to_numpy()
            found.extend(rids[a:b] for a, b in zip(lo, hi, strict=True) if b > a)
        skip = np.fromiter({*exclude, *self.replaced}, dtype=np.int64)
        ids = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
        ids = np.setdiff1d(ids, skip)[:MAX_CANDIDATES]
        at = self.positions.search_sorted(pl.Series(ids, dtype=pl.Int64), "left").to_numpy()
        rows = self.frame[at] if len(at) else self.frame.clear()
        if not self.extra.is_empty() and wanted_all:
            hits = pl.concat([block_keys(self.extra, r) for r in self.ruleset.blocking]).filter(
                pl.col("key").is_in(wanted_all) & ~pl.col("rid").is_in(list(exclude))
            )
            rows = pl.concat([rows, self.extra.filter(pl.col("rid").is_in(hits["rid"].implode()))])
        return rows

    def add(self, row: pl.DataFrame) -> None:
        """Take a prepared row (a new or changed record) into the index, replacing its earlier version."""
        rid = int(row["rid"][0])
        self.replaced.add(rid)
        self.extra = pl.concat([self.extra.filter(pl.col("rid") != rid), row.select(self.extra.columns)])


def _blocks(frame: pl.DataFrame, ruleset: RuleSet) -> list[tuple[pl.Series, np.ndarray]]:
    out = []
    for rule in ruleset.blocking:
        keys = block_keys(frame, rule)
        out.append((keys["key"], keys["rid"].to_numpy()))
    return out


def _term_frequencies(frame: pl.DataFrame, column: str) -> tuple[dict[str, float], float]:
    """value -> share of non-null values (Splink's own definition), and the share of a value seen once."""
    total = max(frame[column].count(), 1)
    counts = frame.filter(pl.col(column).is_not_null()).group_by(column).len()
    shares = counts.select(column, (pl.col("len") / total).alias("tf"))
    return dict(zip(shares[column].to_list(), shares["tf"].to_list(), strict=True)), 1.0 / (total + 1)


def _scoring_sql(model: TrainedModel, sample: pl.DataFrame) -> str:
    """Splink's comparison-and-prediction SQL for the model, over table ``rt_rows`` (side 0 against side 1)."""
    cache_key = f"mdm-realtime-{model.version}"
    uid = "mdmrt"
    sql = splink_realtime._sql_cache.get(cache_key, uid)
    if sql is None:
        splink_realtime.compare_records(
            sample.to_arrow(), sample.to_arrow(), model.splink_settings, new_db_api(), sql_cache_key=cache_key
        )
        sql = splink_realtime._sql_cache.get(cache_key, uid)
    if sql is None:
        raise MatchingError("Splink produced no scoring SQL for the model")
    names = [c.name for c in model.ruleset.comparisons]
    cols = ["rid_l", "rid_r", "match_weight", "match_probability"]
    cols += [f"gamma_{n}" for n in names] + [f"mw_{n}" for n in names]
    cols += [f"mw_tf_adj_{n}" for n in names if f"mw_tf_adj_{n}" in sql]
    body = sql.replace(
        f"__splink__compare_records_left_{uid}",
        f"(SELECT * EXCLUDE (rt_side) FROM {_ROWS} WHERE rt_side = 0)",
    ).replace(
        f"__splink__compare_records_right_{uid}",
        f"(SELECT * EXCLUDE (rt_side) FROM {_ROWS} WHERE rt_side = 1)",
    )
    return f"SELECT {', '.join(cols)} FROM ({body})"


def build_index(store: Store, model: TrainedModel) -> Index:
    """The index over the store's current records (hubs and frequencies as a full run computes them)."""
    stamp = store.data_stamp()
    records = store.current_records()
    if records.is_empty():
        raise MatchingError("no records to match against; ingest and run first")
    hubs = find_hubs(base_frame(records), model.ruleset)
    frame = matching_frame(records, model.ruleset, hubs)
    tf: dict[str, dict[str, float]] = {}
    unseen: dict[str, float] = {}
    for column in tf_columns(model):
        tf[column], unseen[column] = _term_frequencies(frame, column)
    for column, shares in tf.items():
        table = pl.DataFrame(
            {column: list(shares), f"tf_{column}": list(shares.values())},
            schema_overrides={f"tf_{column}": pl.Float64},
        )
        frame = frame.join(table, on=column, how="left", maintain_order="left")
    sql = _scoring_sql(model, frame.head(1))
    return Index(model, frame, hubs, tf, unseen, _blocks(frame, model.ruleset), stamp, sql)


_INDEXES: dict[str, Index] = {}
_BUILD_LOCK = threading.Lock()
_THREAD = threading.local()


def index_for(store: Store) -> Index:
    """The store's index, rebuilt when records or customers changed since it was built."""
    from mdm.pipeline import default_model_path

    key = str(store.path.resolve())
    stamp = store.data_stamp()
    found = _INDEXES.get(key)
    if found is not None and found.stamp == stamp:
        return found
    with _BUILD_LOCK:
        found = _INDEXES.get(key)
        if found is not None and found.stamp == stamp:
            return found
        path = default_model_path(store, RULESET)
        if not path.exists():
            raise MatchingError("no trained model yet: run `mdm run` first")
        model = TrainedModel.load(path)
        if found is not None and found.model.version == model.version and found.stamp[0] == stamp[0]:
            found.stamp = stamp
            return found
        built = build_index(store, model)
        _INDEXES[key] = built
        return built


def forget_indexes() -> None:
    """Drop every cached index (tests, and after a model is retrained in this process)."""
    with _BUILD_LOCK:
        _INDEXES.clear()


def _connection(index: Index) -> duckdb.DuckDBPyConnection:
    """This thread's scoring connection: a small table and the model's statement prepared over it.

    Prepared once, since planning Splink's SQL costs more than running it on a few rows; the statement
    reads real tables (refilled per request), as a prepared statement keeps the data a view had then.
    """
    cons: dict[str, duckdb.DuckDBPyConnection] = getattr(_THREAD, "cons", None) or {}
    _THREAD.cons = cons
    con = cons.get(index.model.version)
    if con is None:
        con = duckdb.connect()
        con.register("rt_schema", index.frame.head(0).to_arrow())
        con.execute(f"CREATE TEMP TABLE {_ROWS} AS SELECT *, 0 AS rt_side FROM rt_schema")
        con.unregister("rt_schema")
        con.execute(f"PREPARE score AS {index.sql}")
        cons[index.model.version] = con
    return con


def score(index: Index, row: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """Scored pairs of ``row`` against ``candidates``: rid_l, rid_r, weights, gamma_* and mw_* (as batch)."""
    if candidates.is_empty():
        return pl.DataFrame()
    con = _connection(index)
    columns = index.frame.columns
    rows = pl.concat(
        [
            row.select(columns).with_columns(rt_side=pl.lit(0)),
            candidates.select(columns).with_columns(rt_side=pl.lit(1)),
        ]
    )
    con.execute(f"DELETE FROM {_ROWS}")
    con.register("rt_in", rows.to_arrow())
    con.execute(f"INSERT INTO {_ROWS} SELECT * FROM rt_in")
    con.unregister("rt_in")
    return tidy_pairs(con.execute("EXECUTE score").pl(), index.model)


def _standard_frame(fields: Mapping[str, Any], rid: int) -> pl.DataFrame:
    """One raw record (any subset of the canonical fields) standardized as in batch."""
    from mdm.standardize.pipeline import standardize

    unknown = sorted(set(fields) - set(RAW_SCHEMA))
    if unknown:
        raise MdmError(f"unknown fields: {', '.join(unknown)}")
    row = {c: fields.get(c) for c in RAW_SCHEMA}
    for c, t in RAW_SCHEMA.items():
        if isinstance(t, pl.List) and isinstance(row[c], str):
            row[c] = [row[c]]
    return standardize(pl.DataFrame([row], schema=RAW_SCHEMA)).with_columns(
        pl.lit(rid, pl.Int64).alias("rid")
    )


def _explanation(
    pair: Mapping[str, Any], labels: dict[str, dict[int, str]], ruleset: RuleSet
) -> list[dict[str, Any]]:
    return [
        {
            "comparison": c.name,
            "level": labels[c.name].get(int(pair[f"gamma_{c.name}"]), str(pair[f"gamma_{c.name}"])),
            "match_weight": round(float(pair[f"mw_{c.name}"]), 4),
        }
        for c in ruleset.comparisons
    ]


def rank_customers(store: Store, index: Index, pairs: pl.DataFrame, query_rid: int) -> list[dict[str, Any]]:
    """Candidate customers, best pair first: customer_id, match_probability, match_weight, explanation."""
    if pairs.is_empty():
        return []
    other = pl.when(pl.col("rid_l") == query_rid).then(pl.col("rid_r")).otherwise(pl.col("rid_l"))
    pairs = pairs.with_columns(other.alias("rid"))
    owners = store.current_xref(pairs["rid"].to_list()).select(pl.col("rid").cast(pl.Int64), "customer_id")
    best = (
        pairs.join(owners, on="rid")
        .sort("match_weight", "rid", descending=[True, False])
        .unique("customer_id", keep="first", maintain_order=True)
    )
    labels = level_labels(index.model)
    return [
        {
            "customer_id": pair["customer_id"],
            "match_probability": float(pair["match_probability"]),
            "match_weight": float(pair["match_weight"]),
            "record": int(pair["rid"]),
            "explanation": _explanation(pair, labels, index.ruleset),
        }
        for pair in best.iter_rows(named=True)
    ]


def match_one(
    store: Store, fields: Mapping[str, Any], limit: int | None = None, attributes: bool = True
) -> list[dict[str, Any]]:
    """The best ``limit`` candidate customers for a record given as raw fields, scored as a batch run
    would, each with its golden attributes."""
    index = index_for(store)
    row = index.prepare(_standard_frame(fields, QUERY_RID))
    ranked = rank_customers(store, index, score(index, row, index.candidates(row)), QUERY_RID)[:limit]
    if attributes and ranked:
        docs = store.golden_attributes([c["customer_id"] for c in ranked])
        for candidate in ranked:
            candidate["attributes"] = docs.get(candidate["customer_id"], {})
    return ranked


def _conflicts(index: Index, row: pl.DataFrame, members: pl.DataFrame) -> bool:
    """Does the record hold a valid ID number of a type for which the customer holds another one?"""
    mine = row.filter(pl.col("id_valid") & pl.col("id_key").is_not_null()).select("id_type_std", "id_key")
    theirs = members.filter(pl.col("id_valid") & pl.col("id_key").is_not_null()).select(
        "id_type_std", "id_key"
    )
    clash = mine.join(theirs, on="id_type_std", suffix="_r").filter(pl.col("id_key") != pl.col("id_key_r"))
    return not clash.is_empty()


def _target(
    store: Store, index: Index, row: pl.DataFrame, rid: int, ranked: list[dict[str, Any]]
) -> str | None:
    """The customer the record joins: a steward must-link partner's, else the best candidate at or above
    the upper threshold that no steward cannot-link or identity conflict forbids; None for a new customer."""
    links = store.active_links()
    mine = links.filter((pl.col("rid_a") == rid) | (pl.col("rid_b") == rid))
    partner = pl.when(pl.col("rid_a") == rid).then(pl.col("rid_b")).otherwise(pl.col("rid_a"))
    mine = mine.with_columns(partner.alias("other"))
    must = mine.filter(pl.col("kind") == "must")["other"].to_list()
    if must:
        owners = store.current_xref(must)["customer_id"].to_list()
        if owners:
            return str(owners[0])
    cannot = set(mine.filter(pl.col("kind") == "cannot")["other"].to_list())
    upper = index.ruleset.thresholds.upper
    for candidate in ranked:
        if candidate["match_probability"] < upper:
            break
        member_ids = store.customer_members([candidate["customer_id"]])["rid"].to_list()
        if cannot & set(member_ids):
            continue
        members = index.frame.filter(pl.col("rid").is_in(member_ids))
        if not _conflicts(index, row, members):
            return str(candidate["customer_id"])
    return None


def upsert_one(store: Store, source: str, source_key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Store one source record, match it and attach it to a customer or create one (stable-ID rules).

    Idempotent: the same (source, source_key, content) again changes nothing. Everything is written in
    one transaction, so a failure leaves the store as it was.
    """
    from golden_record.pipeline import closed_scope, run_golden
    from mdm.compliance.legal import check_legal_basis, declaration
    from mdm.config import load_sources

    cfg = load_sources().get(source)
    if cfg is None:
        raise MdmError(f"unknown source {source!r}")
    check_legal_basis([cfg])
    index = index_for(store)
    std = (
        _standard_frame(fields, QUERY_RID)
        .drop("rid")
        .with_columns(
            pl.lit(source).alias("source"),
            pl.lit(source_key).alias("source_key"),
            pl.lit("api").alias("file"),
            pl.lit(f"api:{source}").alias("locator"),
        )
    )
    with store.transaction():
        batch = store.ingest_batch(
            source, [], std, [], extract_kind="delta", trust_rank=cfg.trust_rank, legal_basis=declaration(cfg)
        )
        rid = store.rid_of(source, source_key)
        if rid is None:
            raise MdmError(f"{source}: record {source_key!r} was refused (erased person)")
        before = store.current_xref([rid])
        if batch.n_new == 0 and batch.n_changed == 0 and not before.is_empty():
            index.stamp = store.data_stamp()
            return {"customer_id": str(before["customer_id"][0]), "created": False, "changed": False}
        row = index.prepare(std.with_columns(pl.lit(rid, pl.Int64).alias("rid")))
        ranked = rank_customers(store, index, score(index, row, index.candidates(row, exclude=[rid])), rid)
        target = _target(store, index, row, rid, ranked)
        members = store.customer_members([target])["rid"].to_list() if target else []
        scope = closed_scope(store, [rid, *members])
        xref = store.current_xref(scope).select(pl.col("rid").cast(pl.Int64), "customer_id")
        placed = pl.DataFrame({"rid": [rid], "customer_id": [target or f"new:{rid}"]})
        clusters = (
            pl.concat([xref.filter(pl.col("rid") != rid), placed])
            .with_columns(pl.col("customer_id").rank("dense").cast(pl.Int64).alias("cluster_id"))
            .select("rid", "cluster_id")
        )
        run_id = store.start_run(index.model.version, kind="realtime")
        counts = run_golden(store, clusters, run_id, scope=scope)
        store.finish_run(run_id, "succeeded", counts)
        customer_id = str(store.current_xref([rid])["customer_id"][0])
    index.add(row)
    index.stamp = store.data_stamp()
    previous = before["customer_id"].to_list()
    return {
        "customer_id": customer_id,
        "created": customer_id not in previous and target is None,
        "changed": True,
    }
