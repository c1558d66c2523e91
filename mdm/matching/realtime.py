"""Real-time match and upsert: one record against every resolved record, with the batch's model.

An :class:`Index` is built once per data version and kept in memory: the matching frame of every
current record with the hubs and name frequencies a full run would compute, one sorted column of every
blocking rule's keys searched by bisection, and the current owner and golden attributes of every
record and customer (caught up run by run, so a request reads no big table). A request standardizes
its record exactly as a batch does (its families on two threads; requests waiting while every core
standardizes share the next call: its cost is mostly per call, not per row), finds candidates through
the same blocking rules, and scores them with the SQL Splink generates for the trained model (compiled
to Python for a request's few pairs, prepared in a pooled DuckDB connection for many), so batch and
real time give a pair the same probability. The index's data version is asked of the database only
after a write in this process (the store's write counter).
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
from splink.internals import realtime as splink_realtime

from matching_rules import RuleSet
from matching_rules.compile import guard_sql
from matching_rules.models import BlockingRule
from mdm.errors import MdmError
from mdm.matching.explain import level_labels
from mdm.matching.features import base_frame, find_hubs, matching_frame
from mdm.matching.predict import guard_cap, rule_keys, tidy_pairs
from mdm.matching.rowscore import PairScorer, Unsupported, compile_condition, compile_scoring
from mdm.matching.train import MatchingError, TrainedModel, new_db_api
from mdm.schema import RAW_SCHEMA
from mdm.store.api_repo import write_counter

if TYPE_CHECKING:
    from mdm.config import SourceConfig
    from mdm.store import Store

log = logging.getLogger(__name__)

RULESET = "person"
QUERY_RID = -1
KEY_SEPARATOR = "\x1f"
RULE_SEPARATOR = "\x1e"
MAX_CANDIDATES = 2000
#: Stored records taken through the request path when an index is built (see :func:`_warm_up`).
WARM_RECORDS = 8
#: Up to this many pairs are scored by the statement compiled to Python (:mod:`rowscore`), more in DuckDB.
MAX_PYTHON_PAIRS = 200
_LEFT = "rt_left"
_RIGHT = "rt_right"
#: (last batch id, last run id, tombstones): moves whenever records, customers or erasures change.
Stamp = tuple[int, int, int]
Item = TypeVar("Item")
Result = TypeVar("Result")


def data_version(store: Store) -> Stamp:
    """The store's :data:`Stamp`, in one query."""
    row = store.con.execute(
        """SELECT (SELECT coalesce(max(batch_id), 0) FROM batches), (SELECT coalesce(max(run_id), 0) FROM runs),
        (SELECT count(*) FROM tombstones)"""
    ).fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)


_STAMPS: dict[str, tuple[int, Stamp]] = {}


def current_version(store: Store) -> Stamp:
    """:func:`data_version`, asked of the database only after a data-changing commit in this process.

    Every such commit bumps the file's write counter (``ApiRepo.transaction``), and the database has one
    writer process, so an unchanged counter means an unchanged stamp; the counter is read before the
    query, so a commit during it is noticed by the next request.
    """
    key = str(store.path.resolve())
    generation = write_counter(store.path).value
    seen = _STAMPS.get(key)
    if seen is not None and seen[0] == generation:
        return seen[1]
    stamp = data_version(store)
    _STAMPS[key] = (generation, stamp)
    return stamp


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


def rule_key(rule: int, key: str) -> str:
    """A blocking key made unique across rules: the rule's number, a separator, the key."""
    return f"{rule}{RULE_SEPARATOR}{key}"


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


class _Job(Generic[Item, Result]):
    """One call waiting in a :class:`Combiner`: its input, then its result or error (or a batch to lead)."""

    def __init__(self, item: Item) -> None:
        self.item = item
        self.ready = threading.Event()
        self.batch: list[_Job[Item, Result]] | None = None
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None

    def outcome(self) -> Result:
        """The result, or the error the call raised."""
        if self.error is not None:
            raise self.error
        if not self.done:
            raise MatchingError("a combined call ended without a result")
        return cast("Result", self.result)


class Combiner(Generic[Item, Result]):
    """Runs concurrent calls of a batch function as few calls.

    For work whose cost is mostly per call rather than per row (polars over a one-row frame): up to
    ``concurrency`` batches run at once (one per core: a call that finds a core free starts at once,
    with whatever is waiting); calls arriving while all run wait, and when a batch ends the first of
    them leads the next batch with every call then waiting. No thread of its own, so nothing to start
    or stop. A failing batch is retried item by item, so one bad item fails only its own call.
    """

    def __init__(self, run: Callable[[list[Item]], list[Result]], concurrency: int | None = None) -> None:
        self._run = run
        self._limit = max(1, concurrency or os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._pending: list[_Job[Item, Result]] = []
        self._running = 0

    def __call__(self, item: Item) -> Result:
        """``run([item])[0]``, computed together with whatever other calls are waiting."""
        job: _Job[Item, Result] = _Job(item)
        with self._lock:
            self._pending.append(job)
            lead = self._running < self._limit
            if lead:
                self._running += 1
                batch, self._pending = self._pending, []
        if not lead:
            job.ready.wait()
            if job.batch is None:
                return job.outcome()
            batch = job.batch
        try:
            self._run_batch(batch)
        finally:
            with self._lock:
                if self._pending:
                    waiting, self._pending = self._pending, []
                    waiting[0].batch = waiting
                    waiting[0].ready.set()
                else:
                    self._running -= 1
        return job.outcome()

    def _run_batch(self, batch: list[_Job[Item, Result]]) -> None:
        try:
            for job, result in zip(batch, self._run([j.item for j in batch]), strict=True):
                job.result, job.done = result, True
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for job in batch:
                    try:
                        job.result, job.done = self._run([job.item])[0], True
                    except Exception as one:
                        job.error = one
        finally:
            for job in batch:
                job.ready.set()


@dataclass
class Owners:
    """The customer of every current record: a snapshot sorted by rid, plus the changes of later runs."""

    rids: np.ndarray
    customers: pl.Series
    changed: dict[int, str | None] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> Owners:
        """The open cross-reference of every record."""
        frame = store.query("SELECT rid, customer_id FROM xref WHERE valid_to_run IS NULL ORDER BY rid")
        return cls(frame["rid"].cast(pl.Int64).to_numpy(), frame["customer_id"])

    def of(self, rids: Sequence[int]) -> dict[int, str]:
        """rid -> customer of the given records that have one."""
        wanted = np.asarray(rids, dtype=np.int64)
        out: dict[int, str] = {}
        if len(self.rids):
            at = np.minimum(np.searchsorted(self.rids, wanted), len(self.rids) - 1)
            hit = self.rids[at] == wanted
            found = self.customers.gather(at[hit]).to_list()
            out = dict(zip(wanted[hit].tolist(), found, strict=True))
        for rid in set(rids) & self.changed.keys():
            owner = self.changed[rid]
            if owner is None:
                out.pop(rid, None)
            else:
                out[rid] = owner
        return out

    def catch_up(self, store: Store, since_run: int) -> None:
        """Take in the cross-reference intervals runs after ``since_run`` closed and opened."""
        closed = store.query("SELECT rid FROM xref WHERE valid_to_run > ?", [since_run])
        opened = store.query(
            "SELECT rid, customer_id FROM xref WHERE valid_to_run IS NULL AND valid_from_run > ?", [since_run]
        )
        self.changed.update(dict.fromkeys(closed["rid"].to_list()))
        self.changed.update(dict(zip(opened["rid"].to_list(), opened["customer_id"].to_list(), strict=True)))


_LATEST_GOLDEN = """SELECT customer_id, arg_max(attributes, version) AS attributes FROM golden_versions
{where} GROUP BY customer_id ORDER BY customer_id"""


@dataclass
class Golden:
    """The latest golden attributes (JSON) of every customer, sorted by ID, plus later runs' versions."""

    ids: pl.Series
    docs: pl.Series
    changed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> Golden:
        """Every customer's latest golden version."""
        frame = store.query(_LATEST_GOLDEN.format(where=""))
        return cls(frame["customer_id"], frame["attributes"])

    def of(self, customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """customer -> golden attributes, for the given customers that have them."""
        docs: dict[str, str] = {}
        if len(self.ids):
            probe = pl.Series(list(customer_ids), dtype=pl.String)
            at = self.ids.search_sorted(probe, "left").clip(0, len(self.ids) - 1)
            for wanted, got, doc in zip(
                customer_ids, self.ids.gather(at).to_list(), self.docs.gather(at).to_list(), strict=True
            ):
                if wanted == got:
                    docs[wanted] = doc
        docs.update({c: self.changed[c] for c in customer_ids if c in self.changed})
        return {c: json.loads(doc) for c, doc in docs.items()}

    def catch_up(self, store: Store, since_run: int) -> None:
        """Take in the golden versions written by runs after ``since_run``."""
        frame = store.query(_LATEST_GOLDEN.format(where="WHERE run_id > ?"), [since_run])
        self.changed.update(
            dict(zip(frame["customer_id"].to_list(), frame["attributes"].to_list(), strict=True))
        )


@dataclass
class Index:
    """Everything one record is scored against; rebuilt when records change other than by upsert.

    Records upserted since the build sit in ``extra`` with their blocking keys in ``extra_keys`` (and
    their earlier versions in ``replaced``), so an upsert never rebuilds the keys of every record.
    """

    model: TrainedModel
    frame: pl.DataFrame
    hubs: dict[str, pl.DataFrame]
    tf: dict[str, dict[str, float]]
    tf_unseen: dict[str, float]
    blocks: tuple[pl.Series, np.ndarray]
    stamp: Stamp
    sql: str
    owners: Owners
    golden: Golden
    extra: dict[int, pl.DataFrame] = field(default_factory=dict)
    replaced: set[int] = field(default_factory=set)
    extra_keys: list[dict[str, set[int]]] = field(init=False)
    positions: np.ndarray = field(init=False)
    labels: dict[str, dict[int, str]] = field(init=False)
    prepare_fields: Combiner[dict[str, Any], pl.DataFrame] = field(init=False)
    scorers: queue.SimpleQueue[_Scorer] = field(init=False)
    pair_scorer: PairScorer | None = field(init=False)
    guard_tests: list[Callable[[Mapping[str, Any]], Any]] | None = field(init=False)

    def __post_init__(self) -> None:
        self.frame = self.frame.sort("rid")
        self.positions = self.frame["rid"].to_numpy()
        self.extra_keys = [{} for _ in self.ruleset.blocking]
        self.labels = level_labels(self.model)
        self.prepare_fields = Combiner(self.prepare_records)
        self.scorers = queue.SimpleQueue()
        try:
            self.pair_scorer = compile_scoring(self.sql, _LEFT, _RIGHT)
            self.guard_tests = [compile_condition(guard_sql(self.ruleset, g)) for g in self.ruleset.guards]
        except Unsupported as exc:
            log.warning("real-time pairs are scored in DuckDB: %s", exc)
            self.pair_scorer, self.guard_tests = None, None

    @property
    def ruleset(self) -> RuleSet:
        """The rule set of the model."""
        return self.model.ruleset

    def prepare(self, record: pl.DataFrame) -> pl.DataFrame:
        """Standardized records -> their matching rows, with this index's hubs and term frequencies."""
        row = matching_frame(record, self.ruleset, self.hubs)
        return row.with_columns(
            pl.Series(
                f"tf_{c}",
                [None if v is None else self.tf[c].get(v, self.tf_unseen[c]) for v in row[c].to_list()],
                dtype=pl.Float64,
            )
            for c in self.tf
        )

    def prepare_records(self, records: list[dict[str, Any]]) -> list[pl.DataFrame]:
        """Raw records (checked by :func:`raw_row`) -> one matching row each, rid ``QUERY_RID``.

        All records go through one standardize and one matching-frame call (the calls cost the same for
        one row as for a few); each gets its own temporary rid so list cleaning keeps them apart.
        """
        rids = [QUERY_RID - i for i in range(len(records))]
        raw = pl.DataFrame(records, schema=RAW_SCHEMA)
        rows = self.prepare(_standardize(raw).with_columns(pl.Series("rid", rids, dtype=pl.Int64)))
        if len(records) == 1:
            return [rows]
        parts = rows.partition_by("rid", as_dict=True, maintain_order=True)
        return [parts[(rid,)].with_columns(pl.lit(QUERY_RID, pl.Int64).alias("rid")) for rid in rids]

    def candidates(self, row: pl.DataFrame, exclude: Iterable[int] = ()) -> pl.DataFrame:
        """Index rows sharing a blocking key with ``row`` (the rule set's blocking rules, exactly).

        Every rule's keys sit in one sorted column, prefixed by the rule's number, so all of a record's
        keys are looked up in one pair of searches."""
        values = row.row(0, named=True)
        wanted = [
            [rule_key(i, key) for key in row_keys(values, rule.columns)]
            for i, rule in enumerate(self.ruleset.blocking)
        ]
        extra_hits: set[int] = set()
        for mine, table in zip(wanted, self.extra_keys, strict=True):
            for key in mine:
                extra_hits |= table.get(key, set())
        probe = pl.Series([key for mine in wanted for key in mine], dtype=pl.String)
        keys, rids = self.blocks
        lo = keys.search_sorted(probe, "left").to_numpy()
        hi = keys.search_sorted(probe, "right").to_numpy()
        found = [rids[a:b] for a, b in zip(lo, hi, strict=True) if b > a]
        skip = set(exclude)
        ids = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
        ids = np.setdiff1d(ids, np.fromiter(skip | self.replaced, dtype=np.int64))[:MAX_CANDIDATES]
        rows = self.frame[np.searchsorted(self.positions, ids)] if len(ids) else self.frame.clear()
        hits = sorted(extra_hits - skip)
        return pl.concat([rows, *(self.extra[rid] for rid in hits)]) if hits else rows

    def rows_of(self, rids: Sequence[int]) -> pl.DataFrame:
        """The current matching rows of the given records (upserted versions first)."""
        base = np.setdiff1d(np.asarray(rids, dtype=np.int64), np.fromiter(self.extra, dtype=np.int64))
        at = np.searchsorted(self.positions, base)
        at = at[
            (at < len(self.positions)) & (self.positions[np.minimum(at, len(self.positions) - 1)] == base)
        ]
        rows = self.frame[at] if len(at) else self.frame.clear()
        return pl.concat([rows, *(self.extra[r] for r in rids if r in self.extra)])

    def add(self, row: pl.DataFrame) -> None:
        """Take a prepared row (a new or changed record) into the index, replacing its earlier version."""
        rid = int(row["rid"][0])
        self.replaced.add(rid)
        old = self.extra.get(rid)
        for i, (rule, table) in enumerate(zip(self.ruleset.blocking, self.extra_keys, strict=True)):
            if old is not None:
                for key in row_keys(old.row(0, named=True), rule.columns):
                    table.get(rule_key(i, key), set()).discard(rid)
            for key in row_keys(row.row(0, named=True), rule.columns):
                table.setdefault(rule_key(i, key), set()).add(rid)
        self.extra[rid] = row.select(self.frame.columns)

    def catch_up(self, store: Store) -> None:
        """Take in the owners and golden records runs have changed since this index last looked."""
        stamp = data_version(store)
        if stamp[1] != self.stamp[1]:
            self.owners.catch_up(store, self.stamp[1])
            self.golden.catch_up(store, self.stamp[1])
        self.stamp = stamp


def _blocks(frame: pl.DataFrame, ruleset: RuleSet) -> tuple[pl.Series, np.ndarray]:
    """Every rule's :func:`block_keys` as one sorted key column (keys prefixed by :func:`rule_key`) and
    the rids beside it."""
    parts = [
        block_keys(frame, rule).select(
            (pl.lit(rule_key(i, "")) + pl.col("key")).alias("key"), pl.col("rid").cast(pl.Int64)
        )
        for i, rule in enumerate(ruleset.blocking)
    ]
    keys = pl.concat(parts).sort("key", "rid")
    return keys["key"], keys["rid"].to_numpy()


def _term_frequencies(frame: pl.DataFrame, column: str) -> tuple[dict[str, float], float]:
    """value -> share of non-null values (Splink's own definition), and the share of a value seen once."""
    total = max(frame[column].count(), 1)
    counts = frame.filter(pl.col(column).is_not_null()).group_by(column).len()
    shares = counts.select(column, (pl.col("len") / total).alias("tf"))
    return dict(zip(shares[column].to_list(), shares["tf"].to_list(), strict=True)), 1.0 / (total + 1)


def _scoring_sql(model: TrainedModel, sample: pl.DataFrame) -> str:
    """Splink's comparison-and-prediction SQL for the model, over ``rt_left`` against ``rt_right``."""
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
    body = sql.replace(f"__splink__compare_records_left_{uid}", _LEFT).replace(
        f"__splink__compare_records_right_{uid}", _RIGHT
    )
    return f"SELECT {', '.join(cols)} FROM ({body})"


def build_index(store: Store, model: TrainedModel) -> Index:
    """The index over the store's current records (hubs and frequencies as a full run computes them).

    Its long-lived objects are then kept out of the garbage collector's full passes (``gc.freeze``),
    which would otherwise add their traversal to some request's latency."""
    stamp = data_version(store)
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
    owners, golden = Owners.load(store), Golden.load(store)
    index = Index(model, frame, hubs, tf, unseen, _blocks(frame, model.ruleset), stamp, sql, owners, golden)
    _warm_up(index, records.head(WARM_RECORDS))
    gc.freeze()
    return index


def _warm_up(index: Index, records: pl.DataFrame) -> None:
    """Take a few stored records through the request path once, before ``gc.freeze``.

    The libraries' tables loaded on first use (pypinyin's phrases, OpenCC, phone metadata) and the
    cached expressions would otherwise be made by the first request and stay among the collected
    objects, where the steady allocations of later requests set off full collections of them: 10-20 ms
    pauses at the p99 of real-time match. Warmed and frozen, 400 requests in a row ran no collection.
    """
    columns = [c for c in RAW_SCHEMA if c in records.columns]
    for fields in records.select(columns).iter_rows(named=True):
        row = index.prepare_records([raw_row({k: v for k, v in fields.items() if v is not None})])[0]
        score_rows(index, row, index.candidates(row))


_INDEXES: dict[str, Index] = {}
_BUILD_LOCK = threading.Lock()


def index_for(store: Store) -> Index:
    """The store's index: rebuilt when records changed or a person was erased since it was built,
    caught up when only runs changed customers."""
    from mdm.pipeline import default_model_path

    key = str(store.path.resolve())
    stamp = current_version(store)
    found = _INDEXES.get(key)
    if found is not None and found.stamp == stamp:
        return found
    with _BUILD_LOCK:
        found = _INDEXES.get(key)
        if found is not None and found.stamp == data_version(store):
            return found
        path = default_model_path(store, RULESET)
        if not path.exists():
            raise MatchingError("no trained model yet: run `mdm run` first")
        model = TrainedModel.load(path)
        if (
            found is not None
            and found.model.version == model.version
            and (found.stamp[0], found.stamp[2]) == (stamp[0], stamp[2])
        ):
            found.catch_up(store)
            return found
        built = build_index(store, model)
        _INDEXES[key] = built
        return built


def forget_indexes() -> None:
    """Drop every cached index (tests, and after a model is retrained in this process)."""
    with _BUILD_LOCK:
        _INDEXES.clear()
        _STAMPS.clear()


class _ArrowSource:
    """An Arrow stream whose table is swapped per request.

    DuckDB scans such an object afresh on every execution, so a statement prepared over it reads the
    current rows. A registered view keeps the data it had when the statement was prepared, and a
    table would either change the catalog on every write (DuckDB then re-plans the statement, ~10 ms
    for Splink's SQL) or carry statistics from prepare time that the optimizer would trust (an empty
    or null-free table folds whole CASE branches away); an Arrow scan has no statistics.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the current table."""
        return self.table.__arrow_c_stream__(requested_schema)


@dataclass
class _Scorer:
    """One thread's DuckDB connection with the model's statement prepared over two Arrow sources."""

    con: duckdb.DuckDBPyConnection
    left: _ArrowSource
    right: _ArrowSource


def _new_scorer(index: Index) -> _Scorer:
    """A connection with the model's statement prepared (planning Splink's SQL costs more than running
    it on a few rows). One DuckDB thread: the work is a few rows, the cores serve requests."""
    con = duckdb.connect(config={"threads": 1})
    empty = index.frame.head(0).to_arrow()
    scorer = _Scorer(con, _ArrowSource(empty), _ArrowSource(empty))
    con.register(_LEFT, scorer.left)
    con.register(_RIGHT, scorer.right)
    con.execute(f"PREPARE score AS {index.sql}")
    return scorer


def score_rows(index: Index, row: pl.DataFrame, candidates: pl.DataFrame) -> list[dict[str, Any]]:
    """Scored pairs of ``row`` against ``candidates`` as :func:`tidy_pairs` rows (rid_l < rid_r, weights,
    gamma_* and mw_* as batch), in pair order.

    A request's few pairs go through Splink's statement compiled to Python and are tidied as Python
    rows (DuckDB's fixed cost per statement, and polars' per call, are milliseconds); many pairs, or a
    statement the compiler refuses, go to DuckDB and polars. DuckDB scorers are pooled per index rather
    than kept per thread: a server's worker threads are many and take requests in turn, so per-thread
    statements would be prepared again and again.
    """
    if candidates.is_empty():
        return []
    if (
        index.pair_scorer is not None
        and index.guard_tests is not None
        and candidates.height <= MAX_PYTHON_PAIRS
    ):
        left, columns = row.row(0, named=True), index.frame.columns
        right_rows = candidates.select(columns).iter_rows(named=True)
        return _tidy_rows(index, [index.pair_scorer(left, right) for right in right_rows])
    try:
        scorer = index.scorers.get_nowait()
    except queue.Empty:
        scorer = _new_scorer(index)
    try:
        columns = index.frame.columns
        scorer.left.table = row.select(columns).to_arrow()
        scorer.right.table = candidates.select(columns).to_arrow()
        raw = scorer.con.execute("EXECUTE score").pl()
    finally:
        index.scorers.put(scorer)
    return tidy_pairs(raw, index.model).to_dicts()


def score(index: Index, row: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """:func:`score_rows` as a frame (empty without candidates)."""
    return pl.DataFrame(score_rows(index, row, candidates), infer_schema_length=None)


def _tidy_rows(index: Index, scored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`tidy_pairs` (guards included) of the compiled statement's output rows, as Python rows."""
    names = [c.name for c in index.ruleset.comparisons]
    caps = [guard_cap(g) for g in index.ruleset.guards]
    guards = list(zip(index.guard_tests or [], caps, strict=True))
    out = []
    for pair in scored:
        lo, hi = sorted((int(pair["rid_l"]), int(pair["rid_r"])))
        tidy: dict[str, Any] = {
            "rid_l": lo,
            "rid_r": hi,
            "match_weight": float(pair["match_weight"]),
            "match_probability": float(pair["match_probability"]),
        }
        tidy.update({f"gamma_{n}": int(pair[f"gamma_{n}"]) for n in names})
        tidy.update(
            {f"mw_{n}": float(pair[f"mw_{n}"]) + float(pair.get(f"mw_tf_adj_{n}") or 0.0) for n in names}
        )
        if guards:
            weight = tidy["match_weight"]
            held = [cap - weight if test(tidy) is True and weight > cap else 0.0 for test, cap in guards]
            tidy["mw_guard"] = min(held)
            tidy["match_weight"] = weight + tidy["mw_guard"]
            if tidy["mw_guard"] < 0:
                tidy["match_probability"] = 1.0 / (1.0 + 2.0 ** (-tidy["match_weight"]))
        out.append(tidy)
    return sorted(out, key=lambda p: (p["rid_l"], p["rid_r"]))


def raw_row(fields: Mapping[str, Any]) -> dict[str, Any]:
    """One raw record (any subset of the canonical fields) as a RAW_SCHEMA row; unknown fields refused."""
    unknown = sorted(set(fields) - set(RAW_SCHEMA))
    if unknown:
        raise MdmError(f"unknown fields: {', '.join(unknown)}")
    row = {c: fields.get(c) for c in RAW_SCHEMA}
    for c, t in RAW_SCHEMA.items():
        if isinstance(t, pl.List) and isinstance(row[c], str):
            row[c] = [row[c]]
    return row


def _standardize(raw: pl.DataFrame) -> pl.DataFrame:
    from mdm.standardize.pipeline import standardize

    return standardize(raw)


def _standard_frame(fields: Mapping[str, Any], rid: int) -> pl.DataFrame:
    """One raw record standardized as in batch."""
    raw = pl.DataFrame([raw_row(fields)], schema=RAW_SCHEMA)
    return _standardize(raw).with_columns(pl.lit(rid, pl.Int64).alias("rid"))


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


def rank_customers(index: Index, pairs: list[dict[str, Any]], query_rid: int) -> list[dict[str, Any]]:
    """Candidate customers, best pair first: customer_id, match_probability, match_weight, explanation.

    A request's pairs are few (at most MAX_CANDIDATES), so they are ranked as Python rows: a handful of
    polars calls would cost more than the work."""
    rows = [dict(pair) for pair in pairs]
    for pair in rows:
        pair["rid"] = pair["rid_r"] if pair["rid_l"] == query_rid else pair["rid_l"]
    owners = index.owners.of([pair["rid"] for pair in rows])
    best: dict[str, dict[str, Any]] = {}
    for pair in sorted(rows, key=lambda p: (-p["match_weight"], p["rid"])):
        if pair["rid"] in owners:
            best.setdefault(owners[pair["rid"]], pair)
    return [
        {
            "customer_id": customer_id,
            "match_probability": float(pair["match_probability"]),
            "match_weight": float(pair["match_weight"]),
            "record": int(pair["rid"]),
            "explanation": _explanation(pair, index.labels, index.ruleset),
        }
        for customer_id, pair in best.items()
    ]


def match_one(
    store: Store, fields: Mapping[str, Any], limit: int | None = None, attributes: bool = True
) -> list[dict[str, Any]]:
    """The best ``limit`` candidate customers for a record given as raw fields, scored as a batch run
    would, each with its golden attributes."""
    index = index_for(store)
    row = index.prepare_fields(raw_row(fields))
    ranked = rank_customers(index, score_rows(index, row, index.candidates(row)), QUERY_RID)[:limit]
    if attributes and ranked:
        docs = index.golden.of([c["customer_id"] for c in ranked])
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
        members = index.rows_of(member_ids)
        if not _conflicts(index, row, members):
            return str(candidate["customer_id"])
    return None


def upsert_one(store: Store, source: str, source_key: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Store one source record, match it and attach it to a customer or create one (stable-ID rules).

    Idempotent: the same (source, source_key, content) again changes nothing. Everything is written in
    one transaction, so a failure leaves the store as it was. The index is caught up under its lock
    right after the commit, so no concurrent request mistakes the new batch for a reason to rebuild.
    """
    from mdm.compliance.legal import check_legal_basis
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
    with _BUILD_LOCK:
        with store.transaction():
            before, row, customer_id, target = _upsert_in(store, index, source, source_key, std, cfg)
        if row is not None:
            index.add(row)
        index.catch_up(store)
    previous = before["customer_id"].to_list()
    if row is None:
        return {"customer_id": customer_id, "created": False, "changed": False}
    return {
        "customer_id": customer_id,
        "created": customer_id not in previous and target is None,
        "changed": True,
    }


def _upsert_in(
    store: Store, index: Index, source: str, source_key: str, std: pl.DataFrame, cfg: SourceConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None, str, str | None]:
    """The writes of :func:`upsert_one`, inside its transaction: (the record's xref before, its matching
    row or None when nothing changed, its customer, the customer it was matched to or None)."""
    from golden_record.pipeline import closed_scope, run_golden
    from mdm.compliance.legal import declaration

    batch = store.ingest_batch(
        source, [], std, [], extract_kind="delta", trust_rank=cfg.trust_rank, legal_basis=declaration(cfg)
    )
    rid = store.rid_of(source, source_key)
    if rid is None:
        raise MdmError(f"{source}: record {source_key!r} was refused (erased person)")
    before = store.current_xref([rid])
    if batch.n_new == 0 and batch.n_changed == 0 and not before.is_empty():
        return before, None, str(before["customer_id"][0]), None
    row = index.prepare(std.with_columns(pl.lit(rid, pl.Int64).alias("rid")))
    ranked = rank_customers(index, score_rows(index, row, index.candidates(row, exclude=[rid])), rid)
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
    return before, row, str(store.current_xref([rid])["customer_id"][0]), target
