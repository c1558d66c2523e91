"""Durable, group-committed audit appends: a request waits for one short ``fdatasync`` of a journal file,
not for a database commit.

An entry is chained (``chain_rows``) and appended to the journal segment
(``<db>.audit-journal/<first seq>.jsonl``) in the caller's own thread, under one lock that keeps the
hash chain linear: microseconds, and no hand-off to another thread. One sync thread then ``fdatasync``s
whatever was appended since its last sync and answers every entry that sync covered at once (a
concurrent future per waiting thread, one wake-up per event loop for async callers). A loader thread
copies synced rows into the ``audit_log`` table a few times a second, handing DuckDB the journal lines
themselves to parse (no per-row Python work, the GIL free for request threads; ``flush`` waits for it;
``verify_audit`` and ``audit_entries`` flush first) and deletes segments once they are in the table. A
server stopped before loading leaves the journal behind; the next start (or the next direct
``Store.audit``) replays it.

Fail closed: an entry whose append or sync fails fails its request, and after a failed append or sync
every later entry fails too (the journal's state is unknown) until the server restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from mdm.errors import MdmError
from mdm.store.api_repo import ApiRepo, audit_entry, chain_rows, journal_line

log = logging.getLogger("mdm.api")

WAIT_SECONDS = 10.0
#: How often synced journal rows are copied into the audit_log table.
LOAD_SECONDS = 0.25
#: A journal segment is closed and a new one started past this size.
SEGMENT_BYTES = 32 << 20


class AuditUnavailable(MdmError):
    """The audit journal cannot be written (a failed append or sync); nothing more is accepted."""


@dataclass
class Segment:
    """One journal file: its descriptor, size and the last sequence written to it."""

    path: Path
    fd: int
    size: int = 0
    last_seq: int = 0


@dataclass
class _AsyncWaiter:
    """An async caller waiting for its entry to be synced."""

    seq: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


class AuditWriter:
    """Appends audit entries through a journal, many per sync; ``append`` returns the entry's sequence."""

    def __init__(self, open_view: Callable[[], Any]) -> None:
        self._open_view = open_view
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._loaded = threading.Condition()
        self._start_lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._flushing = 0
        self._broken: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._waiters: list[tuple[int, Future[int]]] = []
        self._async_waiters: list[_AsyncWaiter] = []
        self._unsynced: list[bytes] = []
        self._pending: list[bytes] = []
        self._retired: list[Segment] = []
        self._seq = self._written_seq = self._synced_seq = self._loaded_seq = self._pending_seq = 0

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
            self._written_seq = self._synced_seq = self._loaded_seq = self._pending_seq = self._seq
            self._key = view.api_secret("audit")
            self._folder = view.audit_journal_dir()
            self._folder.mkdir(mode=0o700, exist_ok=True)
            self._segment = self._open_segment(self._seq + 1)
            self._stopping = False
            self._threads = [
                threading.Thread(target=self._sync_loop, name="audit-sync", daemon=True),
                threading.Thread(target=self._load_loop, args=(view,), name="audit-load", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            self._started = True

    def write(self, entry: dict[str, Any]) -> int:
        """Chain and append one entry (AUDIT_FIELDS columns) to the journal; its sequence, not yet synced.

        Raises MdmError for a malformed entry and AuditUnavailable once the journal has failed."""
        audit_entry(action=str(entry.get("action")), status=entry.get("status"))
        self.start()
        with self._lock:
            if self._broken is not None:
                raise AuditUnavailable("the audit journal failed earlier; restart the server")
            segment = self._segment
            try:
                rows = chain_rows([entry], self._seq, self._prev, self._key, datetime.now(UTC))
                line = journal_line(rows[0])
                view = memoryview(line)
                while view:
                    view = view[os.write(segment.fd, view) :]
            except Exception as exc:
                self._break(exc)
                raise
            self._seq, self._prev = int(rows[0][0]), str(rows[0][-1])
            segment.size += len(line)
            segment.last_seq = self._written_seq = self._seq
            self._unsynced.append(line)
            self._wake.notify()
            return self._seq

    def submit(self, entry: dict[str, Any]) -> Future[int]:
        """Append one entry; the future holds its sequence once it is durable (or the append's error)."""
        done: Future[int] = Future()
        try:
            seq = self.write(entry)
        except Exception as exc:
            done.set_exception(exc)
            return done
        with self._lock:
            if self._synced_seq >= seq:
                done.set_result(seq)
            elif self._broken is not None:
                done.set_exception(self._broken)
            else:
                self._waiters.append((seq, done))
        return done

    async def append_async(self, entry: dict[str, Any]) -> int:
        """Append one entry and wait, without blocking the event loop, until it is durable."""
        seq = self.write(entry)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        with self._lock:
            if self._synced_seq >= seq:
                return seq
            if self._broken is not None:
                raise self._broken
            self._async_waiters.append(_AsyncWaiter(seq, loop, waiter))
        return await asyncio.wait_for(waiter, timeout=WAIT_SECONDS)

    def append(self, **entry: Any) -> int:
        """Append one entry given as ``Store.audit`` arguments (user, key_id, action, ...) and wait until
        it is durable; raises what the entry's check, the append or the sync raised."""
        return self.submit(audit_entry(**entry)).result(timeout=WAIT_SECONDS)

    def flush(self) -> None:
        """Return once every entry written so far is in the audit_log table."""
        if not self._started:
            return
        target = self._written_seq
        with self._loaded:
            self._flushing += 1
            self._loaded.notify_all()
            try:
                if not self._loaded.wait_for(lambda: self._loaded_seq >= target, timeout=WAIT_SECONDS):
                    raise AuditUnavailable("the audit log table is not catching up with the journal")
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """Sync and load what is written, then stop the threads and remove the loaded journal."""
        if not self._started:
            return
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        self._threads[0].join(timeout=WAIT_SECONDS)
        with self._loaded:
            self._loaded.notify_all()
        self._threads[1].join(timeout=WAIT_SECONDS)
        segments = [*self._retired, self._segment]
        os.close(self._segment.fd)
        if self._loaded_seq >= self._written_seq:
            for seg in segments:
                seg.path.unlink(missing_ok=True)
        self._started = False

    # ----- sync thread ----------------------------------------------------------------

    def _open_segment(self, first_seq: int) -> Segment:
        """A new journal file, its directory entry made durable before any entry in it counts as synced."""
        path = self._folder / f"{first_seq:015d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        folder = os.open(self._folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return Segment(path=path, fd=fd)

    def _sync_loop(self) -> None:
        while True:
            with self._lock:
                self._wake.wait_for(lambda: self._written_seq > self._synced_seq or self._stopping)
                if self._written_seq <= self._synced_seq or self._broken is not None:
                    return
                target = self._written_seq
                segment = self._segment
                rotate = segment.size >= SEGMENT_BYTES
                try:
                    if rotate:
                        self._segment = self._open_segment(target + 1)
                except Exception as exc:
                    self._break(exc)
                    return
            try:
                os.fdatasync(segment.fd)
                if rotate:
                    os.close(segment.fd)
            except Exception as exc:
                with self._lock:
                    self._break(exc)
                return
            self._synced(target, segment if rotate else None)

    def _synced(self, target: int, retired: Segment | None) -> None:
        """Everything up to ``target`` is durable: hand its journal lines to the loader and answer its
        callers. ``_unsynced`` holds the lines of entries ``_synced_seq + 1 ..`` in order, one per seq."""
        with self._lock:
            cut = target - self._synced_seq
            lines, self._unsynced = self._unsynced[:cut], self._unsynced[cut:]
            self._synced_seq = target
            ready = [w for w in self._waiters if w[0] <= target]
            self._waiters = [w for w in self._waiters if w[0] > target]
            woken = [w for w in self._async_waiters if w.seq <= target]
            self._async_waiters = [w for w in self._async_waiters if w.seq > target]
        with self._loaded:
            self._pending.extend(lines)
            self._pending_seq = target
            if retired is not None:
                self._retired.append(retired)
            if self._flushing:
                self._loaded.notify_all()
        for seq, done in ready:
            _settle(done, seq, None)
        _wake_loops(woken, None)

    def _break(self, exc: BaseException) -> None:
        """Fail every waiting entry and every later one (the journal's content is no longer certain).
        Called with the lock held."""
        log.error("audit journal write failed: %s", type(exc).__name__)
        self._broken = exc
        waiters, self._waiters = self._waiters, []
        woken, self._async_waiters = self._async_waiters, []
        for _, done in waiters:
            _settle(done, None, exc)
        _wake_loops(woken, exc)

    # ----- load thread ----------------------------------------------------------------

    def _load_loop(self, view: ApiRepo) -> None:
        """Every LOAD_SECONDS (or at once for a waiting flush) insert the synced lines, in seq order, as
        one batch; a failed batch goes back to the front and is tried again."""
        while True:
            with self._loaded:
                self._loaded.wait(timeout=LOAD_SECONDS)
                lines, self._pending = self._pending, []
                last = self._pending_seq
                stopping = not self._threads[0].is_alive()
            if lines:
                try:
                    view.insert_audit_rows(lines)
                except Exception as exc:
                    log.error(
                        "audit rows not loaded into the table (kept in the journal): %s", type(exc).__name__
                    )
                    with self._loaded:
                        self._pending[:0] = lines
                    if stopping or isinstance(exc, duckdb.ConnectionException):
                        return
                    continue
                self._loaded_seq = last
            self._drop_loaded_segments()
            with self._loaded:
                self._loaded.notify_all()
            if stopping and not self._pending:
                return

    def _drop_loaded_segments(self) -> None:
        """Delete retired segments whose every row is in the table."""
        with self._loaded:
            done = [seg for seg in self._retired if seg.last_seq <= self._loaded_seq]
            self._retired = [seg for seg in self._retired if seg.last_seq > self._loaded_seq]
        for seg in done:
            seg.path.unlink(missing_ok=True)


def _settle(done: Future[int], seq: int | None, exc: BaseException | None) -> None:
    """Complete a waiting thread's future."""
    try:
        if exc is not None:
            done.set_exception(exc)
        elif seq is not None:
            done.set_result(seq)
    except InvalidStateError:
        return


def _wake_loops(waiters: list[_AsyncWaiter], exc: BaseException | None) -> None:
    """Answer async callers: one call into each event loop for all of its waiters."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_AsyncWaiter]] = {}
    for waiter in waiters:
        by_loop.setdefault(waiter.loop, []).append(waiter)
    for loop, mine in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, mine, exc)
        except RuntimeError:
            continue


def _resolve(waiters: list[_AsyncWaiter], exc: BaseException | None) -> None:
    """In the event loop: complete each waiter still wanted (a timed-out one is already cancelled)."""
    for waiter in waiters:
        if waiter.future.done():
            continue
        if exc is not None:
            waiter.future.set_exception(exc)
        else:
            waiter.future.set_result(waiter.seq)
