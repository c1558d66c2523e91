"""The in-memory read model, key table and audit journal behind the hot reads: a write is visible in
the very next read, a revoked key is refused at once, every read is in the audit chain after a burst,
and a failed audit append fails the read."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi.testclient import TestClient
from test_api_e2e import LiveServer
from test_api_steward import KEYS, Sample, build_sample

from api import audit as audit_module
from api.app import create_app, open_api_store
from api.audit import AuditWriter
from api.cache import successors
from api.deps import ApiContext
from mdm.errors import MdmError
from mdm.store import Store
from mdm.store.api_repo import write_counter


@pytest.fixture
def sample(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Sample:
    return build_sample(tmp_path_factory, sample_dir, KEYS)


@pytest.fixture
def client(sample: Sample) -> Iterator[TestClient]:
    with TestClient(create_app(sample.db)) as c:
        yield c


def ctx_of(client: TestClient) -> ApiContext:
    ctx: ApiContext = client.app.state.ctx  # type: ignore[attr-defined]
    return ctx


def get(client: TestClient, sample: Sample, url: str, who: str = "sys") -> httpx.Response:
    return client.get(url, headers={"Authorization": f"Bearer {sample.tokens[who]}"})


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        ({"A": None}, {"A": "A"}),
        ({"A": "B", "B": None}, {"A": "B", "B": "B"}),
        ({"A": "B", "B": "C", "C": None}, {"A": "C", "B": "C", "C": "C"}),
        ({"A": "X", "B": "A"}, {"A": "A", "B": "A"}),
    ],
)
def test_successors_follow_known_links(links: dict[str, str | None], expected: dict[str, str]) -> None:
    frame = pl.DataFrame(
        {"customer_id": list(links), "merged_into": list(links.values())},
        schema={"customer_id": pl.String, "merged_into": pl.String},
    )
    got = dict(successors(frame).select("customer_id", "to").iter_rows())
    assert got == expected


def test_model_answers_as_the_store_does(client: TestClient, sample: Sample) -> None:
    ctx = ctx_of(client)
    model = ctx.cache.current()
    assert model is not None
    store = ctx.store.thread_view()
    ids = store.query("SELECT customer_id FROM customers ORDER BY seq LIMIT 50")["customer_id"].to_list()
    assert [model.customer(c) for c in ids] == [store.customer(c) for c in ids]
    keys = store.query("SELECT source, source_key FROM xref WHERE valid_to_run IS NULL LIMIT 50").rows()
    for source, key in keys:
        found = store.xref_current(source, key)
        assert found is not None and model.xref(source, key) == {
            k: found[k] for k in ("customer_id", "rid", "valid_from_run")
        }
    assert model.customer("C99999999990") is None and model.xref("core_banking", "no-such") is None


@pytest.mark.parametrize("part", ["xref_row", "x_customer", "customer_row"])
def test_a_built_model_is_kept_out_of_collections(client: TestClient, part: str) -> None:
    ctx = ctx_of(client)
    gc.unfreeze()
    model = ctx.cache.refresh()
    held = getattr(model, part)
    assert gc.get_freeze_count() > 0
    assert not any(obj is held for obj in gc.get_objects())


def _steward_merge(client: TestClient, sample: Sample, a: str, b: str) -> str:
    """A steward merge through the API; returns the survivor."""
    body = {"customer_a": a, "customer_b": b, "reason": "same person, checked at the branch"}
    r = client.post(
        "/v1/customers/merge", json=body, headers={"Authorization": f"Bearer {sample.tokens['li']}"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["customer_id"])


def _sql_move(client: TestClient, sample: Sample, a: str, b: str) -> str:
    """A write straight through the store (a transaction on a view): b's records re-pointed to a."""
    view = ctx_of(client).store.thread_view()
    with view.transaction() as con:
        con.execute("UPDATE xref SET customer_id = ? WHERE customer_id = ? AND valid_to_run IS NULL", [a, b])
    return a


def _locked_move(client: TestClient, sample: Sample, a: str, b: str) -> str:
    """An autocommit statement under the API's write lock (its release counts as a change)."""
    ctx = ctx_of(client)
    with ctx.write_lock:
        ctx.store.thread_view().con.execute(
            "UPDATE xref SET customer_id = ? WHERE customer_id = ? AND valid_to_run IS NULL", [a, b]
        )
    return a


@pytest.mark.parametrize("write", [_steward_merge, _sql_move, _locked_move])
def test_a_write_is_seen_by_the_next_read(client: TestClient, sample: Sample, write: Any) -> None:
    a, b = sample.picks.free_customers[2], sample.picks.free_customers[3]
    xref_b = f"/v1/xref/{b['sources'][0]}/{b['keys'][0]}"
    assert get(client, sample, xref_b).json()["customer_id"] == b["customer_id"]
    assert ctx_of(client).cache.current() is not None
    owner = write(client, sample, a["customer_id"], b["customer_id"])
    assert owner != b["customer_id"] or write is _steward_merge
    assert get(client, sample, xref_b).json()["customer_id"] == owner
    records = get(client, sample, f"/v1/customers/{owner}").json()["records"]
    assert set(b["keys"]) | set(a["keys"]) <= {r["source_key"] for r in records}


def test_upsert_then_read(client: TestClient, sample: Sample) -> None:
    body = {"source": "core_banking", "source_key": "CACHE-TEST-1", "fields": {"name": "欧阳娜娜"}}
    auth = {"Authorization": f"Bearer {sample.tokens['sys']}"}
    assert get(client, sample, "/v1/xref/core_banking/CACHE-TEST-1").status_code == 404
    made = client.post("/v1/records", json=body, headers=auth)
    assert made.status_code == 200, made.text
    read = get(client, sample, "/v1/xref/core_banking/CACHE-TEST-1")
    assert read.status_code == 200 and read.json()["customer_id"] == made.json()["customer_id"]


@pytest.mark.parametrize("how", ["api", "store"])
def test_a_revoked_key_is_refused_at_once(client: TestClient, sample: Sample, how: str) -> None:
    admin = {"Authorization": f"Bearer {sample.tokens['ops']}"}
    made = client.post("/v1/admin/keys", json={"name": "tmp", "role": "system"}, headers=admin).json()
    mine = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/v1/xref/core_banking/none", headers=mine).status_code == 404
    if how == "api":
        assert client.delete(f"/v1/admin/keys/{made['key_id']}", headers=admin).status_code == 204
    else:
        assert ctx_of(client).store.thread_view().revoke_api_key(made["key_id"])
    assert client.get("/v1/xref/core_banking/none", headers=mine).status_code == 401


@pytest.mark.parametrize("burst", [200])
def test_concurrent_reads_are_each_audited_and_chained(sample: Sample, burst: int) -> None:
    ids = sample.picks.id_customers + [c["customer_id"] for c in sample.picks.free_customers]
    headers = {"Authorization": f"Bearer {sample.tokens['sys']}"}

    async def reads(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
            answers = await asyncio.gather(
                *(c.get(f"/v1/customers/{ids[i % len(ids)]}") for i in range(burst))
            )
        return [r.status_code for r in answers]

    app = create_app(sample.db)
    with LiveServer(app) as server:
        before = ctx_of_app(app).store.thread_view().query("SELECT count(*) AS n FROM audit_log")["n"].item()
        statuses = asyncio.run(reads(server.url))
        verdict = httpx.get(
            f"{server.url}/v1/audit/verify", headers={"Authorization": f"Bearer {sample.tokens['aud']}"}
        ).json()
        reads_logged = (
            ctx_of_app(app)
            .store.thread_view()
            .query("SELECT count(*) AS n FROM audit_log WHERE action = 'customer.read' AND status = 200")["n"]
            .item()
        )
    assert statuses == [200] * burst
    assert verdict["first_broken"] is None and verdict["entries"] >= before + burst
    assert reads_logged >= burst


def ctx_of_app(app: Any) -> ApiContext:
    ctx: ApiContext = app.state.ctx
    return ctx


@pytest.mark.parametrize(
    ("url", "who"),
    [
        ("/v1/customers/{c}", "ana"),
        ("/v1/customers/{c}?unmask=true&reason=x", "ana"),
        ("/v1/match", "sys"),
    ],
)
def test_a_failed_journal_sync_fails_the_read(
    sample: Sample, monkeypatch: pytest.MonkeyPatch, url: str, who: str
) -> None:
    def broken(fd: int) -> None:
        raise OSError("disk gone")

    customer = sample.picks.id_customers[0]
    headers = {"Authorization": f"Bearer {sample.tokens[who]}"}
    with Store(sample.db) as store:
        record = store.query(
            "SELECT name, id_number FROM current_records WHERE id_number IS NOT NULL LIMIT 1"
        )
    body = {"fields": record.row(0, named=True)}
    with TestClient(create_app(sample.db)) as client:
        if url == "/v1/match":
            assert client.post(url, json=body, headers=headers).json()["candidates"], (
                "the match finds someone"
            )
        monkeypatch.setattr(audit_module.os, "fdatasync", broken)
        if url == "/v1/match":
            first = client.post(url, json=body, headers=headers)
        else:
            first = client.get(url.format(c=customer), headers=headers)
        monkeypatch.undo()
        later = get(client, sample, f"/v1/customers/{customer}")
    assert first.status_code == 503 and first.json()["error"]["code"] == "audit_unavailable"
    assert "candidates" not in first.json()
    assert later.status_code == 503


@pytest.mark.parametrize("lost", [1, 5])
def test_a_left_over_journal_is_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost: int) -> None:
    store = open_api_store(tmp_path / "j.duckdb")
    store.audit(action="before", status=200)

    def no_load(self: Any, rows: Any) -> None:
        raise OSError("database gone")

    writer = AuditWriter(store.thread_view)
    writer.start()
    monkeypatch.setattr(type(store), "insert_audit_rows", no_load)
    seqs = [writer.append(action="read", target=f"t{i}", status=200) for i in range(lost)]
    assert seqs == list(range(2, 2 + lost))
    assert store.query("SELECT count(*) AS n FROM audit_log")["n"].item() == 1
    store.close()
    monkeypatch.undo()
    fresh = open_api_store(tmp_path / "j.duckdb")
    assert fresh.audit(action="after", status=200) == 2 + lost
    assert fresh.verify_audit() == {"entries": 2 + lost, "verified_to": 2 + lost, "first_broken": None}
    assert not any(fresh.audit_journal_dir().glob("*.jsonl"))


@pytest.mark.parametrize("topic", ["data", "keys"])
def test_counters_are_per_database_file(tmp_path: Path, topic: str) -> None:
    first = write_counter(tmp_path / "a.duckdb", topic)
    same = write_counter(str(tmp_path / "a.duckdb"), topic)
    other = write_counter(tmp_path / "b.duckdb", topic)
    before = other.value
    first.bump()
    assert same is first and other.value == before and first.value >= 1


@pytest.mark.parametrize(("seq", "prev"), [(2, "not the tail"), (3, "genesis")])
def test_a_journal_that_does_not_continue_the_chain_is_refused(tmp_path: Path, seq: int, prev: str) -> None:
    store = open_api_store(tmp_path / "k.duckdb")
    store.audit(action="first", status=200)
    folder = store.audit_journal_dir()
    folder.mkdir()
    line = json.dumps([seq, 0, *([None] * 4), "read", *([None] * 6), prev, "0" * 64])
    (folder / f"{seq:015d}.jsonl").write_text(line + "\n")
    with pytest.raises(MdmError, match="does not continue"):
        store.audit(action="second", status=200)
    assert store.query("SELECT count(*) AS n FROM audit_log")["n"].item() == 1


def _served_equals_store(
    client: TestClient, sample: Sample, keys: list[tuple[str, str]], ids: list[str]
) -> None:
    """Every given xref key and customer answers over HTTP exactly what the database holds now."""
    store = ctx_of(client).store.thread_view()
    for source, key in keys:
        found = store.xref_current(source, key)
        r = get(client, sample, f"/v1/xref/{source}/{key}")
        assert (r.json()["customer_id"] if r.status_code == 200 else None) == (found or {}).get("customer_id")
    for customer_id in ids:
        found = store.customer(customer_id)
        r = get(client, sample, f"/v1/customers/{customer_id}")
        assert r.status_code == (200 if found else 404), customer_id
        if found:
            doc = r.json()
            assert (doc["customer_id"], doc["status"], doc["version"]) == (
                found["customer_id"],
                found["status"],
                found["version"],
            )
            assert sorted(x["source_key"] for x in doc["records"]) == sorted(
                x["source_key"] for x in found["records"]
            )


def test_upserts_keep_the_model_and_send_what_they_touched_to_the_database(
    client: TestClient, sample: Sample
) -> None:
    ctx = ctx_of(client)
    store = ctx.store.thread_view()
    built = ctx.cache.current()
    assert built is not None
    existing = store.query(
        "SELECT r.source, r.source_key, r.name, r.id_number, x.customer_id FROM current_records r "
        "JOIN xref x ON x.rid = r.rid AND x.valid_to_run IS NULL WHERE r.id_number IS NOT NULL ORDER BY r.rid LIMIT 2"
    ).to_dicts()
    bodies = [
        {
            "source": "core_banking",
            "source_key": "OVERLAY-NEW",
            "fields": {"name": "司马相如", "birth_date": "1970-02-03"},
        },
        *(
            {
                "source": "core_banking",
                "source_key": f"OVERLAY-{i}",
                "fields": {"name": e["name"], "id_number": e["id_number"]},
            }
            for i, e in enumerate(existing)
        ),
    ]
    auth = {"Authorization": f"Bearer {sample.tokens['sys']}"}
    made = []
    for body in bodies:
        r = client.post("/v1/records", json=body, headers=auth)
        assert r.status_code == 200, r.text
        made.append(r.json()["customer_id"])
        kept = ctx.cache.current()
        assert kept is not None and kept.c_id is built.c_id, "the model was kept, not rebuilt"
    kept = ctx.cache.current()
    assert (
        kept is not None
        and kept.dirty_keys
        and made[1] == existing[0]["customer_id"]
        and made[2] == existing[1]["customer_id"]
    )
    assert not kept.knows_customer(made[1]) and not kept.knows_xref("core_banking", "OVERLAY-0")
    others = store.query("SELECT customer_id FROM customers ORDER BY seq LIMIT 40")["customer_id"].to_list()
    xrefs = store.query("SELECT source, source_key FROM xref WHERE valid_to_run IS NULL LIMIT 40").rows()
    keys = [(b["source"], b["source_key"]) for b in bodies] + [
        (e["source"], e["source_key"]) for e in existing
    ]
    _served_equals_store(client, sample, keys + [tuple(x) for x in xrefs], made + others)
