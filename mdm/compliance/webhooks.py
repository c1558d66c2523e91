"""Signed webhook deliveries of change events to partners, retried with exponential backoff and logged.

A delivery is one event per POST, in event order. The signature is HMAC-SHA256 over ``"<timestamp>." + body``
with the partner's secret (derived from the store's partner key); the timestamp travels in its own header so
the receiver can refuse replays. An event is sent again only until it is acknowledged (2xx); a subscription's
cursor moves past an event only then, so every event reaches the partner once and in order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mdm.compliance.sharing import PartnerProfile, load_profile, share_events
from mdm.errors import MdmError
from mdm.store.compliance_repo import compliance_repo

SIGNATURE_HEADER = "X-MDM-Signature"
TIMESTAMP_HEADER = "X-MDM-Timestamp"
EVENT_HEADER = "X-MDM-Event-Id"
#: Receivers refuse deliveries signed longer ago than this (seconds), either way.
DEFAULT_TOLERANCE = 300

Transport = Callable[[str, bytes, dict[str, str], float], tuple[int | None, str | None]]


class SignatureError(MdmError):
    """A delivery whose signature or timestamp does not verify."""


def webhook_secret(master: bytes, partner: str) -> bytes:
    """The signing secret of one partner (given to the partner once, at registration)."""
    return hmac.new(master, f"mdm-webhook\x1f{partner}".encode(), hashlib.sha256).digest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Signature header value: ``v1=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> int:
    """Reference verifier for receivers: the timestamp if signature and freshness hold, else SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit():
        raise SignatureError("missing or malformed timestamp")
    ts = int(stamp)
    if abs((time.time() if now is None else now) - ts) > tolerance:
        raise SignatureError("timestamp outside the tolerance: possible replay")
    if not hmac.compare_digest(sign(secret, ts, body), given):
        raise SignatureError("signature mismatch")
    return ts


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base * factor**(attempt-1)`` seconds, capped, for at most ``attempts`` tries."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    attempts: int = 6

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.cap, self.base * self.factor ** (attempt - 1)))


def http_post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """POST with the standard library: (HTTP status, error text); status None when nothing was answered."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, type(exc).__name__


@dataclass
class DeliveryReport:
    """What one delivery pass did."""

    subscription_id: int
    delivered: list[int] = field(default_factory=list)
    attempts: int = 0
    failed_event: int | None = None
    skipped_to: int | None = None

    def message(self) -> str:
        """One line for the command."""
        tail = f"; stopped at event {self.failed_event} (retry later)" if self.failed_event else ""
        return (
            f"subscription {self.subscription_id}: {len(self.delivered)} events delivered "
            f"in {self.attempts} attempts{tail}"
        )


def event_body(event: Mapping[str, Any], profile: PartnerProfile) -> bytes:
    """The JSON body of one event as the partner receives it."""
    doc = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in event.items()}
    return json.dumps({"profile": profile.name, "event": doc}, ensure_ascii=False, sort_keys=True).encode()


def deliver(
    store: Any,
    subscription_id: int,
    *,
    backoff: Backoff | None = None,
    transport: Transport = http_post,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    timeout: float = 5.0,
    profile_dir: Any = None,
) -> DeliveryReport:
    """Send every event after the subscription's cursor, in order; stop at an event that keeps failing."""
    repo = compliance_repo(store)
    sub = repo.webhook(subscription_id)
    if not sub["active"]:
        raise MdmError(f"webhook subscription {subscription_id} is not active")
    profile = load_profile(sub["profile"], profile_dir)
    secret = webhook_secret(repo.partner_master_key(), profile.partner)
    events = store.events_since(event_id=int(sub["after_event"]))
    report = DeliveryReport(subscription_id)
    if events.height == 0:
        return report
    policy = backoff or Backoff()
    for event in share_events(store, events, profile).iter_rows(named=True):
        body = event_body(event, profile)
        digest = hashlib.sha256(body).hexdigest()
        for attempt in range(1, policy.attempts + 1):
            signed_at = int(clock())
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(signed_at),
                SIGNATURE_HEADER: sign(secret, signed_at, body),
                EVENT_HEADER: str(event["event_id"]),
            }
            started = time.perf_counter()
            status, error = transport(str(sub["url"]), body, headers, timeout)
            ok = status is not None and 200 <= status < 300
            report.attempts += 1
            repo.log_delivery(
                subscription_id,
                int(event["event_id"]),
                attempt,
                "delivered" if ok else "failed",
                status,
                error,
                digest,
                signed_at,
                datetime.now(UTC),
                (time.perf_counter() - started) * 1000,
            )
            if ok:
                report.delivered.append(int(event["event_id"]))
                break
            if attempt < policy.attempts:
                sleep(policy.delay(attempt))
        else:
            report.failed_event = int(event["event_id"])
            return report
    last = int(events["event_id"].max())  # type: ignore[arg-type]
    repo.advance_webhook(subscription_id, last)
    report.skipped_to = last
    return report
