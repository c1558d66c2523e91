"""One run at a time: an advisory lock file beside the database, naming its holder.

The lock is ``<db>.lock``, held with ``flock`` for the life of the run and carrying the holder's pid,
host and start time as JSON. ``flock`` is released by the kernel when its holder dies (even by
``kill -9``), so a stale lock of a dead process is simply taken over; the file's old contents are kept
only to say so. The lock is taken before the database is opened: DuckDB itself lets one process write.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mdm.errors import MdmError

POLL_SECONDS = 0.2


class LockHeld(MdmError):
    """Another run holds the lock of this database (exit code 3)."""

    exit_code = 3


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or last held) a lock: pid, host and start time (ISO 8601, UTC)."""

    pid: int
    host: str
    started_at: str

    def describe(self) -> str:
        """``pid 123 on host h since 2026-01-01T00:00:00+00:00``."""
        return f"pid {self.pid} on {self.host} since {self.started_at}"


def lock_path(db: Path) -> Path:
    """The lock file of a database: ``<db>.lock`` beside it."""
    return db.with_name(db.name + ".lock")


def parse_info(text: str) -> LockInfo | None:
    """The holder written in a lock file; None when the file is empty or not ours."""
    try:
        doc = json.loads(text)
        return LockInfo(pid=int(doc["pid"]), host=str(doc["host"]), started_at=str(doc["started_at"]))
    except (ValueError, KeyError, TypeError):
        return None


def _read(fh: IO[str]) -> LockInfo | None:
    fh.seek(0)
    return parse_info(fh.read())


@contextmanager
def run_lock(db: Path, wait: float = 0.0) -> Iterator[LockInfo | None]:
    """Hold the run lock of ``db`` for the ``with`` block; yields the stale holder taken over, if any.

    A clean release empties the file, so a holder still named in it when we get the lock died holding it.

    Waits up to ``wait`` seconds for another run to finish, then raises :class:`LockHeld`.
    """
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait, 0.0)
    with path.open("a+", encoding="utf-8") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read(fh)
                    who = holder.describe() if holder else "another process"
                    raise LockHeld(
                        f"{db}: another run holds the lock ({who}); waited {wait:g} s. "
                        f"Try again later or pass --wait SECONDS"
                    ) from None
                time.sleep(POLL_SECONDS)
        stale = _read(fh)
        mine = LockInfo(os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(mine.__dict__))
        fh.flush()
        try:
            yield stale
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
