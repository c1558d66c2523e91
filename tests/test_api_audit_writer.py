"""Group-committed audit appends: concurrent requests each get their own committed entry, the chain
verifies, and a bad entry fails only its own request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import pytest

from api import audit as audit_module
from api.app import open_api_store
from api.audit import AuditUnavailable, AuditWriter
from api.deps import ApiStore
from mdm.errors import MdmError
from mdm.store.api_repo import HELD_SEQ, audit_entry


def fail_syncs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every later journal sync raises, as on a disk that went away."""

    def broken(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(audit_module.os, "fdatasync", broken)


def served(db: Path) -> tuple[ApiStore, AuditWriter]:
    """A store whose audit entries go through a writer (as in a server), with a table to write to."""
    store = open_api_store(db)
    writer = AuditWriter(store.thread_view)
    store.install_audit_sink(writer)
    store.con.execute("CREATE TABLE steward_work (n INTEGER)")
    return store, writer


@pytest.mark.parametrize("threads", [1, 8, 32])
def test_concurrent_appends_are_chained_once_each(tmp_path: Path, threads: int) -> None:
    store = open_api_store(tmp_path / "a.duckdb")
    writer = AuditWriter(store.thread_view)
    with ThreadPoolExecutor(threads) as pool:
        seqs = list(pool.map(lambda i: writer.append(action="read", target=f"t{i}", status=200), range(200)))
    writer.close()
    assert sorted(seqs) == list(range(1, 201))
    assert store.verify_audit()["first_broken"] is None
    targets = store.query("SELECT target FROM audit_log ORDER BY seq")["target"].to_list()
    assert sorted(targets) == sorted(f"t{i}" for i in range(200))
    store.close()


def test_a_bad_entry_fails_alone(tmp_path: Path) -> None:
    store = open_api_store(tmp_path / "b.duckdb")
    writer = AuditWriter(store.thread_view)
    with ThreadPoolExecutor(8) as pool:
        good = [pool.submit(writer.append, action="read", status=200) for _ in range(20)]
        bad = pool.submit(writer.append, action="read", status="not a number")
        more = [pool.submit(writer.append, action="read", status=200) for _ in range(20)]
    with pytest.raises(MdmError, match="status"):
        bad.result()
    assert sorted(f.result() for f in good + more) == list(range(1, 41))
    writer.close()
    assert store.verify_audit()["first_broken"] is None
    store.close()


@pytest.mark.parametrize("callers", [1, 50])
def test_async_appends_wait_for_their_own_durable_entry(tmp_path: Path, callers: int) -> None:
    store = open_api_store(tmp_path / "c.duckdb")
    writer = AuditWriter(store.thread_view)
    synced: list[int] = []
    real_sync = audit_module.os.fdatasync

    def counting(fd: int) -> None:
        real_sync(fd)
        synced.append(writer._written_seq)

    async def many() -> list[int]:
        return list(
            await asyncio.gather(
                *(
                    writer.append_async(audit_entry(action="read", target=f"a{i}", status=200))
                    for i in range(callers)
                )
            )
        )

    audit_module.os.fdatasync = counting  # type: ignore[assignment]
    try:
        seqs = asyncio.run(many())
    finally:
        audit_module.os.fdatasync = real_sync
    writer.close()
    assert sorted(seqs) == list(range(1, callers + 1))
    assert synced and max(synced) >= callers
    assert store.verify_audit() == {"entries": callers, "verified_to": callers, "first_broken": None}
    store.close()


@pytest.mark.parametrize("segment_bytes", [200, 2000])
def test_segments_rotate_and_are_removed_once_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segment_bytes: int
) -> None:
    monkeypatch.setattr(audit_module, "SEGMENT_BYTES", segment_bytes)
    store = open_api_store(tmp_path / "r.duckdb")
    writer = AuditWriter(store.thread_view)
    seqs = [writer.append(action="read", target=f"t{i}", status=200) for i in range(60)]
    folder = store.audit_journal_dir()
    assert len(list(folder.glob("*.jsonl"))) >= 2
    writer.flush()
    assert len(list(folder.glob("*.jsonl"))) <= 2
    writer.close()
    assert seqs == list(range(1, 61))
    assert not any(folder.glob("*.jsonl"))
    assert store.verify_audit() == {"entries": 60, "verified_to": 60, "first_broken": None}
    store.close()


@pytest.mark.parametrize("later", [1, 3])
def test_after_a_failed_sync_every_entry_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, later: int
) -> None:
    store = open_api_store(tmp_path / "f.duckdb")
    writer = AuditWriter(store.thread_view)
    assert writer.append(action="read", status=200) == 1
    fail_syncs(monkeypatch)
    with pytest.raises(OSError, match="disk gone"):
        writer.append(action="read", status=200)
    monkeypatch.undo()
    for _ in range(later):
        with pytest.raises(AuditUnavailable):
            writer.append(action="read", status=200)
        with pytest.raises(AuditUnavailable):
            asyncio.run(writer.append_async(audit_entry(action="read", status=200)))
    writer.close()
    store.close()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_entries_inside_a_transaction_land_only_when_it_commits(tmp_path: Path, outcome: str) -> None:
    store, writer = served(tmp_path / "t.duckdb")
    expect = pytest.raises(RuntimeError) if outcome == "rollback" else nullcontext()
    with expect, store.transaction() as con:
        con.execute("INSERT INTO steward_work VALUES (1)")
        assert store.audit(action="steward.merge", user="sam", status=None) == HELD_SEQ
        if outcome == "rollback":
            raise RuntimeError("the merge failed")
    writer.flush()
    actions = store.query("SELECT action FROM audit_log")["action"].to_list()
    rows = store.query("SELECT count(*) AS n FROM steward_work")["n"].item()
    assert (actions, rows) == ((["steward.merge"], 1) if outcome == "commit" else ([], 0))
    writer.close()
    store.close()


@pytest.mark.parametrize("entries", [1, 2])
def test_a_failed_audit_write_rolls_the_transaction_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: int
) -> None:
    store, writer = served(tmp_path / "u.duckdb")
    fail_syncs(monkeypatch)
    with pytest.raises(OSError, match="disk gone"), store.transaction() as con:
        con.execute("INSERT INTO steward_work VALUES (1)")
        for _ in range(entries):
            store.audit(action="steward.split", user="sam", status=None)
    assert store.query("SELECT count(*) AS n FROM steward_work")["n"].item() == 0
    writer.close()
    store.close()


@pytest.mark.parametrize("failures", [1, 3])
def test_a_failed_load_keeps_its_lines_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    store = open_api_store(tmp_path / "l.duckdb")
    writer = AuditWriter(store.thread_view)
    writer.start()
    real = ApiStore.insert_audit_rows
    batches: list[int] = []

    def flaky(self: ApiStore, lines: Sequence[bytes]) -> None:
        batches.append(len(lines))
        if len(batches) <= failures:
            raise OSError("database busy")
        real(self, lines)

    monkeypatch.setattr(ApiStore, "insert_audit_rows", flaky)
    first = [writer.append(action="read", target=f"a{i}", status=200) for i in range(5)]
    while len(batches) < failures:
        writer.append(action="read", target="more", status=200)
    writer.flush()
    monkeypatch.undo()
    writer.close()
    targets = store.query("SELECT seq, target FROM audit_log ORDER BY seq")
    assert first == list(range(1, 6))
    assert targets["seq"].to_list() == list(range(1, targets.height + 1))
    assert targets["target"].to_list()[:5] == [f"a{i}" for i in range(5)]
    assert store.verify_audit()["first_broken"] is None
    assert not any(store.audit_journal_dir().glob("*.jsonl"))
    store.close()
