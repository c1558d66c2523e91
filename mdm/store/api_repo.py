"""Persistence of the HTTP API: API keys, the hash-chained audit log and the keyed-HMAC identifier index.

A mixin of ``Store``. No table here holds a plaintext C2 value: keys are stored as salted, peppered
HMACs; audit rows hold masked values; the identifier index holds HMAC-SHA256 digests of normalized
identifiers. HMAC is computed in SQL (``sha256(opad || sha256(ipad || message))``) so the index is
built and the audit chain verified without a Python loop over rows; the Python side (``hmac`` module)
computes the same digests for single values.

Secrets: ``MDM_AUDIT_KEY`` (audit chain), ``MDM_INDEX_KEY`` (identifier index) and ``MDM_APIKEY_PEPPER``
(API key hashes) from the environment; each missing one is derived from a random master secret kept in
``<db>.api.key`` (mode 0600) next to the database file.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, Self

import duckdb
import polars as pl

from mdm.errors import MdmError
from mdm.store.base import StoreBase
from mdm.store.connection import DB_ALIAS

API_DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS api_keys (
    key_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    salt VARCHAR NOT NULL,
    digest VARCHAR NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    logged_at TIMESTAMPTZ NOT NULL,
    request_id VARCHAR,
    key_id VARCHAR,
    actor VARCHAR,
    role VARCHAR,
    action VARCHAR NOT NULL,
    target VARCHAR,
    fields VARCHAR,
    view VARCHAR,
    reason VARCHAR,
    status INTEGER,
    detail VARCHAR,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS hmac_index (
    kind VARCHAR NOT NULL,
    digest VARCHAR NOT NULL,
    rid BIGINT NOT NULL,
    version INTEGER NOT NULL
)""",
]

#: Audit columns covered by the chain hash, in payload order (seq, at and prev_hash are added around them).
AUDIT_FIELDS: tuple[str, ...] = (
    "request_id",
    "key_id",
    "actor",
    "role",
    "action",
    "target",
    "fields",
    "view",
    "reason",
    "status",
    "detail",
)
GENESIS = "genesis"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NULL = "\u2205"
#: Identifier kinds of the HMAC index and the standardized column each one indexes.
INDEX_KINDS: dict[str, str] = {"mobile": "mobiles", "id_number": "id_number_std", "name": "name_simplified"}

_PAYLOAD = (
    "concat_ws(chr(31), CAST(seq AS VARCHAR), CAST(epoch_us(logged_at) AS VARCHAR), "
    + ", ".join(f"coalesce(CAST({c} AS VARCHAR), '{_NULL}')" for c in AUDIT_FIELDS)
    + ", prev_hash)"
)


def sql_hmac(message_sql: str) -> str:
    """SQL expression: hex HMAC-SHA256 of ``message_sql`` with the pads bound as parameters $opad/$ipad."""
    return f"sha256($opad::BLOB || unhex(sha256($ipad::BLOB || encode({message_sql}))))"


def hmac_pads(key: bytes) -> dict[str, bytes]:
    """The outer and inner HMAC-SHA256 pads of ``key`` (parameters of :func:`sql_hmac`)."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    return {"opad": bytes(b ^ 0x5C for b in block), "ipad": bytes(b ^ 0x36 for b in block)}


def index_digest(key: bytes, kind: str, value: str) -> str:
    """The index digest of one normalized identifier (same as the SQL side computes)."""
    return hmac.new(key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()


_ENV = {"audit": "MDM_AUDIT_KEY", "index": "MDM_INDEX_KEY", "pepper": "MDM_APIKEY_PEPPER"}
#: Inserts a batch of journal lines (a JSON array of them, parameter ``$lines``) into ``audit_log``:
#: DuckDB parses the JSON, so a load does no per-row Python work and runs without the GIL.
_LOAD_SQL = (
    f"INSERT INTO audit_log (seq, logged_at, {', '.join(AUDIT_FIELDS)}, prev_hash, hash) "
    "SELECT r[1]::BIGINT, to_timestamp(0) + to_microseconds(r[2]::BIGINT), "
    + ", ".join(
        f"r[{i}]::INTEGER" if c == "status" else f"r[{i}]" for i, c in enumerate(AUDIT_FIELDS, start=3)
    )
    + f", r[{len(AUDIT_FIELDS) + 3}], r[{len(AUDIT_FIELDS) + 4}] "
    """FROM (SELECT from_json(j, '["VARCHAR"]') AS r FROM (SELECT unnest($lines::JSON::JSON[]) AS j))"""
)
#: Elements of one journal line: seq, epoch microseconds, AUDIT_FIELDS, prev_hash, hash.
_LINE_WIDTH = len(AUDIT_FIELDS) + 4
JOURNAL_SUFFIX = ".audit-journal"
#: Longest wait for an audit sink to make an entry durable.
SINK_WAIT_SECONDS = 10.0
#: The sequence ``audit`` returns for an entry held until its transaction commits.
HELD_SEQ = 0


class WriteCounter:
    """Data-changing commits to one database file in this process: in-memory read models compare it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> int:
        """Count one more change; returns the new value."""
        with self._lock:
            self.value += 1
            return self.value


_COUNTERS: dict[tuple[str, str], WriteCounter] = {}
_COUNTERS_LOCK = threading.Lock()


def write_counter(path: Path | str, topic: str = "data") -> WriteCounter:
    """The process-wide counter of ``topic`` (``data``: records/customers/xref; ``keys``: API keys)."""
    key = (str(Path(path).resolve()), topic)
    with _COUNTERS_LOCK:
        return _COUNTERS.setdefault(key, WriteCounter())


class AuditSink(Protocol):
    """Where a serving process sends every audit entry (``api.audit.AuditWriter``), so the chain has one writer."""

    def submit(self, entry: dict[str, Any]) -> Future[int]:
        """Queue one entry (columns of AUDIT_FIELDS); the future holds its sequence once durable."""
        ...

    def flush(self) -> None:
        """Return once every entry accepted so far is in the ``audit_log`` table."""
        ...


def audit_entry(
    *,
    action: str,
    user: str | None = None,
    key_id: str | None = None,
    role: str | None = None,
    target: str | None = None,
    fields: str | None = None,
    view: str | None = None,
    reason: str | None = None,
    status: int | None = None,
    detail: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One audit entry as its AUDIT_FIELDS columns; a status that is not an int (a bool is not) raises
    MdmError."""
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise MdmError("audit status must be an HTTP status code")
    return {
        "request_id": request_id,
        "key_id": key_id or (f"cli:{user}" if user else None),
        "actor": user,
        "role": role,
        "action": action,
        "target": target,
        "fields": fields,
        "view": view,
        "reason": reason,
        "status": status,
        "detail": detail,
    }


def chain_rows(
    entries: Sequence[dict[str, Any]], seq: int, prev: str, key: bytes, now: datetime
) -> list[list[Any]]:
    """Audit rows (seq, logged_at, AUDIT_FIELDS..., prev_hash, hash) chained after entry ``seq``/``prev``.

    Each hash is HMAC(audit key, payload) over its sequence, time, every column and the previous hash:
    the same bytes the SQL of ``verify_audit`` hashes.
    """
    micros = (now - EPOCH) // timedelta(microseconds=1)
    rows: list[list[Any]] = []
    for entry in entries:
        seq += 1
        values = [entry.get(c) for c in AUDIT_FIELDS]
        payload = "\x1f".join(
            [str(seq), str(micros), *(_NULL if v is None else str(v) for v in values), prev]
        )
        digest = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
        rows.append([seq, now, *values, prev, digest])
        prev = digest
    return rows


def journal_line(row: Sequence[Any]) -> bytes:
    """One audit row as a journal line (JSON array; the time as epoch microseconds).

    Field values other than status are written as the text the chain hash covers (``str``), so the
    table holds exactly what was hashed whatever type a caller passed."""
    micros = (row[1] - EPOCH) // timedelta(microseconds=1)
    fields = [
        v if v is None or isinstance(v, str) or c == "status" else str(v)
        for c, v in zip(AUDIT_FIELDS, row[2:-2], strict=True)
    ]
    return (json.dumps([row[0], micros, *fields, *row[-2:]], ensure_ascii=False) + "\n").encode()


def journal_entries(data: bytes) -> list[tuple[int, str, bytes]]:
    """(seq, prev_hash, line) of each complete entry of a journal file, lines as in the file; a torn last
    line (a crash mid-append) is skipped."""
    entries: list[tuple[int, str, bytes]] = []
    for line in data.splitlines(keepends=True):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, list) and len(item) == _LINE_WIDTH:
            entries.append((int(item[0]), str(item[-2]), line))
    return entries


class ApiRepo(StoreBase):
    """Store methods of the HTTP API (keys, audit, identifier index, point reads)."""

    _quiet_writes: bool = False
    _audit_sink: AuditSink | None = None
    _held_audit: list[dict[str, Any]] | None = None

    # ----- change tracking ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """``StoreBase.transaction``; a committed outer transaction also bumps the data write counter
        (unless inside :meth:`quiet_writes`), so read models in this process notice every change.

        With an audit sink, entries appended inside the transaction are held and made durable just
        before it commits: a rolled-back operation leaves no entry, and a failed audit write rolls the
        operation back. Should the commit itself fail after that, a second entry records the rollback.
        """
        if self._in_tx:
            with super().transaction() as con:
                yield con
            return
        self._held_audit = []
        journaled: list[dict[str, Any]] = []
        try:
            with super().transaction() as con:
                yield con
                held, self._held_audit = self._held_audit, None
                self._send_to_sink(held)
                journaled = held
        except BaseException:
            if journaled:
                self._send_to_sink(
                    [
                        {**e, "status": 500, "detail": "rolled back: the database commit failed"}
                        for e in journaled
                    ]
                )
            raise
        finally:
            self._held_audit = None
        if not self._quiet_writes:
            write_counter(self.path).bump()

    @contextmanager
    def quiet_writes(self) -> Iterator[None]:
        """Commits inside change no customer data (audit appends, key stamps): the counter stays."""
        before = self._quiet_writes
        self._quiet_writes = True
        try:
            yield
        finally:
            self._quiet_writes = before

    def install_audit_sink(self, sink: AuditSink | None) -> None:
        """Send this store's (and its later thread views') audit entries to ``sink``."""
        self._audit_sink = sink

    # ----- schema, secrets, threads ---------------------------------------------------

    def ensure_api_schema(self) -> None:
        """Create the API tables if missing (idempotent; the store's migration runs the same DDL)."""
        with self.transaction() as con:
            for stmt in API_DDL:
                con.execute(stmt)

    def api_secret(self, purpose: str) -> bytes:
        """The key of ``purpose`` (audit | index | pepper): env variable, else derived from ``<db>.api.key``."""
        configured = os.environ.get(_ENV[purpose])
        if configured:
            return hashlib.sha256(f"mdm-{purpose}:{configured}".encode()).digest()
        master_file = self.path.with_name(self.path.name + ".api.key")
        if not master_file.exists():
            fd = os.open(master_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        master = master_file.read_text().strip()
        return hmac.new(bytes.fromhex(master), f"mdm-{purpose}".encode(), hashlib.sha256).digest()

    def thread_view(self) -> Self:
        """A copy of this store on its own cursor: one per thread, reads see the last committed snapshot."""
        view = copy.copy(self)
        view.con = self.con.cursor()
        view.con.execute(f"USE {DB_ALIAS}")
        view._in_tx = False
        return view

    # ----- API keys ----------------------------------------------------------------------

    def add_api_key(self, key_id: str, name: str, role: str, salt: str, digest: str, created_by: str) -> None:
        """Store a new key's salted, peppered digest (the key itself is never stored)."""
        with self.quiet_writes(), self.transaction() as con:
            con.execute(
                """INSERT INTO api_keys (key_id, name, role, salt, digest, created_by, created_at)
                VALUES (?, ?, ?, ?, ?, ?, now())""",
                [key_id, name, role, salt, digest, created_by],
            )
        write_counter(self.path, "keys").bump()

    def api_key(self, key_id: str) -> dict[str, Any] | None:
        """One active key's role, name, salt and digest; None when unknown or revoked."""
        row = self.con.execute(
            "SELECT key_id, name, role, salt, digest FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
            [key_id],
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("key_id", "name", "role", "salt", "digest"), row, strict=True))

    def active_api_keys(self) -> dict[str, dict[str, Any]]:
        """key_id -> role, name, salt and digest of every active key (a small table, read whole)."""
        frame = self.query("SELECT key_id, name, role, salt, digest FROM api_keys WHERE revoked_at IS NULL")
        return {str(row["key_id"]): row for row in frame.to_dicts()}

    def api_keys(self) -> pl.DataFrame:
        """Every key without its digest: id, name, role, created, last used, revoked."""
        return self.query(
            """SELECT key_id, name, role, created_by, created_at, last_used_at, revoked_at
            FROM api_keys ORDER BY created_at, key_id"""
        )

    def touch_api_keys(self, key_ids: Sequence[str]) -> None:
        """Stamp keys as used now (the server batches these stamps)."""
        if key_ids:
            with self.quiet_writes(), self.transaction() as con:
                con.execute(
                    "UPDATE api_keys SET last_used_at = now() WHERE list_contains(?, key_id)", [list(key_ids)]
                )

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key; False when it was unknown or already revoked."""
        with self.quiet_writes(), self.transaction() as con:
            done = con.execute(
                """UPDATE api_keys SET revoked_at = now() WHERE key_id = ? AND revoked_at IS NULL
                RETURNING key_id""",
                [key_id],
            ).fetchall()
        write_counter(self.path, "keys").bump()
        return bool(done)

    # ----- audit log ---------------------------------------------------------------------

    def audit(
        self,
        *,
        action: str,
        user: str | None = None,
        key_id: str | None = None,
        role: str | None = None,
        target: str | None = None,
        fields: str | None = None,
        view: str | None = None,
        reason: str | None = None,
        status: int | None = None,
        detail: str | None = None,
        request_id: str | None = None,
    ) -> int:
        """Append one entry to the hash-chained audit log and return its sequence number.

        Callers pass masked values only. A failure raises and the caller's operation fails.
        """
        entry = audit_entry(
            action=action,
            user=user,
            key_id=key_id,
            role=role,
            target=target,
            fields=fields,
            view=view,
            reason=reason,
            status=status,
            detail=detail,
            request_id=request_id,
        )
        return self.audit_many([entry])[0]

    def audit_many(self, entries: Sequence[dict[str, Any]]) -> list[int]:
        """Append entries (columns of AUDIT_FIELDS); returns their sequence numbers.

        In a serving process the entries go through its audit sink (one chain writer); inside a
        transaction they are held until it commits and get ``HELD_SEQ`` (their sequence is not known
        yet). Otherwise they are chained after the table's last entry (a left-over journal replayed
        first) in the caller's transaction, so they commit or roll back with it.
        """
        for entry in entries:
            audit_entry(action=str(entry.get("action")), status=entry.get("status"))
        if self._audit_sink is not None:
            if self._held_audit is not None:
                self._held_audit.extend(dict(entry) for entry in entries)
                return [HELD_SEQ] * len(entries)
            return self._send_to_sink(entries)
        self.replay_audit_journal()
        key = self.api_secret("audit")
        with self.transaction():
            seq, prev = self.audit_tail()
            rows = chain_rows(entries, seq, prev, key, datetime.now(UTC))
            self.insert_audit_rows([journal_line(row) for row in rows])
        return [int(r[0]) for r in rows]

    def _send_to_sink(self, entries: Sequence[dict[str, Any]]) -> list[int]:
        """Entries through the audit sink, waiting until each is durable; their sequence numbers."""
        if not entries or self._audit_sink is None:
            return []
        futures = [self._audit_sink.submit(dict(entry)) for entry in entries]
        return [f.result(timeout=SINK_WAIT_SECONDS) for f in futures]

    def audit_tail(self) -> tuple[int, str]:
        """(sequence, hash) of the last audit entry; (0, genesis) when there is none."""
        tail = self.con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(tail[0]), str(tail[1])) if tail else (0, GENESIS)

    def insert_audit_rows(self, lines: Sequence[bytes]) -> None:
        """Insert chained audit rows, given as journal lines (:func:`journal_line`), in one quiet transaction.

        DuckDB parses the lines: no per-row Python work, and the GIL is free while the insert runs (the
        serving process loads a batch a few times a second next to its request threads)."""
        if not lines:
            return
        batch = "[" + b",".join(lines).decode() + "]"
        with self.quiet_writes(), self.transaction() as con:
            con.execute(_LOAD_SQL, {"lines": batch})

    def audit_journal_dir(self) -> Path:
        """The folder of the serving process's audit journal (``<db>.audit-journal``)."""
        return self.path.with_name(self.path.name + JOURNAL_SUFFIX)

    def replay_audit_journal(self) -> int:
        """Load journaled audit entries the table lacks (a server stopped before loading them), then
        delete the journal; returns how many were loaded. Nothing to do without a journal."""
        folder = self.audit_journal_dir()
        segments = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        if not segments:
            return 0
        last, tail_hash = self.audit_tail()
        entries = sorted(e for seg in segments for e in journal_entries(seg.read_bytes()) if e[0] > last)
        if entries and (entries[0][0] != last + 1 or entries[0][1] != tail_hash):
            raise MdmError(f"the audit journal in {folder} does not continue the audit log; not replayed")
        self.insert_audit_rows([line for _, _, line in entries])
        for seg in segments:
            seg.unlink()
        return len(entries)

    def audit_entries(self, after: int = 0, limit: int = 100) -> pl.DataFrame:
        """Audit entries with ``seq > after``, oldest first, at most ``limit``."""
        if self._audit_sink is not None:
            self._audit_sink.flush()
        return self.query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit])

    def verify_audit(self) -> dict[str, Any]:
        """Recompute every entry's keyed hash and chain link; report the first broken entry (None: intact).

        Entries still only in the journal are loaded first (the sink's flush, or a left-over replay)."""
        if self._audit_sink is not None:
            self._audit_sink.flush()
        else:
            self.replay_audit_journal()
        params = hmac_pads(self.api_secret("audit"))
        row = self.con.execute(
            f"""WITH c AS (
                SELECT seq, hash, prev_hash, {sql_hmac(_PAYLOAD)} AS expected,
                    lag(hash, 1, '{GENESIS}') OVER (ORDER BY seq) AS prev_actual,
                    lag(seq, 1, 0) OVER (ORDER BY seq) AS prev_seq
                FROM audit_log)
            SELECT count(*), coalesce(max(seq), 0),
                min(seq) FILTER (WHERE hash <> expected OR prev_hash <> prev_actual OR seq <> prev_seq + 1)
            FROM c""",
            params,
        ).fetchone()
        entries, last, broken = row if row else (0, 0, None)
        return {
            "entries": int(entries),
            "verified_to": int(broken) - 1 if broken is not None else int(last),
            "first_broken": None if broken is None else int(broken),
        }

    # ----- identifier index --------------------------------------------------------------

    def refresh_hmac_index(self) -> dict[str, int]:
        """Bring the keyed-HMAC index in line with the processable records (incremental, in SQL)."""
        parts = " UNION ALL ".join(
            f"SELECT rid, version, '{kind}' AS kind, "
            + (f"unnest({col})" if kind == "mobile" else f"coalesce({col}, name)" if kind == "name" else col)
            + " AS value FROM processable_records"
            for kind, col in INDEX_KINDS.items()
        )
        params = hmac_pads(self.api_secret("index"))
        with self.transaction() as con:
            (removed,) = con.execute(
                """DELETE FROM hmac_index WHERE NOT EXISTS (SELECT 1 FROM processable_records c
                WHERE c.rid = hmac_index.rid AND c.version = hmac_index.version)"""
            ).fetchone()  # type: ignore[misc]
            (added,) = con.execute(
                f"""INSERT INTO hmac_index
                SELECT DISTINCT kind, {sql_hmac("kind || chr(31) || value")}, rid, version
                FROM ({parts}) v
                WHERE value IS NOT NULL AND trim(value) <> '' AND NOT EXISTS (
                    SELECT 1 FROM hmac_index h WHERE h.rid = v.rid AND h.version = v.version)""",
                params,
            ).fetchone()  # type: ignore[misc]
        return {"removed": int(removed), "added": int(added)}

    def customers_by_digests(self, digests: dict[str, str], limit: int = 50) -> list[str]:
        """Live customer IDs holding a record that matches every given (kind -> digest), smallest first."""
        if not digests:
            return []
        conds = " INTERSECT ".join(
            "SELECT rid FROM hmac_index WHERE kind = ? AND digest = ?" for _ in digests
        )
        params: list[object] = [v for pair in digests.items() for v in pair]
        rows = self.con.execute(
            f"""SELECT DISTINCT x.customer_id FROM ({conds}) h
            JOIN xref x ON x.rid = h.rid AND x.valid_to_run IS NULL ORDER BY 1 LIMIT ?""",
            [*params, limit],
        ).fetchall()
        return [str(r[0]) for r in rows]

    # ----- point reads -------------------------------------------------------------------

    def xref_current(self, source: str, source_key: str) -> dict[str, Any] | None:
        """A record's open cross-reference interval (customer_id, rid, valid_from_run, valid_from)."""
        row = self.con.execute(
            """SELECT customer_id, rid, valid_from_run, valid_from FROM xref
            WHERE source = ? AND source_key = ? AND valid_to_run IS NULL""",
            [source, source_key],
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("customer_id", "rid", "valid_from_run", "valid_from"), row, strict=True))

    def events_page(self, after: int = 0, limit: int = 100) -> pl.DataFrame:
        """ID events with ``event_id > after``, oldest first, at most ``limit`` (the change feed page)."""
        return self.query(
            """SELECT event_id, run_id, kind, customer_id, related_id, source, source_key, reason, event_at
            FROM id_events WHERE event_id > ? ORDER BY event_id LIMIT ?""",
            [after, limit],
        )

    def api_stats(self) -> dict[str, Any]:
        """Aggregates for analysts: customers per status, current records per source, last run."""
        status = dict(self.con.execute("SELECT status, count(*) FROM customers GROUP BY ALL").fetchall())
        sources = dict(
            self.con.execute("SELECT source, count(*) FROM processable_records GROUP BY ALL").fetchall()
        )
        last = self.con.execute("SELECT max(run_id) FROM runs WHERE status = 'succeeded'").fetchone()
        return {
            "customers_by_status": {str(k): int(v) for k, v in status.items()},
            "records_by_source": {str(k): int(v) for k, v in sources.items()},
            "last_run": None if not last or last[0] is None else int(last[0]),
        }

    def ping(self) -> bool:
        """True when the database answers a query."""
        return self.con.execute("SELECT count(*) FROM customers").fetchone() is not None
