"""Persistence of partner exports, webhook subscriptions and webhook deliveries (mixin of Store).

Every partner export is audited with its profile and row count; every delivery attempt of a change event to
a partner's webhook is logged with its outcome. No table here holds a personal value: exports keep the
file's hash, deliveries the body's hash.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime
from typing import Any

import polars as pl

from mdm.errors import MdmError
from mdm.store.base import StoreBase

COMPLIANCE_DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS export_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS webhook_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS delivery_seq START 1",
    """CREATE TABLE IF NOT EXISTS export_audit (
    export_id BIGINT PRIMARY KEY,
    kind VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    partner VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL,
    file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    actor VARCHAR NOT NULL,
    exported_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    subscription_id BIGINT PRIMARY KEY,
    partner VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    url VARCHAR NOT NULL,
    after_event BIGINT NOT NULL DEFAULT 0,
    active BOOLEAN NOT NULL DEFAULT true,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id BIGINT PRIMARY KEY,
    subscription_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    http_status INTEGER,
    error VARCHAR,
    body_sha256 VARCHAR NOT NULL,
    signed_at BIGINT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL,
    duration_ms DOUBLE
)""",
    """CREATE TABLE IF NOT EXISTS partner_secret (
    secret VARCHAR NOT NULL
)""",
]


class ComplianceRepo(StoreBase):
    """Store methods for export audit, webhook subscriptions and the delivery log."""

    # ----- secrets ----------------------------------------------------------------

    def partner_master_key(self) -> bytes:
        """Master key of partner tokens and webhook secrets: MDM_PARTNER_SECRET, else MDM_DB_KEY, else per file."""
        configured = os.environ.get("MDM_PARTNER_SECRET")
        db_key = getattr(self, "_parquet_key", None)
        if configured:
            base = f"env:{configured}"
        elif db_key:
            base = f"db:{db_key}"
        else:
            row = self.con.execute("SELECT secret FROM partner_secret LIMIT 1").fetchone()
            if row is None:
                row = (secrets.token_hex(32),)
                self.con.execute("INSERT INTO partner_secret VALUES (?)", [row[0]])
            base = f"file:{row[0]}"
        return hashlib.sha256(f"mdm-partner:{base}".encode()).digest()

    # ----- exports ----------------------------------------------------------------

    def record_export(
        self, kind: str, profile: str, partner: str, n_rows: int, file: str, file_sha256: str, actor: str
    ) -> int:
        """Audit one partner export (profile, partner, row count, file hash) and return its id."""
        with self.transaction() as con:
            (export_id,) = con.execute("SELECT nextval('export_seq')").fetchone()  # type: ignore[misc]
            con.execute(
                """INSERT INTO export_audit (export_id, kind, profile, partner, n_rows, file, file_sha256, actor,
                    exported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())""",
                [export_id, kind, profile, partner, n_rows, file, file_sha256, actor],
            )
        return int(export_id)

    def exports(self) -> pl.DataFrame:
        """Every audited partner export, oldest first."""
        return self.query("SELECT * FROM export_audit ORDER BY export_id")

    # ----- webhooks ---------------------------------------------------------------

    def add_webhook(self, partner: str, profile: str, url: str, actor: str, after_event: int = 0) -> int:
        """Register a partner's URL for change events after ``after_event``; returns the subscription id."""
        if not url.startswith(("http://", "https://")):
            raise MdmError("a webhook URL must start with http:// or https://")
        with self.transaction() as con:
            (sid,) = con.execute("SELECT nextval('webhook_seq')").fetchone()  # type: ignore[misc]
            con.execute(
                """INSERT INTO webhook_subscriptions (subscription_id, partner, profile, url, after_event, active,
                    created_by, created_at) VALUES (?, ?, ?, ?, ?, true, ?, now())""",
                [sid, partner, profile, url, after_event, actor],
            )
        return int(sid)

    def webhooks(self) -> pl.DataFrame:
        """Every subscription with its cursor (last acknowledged event)."""
        return self.query("SELECT * FROM webhook_subscriptions ORDER BY subscription_id")

    def webhook(self, subscription_id: int) -> dict[str, Any]:
        """One subscription; an unknown id raises MdmError."""
        rows = self.query(
            "SELECT * FROM webhook_subscriptions WHERE subscription_id = ?", [subscription_id]
        ).to_dicts()
        if not rows:
            raise MdmError(f"no webhook subscription {subscription_id}")
        return rows[0]

    def advance_webhook(self, subscription_id: int, event_id: int) -> None:
        """Move a subscription's cursor past events its profile filters out (never backwards)."""
        with self.transaction() as con:
            con.execute(
                """UPDATE webhook_subscriptions SET after_event = greatest(after_event, ?)
                WHERE subscription_id = ?""",
                [event_id, subscription_id],
            )

    def log_delivery(
        self,
        subscription_id: int,
        event_id: int,
        attempt: int,
        status: str,
        http_status: int | None,
        error: str | None,
        body_sha256: str,
        signed_at: int,
        sent_at: datetime,
        duration_ms: float,
    ) -> None:
        """Log one delivery attempt; an acknowledged one also advances the subscription's cursor."""
        with self.transaction() as con:
            con.execute(
                """INSERT INTO webhook_deliveries VALUES (nextval('delivery_seq'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    subscription_id,
                    event_id,
                    attempt,
                    status,
                    http_status,
                    error,
                    body_sha256,
                    signed_at,
                    sent_at,
                    duration_ms,
                ],
            )
            if status == "delivered":
                con.execute(
                    """UPDATE webhook_subscriptions SET after_event = greatest(after_event, ?)
                    WHERE subscription_id = ?""",
                    [event_id, subscription_id],
                )

    def deliveries(self, subscription_id: int | None = None) -> pl.DataFrame:
        """The delivery log (every attempt), optionally of one subscription."""
        if subscription_id is None:
            return self.query("SELECT * FROM webhook_deliveries ORDER BY delivery_id")
        return self.query(
            "SELECT * FROM webhook_deliveries WHERE subscription_id = ? ORDER BY delivery_id",
            [subscription_id],
        )


def compliance_repo(store: Any) -> ComplianceRepo:
    """The store's compliance methods (every ``Store`` mixes them in)."""
    if not isinstance(store, ComplianceRepo):
        raise TypeError(f"{type(store).__name__} is not a store with compliance tables")
    return store
