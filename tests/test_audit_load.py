"""Loading audit rows from journal lines: DuckDB parses them, the table holds exactly what the chain
hashed, a bad batch loads nothing, and a left-over journal (torn last line included) replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from api.app import open_api_store
from mdm.errors import MdmError
from mdm.store.api_repo import (
    AUDIT_FIELDS,
    GENESIS,
    audit_entry,
    chain_rows,
    journal_entries,
    journal_line,
)

KEY = b"k" * 32
AT = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)


def chained(entries: list[dict[str, Any]], key: bytes = KEY) -> list[list[Any]]:
    """Rows chained from the genesis at a fixed time (with the store's audit key to verify them)."""
    return chain_rows(entries, 0, GENESIS, key, AT)


@pytest.mark.parametrize(
    ("entry", "stored"),
    [
        (audit_entry(action="customer.read", target="C1", status=200), {"target": "C1", "status": 200}),
        (
            audit_entry(action="x", detail='引号 "q" \\ back\nline\t\u2205'),
            {"detail": '引号 "q" \\ back\nline\t\u2205'},
        ),
        (audit_entry(action="x", reason="", fields=None), {"reason": "", "fields": None}),
        ({**audit_entry(action="x"), "target": 12345}, {"target": "12345"}),
        ({**audit_entry(action="x"), "detail": 1.5}, {"detail": "1.5"}),
        (audit_entry(action="x", status=None, user="李雷"), {"status": None, "actor": "李雷"}),
    ],
)
def test_lines_load_as_hashed(tmp_path: Path, entry: dict[str, Any], stored: dict[str, Any]) -> None:
    store = open_api_store(tmp_path / "a.duckdb")
    rows = chained([audit_entry(action="first", status=200), entry], store.api_secret("audit"))
    store.insert_audit_rows([journal_line(row) for row in rows])
    got = store.query("SELECT *, epoch_us(logged_at) AS us FROM audit_log WHERE seq = 2").to_dicts()[0]
    assert {c: got[c] for c in stored} == stored
    assert got["us"] == (AT - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000 // 1
    assert (got["prev_hash"], got["hash"]) == (rows[0][-1], rows[1][-1])
    assert store.verify_audit() == {"entries": 2, "verified_to": 2, "first_broken": None}
    store.close()


@pytest.mark.parametrize(
    "bad",
    [
        b'[3, 1, "too short"]\n',
        b'[3, 1, null, null, null, null, null, null, null, null, null, "not a status", null, "p", "h"]\n',
        b"[3, 1, not json\n",
    ],
)
def test_a_bad_line_loads_nothing_of_its_batch(tmp_path: Path, bad: bytes) -> None:
    store = open_api_store(tmp_path / "b.duckdb")
    good = [
        journal_line(row)
        for row in chained([audit_entry(action="a"), audit_entry(action="b")], store.api_secret("audit"))
    ]
    with pytest.raises(duckdb.Error):
        store.insert_audit_rows([*good, bad])
    assert store.query("SELECT count(*) AS n FROM audit_log")["n"].item() == 0
    store.insert_audit_rows(good)
    assert store.verify_audit() == {"entries": 2, "verified_to": 2, "first_broken": None}
    store.close()


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (b"", 3),
        (b'[4, 1, "torn', 3),
        (b"\n\n", 3),
        (b"7\n", 3),
    ],
)
def test_journal_entries_skip_torn_and_foreign_lines(tail: bytes, expected: int) -> None:
    rows = chained([audit_entry(action=f"a{i}") for i in range(3)])
    data = b"".join(journal_line(row) for row in rows) + tail
    entries = journal_entries(data)
    assert [seq for seq, _, _ in entries][:expected] == [1, 2, 3]
    assert len(entries) == expected
    assert [(prev, line) for _, prev, line in entries] == [(r[-2], journal_line(r)) for r in rows]


@pytest.mark.parametrize("split", [0, 2, 5])
def test_replay_loads_segments_in_order(tmp_path: Path, split: int) -> None:
    store = open_api_store(tmp_path / "r.duckdb")
    store.audit(action="before", status=200)
    seq, prev = store.audit_tail()
    rows = chain_rows(
        [audit_entry(action="read", target=f"t{i}") for i in range(6)],
        seq,
        prev,
        store.api_secret("audit"),
        AT,
    )
    folder = store.audit_journal_dir()
    folder.mkdir()
    lines = [journal_line(row) for row in rows]
    (folder / f"{2:015d}.jsonl").write_bytes(b"".join(lines[:split]))
    (folder / f"{2 + split:015d}.jsonl").write_bytes(b"".join(lines[split:]) + b'[99, 1, "to')
    assert store.replay_audit_journal() == 6
    assert store.query("SELECT target FROM audit_log ORDER BY seq")["target"].to_list() == [None] + [
        f"t{i}" for i in range(6)
    ]
    assert store.verify_audit() == {"entries": 7, "verified_to": 7, "first_broken": None}
    assert not any(folder.glob("*.jsonl"))
    store.close()


@pytest.mark.parametrize(
    "entry",
    [audit_entry(action="x", request_id="r", status=201), audit_entry(action="换行\n", detail="a\u2028b")],
)
def test_a_line_is_one_json_array_per_row(entry: dict[str, Any]) -> None:
    row = chained([entry])[0]
    line = journal_line(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    item = json.loads(line)
    assert item[2:-2] == [entry[c] for c in AUDIT_FIELDS]
    assert (item[0], item[-2], item[-1]) == (1, GENESIS, row[-1])


@pytest.mark.parametrize("status", [True, "200", 200.0])
def test_a_status_that_is_not_an_int_is_refused(status: Any) -> None:
    with pytest.raises(MdmError, match="HTTP status code"):
        audit_entry(action="customer.read", status=status)
