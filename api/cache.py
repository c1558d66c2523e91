"""In-memory read model of the two hot reads: current cross-reference and golden customer documents.

Loaded whole, in bulk (three DuckDB queries in one snapshot, joined in polars), so a lookup is a dict
probe plus a few array reads instead of a DuckDB scan. Small per-row values (customer IDs, runs, rids,
source keys) are Python lists; the large JSON documents stay in Arrow arrays (UTF-8, no per-object
overhead) and are parsed per request (orjson: a few times faster than ``json``).

Freshness: every data-changing commit to the database in this process bumps a ``WriteCounter``
(``ApiRepo.transaction``, and the API's write lock on release). A model built at counter value ``g``
answers only while the counter is still ``g``; otherwise :meth:`ReadCache.current` returns None (the
caller reads DuckDB, which is always current) and a background thread rebuilds the model, waiting while
a write holds the write lock. So a read that starts after a write returned never sees older data.

A real-time upsert does not throw the model away: under the write lock it names what its one run
changed (records attached or detached, customers given a golden version, created or retired;
:func:`touched_by`), and the model is kept with those xref keys and customers marked dirty, answered by
DuckDB from then on (``knows_xref`` / ``knows_customer``; a customer is dirty also when the customer it
resolves to is). Any other write, or one that ran more than one run, rebuilds the model whole as before;
so does a model whose dirty sets outgrow MAX_DIRTY. At 1M a full rebuild takes about 20 s, during which
the database answers every read (about 74 xref and 40 customer reads a second on this machine).

A new model is moved out of the garbage collector's reach (``gc.freeze``): its millions of long-lived
objects would otherwise be traversed by every full collection, a pause of tens of milliseconds in some
request's latency. Freed models are still reclaimed by reference counting (they hold no cycles).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import polars as pl
import pyarrow as pa

from mdm.store import Store
from mdm.store.api_repo import ApiRepo, WriteCounter

log = logging.getLogger("mdm.api")

#: Longest chain of retired IDs followed (the SQL resolver stops at the same depth).
MAX_DEPTH = 1000
#: After a failed rebuild, reads stay on the database this long before the next attempt.
RETRY_SECONDS = 5.0
#: Pause between checks while a write holds the write lock (the model is rebuilt once it is free).
BUSY_POLL_SECONDS = 0.05
#: Most answers memoized per model (masked views, serialized bodies; ~2 KB each); the memo starts over
#: when full, so it holds at most ~200 MB.
MEMO_LIMIT = 100_000

T = TypeVar("T")

#: A record's model key in SQL (the text :func:`xref_key` builds).
_KEY_SQL = "source || chr(31) || source_key"
_XREF_SQL = f"""SELECT {_KEY_SQL} AS k, source, source_key, customer_id, rid, valid_from_run
    FROM xref WHERE valid_to_run IS NULL ORDER BY customer_id, rid"""
_CUSTOMERS_SQL = "SELECT customer_id, status, seq, merged_into FROM customers"
_DOCS_SQL = """SELECT customer_id, version, run_id, attributes, lineage, created_at FROM golden_versions
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY version DESC) = 1"""


def xref_key(source: str, source_key: str) -> str:
    """The model's key of a source record (the same text the load builds in SQL)."""
    return f"{source}\x1f{source_key}"


def successors(customers: pl.DataFrame) -> pl.DataFrame:
    """customer_id -> ``to``: the end of its merged_into chain (itself unless retired), following a link
    only while its target is a known customer, as ``GoldenRepo._resolve`` does."""
    known = customers.select("customer_id")
    step = customers.join(
        known.rename({"customer_id": "merged_into"}).with_columns(pl.lit(True).alias("ok")),
        on="merged_into",
        how="left",
    ).select(
        "customer_id",
        pl.when(pl.col("ok")).then(pl.col("merged_into")).otherwise(pl.col("customer_id")).alias("next"),
    )
    out = step.rename({"next": "to"})
    hop = step.rename({"customer_id": "to"})
    for _ in range(MAX_DEPTH):
        moved = out.join(hop, on="to", how="left").with_columns(pl.coalesce("next", "to").alias("next"))
        if (moved["next"] == moved["to"]).all():
            break
        out = moved.select("customer_id", pl.col("next").alias("to"))
    return out


@dataclass(frozen=True)
class ReadModel:
    """One immutable snapshot of current xref and golden documents, tagged with its counter value."""

    generation: int
    xref_row: dict[str, int]
    x_customer: list[str]
    x_rid: list[int]
    x_source: list[str]
    x_source_key: list[str]
    x_from_run: list[int]
    customer_row: dict[str, int]
    c_id: list[str]
    c_status: list[str]
    c_seq: list[int]
    c_version: list[int | None]
    c_run: list[int | None]
    c_rec_start: list[int]
    c_rec_count: list[int]
    c_attributes: pa.Array
    c_lineage: pa.Array
    c_created: pa.Array
    #: Xref keys and customers real-time writes changed since the build: answered by the database.
    dirty_keys: frozenset[str] = frozenset()
    dirty_customers: frozenset[str] = frozenset()
    memo: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)

    def knows_xref(self, source: str, source_key: str) -> bool:
        """Is this record's answer current in the model (no write since the build changed it)?"""
        return not self.dirty_keys or xref_key(source, source_key) not in self.dirty_keys

    def knows_customer(self, customer_id: str) -> bool:
        """Is this customer's answer current in the model: neither it nor the customer it resolves to
        changed since the build?"""
        if not self.dirty_customers:
            return True
        if customer_id in self.dirty_customers:
            return False
        row = self.customer_row.get(customer_id)
        return row is None or self.c_id[row] not in self.dirty_customers

    def memoized(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` computed once per key for this model (answers derived from its data only, e.g.
        a golden document masked for a role): a write makes a new model, so no memo outlives its data."""
        try:
            found: T = self.memo[key]
            return found
        except KeyError:
            pass
        value = build()
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        self.memo[key] = value
        return value

    def xref(self, source: str, source_key: str) -> dict[str, Any] | None:
        """``Store.xref_current`` from memory: customer_id, rid, valid_from_run; None when not current."""
        row = self.xref_row.get(xref_key(source, source_key))
        if row is None:
            return None
        return {
            "customer_id": self.x_customer[row],
            "rid": self.x_rid[row],
            "valid_from_run": self.x_from_run[row],
        }

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """``Store.customer`` from memory: the successor's latest golden document and current records."""
        row = self.customer_row.get(customer_id)
        if row is None:
            return None
        version = self.c_version[row]
        start, count = self.c_rec_start[row], self.c_rec_count[row]
        records = [
            {
                "rid": self.x_rid[i],
                "source": self.x_source[i],
                "source_key": self.x_source_key[i],
                "valid_from_run": self.x_from_run[i],
            }
            for i in range(start, start + count)
        ]
        has_doc = version is not None
        return {
            "requested_id": customer_id,
            "customer_id": self.c_id[row],
            "status": self.c_status[row],
            "seq": self.c_seq[row],
            "version": version,
            "run_id": self.c_run[row],
            "attributes": orjson.loads(self.c_attributes[row].as_py()) if has_doc else {},
            "lineage": orjson.loads(self.c_lineage[row].as_py()) if has_doc else {},
            "created_at": self.c_created[row].as_py() if has_doc else None,
            "records": records,
        }

    def memory_bytes(self) -> int:
        """Rough size: Arrow buffers plus Python lists and dicts (keys and values counted once)."""
        arrow = sum(a.nbytes for a in (self.c_attributes, self.c_lineage, self.c_created))
        n_x, n_c = len(self.x_customer), len(self.c_id)
        return int(arrow + n_x * (100 + 4 * 60) + n_c * (100 + 2 * 60 + 4 * 32))


def load_model(store: ApiRepo, generation: int) -> ReadModel:
    """Build the model from one consistent snapshot of the database (bulk queries, polars joins)."""
    store.con.execute("BEGIN TRANSACTION")
    try:
        xref = store.query(_XREF_SQL)
        customers = store.query(_CUSTOMERS_SQL)
        docs = store.query(_DOCS_SQL)
    finally:
        store.con.execute("ROLLBACK")
    ranges = (
        xref.with_row_index("i")
        .group_by("customer_id")
        .agg(pl.col("i").min().cast(pl.Int64).alias("rec_start"), pl.len().cast(pl.Int64).alias("rec_count"))
    )
    table = (
        customers.join(docs, on="customer_id", how="left")
        .join(ranges, on="customer_id", how="left")
        .with_columns(pl.col("rec_start").fill_null(0), pl.col("rec_count").fill_null(0))
        .with_row_index("row")
    )
    point = successors(customers).join(
        table.select(pl.col("customer_id").alias("to"), "row"), on="to", how="inner"
    )
    return ReadModel(
        generation=generation,
        xref_row=dict(zip(xref["k"].to_list(), range(xref.height), strict=True)),
        x_customer=xref["customer_id"].to_list(),
        x_rid=xref["rid"].to_list(),
        x_source=xref["source"].to_list(),
        x_source_key=xref["source_key"].to_list(),
        x_from_run=xref["valid_from_run"].to_list(),
        customer_row=dict(zip(point["customer_id"].to_list(), point["row"].to_list(), strict=True)),
        c_id=table["customer_id"].to_list(),
        c_status=table["status"].to_list(),
        c_seq=table["seq"].to_list(),
        c_version=table["version"].to_list(),
        c_run=table["run_id"].to_list(),
        c_rec_start=table["rec_start"].to_list(),
        c_rec_count=table["rec_count"].to_list(),
        c_attributes=table["attributes"].to_arrow(),
        c_lineage=table["lineage"].to_arrow(),
        c_created=table["created_at"].to_arrow(),
    )


#: Most keys or customers a model may send to the database before it is rebuilt whole instead.
MAX_DIRTY = 50_000

_TOUCHED_SQL = f"""SELECT {_KEY_SQL} AS k, customer_id FROM xref
    WHERE valid_from_run = $run OR valid_to_run = $run"""
_TOUCHED_CUSTOMERS_SQL = """SELECT customer_id FROM golden_versions WHERE run_id = $run
    UNION SELECT customer_id FROM customers WHERE created_run = $run OR retired_run = $run"""


def touched_by(view: Store, run_id: int) -> tuple[set[str], set[str]]:
    """(xref keys, customer IDs) whose answers run ``run_id`` changed: records it attached or detached
    (and their customers, before and after), customers it gave a golden version, created or retired."""
    xref = view.query(_TOUCHED_SQL, {"run": run_id})
    customers = view.query(_TOUCHED_CUSTOMERS_SQL, {"run": run_id})
    return set(xref["k"].to_list()), set(xref["customer_id"].to_list()) | set(
        customers["customer_id"].to_list()
    )


@dataclass(frozen=True)
class WriteMark:
    """What :meth:`ReadCache.begin_write` saw: the model then current and the store's last run."""

    model: ReadModel
    last_run: int


class ReadCache:
    """The current :class:`ReadModel`, or None while a write made it stale (a rebuild is then under way)."""

    def __init__(
        self,
        open_view: Callable[[], ApiRepo],
        counter: WriteCounter,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self._open_view = open_view
        self._counter = counter
        self._busy = busy
        self._model: ReadModel | None = None
        self._lock = threading.Lock()
        self._loading = False
        self._view: ApiRepo | None = None
        self._retry_at = 0.0
        self.last_load_seconds = 0.0

    def current(self) -> ReadModel | None:
        """The model when it holds every committed change; else None (and a rebuild is started)."""
        model = self._model
        if model is not None and model.generation == self._counter.value:
            return model
        self._start_rebuild()
        return None

    def begin_write(self, view: Store) -> WriteMark | None:
        """Before a write that :meth:`absorb_write` may take in (under the write lock): the current
        model and last run; None when no model is current (the write then invalidates as any)."""
        model = self._model
        if model is None or model.generation != self._counter.value:
            return None
        return WriteMark(model, view.data_stamp()[1])

    def absorb_write(self, mark: WriteMark | None, view: Store) -> None:
        """After the write committed, still under the write lock: keep the model, with what the write's
        one run touched answered by the database, instead of rebuilding it whole.

        Only a write that made at most one run is taken in, and only onto the model current when it
        began. The kept model is tagged with the counter value the write lock's release makes, so it
        serves only once the release happened with no other change in between; anything else leaves the
        model stale and a rebuild under way, as before.
        """
        if mark is None:
            return
        run = view.data_stamp()[1]
        if run == mark.last_run:
            keys: set[str] = set()
            customers: set[str] = set()
        elif run == mark.last_run + 1:
            keys, customers = touched_by(view, run)
        else:
            return
        model = mark.model
        dirty_keys, dirty_customers = model.dirty_keys | keys, model.dirty_customers | customers
        if len(dirty_keys) + len(dirty_customers) > MAX_DIRTY:
            return
        kept = dataclasses.replace(
            model,
            generation=self._counter.value + 1,
            dirty_keys=dirty_keys,
            dirty_customers=dirty_customers,
            memo={},
        )
        with self._lock:
            if self._model is model:
                self._model = kept

    def refresh(self) -> ReadModel:
        """Build the model now, in this thread (server start)."""
        with self._lock:
            self._loading = True
        try:
            return self._build()
        finally:
            with self._lock:
                self._loading = False

    def _start_rebuild(self) -> None:
        with self._lock:
            if self._loading or time.monotonic() < self._retry_at:
                return
            self._loading = True
        threading.Thread(target=self._rebuild_loop, name="read-model", daemon=True).start()

    def _rebuild_loop(self) -> None:
        """Rebuild until the model is current (writes during a build make it stale again)."""
        try:
            while True:
                while self._busy():
                    time.sleep(BUSY_POLL_SECONDS)
                model = self._model
                if model is not None and model.generation == self._counter.value:
                    return
                self._build()
        except Exception as exc:
            log.error("read model not rebuilt (reads stay on the database): %s", type(exc).__name__)
            self._retry_at = time.monotonic() + RETRY_SECONDS
        finally:
            with self._lock:
                self._loading = False

    def _build(self) -> ReadModel:
        if self._view is None:
            self._view = self._open_view()
        generation = self._counter.value
        t0 = time.perf_counter()
        model = load_model(self._view, generation)
        self.last_load_seconds = time.perf_counter() - t0
        self._model = model
        gc.freeze()
        return model
