"""Group commit of audit entries: every request waits for its own entry to be committed, but entries
arriving together share one transaction, so the audit log keeps up with thousands of reads a second.

One writer thread owns the appends (the hash chain stays linear without a lock around each request);
a failed commit fails every request of that group, so no operation answers without its audit entry.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from mdm.store.api_repo import ApiRepo

MAX_GROUP = 512
WAIT_SECONDS = 10.0


class AuditWriter:
    """Appends audit entries on one thread, many per commit; ``append`` returns the entry's sequence."""

    def __init__(self, open_view: Callable[[], Any]) -> None:
        self._open_view = open_view
        self._queue: queue.Queue[tuple[dict[str, Any], Future[int]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def append(self, **entry: Any) -> int:
        """Queue one entry and wait until it is committed; raises what the commit raised."""
        self._ensure_started()
        done: Future[int] = Future()
        self._queue.put((entry, done))
        return done.result(timeout=WAIT_SECONDS)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=WAIT_SECONDS)
            self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        store: ApiRepo = self._open_view()
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            self._write(store, group)

    def _write(self, store: ApiRepo, group: list[tuple[dict[str, Any], Future[int]]]) -> None:
        """One commit for the group; when it fails, each entry alone, so one bad entry fails one request."""
        try:
            with store.transaction():
                seqs = [store.audit(**entry) for entry, _ in group]
        except Exception as exc:
            if len(group) > 1:
                for one in group:
                    self._write(store, [one])
            else:
                group[0][1].set_exception(exc)
            return
        for (_, done), seq in zip(group, seqs, strict=True):
            done.set_result(seq)
