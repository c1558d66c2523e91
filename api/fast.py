"""Fast path of the two hot reads: ``GET /v1/xref/{source}/{source_key}`` and ``GET /v1/customers/{id}``.

A pure ASGI middleware just outside FastAPI's routing (inside the request-ID and metrics middleware), so a
plain hot read skips routing, dependency resolution and parameter validation (about half of its CPU).
It answers only a GET with no query string whose path parameters the route would accept as they are;
anything else (``as_of``, ``run``, ``unmask``, an invalid ID, another method) goes on to FastAPI. What it
answers it answers with the route's own functions (``api.deps.authorize`` for authentication, rate limit
and policy; ``read_xref_current`` / ``read_customer`` for lookup, masking and audit;
``api_error_response`` for errors) and it sets ``scope["route"]`` to the FastAPI route, so bodies, status
codes, headers, audit entries and metrics are the route's. The FastAPI routes stay registered, so the
OpenAPI document does not change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute

from api.deps import ApiContext, authorize
from api.errors import ApiError, ASGIApp, Receive, Scope, Send, api_error_response
from api.models import CUSTOMER_PATTERN, SOURCE_PATTERN
from api.routes.lookup import read_customer, read_xref_current

XREF_ROUTE = "/v1/xref/{source}/{source_key}"
CUSTOMER_ROUTE = "/v1/customers/{customer_id}"
#: Longest source key the route accepts (its ``max_length``).
MAX_SOURCE_KEY = 128

_XREF_PATH = re.compile(r"/v1/xref/([^/]+)/([^/]+)")
_CUSTOMER_PATH = re.compile(r"/v1/customers/([^/]+)")
_SOURCE = re.compile(SOURCE_PATTERN, re.ASCII)
_CUSTOMER_ID = re.compile(CUSTOMER_PATTERN, re.ASCII)

Plan = tuple[Literal["xref"], str, str] | tuple[Literal["customer"], str]


def fast_plan(method: str, path: str, query: bytes, root_path: str = "") -> Plan | None:
    """Which hot read a request is, with its path parameters; None when FastAPI should answer it (any
    query string, another method or path, a parameter the route's validation would refuse or question)."""
    if method != "GET" or query or root_path:
        return None
    xref = _XREF_PATH.fullmatch(path)
    if xref is not None:
        source, source_key = xref.group(1), xref.group(2)
        if _SOURCE.fullmatch(source) is None or len(source_key) > MAX_SOURCE_KEY:
            return None
        return ("xref", source, source_key)
    customer = _CUSTOMER_PATH.fullmatch(path)
    if customer is not None and _CUSTOMER_ID.fullmatch(customer.group(1)) is not None:
        return ("customer", customer.group(1))
    return None


def hot_routes(routes: Sequence[BaseRoute]) -> dict[str, APIRoute]:
    """The FastAPI routes of the two hot reads among a router's routes (``lookup.router``), by template."""
    found = {r.path: r for r in routes if isinstance(r, APIRoute)}
    missing = {XREF_ROUTE, CUSTOMER_ROUTE} - set(found)
    if missing:
        raise ValueError(f"hot read routes not registered: {sorted(missing)}")
    return {XREF_ROUTE: found[XREF_ROUTE], CUSTOMER_ROUTE: found[CUSTOMER_ROUTE]}


class FastReads:
    """ASGI middleware answering plain hot reads with the routes' functions; the rest goes to ``app``."""

    def __init__(self, app: ASGIApp, ctx: ApiContext, routes: Mapping[str, APIRoute]) -> None:
        self.app = app
        self.ctx = ctx
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = (
            fast_plan(
                scope["method"], scope["path"], scope.get("query_string", b""), scope.get("root_path", "")
            )
            if scope["type"] == "http"
            else None
        )
        if plan is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response
        try:
            if plan[0] == "xref":
                scope["route"] = self.routes[XREF_ROUTE]
                await authorize(self.ctx, request, "xref")
                response = await read_xref_current(self.ctx, plan[1], plan[2])
            else:
                scope["route"] = self.routes[CUSTOMER_ROUTE]
                who = await authorize(self.ctx, request, "customer")
                response = await read_customer(self.ctx, request, who, plan[1])
        except ApiError as exc:
            response = api_error_response(request, exc)
        await response(scope, receive, send)
