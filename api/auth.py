"""API keys: ``Authorization: Bearer mdm_<key_id>_<secret>``; only a salted, peppered HMAC is stored.

Keys are 256-bit random secrets (``secrets``), so a keyed hash (HMAC-SHA256 with a server pepper over
a per-key salt and the secret) is enough: there is nothing to brute-force, and the check costs
microseconds at thousands of requests a second. Verified keys are cached for a few seconds; a revoked
key stops working within that time (at once when revoked through this server).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mdm.errors import MdmError

PREFIX = "mdm"
CACHE_SECONDS = 10.0
TOUCH_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    """The caller behind a verified key."""

    key_id: str
    name: str
    role: str


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: the token (shown once) and what is stored."""

    key_id: str
    token: str
    salt: str
    digest: str


def key_digest(pepper: bytes, salt: str, secret: str) -> str:
    """The stored form of a key's secret: HMAC-SHA256(pepper, salt ':' secret)."""
    return hmac.new(pepper, f"{salt}:{secret}".encode(), hashlib.sha256).hexdigest()


def generate_key(pepper: bytes) -> NewKey:
    """A new random key with its salt and digest."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    return NewKey(key_id, f"{PREFIX}_{key_id}_{secret}", salt, key_digest(pepper, salt, secret))


def parse_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def create_key(store: Any, name: str, role: str, created_by: str, roles: tuple[str, ...]) -> NewKey:
    """Generate and store a key for ``role``; returns it with the token to show once."""
    if role not in roles:
        raise MdmError(f"unknown role {role!r}; roles: {', '.join(roles)}")
    if not name.strip():
        raise MdmError("a key needs a name")
    new = generate_key(store.api_secret("pepper"))
    store.add_api_key(new.key_id, name.strip(), role, new.salt, new.digest, created_by)
    return new


class Authenticator:
    """Verifies bearer tokens against the key table, with a short cache and batched last-used stamps."""

    def __init__(
        self,
        lookup: Callable[[str], dict[str, Any] | None],
        pepper: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._pepper = pepper
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._used: set[str] = set()
        self._last_touch = clock()
        self._lock = threading.Lock()

    def verify(self, header: str | None) -> Principal | None:
        """The principal of a valid ``Authorization`` header, else None."""
        token = bearer_token(header)
        parsed = parse_token(token) if token else None
        if parsed is None:
            return None
        key_id, secret = parsed
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is None or cached[0] < now:
            row = self._lookup(key_id)
            with self._lock:
                self._cache[key_id] = (now + CACHE_SECONDS, row)
        else:
            row = cached[1]
        if row is None or not hmac.compare_digest(
            key_digest(self._pepper, row["salt"], secret), row["digest"]
        ):
            return None
        with self._lock:
            self._used.add(key_id)
        return Principal(key_id=key_id, name=str(row["name"]), role=str(row["role"]))

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after it was revoked)."""
        with self._lock:
            self._cache.pop(key_id, None)

    def due_touches(self) -> list[str]:
        """Key IDs used since the last stamp, once a minute (empty otherwise)."""
        now = self._clock()
        with self._lock:
            if now - self._last_touch < TOUCH_SECONDS or not self._used:
                return []
            used, self._used = sorted(self._used), set()
            self._last_touch = now
        return used
