"""API keys: ``Authorization: Bearer mdm_<key_id>_<secret>``; only a salted, peppered HMAC is stored.

Keys are 256-bit random secrets (``secrets``), so a keyed hash (HMAC-SHA256 with a server pepper over
a per-key salt and the secret) is enough: there is nothing to brute-force, and the check costs
microseconds at thousands of requests a second. The active keys (a small table) are held in memory and
read again only when a key was created or revoked in this process (a version counter bumped by those
writes), so a request never queries the database and a revoked key is refused by the very next request.
Nothing else can change the table while the server runs: it is the database's single writer.
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
    """Verifies bearer tokens against keys held in memory, with batched last-used stamps.

    With ``load_keys`` the whole active key table is held (an unknown key ID never reaches the database);
    otherwise keys are fetched one by one with ``lookup`` and kept. Either way the held keys are dropped
    when ``version`` changes (a key was created or revoked) or by :meth:`forget`.
    """

    def __init__(
        self,
        lookup: Callable[[str], dict[str, Any] | None],
        pepper: bytes,
        clock: Callable[[], float] = time.monotonic,
        *,
        load_keys: Callable[[], dict[str, dict[str, Any]]] | None = None,
        version: Callable[[], int] = lambda: 0,
    ) -> None:
        self._lookup = lookup
        self._load_keys = load_keys
        self._pepper = pepper
        self._version = version
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._loaded_version: int | None = None
        self._used: set[str] = set()
        self._last_touch = clock()
        self._lock = threading.Lock()

    def _row(self, key_id: str) -> dict[str, Any] | None:
        """The active key ``key_id`` from memory (the table read again after a key write)."""
        version = self._version()
        if self._loaded_version != version:
            keys = self._load_keys() if self._load_keys is not None else {}
            with self._lock:
                self._keys, self._loaded_version = keys, version
        row = self._keys.get(key_id)
        if row is None and self._load_keys is None:
            row = self._lookup(key_id)
            if row is not None:
                with self._lock:
                    self._keys = {**self._keys, key_id: row}
        return row

    def verify(self, header: str | None) -> Principal | None:
        """The principal of a valid ``Authorization`` header, else None."""
        token = bearer_token(header)
        parsed = parse_token(token) if token else None
        if parsed is None:
            return None
        key_id, secret = parsed
        row = self._row(key_id)
        if row is None or not hmac.compare_digest(
            key_digest(self._pepper, row["salt"], secret), row["digest"]
        ):
            return None
        with self._lock:
            self._used.add(key_id)
        return Principal(key_id=key_id, name=str(row["name"]), role=str(row["role"]))

    def forget(self, key_id: str) -> None:
        """Drop a key at once (after it was revoked)."""
        with self._lock:
            self._keys = {k: v for k, v in self._keys.items() if k != key_id}

    def due_touches(self) -> list[str]:
        """Key IDs used since the last stamp, once a minute (empty otherwise)."""
        now = self._clock()
        with self._lock:
            if now - self._last_touch < TOUCH_SECONDS or not self._used:
                return []
            used, self._used = sorted(self._used), set()
            self._last_touch = now
        return used
