"""Durable, group-committed audit appends: a request waits for one short ``fdatasync`` of a journal file,
not for a database commit.

One chain thread owns the hash chain: it takes every queued entry, chains it (``chain_rows``) and appends
the lines to the journal segment (``<db>.audit-journal/<first seq>.jsonl``); a small pool then
``fdatasync``s each group and completes its futures, so a new group's sync starts while the last one
is still running and a request waits about one sync, not a queue. A loader thread copies journaled rows
into the ``audit_log`` table a few times a second (``flush`` waits for it; ``verify_audit`` and
``audit_entries`` flush first), and deletes segments once they are in the table. A server stopped
before loading leaves the journal behind; the next start (or the next direct ``Store.audit``) replays it.

Fail closed: an entry whose append or sync fails fails its request, and after a failed append or sync
every later entry fails too (the journal's state is unknown) until the server restarts.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from mdm.errors import MdmError
from mdm.store.api_repo import ApiRepo, audit_entry, chain_rows, journal_line

log = logging.getLogger("mdm.api")

MAX_GROUP = 512
WAIT_SECONDS = 10.0
#: How often journaled rows are copied into the audit_log table.
LOAD_SECONDS = 0.25
#: Concurrent fdatasync calls (each covers its own group; they overlap).
SYNC_THREADS = 4
#: A journal segment is closed and a new one started past this size.
SEGMENT_BYTES = 32 << 20


class AuditUnavailable(MdmError):
    """The audit journal cannot be written (a failed append or sync); nothing more is accepted."""


@dataclass
class Segment:
    """One journal file: its descriptor, the last sequence in it and the syncs still running on it."""

    path: Path
    fd: int
    last_seq: int = 0
    size: int = 0
    pending: int = 0
    retired: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        """One sync finished; close the file once retired and idle."""
        with self.lock:
            self.pending -= 1
            self._close_if_done()

    def retire(self) -> None:
        """No more appends go here; close once the running syncs finish."""
        with self.lock:
            self.retired = True
            self._close_if_done()

    def _close_if_done(self) -> None:
        if self.retired and self.pending == 0 and not self.closed:
            os.close(self.fd)
            self.closed = True


class AuditWriter:
    """Appends audit entries through a journal, many per sync; ``append`` returns the entry's sequence."""

    def __init__(self, open_view: Callable[[], Any]) -> None:
        self._open_view = open_view
        self._queue: queue.Queue[tuple[dict[str, Any], Future[int]] | None] = queue.Queue()
        self._start_lock = threading.Lock()
        self._started = False
        self._broken: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._syncs = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="audit-sync")
        self._loaded = threading.Condition()
        self._rows: list[list[Any]] = []
        self._written_seq = 0
        self._loaded_seq = 0
        self._stopping = False
        self._segments: list[Segment] = []

    # ----- public ---------------------------------------------------------------------

    def start(self) -> None:
        """Replay a left-over journal into the table, read the chain's tail and start the threads."""
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            view: ApiRepo = self._open_view()
            view.install_audit_sink(None)
            view.replay_audit_journal()
            self._seq, self._prev = view.audit_tail()
            self._written_seq = self._loaded_seq = self._seq
            self._key = view.api_secret("audit")
            self._folder = view.audit_journal_dir()
            self._folder.mkdir(mode=0o700, exist_ok=True)
            self._segment = self._open_segment(self._seq + 1)
            self._threads = [
                threading.Thread(target=self._chain_loop, name="audit-chain", daemon=True),
                threading.Thread(target=self._load_loop, args=(view,), name="audit-load", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            self._started = True

    def submit(self, entry: dict[str, Any]) -> Future[int]:
        """Queue one entry (AUDIT_FIELDS columns); the future holds its sequence once it is durable."""
        audit_entry(action=str(entry.get("action")), status=entry.get("status"))
        self.start()
        done: Future[int] = Future()
        if self._broken is not None:
            done.set_exception(AuditUnavailable("the audit journal failed earlier; restart the server"))
            return done
        self._queue.put((entry, done))
        return done

    def append_future(self, **entry: Any) -> Future[int]:
        """Queue one entry given as ``Store.audit`` arguments (user, key_id, action, ...)."""
        return self.submit(audit_entry(**entry))

    def append(self, **entry: Any) -> int:
        """Queue one entry and wait until it is durable; raises what the append or sync raised."""
        return self.append_future(**entry).result(timeout=WAIT_SECONDS)

    def flush(self) -> None:
        """Return once every entry written so far is in the audit_log table."""
        if not self._started:
            return
        with self._loaded:
            target = self._written_seq
            self._loaded.notify_all()
            if not self._loaded.wait_for(lambda: self._loaded_seq >= target, timeout=WAIT_SECONDS):
                raise AuditUnavailable("the audit log table is not catching up with the journal")

    def close(self) -> None:
        """Write and load what is queued, then stop the threads and remove the loaded journal."""
        if not self._started:
            return
        self._queue.put(None)
        self._threads[0].join(timeout=WAIT_SECONDS)
        self._syncs.shutdown(wait=True)
        with self._loaded:
            self._stopping = True
            self._loaded.notify_all()
        self._threads[1].join(timeout=WAIT_SECONDS)
        self._segment.retire()
        if self._loaded_seq >= self._written_seq:
            for seg in [*self._segments, self._segment]:
                seg.path.unlink(missing_ok=True)
        self._started = False

    # ----- chain thread ---------------------------------------------------------------

    def _open_segment(self, first_seq: int) -> Segment:
        path = self._folder / f"{first_seq:015d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return Segment(path=path, fd=fd)

    def _chain_loop(self) -> None:
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
            self._append(group)

    def _append(self, group: list[tuple[dict[str, Any], Future[int]]]) -> None:
        """Chain and write one group, then hand its sync to the pool."""
        if self._broken is not None:
            for _, done in group:
                _settle(done, None, AuditUnavailable("the audit journal failed earlier; restart the server"))
            return
        segment = self._segment
        try:
            rows = chain_rows([e for e, _ in group], self._seq, self._prev, self._key, datetime.now(UTC))
            data = b"".join(journal_line(r) for r in rows)
            view = memoryview(data)
            while view:
                view = view[os.write(segment.fd, view) :]
        except Exception as exc:
            self._fail(group, exc)
            return
        self._seq, self._prev = int(rows[-1][0]), str(rows[-1][-1])
        segment.last_seq = self._seq
        segment.size += len(data)
        with segment.lock:
            segment.pending += 1
        with self._loaded:
            self._rows.extend(rows)
            self._written_seq = self._seq
        self._syncs.submit(self._sync, segment, group, [int(r[0]) for r in rows])
        if segment.size >= SEGMENT_BYTES:
            with self._loaded:
                self._segments.append(segment)
            self._segment = self._open_segment(self._seq + 1)
            segment.retire()

    def _sync(
        self, segment: Segment, group: list[tuple[dict[str, Any], Future[int]]], seqs: list[int]
    ) -> None:
        """Make one group durable and answer its requests."""
        try:
            os.fdatasync(segment.fd)
        except Exception as exc:
            self._fail(group, exc)
            return
        finally:
            segment.release()
        for (_, done), seq in zip(group, seqs, strict=True):
            _settle(done, seq, None)

    def _fail(self, group: list[tuple[dict[str, Any], Future[int]]], exc: BaseException) -> None:
        """Fail the group and everything after it (the journal's content is no longer certain)."""
        log.error("audit journal write failed: %s", type(exc).__name__)
        self._broken = exc
        for _, done in group:
            _settle(done, None, exc)

    # ----- load thread ----------------------------------------------------------------

    def _load_loop(self, view: ApiRepo) -> None:
        while True:
            with self._loaded:
                self._loaded.wait(timeout=LOAD_SECONDS)
                rows, self._rows = self._rows, []
                stopping = self._stopping
            if rows:
                try:
                    view.insert_audit_rows(rows)
                except Exception as exc:
                    log.error(
                        "audit rows not loaded into the table (kept in the journal): %s", type(exc).__name__
                    )
                    with self._loaded:
                        self._rows[:0] = rows
                    if stopping or isinstance(exc, duckdb.ConnectionException):
                        return
                    continue
            with self._loaded:
                if rows:
                    self._loaded_seq = int(rows[-1][0])
                self._loaded.notify_all()
            self._drop_loaded_segments()
            if stopping:
                return

    def _drop_loaded_segments(self) -> None:
        """Delete retired segments whose every row is in the table."""
        with self._loaded:
            done = [seg for seg in self._segments if seg.last_seq <= self._loaded_seq]
            self._segments = [seg for seg in self._segments if seg.last_seq > self._loaded_seq]
        for seg in done:
            seg.path.unlink(missing_ok=True)


def _settle(done: Future[int], seq: int | None, exc: BaseException | None) -> None:
    """Complete a request's future (it may have been cancelled by a client that went away)."""
    try:
        if exc is not None:
            done.set_exception(exc)
        elif seq is not None:
            done.set_result(seq)
    except InvalidStateError:
        return
