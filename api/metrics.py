"""Prometheus metrics of the API (prometheus_client, one registry per app) and the middleware filling them."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from api.errors import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts and latencies per route template and status, audit and rate-limit counters."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mdm_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mdm_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.audit_entries = Counter("mdm_audit_entries", "Audit entries appended", registry=self.registry)
        self.audit_failures = Counter(
            "mdm_audit_failures", "Audit appends that failed", registry=self.registry
        )
        self.rate_limited = Counter(
            "mdm_rate_limited", "Requests refused by the rate limit", registry=self.registry
        )

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return bytes(generate_latest(self.registry))


class MetricsMiddleware:
    """Count and time every HTTP request by its route template (never by its raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route: Any = scope.get("route")
            name = str(getattr(route, "path", "unmatched"))
            self.metrics.requests.labels(scope.get("method", ""), name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - start)
