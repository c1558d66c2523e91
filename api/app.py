"""The FastAPI application: ``create_app(store_path)`` opens the store as its single writer and wires it up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.auth import Authenticator
from api.deps import ApiContext, ApiStore
from api.errors import RequestIdMiddleware, TokenBucket, install_error_handlers
from api.fast import FastReads, hot_routes
from api.metrics import Metrics, MetricsMiddleware
from api.models import ERROR_RESPONSES
from api.policy import Policy, load_policy
from api.routes import governance, lookup, ops, realtime, steward, steward_page
from mdm.store.api_repo import write_counter

DESCRIPTION = """Golden-ID lookup, change feed, real-time match and upsert for other systems.

Every request needs `Authorization: Bearer <key>` (keys: `mdm apikey create`). C2 values (names, ID
numbers, mobiles, cards, addresses) are masked per role; a steward may unmask with a reason. Every read of
C2 data and every write is in the hash-chained audit log. Errors: `{"error": {"code", "message",
"request_id"}}`. A retired customer ID answers 200 with its successor (`merged_into`)."""


def open_api_store(store_path: Path | str, key: str | None = None) -> ApiStore:
    """The store with the API's tables ensured (the server is the database's one writer)."""
    store = ApiStore(store_path, key=key)
    store.ensure_api_schema()
    return store


def create_app(
    store_path: Path | str,
    key: str | None = None,
    *,
    policy: Policy | None = None,
    policy_path: Path | None = None,
    refresh_index: bool = True,
    warm_cache: bool = True,
) -> FastAPI:
    """The API over the database at ``store_path`` (encrypted with ``key`` when given).

    With ``warm_cache`` the in-memory read model is built before the app is returned (the server
    answers the hot reads from memory from its first request); otherwise on the first read.
    """
    chosen = policy or load_policy(policy_path)
    store = open_api_store(store_path, key)
    if refresh_index:
        store.refresh_hmac_index()
    metrics = Metrics()
    keys = write_counter(store.path, "keys")
    ctx = ApiContext(
        store=store,
        policy=chosen,
        auth=Authenticator(
            lambda key_id: ctx.view().api_key(key_id),
            store.api_secret("pepper"),
            load_keys=lambda: ctx.view().active_api_keys(),
            version=lambda: keys.value,
        ),
        limiter=TokenBucket(chosen.limits.rate_per_second, chosen.limits.burst),
        metrics=metrics,
    )
    store.install_audit_sink(ctx.auditor)
    ctx.auditor.start()
    if warm_cache:
        ctx.cache.refresh()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.auditor.close()
        store.install_audit_sink(None)
        store.close()

    app = FastAPI(
        title="mdm API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.mount(ops.STATIC, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")
    app.mount(steward_page.STATIC_URL, StaticFiles(directory=steward_page.STATIC_DIR), name="steward-static")
    for module in (ops, lookup, realtime, governance, steward, steward_page):
        app.include_router(module.router)
    app.add_middleware(FastReads, ctx=ctx, routes=hot_routes(lookup.router.routes))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware, max_body=chosen.limits.max_body_bytes)
    return app
