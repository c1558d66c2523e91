"""Erasure (PIPL) in the store: purge a person's data or restrict it under an AML hold, keep a tombstone.

A mixin of ``Store``. Erasure deletes every stored trace of the person's source records (all versions),
golden versions, cross-reference, pins, links, rejects and indexes, replaces the record keys by tombstone
markers, then rewrites the database file (DuckDB leaves deleted values in freed blocks and statistics) and
verifies the raw bytes no longer hold the person's name, ID number or mobile. A restriction keeps the data
stored but out of ``processable_records``. Tombstones keep only keyed hashes (HMAC) of the record keys, ID
numbers and mobiles, so a re-arrival is recognized without keeping the values.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import date, datetime

import duckdb
import polars as pl

from mdm.erasure import (
    DECISION_INPUT,
    RE_ARRIVAL_FLAG,
    Decision,
    ErasureResult,
    RetentionPolicy,
    bytes_containing,
    customer_family,
    decide,
    hash_series,
    keyed_hash,
    load_retention,
    match_tombstones,
    national_mobile,
    normalized_id,
    re_arrival_reason,
    record_token,
    residual_secrets,
)
from mdm.errors import MdmError, RowReject
from mdm.privacy import mask
from mdm.store.connection import DB_ALIAS, _quote
from mdm.store.golden_repo import GoldenRepo

ERASURE_DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS tombstone_seq START 1",
    """CREATE TABLE IF NOT EXISTS tombstones (
    tombstone_id BIGINT PRIMARY KEY,
    scope VARCHAR NOT NULL,
    customer_id VARCHAR,
    key_hmacs VARCHAR[] NOT NULL,
    id_hmacs VARCHAR[] NOT NULL,
    mobile_hmacs VARCHAR[] NOT NULL,
    n_records INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    requested_by VARCHAR NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    action VARCHAR NOT NULL,
    relationship_end DATE,
    hold_until DATE,
    completed_at TIMESTAMPTZ
)""",
    """CREATE TABLE IF NOT EXISTS restrictions (
    rid BIGINT PRIMARY KEY,
    tombstone_id BIGINT NOT NULL,
    restricted_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS erasure_secret (
    secret VARCHAR NOT NULL
)""",
    """CREATE OR REPLACE VIEW processable_records AS
    SELECT c.* FROM current_records c
    WHERE NOT EXISTS (SELECT 1 FROM restrictions r WHERE r.rid = c.rid)""",
]

#: Tables this module clears by name; any other table with one of ``RID_COLUMNS`` is cleared generically.
_HANDLED = {
    "records",
    "record_keys",
    "xref",
    "golden_versions",
    "id_events",
    "pins",
    "steward_links",
    "rejects",
    "restrictions",
    "tombstones",
    "batches",
    "customers",
    "runs",
    "erasure_secret",
    "audit_log",
}
RID_COLUMNS = ("rid", "rid_l", "rid_r", "rid_a", "rid_b", "unique_id_l", "unique_id_r")

_LATEST_OWNER = """SELECT rid, customer_id FROM xref
    QUALIFY row_number() OVER (PARTITION BY rid ORDER BY valid_from_run DESC, valid_from DESC) = 1"""


class ErasureRepo(GoldenRepo):
    """Store methods for erasure requests, AML holds, tombstones and re-arrival checks."""

    # ----- keys and hashes --------------------------------------------------------

    def _erasure_key(self) -> bytes:
        """HMAC key of tombstones: MDM_TOMBSTONE_KEY, else derived from MDM_DB_KEY, else a per-file secret."""
        configured = os.environ.get("MDM_TOMBSTONE_KEY")
        parquet_key = getattr(self, "_parquet_key", None)
        if configured:
            base = f"env:{configured}"
        elif parquet_key:
            base = f"db:{parquet_key}"
        else:
            row = self.con.execute("SELECT secret FROM erasure_secret LIMIT 1").fetchone()
            if row is None:
                row = (secrets.token_hex(32),)
                self.con.execute("INSERT INTO erasure_secret VALUES (?)", [row[0]])
            base = f"file:{row[0]}"
        return hashlib.sha256(f"mdm-tombstone:{base}".encode()).digest()

    def _hashes_of(self, rids: list[int]) -> tuple[list[str], list[str], list[str]]:
        """Keyed hashes of the record keys, normalized ID numbers and mobiles of ``rids`` (all versions)."""
        key = self._erasure_key()
        keys = self.query(
            "SELECT source, source_key FROM record_keys WHERE list_contains(?::BIGINT[], rid)", [rids]
        )
        values = self.query(
            """SELECT id_number, id_number_std, mobile, mobiles FROM records
            WHERE list_contains(?::BIGINT[], rid)""",
            [rids],
        )
        key_h = sorted(keyed_hash(key, "key", record_token(s, k)) for s, k in keys.rows())
        ids = values.select(
            pl.concat([normalized_id(pl.col("id_number_std")), normalized_id(pl.col("id_number"))])
            .drop_nulls()
            .unique()
            .alias("v")
        )["v"]
        phones = pl.concat([values["mobile"].explode(), values["mobiles"].explode()]).drop_nulls().unique()
        nationals = sorted({m for m in (national_mobile(p) for p in phones.to_list()) if m})
        id_h = sorted(keyed_hash(key, "id", v) for v in ids.to_list())
        mob_h = sorted(keyed_hash(key, "mobile", v) for v in nationals)
        return key_h, id_h, mob_h

    # ----- what a request covers --------------------------------------------------

    def _customer_rids(self, family: list[str]) -> list[int]:
        """Records (current or ended) whose latest cross-reference interval belongs to ``family``."""
        got = self.query(
            f"SELECT rid FROM ({_LATEST_OWNER}) WHERE list_contains(?::VARCHAR[], customer_id) ORDER BY rid",
            [family],
        )
        return [int(r) for r in got["rid"].to_list()]

    def _decision_input(self, rids: list[int]) -> pl.DataFrame:
        """``DECISION_INPUT`` of ``rids``: source, whether ended, and the date of the ending extract."""
        frame = self.query(
            """SELECT r.rid, r.source, r.ended,
                CASE WHEN r.ended THEN coalesce(TRY_CAST(b.extract_date AS DATE),
                    CAST(try_strptime(b.extract_date, '%Y%m%d') AS DATE), CAST(r.ingested_at AS DATE))
                END AS ended_on
            FROM records r JOIN batches b ON b.batch_id = r.batch_id
            WHERE list_contains(?::BIGINT[], r.rid)
            QUALIFY row_number() OVER (PARTITION BY r.rid ORDER BY r.version DESC) = 1""",
            [rids],
        )
        return frame.select([pl.col(c).cast(t) for c, t in DECISION_INPUT.items()])

    # ----- requests ---------------------------------------------------------------

    def erase_customer(
        self,
        customer_id: str,
        reason: str,
        user: str,
        now: datetime,
        policy: RetentionPolicy | None = None,
    ) -> ErasureResult:
        """Erase a customer (and the retired IDs merged into it), or restrict it under an AML hold."""
        policy = policy or load_retention()
        target = self.resolve_customer_id(customer_id)
        if target is None:
            raise MdmError(f"unknown customer {customer_id}")
        status = self.query("SELECT status FROM customers WHERE customer_id = ?", [target]).item()
        if status in ("erased", "restricted"):
            raise MdmError(
                f"customer {target} is already {status}"
                + ("; see `mdm erase release-holds`" if status == "restricted" else "")
            )
        family = customer_family(self.customers_frame(), target)
        rids = self._customer_rids(family)
        decision = decide(self._decision_input(rids), policy, now.date())
        if decision.action == "restricted":
            return self._restrict("customer", target, rids, decision, reason, user, now)
        return self._erase("customer", target, family, rids, decision, reason, user, now)

    def erase_record(
        self,
        source: str,
        source_key: str,
        reason: str,
        user: str,
        now: datetime,
        policy: RetentionPolicy | None = None,
    ) -> ErasureResult:
        """Erase one source record, or restrict it under an AML hold; its customer keeps its other records.

        The owning customer's golden versions that drew on the record are removed with it; the next golden
        run writes a fresh version. A customer left without records becomes erased (or restricted).
        """
        policy = policy or load_retention()
        row = self.con.execute(
            "SELECT rid FROM record_keys WHERE source = ? AND source_key = ?", [source, source_key]
        ).fetchone()
        if row is None:
            raise MdmError(f"{source}: no record with that key")
        rid = int(row[0])
        if self.con.execute("SELECT 1 FROM restrictions WHERE rid = ?", [rid]).fetchone():
            raise MdmError(f"{source}: the record is already restricted; see `mdm erase release-holds`")
        owner_row = self.con.execute(
            f"SELECT customer_id FROM ({_LATEST_OWNER}) WHERE rid = ?", [rid]
        ).fetchone()
        owner = None if owner_row is None else str(owner_row[0])
        decision = decide(self._decision_input([rid]), policy, now.date())
        if decision.action == "restricted":
            return self._restrict("record", owner, [rid], decision, reason, user, now)
        return self._erase("record", owner, [], [rid], decision, reason, user, now)

    def release_expired_holds(
        self, now: datetime, policy: RetentionPolicy | None = None
    ) -> list[ErasureResult]:
        """Erase restricted data whose hold has ended (the relationship ended ``retention_years`` ago).

        Holds are recomputed from the records as they are now (a record end-dated since the request starts
        its clock). Erasures left incomplete by a crash are completed too.
        """
        policy = policy or load_retention()
        done: list[ErasureResult] = []
        held = self.query(
            "SELECT tombstone_id, scope, customer_id FROM tombstones WHERE action = 'restricted' ORDER BY tombstone_id"
        )
        for tid, scope, customer_id in held.rows():
            rids = [
                int(r)
                for r in self.query(
                    "SELECT rid FROM restrictions WHERE tombstone_id = ? ORDER BY rid", [tid]
                )["rid"].to_list()
            ]
            decision = decide(self._decision_input(rids), policy, now.date())
            if decision.action == "restricted":
                self._set_hold(int(tid), decision)
                continue
            family = customer_family(self.customers_frame(), customer_id) if scope == "customer" else []
            done.append(self._purge(int(tid), scope, customer_id, family, rids, decision, now))
        pending = self.query(
            "SELECT count(*) AS n FROM tombstones WHERE action = 'erased' AND completed_at IS NULL"
        )
        if done or pending.item():
            self._finish_erasures(done, now)
        return done

    def _set_hold(self, tombstone_id: int, decision: Decision) -> None:
        """Store the recomputed hold of a restriction (the relationship may have ended since)."""
        with self.transaction() as con:
            con.execute(
                "UPDATE tombstones SET relationship_end = ?, hold_until = ? WHERE tombstone_id = ?",
                [decision.relationship_end, decision.hold_until, tombstone_id],
            )

    # ----- restricting ------------------------------------------------------------

    def _restrict(
        self,
        scope: str,
        customer_id: str | None,
        rids: list[int],
        decision: Decision,
        reason: str,
        user: str,
        now: datetime,
    ) -> ErasureResult:
        """Keep the data stored, out of processing: restrictions rows, cross-reference closed, ID restricted."""
        with self.transaction() as con:
            key_h, id_h, mob_h = self._hashes_of(rids)
            tid = self._tombstone(scope, customer_id, (key_h, id_h, mob_h), rids, reason, user, now, decision)
            con.execute(
                """INSERT INTO restrictions SELECT unnest(?::BIGINT[]), ?, ? ON CONFLICT DO NOTHING""",
                [rids, tid, now],
            )
            con.execute(
                """UPDATE xref SET valid_to_run = (SELECT coalesce(max(run_id), 0) + 1 FROM runs), valid_to = ?
                WHERE valid_to_run IS NULL AND list_contains(?::BIGINT[], rid)""",
                [now, rids],
            )
            if customer_id is not None:
                con.execute(
                    """UPDATE customers SET status = 'restricted' WHERE customer_id = ? AND NOT EXISTS (
                        SELECT 1 FROM xref x WHERE x.customer_id = ? AND x.valid_to_run IS NULL)""",
                    [customer_id, customer_id],
                )
            con.execute("UPDATE tombstones SET completed_at = ? WHERE tombstone_id = ?", [now, tid])
            self._audit("restricted", customer_id, tid, user, now)
        return ErasureResult(
            tombstone_id=tid,
            action="restricted",
            customer_id=customer_id,
            records=len(rids),
            relationship_open=decision.relationship_open,
            relationship_end=decision.relationship_end,
            hold_until=decision.hold_until,
        )

    # ----- erasing ----------------------------------------------------------------

    def _erase(
        self,
        scope: str,
        customer_id: str | None,
        family: list[str],
        rids: list[int],
        decision: Decision,
        reason: str,
        user: str,
        now: datetime,
    ) -> ErasureResult:
        """Tombstone, purge and rewrite the file for a request that is not held."""
        with self.transaction():
            hashes = self._hashes_of(rids)
            tid = self._tombstone(scope, customer_id, hashes, rids, reason, user, now, decision)
            result = self._purge(tid, scope, customer_id, family, rids, decision, now)
            self._audit("erased", customer_id, tid, user, now)
        self._finish_erasures([result], now)
        return result

    def _tombstone(
        self,
        scope: str,
        customer_id: str | None,
        hashes: tuple[list[str], list[str], list[str]],
        rids: list[int],
        reason: str,
        user: str,
        now: datetime,
        decision: Decision,
    ) -> int:
        """Insert the tombstone of a request (completed later) and return its id."""
        (tid,) = self.con.execute("SELECT nextval('tombstone_seq')").fetchone()  # type: ignore[misc]
        self.con.execute(
            """INSERT INTO tombstones (tombstone_id, scope, customer_id, key_hmacs, id_hmacs, mobile_hmacs,
                n_records, reason, requested_by, requested_at, action, relationship_end, hold_until)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                tid,
                scope,
                customer_id,
                *hashes,
                len(rids),
                mask(reason),
                user,
                now,
                decision.action,
                decision.relationship_end,
                decision.hold_until,
            ],
        )
        return int(tid)

    def _purge(
        self,
        tid: int,
        scope: str,
        customer_id: str | None,
        family: list[str],
        rids: list[int],
        decision: Decision,
        now: datetime,
    ) -> ErasureResult:
        """Delete every row of ``rids`` and ``family`` (one transaction); the secrets are kept for the check."""
        with self.transaction() as con:
            values = self.query(
                """SELECT name, name_alt, id_number, id_number_std, mobile, mobiles FROM records
                WHERE list_contains(?::BIGINT[], rid)""",
                [rids],
            )
            key_h, id_h, mob_h = self._hashes_of(rids)
            con.execute(
                """UPDATE tombstones SET action = 'erased', completed_at = NULL, relationship_end = ?,
                    hold_until = ?, n_records = ?,
                    key_hmacs = list_sort(list_distinct(list_concat(key_hmacs, ?))),
                    id_hmacs = list_sort(list_distinct(list_concat(id_hmacs, ?))),
                    mobile_hmacs = list_sort(list_distinct(list_concat(mobile_hmacs, ?)))
                WHERE tombstone_id = ?""",
                [decision.relationship_end, decision.hold_until, len(rids), key_h, id_h, mob_h, tid],
            )
            removed = self._delete_rows(tid, family, rids)
            if scope == "customer" and customer_id is not None:
                con.execute("UPDATE customers SET status = 'erased' WHERE customer_id = ?", [customer_id])
            elif customer_id is not None:
                con.execute(
                    """UPDATE customers SET status = 'erased' WHERE customer_id = ? AND NOT EXISTS (
                        SELECT 1 FROM xref x WHERE x.customer_id = ? AND x.valid_to_run IS NULL)""",
                    [customer_id, customer_id],
                )
        result = ErasureResult(
            tombstone_id=tid,
            action="erased",
            customer_id=customer_id,
            records=len(rids),
            relationship_end=decision.relationship_end,
            hold_until=decision.hold_until,
            removed=removed,
        )
        result.secrets = residual_secrets(values)
        return result

    def _delete_rows(self, tid: int, family: list[str], rids: list[int]) -> dict[str, int]:
        """The deletes of a purge, table by table; returns rows removed or scrubbed per table."""
        con = self.con
        keys = self.query(
            "SELECT source, source_key FROM record_keys WHERE list_contains(?::BIGINT[], rid)", [rids]
        )
        rid_pattern = '"rid":(' + "|".join(str(r) for r in rids) + ")[,}]" if rids else "^$never"
        statements: dict[str, tuple[str, list[object]]] = {
            "records": ("DELETE FROM records WHERE list_contains(?::BIGINT[], rid)", [rids]),
            "xref": ("DELETE FROM xref WHERE list_contains(?::BIGINT[], rid)", [rids]),
            "golden_versions": (
                """DELETE FROM golden_versions WHERE list_contains(?::VARCHAR[], customer_id)
                OR regexp_matches(attributes || lineage, ?)""",
                [family, rid_pattern],
            ),
            "id_events": (
                "UPDATE id_events SET source_key = NULL WHERE list_contains(?::BIGINT[], rid) AND source_key IS NOT NULL",
                [rids],
            ),
            "pins": (
                "DELETE FROM pins WHERE list_contains(?::VARCHAR[], customer_id) OR list_contains(?::BIGINT[], rid)",
                [family, rids],
            ),
            "steward_links": (
                "DELETE FROM steward_links WHERE list_contains(?::BIGINT[], rid_a) OR list_contains(?::BIGINT[], rid_b)",
                [rids, rids],
            ),
            "restrictions": ("DELETE FROM restrictions WHERE list_contains(?::BIGINT[], rid)", [rids]),
            "record_keys": (
                """UPDATE record_keys SET source_key = 'erased:' || ? || ':' || rid
                WHERE list_contains(?::BIGINT[], rid)""",
                [tid, rids],
            ),
        }
        removed: dict[str, int] = {}
        if keys.height:
            con.register("erase_keys", keys.to_arrow())
            try:
                (n,) = con.execute(
                    """DELETE FROM rejects WHERE EXISTS (SELECT 1 FROM erase_keys k
                    WHERE k.source = rejects.source AND k.source_key = rejects.source_key)"""
                ).fetchone()  # type: ignore[misc]
            finally:
                con.unregister("erase_keys")
            removed["rejects"] = int(n)
        for table, (sql, params) in statements.items():
            (n,) = con.execute(sql, params).fetchone()  # type: ignore[misc]
            removed[table] = int(n)
        removed.update(self._delete_other_tables(rids, family))
        return {t: n for t, n in removed.items() if n}

    def _delete_other_tables(self, rids: list[int], family: list[str]) -> dict[str, int]:
        """Rows of the person in tables other modules add (match pairs, clusters, caches, hmac_index)."""
        cols = self.query(
            """SELECT table_name, list(column_name) AS cols FROM information_schema.columns
            WHERE table_catalog = ? AND table_schema = 'main' AND table_name IN (
                SELECT table_name FROM information_schema.tables
                WHERE table_catalog = ? AND table_type = 'BASE TABLE')
            GROUP BY table_name ORDER BY table_name""",
            [DB_ALIAS, DB_ALIAS],
        )
        removed: dict[str, int] = {}
        for table, columns in cols.rows():
            if table in _HANDLED:
                continue
            conds = [f'list_contains(?::BIGINT[], "{c}")' for c in columns if c in RID_COLUMNS]
            params: list[object] = [rids] * len(conds)
            if table == "hmac_index" and "customer_id" in columns:
                conds.append("list_contains(?::VARCHAR[], customer_id)")
                params.append(family)
            if conds:
                (n,) = self.con.execute(
                    f'DELETE FROM "{table}" WHERE {" OR ".join(conds)}', params
                ).fetchone()  # type: ignore[misc]
                removed[table] = int(n)
        return removed

    def _audit(self, action: str, customer_id: str | None, tid: int, user: str, now: datetime) -> None:
        """An entry in the hash-chained audit log (no values: the tombstone number only)."""
        self.audit(user=user, action=f"erasure.{action}", target=customer_id, detail=f"tombstone {tid}")  # type: ignore[attr-defined]

    # ----- the file ---------------------------------------------------------------

    def _finish_erasures(self, results: list[ErasureResult], now: datetime) -> None:
        """Rewrite the file, check its bytes for the erased values, and complete the tombstones."""
        self.compact()
        for result in results:
            result.file_rewritten = True
            result.verified = not self.residues(result.secrets)
        bad = [r.tombstone_id for r in results if not r.verified]
        with self.transaction() as con:
            con.execute(
                """UPDATE tombstones SET completed_at = ? WHERE action = 'erased' AND completed_at IS NULL
                AND NOT list_contains(?::BIGINT[], tombstone_id)""",
                [now, bad],
            )
        self.con.execute("CHECKPOINT")
        if bad:
            raise MdmError(f"erasure residues remain in the database file (tombstones {bad}); run it again")

    def residues(self, values: list[str]) -> dict[str, list[int]]:
        """Which ``values`` the raw database file and WAL still hold, beyond values other records hold."""
        files = [p for p in (self.path, self.path.with_name(self.path.name + ".wal")) if p.exists()]
        hits = bytes_containing(files, values)
        if not hits:
            return {}
        flagged = sorted({i for idx in hits.values() for i in idx})
        candidates = [values[i] for i in flagged]
        held = self.query(
            """SELECT s FROM unnest(?::VARCHAR[]) t(s) WHERE EXISTS (SELECT 1 FROM records r WHERE
                contains(concat_ws('|', r.name, r.name_alt, r.id_number, r.id_number_std, r.address,
                    r.address_std, r.company, r.note, r.source_key, array_to_string(r.mobile, '|'),
                    array_to_string(r.mobiles, '|'), array_to_string(r.phone, '|')), s))""",
            [candidates],
        )["s"].to_list()
        left = {values.index(v) for v in candidates if v not in held}
        return {name: [i for i in idx if i in left] for name, idx in hits.items() if set(idx) & left}

    def compact(self) -> None:
        """Rewrite the database into a fresh file and swap it in atomically: no freed block keeps old values."""
        path = self.path.resolve()
        fresh = path.with_name(path.name + ".compact")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        encrypted = self.query(
            "SELECT encrypted FROM duckdb_databases() WHERE database_name = ?", [DB_ALIAS]
        ).item()
        key = getattr(self, "_db_key", None)
        if encrypted and not key:
            raise MdmError("the store is encrypted but its key is not known to the store: cannot compact")
        opts = f" (ENCRYPTION_KEY {_quote(key)})" if encrypted and key else ""
        con = self.con
        con.execute("CHECKPOINT")
        con.execute(f"ATTACH {_quote(str(fresh))} AS mdm_compact{opts}")
        try:
            con.execute(f"COPY FROM DATABASE {DB_ALIAS} TO mdm_compact")
        except duckdb.Error:
            con.execute("DETACH mdm_compact")
            fresh.unlink(missing_ok=True)
            raise
        con.execute("DETACH mdm_compact")
        con.execute("USE memory")
        con.execute(f"DETACH {DB_ALIAS}")
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
        os.replace(fresh, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        con.execute(f"ATTACH {_quote(str(path))} AS {DB_ALIAS}{opts}")
        con.execute(f"USE {DB_ALIAS}")

    # ----- re-arrival -------------------------------------------------------------

    def _tombstone_hashes(self) -> pl.DataFrame:
        """kind (key|id|mobile), hash, tombstone_id, action, requested_at of every tombstone."""
        return self.query(
            """SELECT kind, hash, tombstone_id, action, requested_at FROM (
                SELECT 'key' AS kind, unnest(key_hmacs) AS hash, tombstone_id, action, requested_at FROM tombstones
                UNION ALL
                SELECT 'id', unnest(id_hmacs), tombstone_id, action, requested_at FROM tombstones
                UNION ALL
                SELECT 'mobile', unnest(mobile_hmacs), tombstone_id, action, requested_at FROM tombstones)"""
        )

    def filter_erased(
        self, frame: pl.DataFrame, source: str, policy: RetentionPolicy | None = None
    ) -> tuple[pl.DataFrame, list[RowReject]]:
        """Split an incoming batch: re-arrivals of erased (or restricted) persons are quarantined or flagged.

        A re-arrival is a row whose key is not live in the store and whose (source, key) or normalized ID
        number matches a tombstone. Quarantined rows are returned as rejects without their key.
        """
        hashes = self._tombstone_hashes()
        if hashes.height == 0 or frame.height == 0:
            return frame, []
        policy = policy or load_retention()
        key = self._erasure_key()
        live = self.query("SELECT source_key FROM record_keys WHERE source = ?", [source])
        ids = [c for c in ("id_number_std", "id_number") if c in frame.columns]
        probe = frame.with_row_index("_row").select(
            "_row",
            pl.col("source_key").is_in(live["source_key"].implode()).alias("known"),
            (pl.lit(source + "\x1f") + pl.col("source_key")).alias("key_token"),
            pl.coalesce([normalized_id(pl.col(c)) for c in ids] or [pl.lit(None, pl.String)]).alias(
                "id_token"
            ),
        )
        probe = probe.with_columns(
            hash_series(key, "key", probe["key_token"]).alias("key_hash"),
            hash_series(key, "id", probe["id_token"]).alias("id_hash"),
        )
        matched = match_tombstones(probe, hashes)
        if matched.height == 0:
            return frame, []
        indexed = frame.with_row_index("_row")
        if policy.re_arrival == "flag":
            flagged = indexed.with_columns(
                pl.when(pl.col("_row").is_in(matched["_row"].implode()))
                .then(pl.col("dq_flags").fill_null([]).list.concat(pl.lit([RE_ARRIVAL_FLAG])))
                .otherwise(pl.col("dq_flags"))
                .alias("dq_flags")
            )
            return flagged.drop("_row"), []
        rows = indexed.join(matched, on="_row", how="inner").sort("_row")
        rejects = [
            RowReject(
                file=str(r.get("file") or ""),
                locator=str(r.get("locator") or f"row {r['_row'] + 1}"),
                field=None,
                reason=re_arrival_reason(str(r["action"]), _as_date(r["requested_at"])),
                source_key=None,
            )
            for r in rows.select(
                "_row", *[c for c in ("file", "locator") if c in rows.columns], "action", "requested_at"
            ).to_dicts()
        ]
        kept = indexed.join(matched.select("_row"), on="_row", how="anti").drop("_row")
        return kept, rejects

    def tombstone_match(
        self,
        *,
        source: str | None = None,
        source_key: str | None = None,
        id_number: str | None = None,
        mobile: str | None = None,
    ) -> pl.DataFrame:
        """Tombstones matching a record key, an ID number or a mobile: tombstone_id, action, matched_on."""
        key = self._erasure_key()
        probes: list[tuple[str, str]] = []
        if source is not None and source_key is not None:
            probes.append(("key", keyed_hash(key, "key", record_token(source, source_key))))
        if id_number:
            norm = pl.select(normalized_id(pl.lit(id_number, pl.String))).item()
            if norm:
                probes.append(("id", keyed_hash(key, "id", norm)))
        national = national_mobile(mobile)
        if national:
            probes.append(("mobile", keyed_hash(key, "mobile", national)))
        wanted = pl.DataFrame(probes, schema={"kind": pl.String, "hash": pl.String}, orient="row")
        return (
            self._tombstone_hashes()
            .join(wanted, on=["kind", "hash"], how="inner")
            .group_by("tombstone_id", "action", "requested_at")
            .agg(pl.col("kind").sort().alias("matched_on"))
            .sort("tombstone_id")
        )

    def tombstones(self) -> pl.DataFrame:
        """Every erasure request without its hashes (for reports and the compliance check)."""
        return self.query(
            """SELECT tombstone_id, scope, customer_id, n_records, reason, requested_by, requested_at, action,
                relationship_end, hold_until, completed_at FROM tombstones ORDER BY tombstone_id"""
        )


def _as_date(value: object) -> date:
    """The date of a timestamp read back from DuckDB."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise MdmError(f"not a timestamp: {type(value).__name__}")
