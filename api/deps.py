"""Per-app state (store, policy, authenticator, limits) and the FastAPI dependencies of every route.

The server process is the database's single writer. Each worker thread reads through its own cursor
(``Store.thread_view``), so reads see the last committed snapshot and never wait for a running batch;
domain writes (real-time upserts, batch runs) take ``write_lock`` one at a time; audit appends go
through one writer thread (``api.audit.AuditWriter``), so the hash chain stays linear and entries arriving
together share a commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from fastapi import Request

from api.audit import AuditWriter
from api.auth import Authenticator, Principal
from api.errors import ApiError, TokenBucket
from api.metrics import Metrics
from api.policy import Policy
from mdm.store import Store
from mdm.store.api_repo import ApiRepo

log = logging.getLogger("mdm.api")


class ApiStore(Store, ApiRepo):
    """The store with the API's methods (a no-op subclass once ``Store`` itself mixes in ``ApiRepo``)."""

    def __enter__(self) -> Self:
        return self


@dataclass
class ApiContext:
    """Everything a request needs; one per app."""

    store: ApiStore
    policy: Policy
    auth: Authenticator
    limiter: TokenBucket
    metrics: Metrics
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    auditor: AuditWriter = field(init=False)
    run_status: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.auditor = AuditWriter(self.store.thread_view)

    def view(self) -> ApiStore:
        """This thread's store view (own cursor on the shared database)."""
        found: ApiStore | None = getattr(self._local, "store", None)
        if found is None:
            found = self.store.thread_view()
            self._local.store = found
        return found


def context(request: Request) -> ApiContext:
    """The app's context."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def audit(
    ctx: ApiContext,
    request: Request,
    who: Principal | None,
    action: str,
    *,
    target: str | None = None,
    fields: list[str] | None = None,
    view: str | None = None,
    reason: str | None = None,
    status: int | None = None,
    detail: str | None = None,
) -> int:
    """Append an audit entry (masked values only); a failed append fails the request with 503."""
    try:
        seq = ctx.auditor.append(
            action=action,
            user=who.name if who else None,
            key_id=who.key_id if who else "anonymous",
            role=who.role if who else None,
            target=target,
            fields=",".join(fields) if fields else None,
            view=view,
            reason=reason,
            status=status,
            detail=detail,
            request_id=str(getattr(request.state, "request_id", "")),
        )
    except Exception as exc:
        log.error("audit append failed: %s", type(exc).__name__)
        ctx.metrics.audit_failures.inc()
        raise ApiError(
            503, "audit_unavailable", "the audit log cannot be written; nothing was done"
        ) from None
    ctx.metrics.audit_entries.inc()
    return seq


def authenticate(request: Request) -> Principal:
    """The caller of a valid bearer key, within its rate limit; 401 or 429 otherwise."""
    ctx = context(request)
    who = ctx.auth.verify(request.headers.get("authorization"))
    if who is None:
        raise ApiError(401, "unauthorized", "a valid API key is required", {"WWW-Authenticate": "Bearer"})
    wait = ctx.limiter.take(who.key_id)
    if wait > 0:
        ctx.metrics.rate_limited.inc()
        raise ApiError(429, "rate_limited", "rate limit exceeded", {"Retry-After": str(max(1, round(wait)))})
    touches = ctx.auth.due_touches()
    if touches:
        ctx.view().touch_api_keys(touches)
    return who


def require(endpoint: str) -> Callable[[Request], Principal]:
    """Dependency: an authenticated caller whose role may call ``endpoint`` (403 otherwise, audited)."""

    def dependency(request: Request) -> Principal:
        who = authenticate(request)
        ctx = context(request)
        if not ctx.policy.allows(who.role, endpoint):
            audit(ctx, request, who, "denied", target=endpoint, status=403)
            raise ApiError(403, "forbidden", f"role {who.role} may not call {endpoint}")
        return who

    dependency.__name__ = f"require_{endpoint}"
    return dependency
