"""Group-committed audit appends: concurrent requests each get their own committed entry, the chain
verifies, and a bad entry fails only its own request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from api.app import open_api_store
from api.audit import AuditWriter
from mdm.errors import MdmError


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
