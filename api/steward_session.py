"""Browser sessions of the steward page: a signed cookie instead of the API key, plus a CSRF token.

The steward pastes their API key once; the server checks it with ``api.auth`` and answers with an
HttpOnly, SameSite=Strict cookie holding a signed token (key id, name, role, expiry, a random nonce),
never the key itself. Every request re-checks that the key is still active. State-changing requests
made with the cookie must also carry the session's CSRF token (``X-CSRF-Token`` header or ``csrf``
form field): an HMAC of the nonce, so it is per session and cannot be guessed from another site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.auth import Principal
from api.deps import ApiContext, audit, authenticate, context
from api.errors import ApiError

COOKIE = "mdm_steward"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    """What a session cookie vouches for."""

    key_id: str
    name: str
    role: str
    expires: int
    nonce: str


def session_secret(ctx: ApiContext) -> bytes:
    """The key signing session cookies, derived from the server's API pepper."""
    return hmac.new(ctx.store.api_secret("pepper"), b"mdm-steward-session", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, who: Principal, now: float, ttl: int = SESSION_SECONDS) -> str:
    """A signed session token for ``who``, valid ``ttl`` seconds from ``now``."""
    body = {"k": who.key_id, "n": who.name, "r": who.role, "e": int(now) + ttl, "c": secrets.token_hex(16)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())}"


def read(secret: bytes, token: str | None, now: float) -> Session | None:
    """The session of a well-signed, unexpired token, else None."""
    payload, _, signature = (token or "").partition(".")
    if not payload or not signature:
        return None
    expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        body = json.loads(_unb64(payload))
        found = Session(str(body["k"]), str(body["n"]), str(body["r"]), int(body["e"]), str(body["c"]))
    except (ValueError, KeyError, TypeError):
        return None
    return found if found.expires > now else None


def csrf_token(secret: bytes, session: Session) -> str:
    """The session's CSRF token (an HMAC of its nonce)."""
    return hmac.new(secret, f"csrf:{session.nonce}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session: Session, given: str | None) -> bool:
    """Whether ``given`` is the session's CSRF token."""
    return bool(given) and hmac.compare_digest(csrf_token(secret, session), str(given))


def current_session(request: Request) -> Session | None:
    """The request's valid session whose API key is still active with the same role, else None."""
    ctx = context(request)
    found = read(session_secret(ctx), request.cookies.get(COOKIE), time.time())
    if found is None:
        return None
    row = ctx.view().api_key(found.key_id)
    return found if row is not None and str(row["role"]) == found.role else None


def session_principal(request: Request) -> Principal:
    """The caller of a valid session cookie, within its rate limit; 401 or 429 otherwise."""
    ctx = context(request)
    found = current_session(request)
    if found is None:
        raise ApiError(401, "unauthorized", "a valid API key or steward session is required")
    wait = ctx.limiter.take(found.key_id)
    if wait > 0:
        raise ApiError(429, "rate_limited", "rate limit exceeded", {"Retry-After": str(max(1, round(wait)))})
    return Principal(key_id=found.key_id, name=found.name, role=found.role)


def check_csrf(request: Request, who: Principal, given: str | None) -> None:
    """Refuse (403, audited) a state-changing session request without the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    ctx = context(request)
    secret = session_secret(ctx)
    found = read(secret, request.cookies.get(COOKIE), time.time())
    if found is None or not csrf_ok(secret, found, given):
        audit(ctx, request, who, "denied", target=request.url.path, detail="csrf", status=403)
        raise ApiError(403, "csrf_failed", "missing or wrong CSRF token")


def caller(endpoint: str) -> Callable[[Request], Principal]:
    """Dependency: a bearer-key caller, or a page session (with CSRF token on writes), allowed ``endpoint``."""

    def dependency(request: Request) -> Principal:
        ctx = context(request)
        if request.headers.get("authorization"):
            who = authenticate(request)
        else:
            who = session_principal(request)
            check_csrf(request, who, request.headers.get(CSRF_HEADER))
        if not ctx.policy.allows(who.role, endpoint):
            audit(ctx, request, who, "denied", target=endpoint, status=403)
            raise ApiError(403, "forbidden", f"role {who.role} may not call {endpoint}")
        return who

    dependency.__name__ = f"caller_{endpoint}"
    return dependency
