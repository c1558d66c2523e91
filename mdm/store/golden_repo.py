"""Persistence of customer IDs, cross-reference, events, steward decisions and golden records.

A mixin of ``Store``: every statement runs on ``self.con``; writes go through ``self.transaction()``.
History is never deleted: the cross-reference has validity intervals (run and time), golden records have
versions, steward pins and links are revoked by stamping ``revoked_at``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from mdm.errors import MdmError
from mdm.store.base import StoreBase

if TYPE_CHECKING:
    from golden_record.assign import AssignResult

LINEAGE_SUFFIX = "_lineage"

GOLDEN_DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS run_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS pin_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS link_seq START 1",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status VARCHAR NOT NULL,
    model_version VARCHAR,
    counts VARCHAR,
    message VARCHAR
)""",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS kind VARCHAR DEFAULT 'batch'",
    """CREATE TABLE IF NOT EXISTS customers (
    customer_id VARCHAR PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    status VARCHAR NOT NULL,
    merged_into VARCHAR,
    split_from VARCHAR,
    created_run INTEGER NOT NULL,
    retired_run INTEGER
)""",
    """CREATE TABLE IF NOT EXISTS xref (
    rid BIGINT NOT NULL,
    source VARCHAR NOT NULL,
    source_key VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    valid_from_run INTEGER NOT NULL,
    valid_to_run INTEGER,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to TIMESTAMPTZ
)""",
    """CREATE TABLE IF NOT EXISTS id_events (
    event_id BIGINT PRIMARY KEY,
    run_id INTEGER,
    kind VARCHAR NOT NULL,
    customer_id VARCHAR,
    related_id VARCHAR,
    rid BIGINT,
    source VARCHAR,
    source_key VARCHAR,
    reason VARCHAR NOT NULL,
    actor VARCHAR,
    detail VARCHAR,
    event_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS golden_versions (
    customer_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    attributes VARCHAR NOT NULL,
    lineage VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, version)
)""",
    """CREATE TABLE IF NOT EXISTS pins (
    pin_id BIGINT PRIMARY KEY,
    kind VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    rid BIGINT,
    attribute VARCHAR,
    value VARCHAR,
    actor VARCHAR NOT NULL,
    note VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoked_by VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS steward_links (
    link_id BIGINT PRIMARY KEY,
    kind VARCHAR NOT NULL,
    rid_a BIGINT NOT NULL,
    rid_b BIGINT NOT NULL,
    actor VARCHAR NOT NULL,
    note VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoked_by VARCHAR
)""",
    """CREATE OR REPLACE VIEW golden_latest AS
    SELECT * FROM golden_versions
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY version DESC) = 1""",
]

_RESOLVE = """WITH RECURSIVE chain(id, depth) AS (
    SELECT CAST(? AS VARCHAR), 0
    UNION ALL
    SELECT c.merged_into, chain.depth + 1 FROM customers c JOIN chain ON c.customer_id = chain.id
    WHERE c.merged_into IS NOT NULL AND chain.depth < 1000)
SELECT c.customer_id, c.status, c.seq FROM chain JOIN customers c ON c.customer_id = chain.id
ORDER BY chain.depth DESC LIMIT 1"""


class GoldenRepo(StoreBase):
    """Store methods for the golden-record tables."""

    # ----- runs -------------------------------------------------------------------

    def start_run(self, model_version: str | None = None, kind: str = "batch") -> int:
        """Open a run and return its id; ``kind`` says who ran it (batch, realtime, steward)."""
        with self.transaction() as con:
            (run_id,) = con.execute("SELECT nextval('run_seq')").fetchone()  # type: ignore[misc]
            con.execute(
                """INSERT INTO runs (run_id, started_at, status, model_version, kind)
                VALUES (?, now(), 'running', ?, ?)""",
                [run_id, model_version, kind],
            )
        return int(run_id)

    def data_stamp(self) -> tuple[int, int]:
        """(last batch id, last run id): changes whenever records or customers may have changed."""
        row = self.con.execute(
            "SELECT (SELECT coalesce(max(batch_id), 0) FROM batches), (SELECT coalesce(max(run_id), 0) FROM runs)"
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def golden_attributes(self, customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The latest golden attributes of a few customers (point reads: customer IDs are issued in order, so
        zone maps skip nearly every row group)."""
        out: dict[str, dict[str, Any]] = {}
        for customer_id in customer_ids:
            rows = self.con.execute(
                "SELECT version, attributes FROM golden_versions WHERE customer_id = ?", [customer_id]
            ).fetchall()
            if rows:
                out[customer_id] = json.loads(max(rows)[1])
        return out

    def finish_run(
        self, run_id: int, status: str, counts: Mapping[str, int] | None = None, message: str | None = None
    ) -> None:
        """Close a run as succeeded or failed, with its counts."""
        if status not in ("succeeded", "failed"):
            raise MdmError(f"unknown run status {status!r}")
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET finished_at = now(), status = ?, counts = ?, message = ? WHERE run_id = ?",
                [status, json.dumps(dict(counts or {}), sort_keys=True), message, run_id],
            )

    def runs(self) -> pl.DataFrame:
        """Every run, oldest first."""
        return self.query("SELECT * FROM runs ORDER BY run_id")

    # ----- inputs of a run --------------------------------------------------------

    def current_xref(self, rids: Sequence[int] | None = None) -> pl.DataFrame:
        """The open cross-reference: rid, source, source_key, customer_id of every current record
        (of the records ``rids`` only, when given)."""
        where = "" if rids is None else "AND rid IN (SELECT unnest(?::BIGINT[]))"
        return self.query(
            f"""SELECT rid, source, source_key, customer_id FROM xref WHERE valid_to_run IS NULL {where}
            ORDER BY source, source_key""",
            None if rids is None else [list(rids)],
        )

    def customers_frame(self, live: Sequence[str] | None = None) -> pl.DataFrame:
        """Every customer ID ever issued with its status and successor.

        With ``live``, live customers outside that list are left out (a scoped run must not see them
        as customers that lost their records); retired and ended IDs are always kept, for resolving.
        """
        where = (
            "" if live is None else "WHERE status <> 'live' OR customer_id IN (SELECT unnest(?::VARCHAR[]))"
        )
        return self.query(
            f"""SELECT customer_id, seq, status, merged_into, split_from, created_run, retired_run
            FROM customers {where} ORDER BY seq""",
            None if live is None else [list(live)],
        )

    def customer_members(self, customer_ids: Sequence[str]) -> pl.DataFrame:
        """rid, customer_id of every current record of the given (live) customers."""
        return self.query(
            """SELECT rid, customer_id FROM xref WHERE valid_to_run IS NULL
            AND customer_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY rid""",
            [list(customer_ids)],
        )

    def scope_closure(self, rids: Sequence[int]) -> tuple[list[int], list[str]]:
        """``rids`` plus every current record of their current customers and of the customers they are
        pinned to; and those customers. A scoped run over this closure leaves everything else intact."""
        touched = self.query(
            """WITH s AS (SELECT unnest(?::BIGINT[]) AS rid)
            SELECT customer_id FROM xref WHERE valid_to_run IS NULL AND rid IN (SELECT rid FROM s)
            UNION SELECT customer_id FROM pins
            WHERE kind = 'record' AND revoked_at IS NULL AND rid IN (SELECT rid FROM s)""",
            [list(rids)],
        )["customer_id"].to_list()
        retired = self.query(
            "SELECT customer_id FROM customers WHERE merged_into IS NOT NULL AND customer_id IN (SELECT unnest(?::VARCHAR[]))",
            [touched],
        )["customer_id"].to_list()
        successors = {c: self.resolve_customer_id(c) or c for c in retired}
        live = sorted({successors.get(c, c) for c in touched})
        members = self.query(
            """SELECT rid FROM xref WHERE valid_to_run IS NULL AND customer_id IN (SELECT unnest(?::VARCHAR[]))""",
            [live],
        )["rid"].to_list()
        return sorted(set(rids) | set(members)), live

    def next_customer_seq(self) -> int:
        """The first sequence number never issued (IDs are never reused)."""
        return int(self.query("SELECT coalesce(max(seq), 0) + 1 AS n FROM customers").item())

    def golden_inputs(self, columns: Sequence[str], rids: Sequence[int] | None = None) -> pl.DataFrame:
        """Current records (``rids`` only, when given) with their batch's trust rank, restricted to ``columns``."""
        cols = ", ".join(
            "b.trust_rank" if c == "trust_rank" else f'c."{c}"' for c in dict.fromkeys(["rid", *columns])
        )
        where = "" if rids is None else "WHERE c.rid IN (SELECT unnest(?::BIGINT[]))"
        return self.query(
            f"""SELECT {cols} FROM processable_records c JOIN batches b ON b.batch_id = c.batch_id {where}
            ORDER BY c.rid""",
            None if rids is None else [list(rids)],
        )

    # ----- steward decisions ------------------------------------------------------

    def _event(self, kind: str, customer_id: str | None, rid: int | None, actor: str, detail: str) -> None:
        """One steward event (no run: it takes effect at the next run)."""
        self.con.execute(
            """INSERT INTO id_events (event_id, run_id, kind, customer_id, related_id, rid, source, source_key,
                reason, actor, detail, event_at)
            SELECT (SELECT coalesce(max(event_id), 0) + 1 FROM id_events), NULL, ?, ?, NULL, ?, k.source,
                k.source_key, 'steward', ?, ?, now()
            FROM (SELECT 1) LEFT JOIN record_keys k ON k.rid = ?""",
            [kind, customer_id, rid, actor, detail, rid],
        )

    def _live_id(self, customer_id: str) -> str:
        """The current successor of an ID; an unknown ID raises MdmError."""
        found = self.resolve_customer_id(customer_id)
        if found is None:
            raise MdmError(f"unknown customer {customer_id}")
        return found

    def pin_record(self, rid: int, customer_id: str, actor: str, note: str | None = None) -> int:
        """Pin a source record to a customer (replacing an earlier pin of the record)."""
        with self.transaction() as con:
            target = self._live_id(customer_id)
            if not con.execute("SELECT 1 FROM record_keys WHERE rid = ?", [rid]).fetchone():
                raise MdmError(f"unknown record {rid}")
            con.execute(
                """UPDATE pins SET revoked_at = now(), revoked_by = ?
                WHERE kind = 'record' AND rid = ? AND revoked_at IS NULL""",
                [actor, rid],
            )
            (pin_id,) = con.execute("SELECT nextval('pin_seq')").fetchone()  # type: ignore[misc]
            con.execute(
                """INSERT INTO pins (pin_id, kind, customer_id, rid, actor, note, created_at)
                VALUES (?, 'record', ?, ?, ?, ?, now())""",
                [pin_id, target, rid, actor, note],
            )
            self._event("pinned", target, rid, actor, f"record pin {pin_id}")
        return int(pin_id)

    def pin_attribute(
        self, customer_id: str, attribute: str, value: str, actor: str, note: str | None = None
    ) -> int:
        """Pin a golden attribute value (replacing an earlier pin of the same attribute)."""
        with self.transaction() as con:
            target = self._live_id(customer_id)
            con.execute(
                """UPDATE pins SET revoked_at = now(), revoked_by = ?
                WHERE kind = 'attribute' AND customer_id = ? AND attribute = ? AND revoked_at IS NULL""",
                [actor, target, attribute],
            )
            (pin_id,) = con.execute("SELECT nextval('pin_seq')").fetchone()  # type: ignore[misc]
            con.execute(
                """INSERT INTO pins (pin_id, kind, customer_id, attribute, value, actor, note, created_at)
                VALUES (?, 'attribute', ?, ?, ?, ?, ?, now())""",
                [pin_id, target, attribute, value, actor, note],
            )
            self._event("pinned", target, None, actor, f"attribute pin {pin_id}: {attribute}")
        return int(pin_id)

    def unpin(self, pin_id: int, actor: str) -> None:
        """Revoke a pin; the next run applies the rules again."""
        with self.transaction() as con:
            row = con.execute(
                "SELECT customer_id, rid FROM pins WHERE pin_id = ? AND revoked_at IS NULL", [pin_id]
            ).fetchone()
            if row is None:
                raise MdmError(f"no active pin {pin_id}")
            con.execute(
                "UPDATE pins SET revoked_at = now(), revoked_by = ? WHERE pin_id = ?", [actor, pin_id]
            )
            self._event("unpinned", row[0], row[1], actor, f"pin {pin_id} revoked")

    def active_record_pins(self, rids: Sequence[int] | None = None) -> pl.DataFrame:
        """rid, customer_id, actor of every active record pin (of the records ``rids`` only, when given)."""
        where = "" if rids is None else "AND rid IN (SELECT unnest(?::BIGINT[]))"
        return self.query(
            f"""SELECT rid, customer_id, actor FROM pins
            WHERE kind = 'record' AND revoked_at IS NULL {where} ORDER BY rid""",
            None if rids is None else [list(rids)],
        )

    def active_attribute_pins(self) -> pl.DataFrame:
        """customer_id, attribute, value, actor of every active attribute pin."""
        return self.query(
            """SELECT customer_id, attribute, value, actor FROM pins
            WHERE kind = 'attribute' AND revoked_at IS NULL ORDER BY customer_id, attribute"""
        )

    def add_link(self, kind: str, rid_a: int, rid_b: int, actor: str, note: str | None = None) -> int:
        """Record a steward must-link or cannot-link between two source records."""
        if kind not in ("must", "cannot"):
            raise MdmError(f"link kind must be 'must' or 'cannot', not {kind!r}")
        with self.transaction() as con:
            (known,) = con.execute(
                "SELECT count(*) FROM record_keys WHERE rid IN (?, ?)", [rid_a, rid_b]
            ).fetchone()  # type: ignore[misc]
            if rid_a == rid_b or known != 2:
                raise MdmError("a link needs two different known records")
            (link_id,) = con.execute("SELECT nextval('link_seq')").fetchone()  # type: ignore[misc]
            con.execute(
                """INSERT INTO steward_links (link_id, kind, rid_a, rid_b, actor, note, created_at)
                VALUES (?, ?, ?, ?, ?, ?, now())""",
                [link_id, kind, min(rid_a, rid_b), max(rid_a, rid_b), actor, note],
            )
        return int(link_id)

    def revoke_link(self, link_id: int, actor: str) -> None:
        """Revoke a steward link (the row stays, stamped)."""
        with self.transaction() as con:
            done = con.execute(
                """UPDATE steward_links SET revoked_at = now(), revoked_by = ?
                WHERE link_id = ? AND revoked_at IS NULL RETURNING link_id""",
                [actor, link_id],
            ).fetchall()
            if not done:
                raise MdmError(f"no active link {link_id}")

    def active_links(self) -> pl.DataFrame:
        """link_id, kind (must|cannot), rid_a, rid_b, actor of every active steward link."""
        return self.query(
            """SELECT link_id, kind, rid_a, rid_b, actor FROM steward_links
            WHERE revoked_at IS NULL ORDER BY link_id"""
        )

    # ----- applying a run ---------------------------------------------------------

    def apply_run(
        self, run_id: int, result: AssignResult, golden: pl.DataFrame, scope: Sequence[int] | None = None
    ) -> dict[str, int]:
        """Write a run's cross-reference intervals, customers, events and golden versions atomically.

        With ``scope`` (record ids), only those records' cross-reference rows are closed or opened:
        the result covers just them, and every other record keeps its customer.
        """
        lineage_cols = [c for c in golden.columns if c.endswith(LINEAGE_SUFFIX)]
        attr_cols = [c for c in golden.columns if c not in lineage_cols and c != "customer_id"]
        docs = golden.select(
            "customer_id",
            pl.struct(attr_cols).struct.json_encode().alias("attributes"),
            pl.struct(lineage_cols).struct.json_encode().alias("lineage")
            if lineage_cols
            else pl.lit("{}").alias("lineage"),
        )
        events = result.events.with_row_index("ord", offset=1)
        with self.transaction() as con:
            for name, frame in (
                ("g_xref", result.xref.select("rid", "customer_id")),
                ("g_new", result.new_customers),
                ("g_retired", result.retired),
                ("g_ended", result.ended),
                ("g_revived", result.revived),
                ("g_events", events),
                ("g_docs", docs),
                ("g_scope", pl.DataFrame({"rid": list(scope or [])}, schema={"rid": pl.Int64})),
            ):
                con.register(name, frame.to_arrow())
            try:
                counts = self._write_run(con, run_id, scoped=scope is not None)
            finally:
                for name in (
                    "g_xref",
                    "g_new",
                    "g_retired",
                    "g_ended",
                    "g_revived",
                    "g_events",
                    "g_docs",
                    "g_scope",
                ):
                    con.unregister(name)
        return counts

    def _write_run(self, con: duckdb.DuckDBPyConnection, run_id: int, scoped: bool = False) -> dict[str, int]:
        """The statements of apply_run (inside its transaction, with its frames registered)."""
        in_scope = "AND xref.rid IN (SELECT rid FROM g_scope)" if scoped else ""
        (closed,) = con.execute(
            f"""UPDATE xref SET valid_to_run = ?, valid_to = now()
            WHERE valid_to_run IS NULL {in_scope} AND NOT EXISTS (
                SELECT 1 FROM g_xref n WHERE n.rid = xref.rid AND n.customer_id = xref.customer_id)""",
            [run_id],
        ).fetchone()  # type: ignore[misc]
        (opened,) = con.execute(
            """INSERT INTO xref (rid, source, source_key, customer_id, valid_from_run, valid_from)
            SELECT n.rid, k.source, k.source_key, n.customer_id, ?, now()
            FROM g_xref n JOIN record_keys k ON k.rid = n.rid
            WHERE NOT EXISTS (SELECT 1 FROM xref x WHERE x.rid = n.rid AND x.valid_to_run IS NULL)""",
            [run_id],
        ).fetchone()  # type: ignore[misc]
        con.execute(
            """INSERT INTO customers (customer_id, seq, status, split_from, created_run)
            SELECT customer_id, seq, 'live', split_from, ? FROM g_new""",
            [run_id],
        )
        con.execute(
            """UPDATE customers SET status = 'retired', merged_into = r.merged_into, retired_run = ?
            FROM g_retired r WHERE customers.customer_id = r.customer_id""",
            [run_id],
        )
        con.execute(
            """UPDATE customers SET status = 'ended', retired_run = ?
            FROM g_ended e WHERE customers.customer_id = e.customer_id""",
            [run_id],
        )
        con.execute(
            """UPDATE customers SET status = 'live', retired_run = NULL
            FROM g_revived r WHERE customers.customer_id = r.customer_id"""
        )
        con.execute(
            """INSERT INTO id_events
            SELECT (SELECT coalesce(max(event_id), 0) FROM id_events) + e.ord, ?, e.kind, e.customer_id,
                e.related_id, e.rid, k.source, k.source_key, e.reason, e.actor, e.detail, now()
            FROM g_events e LEFT JOIN record_keys k ON k.rid = e.rid ORDER BY e.ord""",
            [run_id],
        )
        (versions,) = con.execute(
            """INSERT INTO golden_versions
            SELECT d.customer_id, coalesce(l.version, 0) + 1, ?, d.attributes, d.lineage,
                md5(d.attributes || d.lineage), now()
            FROM g_docs d LEFT JOIN golden_latest l ON l.customer_id = d.customer_id
            WHERE l.customer_id IS NULL OR l.content_hash <> md5(d.attributes || d.lineage)""",
            [run_id],
        ).fetchone()  # type: ignore[misc]
        self._check_xref(con, run_id)
        return {"xref_closed": int(closed), "xref_opened": int(opened), "golden_versions": int(versions)}

    @staticmethod
    def _check_xref(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
        """Refuse (and so roll back) a run that breaks one-record-one-live-customer."""
        checks = {
            "records would belong to two customers": """SELECT count(*) FROM (SELECT rid FROM g_xref
                GROUP BY rid HAVING count(*) > 1)""",
            "records would belong to a customer that is not live": """SELECT count(*) FROM xref x
                LEFT JOIN customers c ON c.customer_id = x.customer_id
                WHERE x.valid_to_run IS NULL AND (c.status IS NULL OR c.status <> 'live')""",
            "live customers would have no record": """SELECT count(*) FROM customers c
                WHERE c.status = 'live' AND NOT EXISTS (
                    SELECT 1 FROM xref x WHERE x.customer_id = c.customer_id AND x.valid_to_run IS NULL)""",
        }
        for problem, sql in checks.items():
            row = con.execute(sql).fetchone()
            if row and row[0]:
                raise MdmError(f"run {run_id}: {row[0]} {problem}; nothing was written")

    # ----- reads ------------------------------------------------------------------

    def resolve_customer_id(self, customer_id: str) -> str | None:
        """The current successor of an ID (itself unless retired); None for an unknown ID."""
        found = self._resolve(customer_id)
        return None if found is None else found[0]

    def _resolve(self, customer_id: str) -> tuple[str, str, int] | None:
        """(successor, its status, its sequence) of an ID: one point read, the chain only when retired."""
        row = self.con.execute(
            "SELECT customer_id, status, seq, merged_into FROM customers WHERE customer_id = ?", [customer_id]
        ).fetchone()
        if row is not None and row[3] is not None:
            row = self.con.execute(_RESOLVE, [customer_id]).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """A customer's latest golden record with lineage and records, following retired IDs."""
        found = self._resolve(customer_id)
        if found is None:
            return None
        resolved, status, seq = found
        docs = self.query(
            "SELECT version, run_id, attributes, lineage, created_at FROM golden_versions WHERE customer_id = ?",
            [resolved],
        ).to_dicts()
        doc: dict[str, Any] = max(docs, key=lambda d: d["version"]) if docs else {}
        records = self.query(
            """SELECT rid, source, source_key, valid_from_run FROM xref
            WHERE customer_id = ? AND valid_to_run IS NULL ORDER BY rid""",
            [resolved],
        )
        return {
            "requested_id": customer_id,
            "customer_id": resolved,
            "status": status,
            "seq": seq,
            "version": doc.get("version"),
            "run_id": doc.get("run_id"),
            "attributes": json.loads(doc["attributes"]) if doc else {},
            "lineage": json.loads(doc["lineage"]) if doc else {},
            "created_at": doc.get("created_at"),
            "records": records.to_dicts(),
        }

    def golden_history(self, customer_id: str) -> pl.DataFrame:
        """Every stored version of one customer's golden record, oldest first."""
        return self.query(
            "SELECT * FROM golden_versions WHERE customer_id = ? ORDER BY version", [customer_id]
        )

    def golden_current(self) -> pl.DataFrame:
        """The latest golden version of every live customer (attributes and lineage as JSON text)."""
        return self.query(
            """SELECT g.customer_id, g.version, g.run_id, g.attributes, g.lineage, g.created_at
            FROM golden_latest g JOIN customers c ON c.customer_id = g.customer_id AND c.status = 'live'
            ORDER BY g.customer_id"""
        )

    def xref_as_of(
        self, source: str, source_key: str, *, run_id: int | None = None, at: datetime | None = None
    ) -> str | None:
        """Which customer held a record after run ``run_id`` or at time ``at`` (None: not then known)."""
        if (run_id is None) == (at is None):
            raise MdmError("give exactly one of run_id or at")
        param: int | datetime | None = run_id if run_id is not None else at
        if run_id is not None:
            cond = "valid_from_run <= ? AND (valid_to_run IS NULL OR valid_to_run > ?)"
        else:
            cond = "valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"
        row = self.con.execute(
            f"SELECT customer_id FROM xref WHERE source = ? AND source_key = ? AND {cond}",
            [source, source_key, param, param],
        ).fetchone()
        return None if row is None else str(row[0])

    def xref_history(self, source: str, source_key: str) -> pl.DataFrame:
        """Every interval of one record's cross-reference, oldest first."""
        return self.query(
            "SELECT * FROM xref WHERE source = ? AND source_key = ? ORDER BY valid_from_run",
            [source, source_key],
        )

    def events_since(self, run_id: int | None = None, event_id: int | None = None) -> pl.DataFrame:
        """ID events after run ``run_id`` (steward events included) or after event ``event_id``."""
        if run_id is not None:
            after = self.query(
                "SELECT coalesce(max(event_id), 0) AS e FROM id_events WHERE run_id <= ?", [run_id]
            ).item()
        else:
            after = event_id or 0
        return self.query("SELECT * FROM id_events WHERE event_id > ? ORDER BY event_id", [after])
