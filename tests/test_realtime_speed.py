"""The fast real-time path gives what the plain one gives: combined concurrent calls equal serial ones,
and the index's in-memory owners and golden attributes equal the store's, before and after an upsert."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import SampleRun, copy_store

from mdm.matching import realtime as rt
from mdm.schema import RAW_FIELDS
from mdm.store import Store

RAW_FIELDS_SQL = ", ".join(f'"{f}"' for f in RAW_FIELDS if f not in ("source", "source_key"))


def _slow_double(items: list[int], sizes: list[int]) -> list[int]:
    """Doubles every item; refuses 13 (so a batch holding it fails); notes each batch size."""
    sizes.append(len(items))
    time.sleep(0.02)
    if 13 in items:
        raise ValueError("thirteen")
    return [2 * i for i in items]


@pytest.mark.parametrize(
    ("threads", "items"), [(1, [1, 2, 3]), (4, list(range(12))), (8, list(range(20, 60)))]
)
def test_combiner_gives_each_call_its_own_result(threads: int, items: list[int]) -> None:
    sizes: list[int] = []
    combined: rt.Combiner[int, int] = rt.Combiner(lambda batch: _slow_double(batch, sizes))
    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(combined, items))
    assert got == [2 * i for i in items]
    assert sum(sizes) == len(items)
    assert (max(sizes) > 1) == (threads > 1)


@pytest.mark.parametrize("concurrency", [2, 3])
def test_combiner_runs_up_to_its_concurrency_at_once(concurrency: int) -> None:
    meet = threading.Barrier(concurrency, timeout=5)

    def together(items: list[int]) -> list[int]:
        meet.wait()
        return [2 * i for i in items]

    combined: rt.Combiner[int, int] = rt.Combiner(together, concurrency=concurrency)
    with ThreadPoolExecutor(concurrency) as pool:
        got = list(pool.map(combined, range(concurrency)))
    assert got == [2 * i for i in range(concurrency)] and not meet.broken


@pytest.mark.parametrize("bad", [13])
def test_combiner_fails_only_the_bad_call(bad: int) -> None:
    combined: rt.Combiner[int, int] = rt.Combiner(lambda batch: _slow_double(batch, []))
    items = [1, bad, 2, 3, 4, 5]
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(combined, i) for i in items]
    for item, future in zip(items, futures, strict=True):
        if item == bad:
            with pytest.raises(ValueError, match="thirteen"):
                future.result()
        else:
            assert future.result() == 2 * item


@pytest.fixture(scope="module")
def resolved(sample_resolved: SampleRun) -> Path:
    """The sample ingested and run once (trains its own model, as `mdm run` does), shared by the session."""
    return sample_resolved.db


@pytest.fixture
def store(resolved: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the resolved sample."""
    db = tmp_path / "s.duckdb"
    shutil.copy(resolved, db)
    shutil.copy(
        resolved.with_name(f"{resolved.name}.person.model.json"), db.with_name(f"{db.name}.person.model.json")
    )
    rt.forget_indexes()
    with Store(db) as s:
        yield s
    rt.forget_indexes()


def _raw_fields(store: Store, n: int, seed: int) -> list[dict[str, Any]]:
    rows = store.query(
        f"SELECT {RAW_FIELDS_SQL} FROM current_records USING SAMPLE {n} ROWS (reservoir, {seed})"
    )
    return [{k: v for k, v in row.items() if v not in (None, "", [])} for row in rows.iter_rows(named=True)]


@pytest.mark.parametrize("threads", [4, 8])
def test_concurrent_matches_equal_serial_ones(store: Store, threads: int) -> None:
    bodies = _raw_fields(store, 24, seed=threads)
    serial = [rt.match_one(store, body, 5) for body in bodies]
    local = threading.local()

    def match(body: dict[str, Any]) -> list[dict[str, Any]]:
        view = getattr(local, "view", None) or store.thread_view()
        local.view = view
        return rt.match_one(view, body, 5)

    with ThreadPoolExecutor(threads) as pool:
        concurrent = list(pool.map(match, bodies))
    assert concurrent == serial
    assert all(ranked for ranked in serial)


def _assert_index_mirrors_store(store: Store, index: rt.Index) -> None:
    xref = dict(store.current_xref().select("rid", "customer_id").iter_rows())
    assert index.owners.of(list(xref)) == xref
    customers = sorted(set(xref.values()))
    assert index.golden.of(customers) == store.golden_attributes(customers)


@pytest.mark.parametrize(
    ("source_key", "fields"),
    [
        ("RT-S1", {"name": "欧阳明远", "birth_date": "1961-02-03", "mobile": ["13900001111"]}),
        ("RT-S2", None),
    ],
)
def test_index_owners_and_golden_follow_upserts(
    store: Store, source_key: str, fields: dict[str, Any] | None
) -> None:
    index = rt.index_for(store)
    _assert_index_mirrors_store(store, index)
    body = fields if fields is not None else _raw_fields(store, 1, seed=21)[0]
    result = rt.upsert_one(store, "wealth_app", source_key, body)
    assert rt.index_for(store) is index
    _assert_index_mirrors_store(store, index)
    assert rt.match_one(store, body, 1)[0]["customer_id"] == result["customer_id"]


#: Builds the index of a store in a fresh interpreter (no library table loaded yet), then counts the
#: full garbage collections the next requests set off.
_FULL_COLLECTIONS = """
import gc, json, sys
from pathlib import Path
from mdm.matching import realtime as rt
from mdm.store import Store
rt.WARM_RECORDS = int(sys.argv[2])
with Store(Path(sys.argv[1])) as store:
    rt.index_for(store)
    fields = json.loads(sys.argv[3])
    full = []
    gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
    for f in fields:
        rt.match_one(store, f)
print(len(full))
"""


@pytest.mark.parametrize(("warm", "quiet"), [(rt.WARM_RECORDS, True), (0, False)])
def test_requests_after_a_build_set_off_no_full_collection(
    resolved: Path, tmp_path: Path, warm: int, quiet: bool
) -> None:
    """With the build's warm-up the libraries' lazily loaded tables are frozen with the index; without it
    (the control) the first requests load them and full collections follow."""
    db = copy_store(resolved, tmp_path / "db")
    with Store(db) as store:
        fields = _raw_fields(store, 10, seed=4)
    done = subprocess.run(
        [sys.executable, "-c", _FULL_COLLECTIONS, str(db), str(warm), json.dumps(fields)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=300,
    )
    assert (int(done.stdout.strip().splitlines()[-1]) == 0) is quiet, done.stdout
