"""One JSON error shape for every 4xx/5xx, request IDs, body-size limit and per-key rate limits.

Every error body is ``{"error": {"code", "message", "request_id"}}``. Messages never carry a stack
trace or a submitted value: validation errors name the field and the rule only, and every message is
passed through ``mdm.privacy.mask`` as a last guard.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mdm.privacy import mask

log = logging.getLogger("mdm.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered with the JSON error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"code": code, "message": mask(message), "request_id": request_id}}


def request_id_of(request: Request) -> str:
    """The request's ID (set by :class:`RequestIdMiddleware`)."""
    return str(getattr(request.state, "request_id", "") or request.headers.get("x-request-id", ""))


def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    """The answer to an :class:`ApiError` (the app's handler and the fast read path both send it)."""
    return JSONResponse(
        error_body(exc.code, exc.message, request_id_of(request)), status_code=exc.status, headers=exc.headers
    )


def _respond(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return JSONResponse(
        error_body(code, message, request_id_of(request)), status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    """Field locations and rules of a validation error, without the submitted values."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the one JSON shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return api_error_response(request, exc)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return _respond(request, exc.status_code, code, message, dict(exc.headers or {}))  # type: ignore[no-any-return]

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _respond(request, 422, "invalid_request", _validation_message(exc))  # type: ignore[no-any-return]

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s failed: %s", request_id_of(request), type(exc).__name__)
        return _respond(request, 500, "internal_error", "internal error")  # type: ignore[no-any-return]

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


class _BodyTooLarge(Exception):
    """The streamed body went past the limit."""


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class RequestIdMiddleware:
    """Give every request an ID (``X-Request-ID``) and refuse bodies over ``max_body`` bytes with 413."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = error_body("payload_too_large", "request body too large", request_id)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_json(send, 413, too_large, [rid_header])
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, too_large, [rid_header])


class TokenBucket:
    """Per-key token buckets in memory: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token of ``key``; 0.0 when allowed, else the seconds until a token is available."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0
