"""End to end: a real uvicorn server on a free port, every endpoint with every role, masking, errors, audit."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app, open_api_store
from api.auth import create_key
from api.policy import ROLES, load_policy
from golden_record.pipeline import run_golden
from mdm.privacy import mask_card, mask_id, mask_name, mask_phone
from mdm.schema import RAW_SCHEMA
from mdm.standardize.pipeline import standardize

P1_ID, P2_ID = "11010519491231002X", "440306198503151234"
P1_MOBILE, P2_MOBILE = "13800138000", "13912345678"
P1_CARD = "6222020200112233445"
P1_ADDRESS = "北京市朝阳区建国路88号"
#: Every plaintext C2 value of the fixture: none may appear in a masked answer or in the audit log.
PLAINTEXT = (P1_ID, P2_ID, P1_MOBILE, P2_MOBILE, P1_CARD, "建国路", "张伟", "王芳", "李娜")

RECORDS: list[dict[str, Any]] = [
    {
        "source": "crm",
        "source_key": "a",
        "name": "张伟",
        "id_number": P1_ID,
        "mobile": [P1_MOBILE],
        "sex": "男",
    },
    {
        "source": "core",
        "source_key": "1",
        "name": "张伟",
        "id_number": P1_ID,
        "address": P1_ADDRESS,
        "bank_card": [P1_CARD],
        "mobile": [P1_MOBILE],
    },
    {"source": "crm", "source_key": "b", "name": "王芳", "id_number": P2_ID, "mobile": [P2_MOBILE]},
    {"source": "core", "source_key": "2", "name": "王芳", "id_number": P2_ID},
    {"source": "crm", "source_key": "c", "name": "李娜", "mobile": ["13700001111"]},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn server in a thread on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def standardized(rows: list[dict[str, Any]]) -> pl.DataFrame:
    raw = pl.DataFrame(
        [{c: {**r, "dq_flags": []}.get(c) for c in RAW_SCHEMA} for r in rows], schema=RAW_SCHEMA
    )
    return standardize(raw)


def golden_run(store: Any, groups: list[list[tuple[str, str]]]) -> int:
    """One golden run with clusters given as lists of (source, source_key)."""
    clusters = pl.DataFrame(
        [(store.rid_of(s, k), i) for i, group in enumerate(groups) for s, k in group],
        schema={"rid": pl.Int64, "cluster_id": pl.Int64},
        orient="row",
    )
    run_id = int(store.start_run("test-model"))
    counts = run_golden(store, clusters, run_id)
    store.finish_run(run_id, "succeeded", counts)
    return run_id


def owner(store: Any, crm_key: str) -> str:
    """The current customer of a crm record."""
    found = store.xref_current("crm", crm_key)
    assert found is not None
    return str(found["customer_id"])


@dataclass
class World:
    """The fixture database's facts and one key per role."""

    db: Path
    tokens: dict[str, str]
    p1: str
    p2: str
    p3_retired: str
    run1: int


def build_world(tmp: Path, model: Path) -> World:
    """Ingest five records, run twice (the second run merges person 3 into person 2), make keys; the
    trained ``model`` goes beside the database, so real-time match and upsert are served."""
    db = tmp / "api.duckdb"
    shutil.copy(model, db.with_name(f"{db.name}.person.model.json"))
    src = tmp / "source.csv"
    src.write_text("x")
    with open_api_store(db) as store:
        frame = standardized(RECORDS)
        for source in ("crm", "core"):
            store.ingest_batch(source, [src], frame.filter(pl.col("source") == source), [], trust_rank=50)
        a, one, b, two, c = (("crm", "a"), ("core", "1"), ("crm", "b"), ("core", "2"), ("crm", "c"))
        run1 = golden_run(store, [[a, one], [b, two], [c]])
        p3 = owner(store, "c")
        golden_run(store, [[a, one], [b, two, c]])
        p1, p2 = owner(store, "a"), owner(store, "b")
        tokens = {role: create_key(store, f"test-{role}", role, "pytest", ROLES).token for role in ROLES}
    return World(db, tokens, p1, p2, p3, run1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, person_model: Path) -> World:
    return build_world(tmp_path_factory.mktemp("api"), person_model)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[LiveServer, FastAPI]]:
    app = create_app(world.db)
    with LiveServer(app) as server:
        yield server, app


@pytest.fixture(scope="module")
def client(live: tuple[LiveServer, FastAPI]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[0].url, timeout=10) as c:
        yield c


def call(
    client: httpx.Client, world: World, role: str | None, method: str, url: str, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {world.tokens[role]}"} if role else {}
    return client.request(method, url.format(p1=world.p1, p3=world.p3_retired), headers=headers, **kw)


MATCH_BODY = {"fields": {"name": "张伟", "mobile": [P1_MOBILE]}}
RECORD_BODY = {"source": "wealth_app", "source_key": "z", "fields": {"name": "赵六"}}
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "xref": ("GET", "/v1/xref/crm/a", {}),
    "customer": ("GET", "/v1/customers/{p1}", {}),
    "search": ("GET", f"/v1/customers?mobile={P1_MOBILE}", {}),
    "events": ("GET", "/v1/events", {}),
    "stats": ("GET", "/v1/stats", {}),
    "match": ("POST", "/v1/match", {"json": MATCH_BODY}),
    "records": ("POST", "/v1/records", {"json": RECORD_BODY}),
    "audit": ("GET", "/v1/audit", {}),
    "audit_verify": ("GET", "/v1/audit/verify", {}),
    "keys": ("GET", "/v1/admin/keys", {}),
    "runs": ("GET", "/v1/admin/runs", {}),
    "livez": ("GET", "/livez", {}),
    "readyz": ("GET", "/readyz", {}),
    "metrics": ("GET", "/metrics", {}),
}
ALL = set(ROLES)
#: The authorization matrix: which roles each endpoint answers (every other role gets 403).
ALLOWED: dict[str, set[str]] = {
    "xref": {"system", "steward", "analyst", "admin"},
    "customer": {"system", "steward", "analyst", "admin"},
    "search": {"system", "steward", "admin"},
    "events": {"system", "steward", "analyst", "admin"},
    "stats": {"steward", "analyst", "admin"},
    "match": {"system", "steward", "admin"},
    "records": {"system"},
    "audit": {"auditor"},
    "audit_verify": {"auditor", "admin"},
    "keys": {"admin"},
    "runs": {"admin"},
    "livez": ALL,
    "readyz": ALL,
    "metrics": {"system", "admin"},
}
OK_STATUS: dict[str, set[int]] = {}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("role", [*ROLES, None])
def test_authorization_matrix(client: httpx.Client, world: World, role: str | None, endpoint: str) -> None:
    method, url, kw = ENDPOINTS[endpoint]
    r = call(client, world, role, method, url, **kw)
    if role is None:
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    elif role in ALLOWED[endpoint]:
        assert r.status_code in OK_STATUS.get(endpoint, {200}), r.text
    else:
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert all(value not in r.text for value in PLAINTEXT)


def test_matrix_is_the_policy() -> None:
    policy = load_policy()
    named = {"records": "upsert", "livez": "health", "readyz": "health"}
    for endpoint, roles in ALLOWED.items():
        assert {r for r in ROLES if policy.allows(r, named.get(endpoint, endpoint))} == roles


#: C1 attributes are shown plain, C2 masked, to every role that reads customers.
MASKED_P1: dict[str, Any] = {
    "name": mask_name("张伟"),
    "id_number": mask_id(P1_ID),
    "mobiles": [mask_phone("+86" + P1_MOBILE)],
    "bank_cards": [mask_card(P1_CARD)],
    "addresses": ["北京市朝阳区***"],
}


def _values(attr: Any) -> Any:
    return [v["value"] if isinstance(v, dict) else v for v in attr] if isinstance(attr, list) else attr


@pytest.mark.parametrize("role", sorted(ALLOWED["customer"]))
def test_customer_masked_per_role(client: httpx.Client, world: World, role: str) -> None:
    r = call(client, world, role, "GET", "/v1/customers/{p1}")
    body = r.json()
    assert r.status_code == 200 and body["view"] == "masked"
    attrs = body["attributes"]
    assert {k: _values(attrs[k]) for k in MASKED_P1} == MASKED_P1
    assert attrs["id_type"] == "CN_RESIDENT" and attrs["id_valid"] is True
    assert {(x["source"], x["source_key"]) for x in body["records"]} == {("crm", "a"), ("core", "1")}
    assert body["lineage"]["name_lineage"]["source"] in {"crm", "core"}
    assert all(value not in r.text for value in PLAINTEXT)


@pytest.mark.parametrize(
    ("role", "params", "status", "name"),
    [
        ("steward", {"unmask": "true", "reason": "KYC review #4411"}, 200, "张伟"),
        ("steward", {"unmask": "true"}, 422, None),
        ("steward", {"unmask": "true", "reason": "x"}, 422, None),
        ("analyst", {"unmask": "true", "reason": "KYC review #4411"}, 403, None),
        ("system", {"unmask": "true", "reason": "KYC review #4411"}, 403, None),
        ("admin", {"unmask": "true", "reason": "KYC review #4411"}, 403, None),
    ],
)
def test_unmask_needs_permission_and_reason(
    client: httpx.Client, world: World, role: str, params: dict[str, str], status: int, name: str | None
) -> None:
    r = call(client, world, role, "GET", "/v1/customers/{p1}", params=params)
    assert r.status_code == status
    if name:
        assert r.json()["view"] == "plain" and r.json()["attributes"]["name"] == name
        assert _values(r.json()["attributes"]["id_number"]) == P1_ID
    else:
        assert set(r.json()) == {"error"}


def test_retired_id_answers_successor(client: httpx.Client, world: World) -> None:
    r = call(client, world, "system", "GET", "/v1/customers/{p3}")
    body = r.json()
    assert r.status_code == 200
    assert (body["requested_id"], body["customer_id"], body["merged_into"]) == (
        world.p3_retired,
        world.p2,
        world.p2,
    )


def test_match_ranks_the_customer_with_explanation_masked(client: httpx.Client, world: World) -> None:
    body = {"fields": {"name": "张伟", "id_number": P1_ID, "mobile": [P1_MOBILE]}, "limit": 3}
    r = call(client, world, "system", "POST", "/v1/match", json=body)
    assert r.status_code == 200, r.text
    top = r.json()["candidates"][0]
    assert top["customer_id"] == world.p1 and top["match_probability"] > 0.99
    assert {"comparison", "level", "match_weight"} <= set(top["explanation"][0])
    assert top["attributes"]["id_number"] == mask_id(P1_ID)
    assert all(value not in r.text for value in PLAINTEXT)


def test_upsert_then_lookup(client: httpx.Client, world: World) -> None:
    body = {"source": "wealth_app", "source_key": "e2e-1", "fields": {"name": "张伟", "id_number": P1_ID}}
    first = call(client, world, "system", "POST", "/v1/records", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"customer_id": world.p1, "created": False, "changed": True}
    again = call(client, world, "system", "POST", "/v1/records", json=body)
    assert again.json() == {"customer_id": world.p1, "created": False, "changed": False}
    looked = call(client, world, "system", "GET", "/v1/xref/wealth_app/e2e-1")
    assert looked.status_code == 200 and looked.json()["customer_id"] == world.p1
    refused = call(client, world, "system", "POST", "/v1/records", json={**body, "source": "nowhere"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("url", "status", "customer"),
    [
        ("/v1/xref/crm/a", 200, "p1"),
        ("/v1/xref/crm/c", 200, "p2"),
        ("/v1/xref/crm/c?run={run1}", 200, "p3"),
        ("/v1/xref/crm/c?run=0", 404, None),
        ("/v1/xref/crm/nope", 404, None),
        ("/v1/xref/crm/c?run=1&as_of=2020-01-01T00:00:00Z", 422, None),
        ("/v1/xref/crm/c?as_of=2020-01-01T00:00:00Z", 404, None),
    ],
)
def test_xref_now_and_as_of(
    client: httpx.Client, world: World, url: str, status: int, customer: str | None
) -> None:
    r = call(client, world, "system", "GET", url.format(run1=world.run1))
    assert r.status_code == status
    expected = {"p1": world.p1, "p2": world.p2, "p3": world.p3_retired}
    if customer:
        assert r.json()["customer_id"] == expected[customer]
    else:
        assert r.json()["error"]["code"] in {"not_found", "invalid_request"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"mobile": P1_MOBILE}, ["p1"]),
        ({"mobile": "+86 138-0013-8000"}, ["p1"]),
        ({"id_number": P2_ID.lower()}, ["p2"]),
        ({"name": "張偉"}, ["p1"]),
        ({"name": "张伟", "mobile": P2_MOBILE}, []),
        ({"mobile": "13000000000"}, []),
    ],
)
def test_search_by_keyed_hash(
    client: httpx.Client, world: World, params: dict[str, str], expected: list[str]
) -> None:
    r = call(client, world, "steward", "GET", "/v1/customers", params=params)
    ids = {"p1": world.p1, "p2": world.p2}
    assert r.status_code == 200 and r.json()["customer_ids"] == [ids[e] for e in expected]


def test_change_feed_cursor(client: httpx.Client, world: World) -> None:
    first = call(client, world, "system", "GET", "/v1/events", params={"limit": 2}).json()
    rest = call(client, world, "system", "GET", "/v1/events", params={"after": first["next_cursor"]}).json()
    events = first["events"] + rest["events"]
    assert len(first["events"]) == 2 and [e["event_id"] for e in events] == sorted(
        {e["event_id"] for e in events}
    )
    kinds = [(e["kind"], e["customer_id"], e["related_id"]) for e in events]
    assert kinds.count(("created", world.p1, None)) == 1
    assert ("merged_into", world.p3_retired, world.p2) in kinds
    empty = call(client, world, "system", "GET", "/v1/events", params={"after": rest["next_cursor"]}).json()
    assert empty == {"events": [], "next_cursor": rest["next_cursor"]}


@pytest.mark.parametrize(
    ("method", "url", "kw", "status", "code"),
    [
        ("GET", "/v1/customers/NOT-AN-ID", {}, 422, "invalid_request"),
        ("GET", "/v1/customers/C00000099990", {}, 404, "not_found"),
        ("GET", "/v1/customers", {}, 422, "invalid_request"),
        ("GET", "/v1/events?after=-1", {}, 422, "invalid_request"),
        ("GET", "/v1/nowhere", {}, 404, "not_found"),
        ("DELETE", "/v1/events", {}, 405, "method_not_allowed"),
        ("POST", "/v1/match", {"content": b"{not json"}, 422, "invalid_request"),
        ("POST", "/v1/match", {"json": {"fields": {"id_number": P1_ID, "bogus": 1}}}, 422, "invalid_request"),
        ("POST", "/v1/match", {"content": b"x" * 70_000}, 413, "payload_too_large"),
    ],
)
def test_error_shape(
    client: httpx.Client, world: World, method: str, url: str, kw: dict[str, Any], status: int, code: str
) -> None:
    r = call(client, world, "admin", method, url, **kw)
    body = r.json()
    assert r.status_code == status and set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "request_id"} and body["error"]["code"] == code
    assert body["error"]["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text and P1_ID not in r.text


def test_audit_log_holds_reads_and_no_plaintext(client: httpx.Client, world: World) -> None:
    reason = f"KYC review, caller gave {P1_ID}"
    call(client, world, "steward", "GET", "/v1/customers/{p1}", params={"unmask": "1", "reason": reason})
    call(client, world, "steward", "GET", "/v1/customers", params={"mobile": P1_MOBILE})
    page = call(client, world, "auditor", "GET", "/v1/audit", params={"limit": 1000}).json()
    entries = page["entries"]
    actions = {(e["action"], e["role"]) for e in entries}
    assert {("customer.unmask", "steward"), ("customer.search", "steward"), ("denied", "auditor")} <= actions
    unmask = [e for e in entries if e["action"] == "customer.unmask"][-1]
    assert unmask["reason"].startswith("KYC review") and mask_id(P1_ID) in unmask["reason"]
    assert unmask["view"] == "plain" and "id_number" in unmask["fields"]
    assert all(value not in str(e) for e in entries for value in PLAINTEXT)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


def test_audit_verify_detects_tampering(
    client: httpx.Client, world: World, live: tuple[LiveServer, FastAPI]
) -> None:
    before = call(client, world, "auditor", "GET", "/v1/audit/verify").json()
    assert before["first_broken"] is None and before["verified_to"] == before["entries"] > 3
    store = live[1].state.ctx.store
    store.con.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3")
    after = call(client, world, "auditor", "GET", "/v1/audit/verify").json()
    assert (after["first_broken"], after["verified_to"]) == (3, 2)


def test_metrics_count_requests(client: httpx.Client, world: World) -> None:
    text = call(client, world, "admin", "GET", "/metrics").text
    assert 'mdm_http_requests_total{method="GET",route="/v1/xref/{source}/{source_key}",status="200"}' in text
    assert "mdm_audit_entries_total" in text


def test_docs_served_without_cdn(client: httpx.Client) -> None:
    page = client.get("/docs").text
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert "/v1/xref/{source}/{source_key}" in client.get("/openapi.json").json()["paths"]


def test_rate_limit_per_key(tmp_path: Path) -> None:
    db = tmp_path / "rl.duckdb"
    with open_api_store(db) as store:
        fast, other = (create_key(store, n, "system", "pytest", ROLES).token for n in ("fast", "other"))
    base = load_policy()
    policy = base.model_copy(
        update={"limits": base.limits.model_copy(update={"burst": 3, "rate_per_second": 0.1})}
    )
    with LiveServer(create_app(db, policy=policy)) as server, httpx.Client(base_url=server.url) as c:
        codes = [c.get("/livez", headers={"Authorization": f"Bearer {fast}"}).status_code for _ in range(5)]
        limited = c.get("/livez", headers={"Authorization": f"Bearer {fast}"})
        assert codes == [200, 200, 200, 429, 429]
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert c.get("/livez", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_reads_do_not_wait_for_a_batch_transaction(
    client: httpx.Client, world: World, live: tuple[LiveServer, FastAPI]
) -> None:
    batch = live[1].state.ctx.store.thread_view()
    batch.con.execute("BEGIN TRANSACTION")
    batch.con.execute(
        "UPDATE xref SET customer_id = ? WHERE source = 'crm' AND source_key = 'a' AND valid_to_run IS NULL",
        [world.p2],
    )
    try:
        start = time.perf_counter()
        r = call(client, world, "system", "GET", "/v1/xref/crm/a")
        elapsed = time.perf_counter() - start
    finally:
        batch.con.execute("ROLLBACK")
        batch.con.close()
    assert r.status_code == 200 and r.json()["customer_id"] == world.p1 and elapsed < 1.0
