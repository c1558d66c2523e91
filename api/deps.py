"""Per-app state (store, policy, authenticator, limits) and the FastAPI dependencies of every route.

The server process is the database's single writer. Each worker thread reads through its own cursor
(``Store.thread_view``), so reads see the last committed snapshot and never wait for a running batch;
domain writes (real-time upserts, batch runs) take ``write_lock`` one at a time; audit appends go
through one writer (``api.audit.AuditWriter``), so the hash chain stays linear and entries arriving
together share a journal sync. The hot reads answer from ``api.cache.ReadCache`` (current unless a write
committed since it was built; releasing ``write_lock`` also counts as a write) and their dependencies are
``async``, so they skip the threadpool; nothing on the event loop touches DuckDB, except reading the small
key table again after a key was created or revoked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack

from fastapi import Request

from api.audit import WAIT_SECONDS, AuditWriter
from api.auth import Authenticator, Principal
from api.cache import ReadCache
from api.errors import ApiError, TokenBucket
from api.metrics import Metrics
from api.policy import Policy
from mdm.store import Store
from mdm.store.api_repo import ApiRepo, WriteCounter, audit_entry, write_counter

log = logging.getLogger("mdm.api")


class ApiStore(Store, ApiRepo):
    """The store with the API's methods (a no-op subclass once ``Store`` itself mixes in ``ApiRepo``)."""

    def __enter__(self) -> Self:
        return self


class WriteLock:
    """The domain write lock; its release counts as a data change, so read models never outlive a write
    (also one made by a statement outside ``Store.transaction``)."""

    def __init__(self, counter: WriteCounter) -> None:
        self._lock = threading.Lock()
        self._counter = counter

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (``threading.Lock.acquire`` semantics)."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """Count a change, then let the next writer in."""
        self._counter.bump()
        self._lock.release()

    def locked(self) -> bool:
        """True while a write holds the lock."""
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@dataclass
class ApiContext:
    """Everything a request needs; one per app."""

    store: ApiStore
    policy: Policy
    auth: Authenticator
    limiter: TokenBucket
    metrics: Metrics
    write_lock: WriteLock = field(init=False)
    auditor: AuditWriter = field(init=False)
    cache: ReadCache = field(init=False)
    run_status: dict[str, Any] = field(default_factory=lambda: {"state": "idle"})
    _local: threading.local = field(default_factory=threading.local)
    _chores: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="api-chores")
    )

    def __post_init__(self) -> None:
        counter = write_counter(self.store.path)
        self.write_lock = WriteLock(counter)
        self.auditor = AuditWriter(self.store.thread_view)
        self.cache = ReadCache(self.store.thread_view, counter, busy=self.write_lock.locked)

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


async def context_async(request: Request) -> ApiContext:
    """The app's context as an async dependency (runs on the event loop, not in the threadpool)."""
    return context(request)


class AuditDetails(TypedDict, total=False):
    """What a route says of the action it audits (masked values only)."""

    target: str | None
    fields: list[str] | None
    view: str | None
    reason: str | None
    status: int | None
    detail: str | None


def _audit_row(request: Request, who: Principal | None, action: str, details: AuditDetails) -> dict[str, Any]:
    """The entry's AUDIT_FIELDS columns."""
    fields = details.get("fields")
    return audit_entry(
        action=action,
        user=who.name if who else None,
        key_id=who.key_id if who else "anonymous",
        role=who.role if who else None,
        target=details.get("target"),
        fields=",".join(fields) if fields else None,
        view=details.get("view"),
        reason=details.get("reason"),
        status=details.get("status"),
        detail=details.get("detail"),
        request_id=str(getattr(request.state, "request_id", "")),
    )


def _audit_failed(ctx: ApiContext, exc: BaseException) -> ApiError:
    """The 503 of a request whose audit entry could not be written."""
    log.error("audit append failed: %s", type(exc).__name__)
    ctx.metrics.audit_failures.inc()
    return ApiError(503, "audit_unavailable", "the audit log cannot be written; nothing was done")


def audit(
    ctx: ApiContext, request: Request, who: Principal | None, action: str, **details: Unpack[AuditDetails]
) -> int:
    """Append an audit entry and wait until it is durable; a failed append fails the request with 503.
    For sync handlers (threadpool); async ones use :func:`audit_async`."""
    try:
        seq = ctx.auditor.submit(_audit_row(request, who, action, details)).result(timeout=WAIT_SECONDS)
    except Exception as exc:
        raise _audit_failed(ctx, exc) from None
    ctx.metrics.audit_entries.inc()
    return seq


@contextmanager
def audited_read(
    ctx: ApiContext, request: Request, who: Principal | None, action: str, **details: Unpack[AuditDetails]
) -> Iterator[None]:
    """:func:`audit` for a read-only sync handler, overlapped with its work: the entry is appended on
    entry and awaited on exit, so the block runs while the journal syncs and its answer leaves only once
    the entry is durable. A failed append fails the request with 503 and the computed answer is dropped.
    Not for writes: a write must not happen before its entry is durable."""
    try:
        pending = ctx.auditor.submit(_audit_row(request, who, action, details))
    except Exception as exc:
        raise _audit_failed(ctx, exc) from None
    try:
        yield
    finally:
        try:
            pending.result(timeout=WAIT_SECONDS)
        except Exception as exc:
            raise _audit_failed(ctx, exc) from None
        ctx.metrics.audit_entries.inc()


async def audit_async(
    ctx: ApiContext, request: Request, who: Principal | None, action: str, **details: Unpack[AuditDetails]
) -> int:
    """:func:`audit` for async handlers: awaits the durable append without blocking the event loop."""
    try:
        seq = await ctx.auditor.append_async(_audit_row(request, who, action, details))
    except Exception as exc:
        raise _audit_failed(ctx, exc) from None
    ctx.metrics.audit_entries.inc()
    return seq


def authenticate(request: Request) -> Principal:
    """The caller of a valid bearer key, within its rate limit; 401 or 429 otherwise."""
    return authenticate_in(context(request), request)


def authenticate_in(ctx: ApiContext, request: Request) -> Principal:
    """:func:`authenticate` with the app's context already at hand (the fast read path has it)."""
    who = ctx.auth.verify(request.headers.get("authorization"))
    if who is None:
        raise ApiError(401, "unauthorized", "a valid API key is required", {"WWW-Authenticate": "Bearer"})
    wait = ctx.limiter.take(who.key_id)
    if wait > 0:
        ctx.metrics.rate_limited.inc()
        raise ApiError(429, "rate_limited", "rate limit exceeded", {"Retry-After": str(max(1, round(wait)))})
    touches = ctx.auth.due_touches()
    if touches:
        ctx._chores.submit(_touch, ctx, touches)
    return who


def _touch(ctx: ApiContext, key_ids: list[str]) -> None:
    """Stamp keys as used (on the chores thread: a lost stamp only makes ``last_used_at`` older)."""
    try:
        ctx.view().touch_api_keys(key_ids)
    except Exception as exc:
        log.warning("key last-used stamps not written: %s", type(exc).__name__)


async def authorize(ctx: ApiContext, request: Request, endpoint: str) -> Principal:
    """The authenticated caller (401, 429) if its role may call ``endpoint``; else an audited 403."""
    who = authenticate_in(ctx, request)
    if not ctx.policy.allows(who.role, endpoint):
        await audit_async(ctx, request, who, "denied", target=endpoint, status=403)
        raise ApiError(403, "forbidden", f"role {who.role} may not call {endpoint}")
    return who


def require(endpoint: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: an authenticated caller whose role may call ``endpoint`` (403 otherwise, audited)."""

    async def dependency(request: Request) -> Principal:
        return await authorize(context(request), request, endpoint)

    dependency.__name__ = f"require_{endpoint}"
    return dependency
