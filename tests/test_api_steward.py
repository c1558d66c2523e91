"""Steward JSON routes on a live server over the shared sample after a run: the authorization matrix,
claims (409 on a double claim), decisions, four-eyes merges, splits, pins, CSRF and the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from conftest import copy_store, sample_run
from test_api_e2e import LiveServer

from api.app import create_app, open_api_store
from api.auth import create_key
from api.policy import ROLES, load_policy
from mdm.store import Store

#: Keys made for the tests: name -> role (two stewards for four eyes).
KEYS = {
    "li": "steward",
    "wang": "steward",
    "sys": "system",
    "ana": "analyst",
    "aud": "auditor",
    "ops": "admin",
}

_CUSTOMERS = """SELECT x.customer_id, count(*) AS n, bool_or(coalesce(c.id_valid, false)) AS has_id,
    count(DISTINCT CASE WHEN c.id_valid THEN c.id_number_std END) AS ids,
    list(x.rid ORDER BY x.rid) AS rids, list(k.source ORDER BY x.rid) AS sources,
    list(k.source_key ORDER BY x.rid) AS keys
FROM xref x JOIN current_records c ON c.rid = x.rid JOIN record_keys k ON k.rid = x.rid
WHERE x.valid_to_run IS NULL GROUP BY 1 ORDER BY 1"""


@dataclass(frozen=True)
class Picks:
    """Facts of the sample database chosen before the server starts (disjoint uses, no overlap)."""

    tasks: list[dict[str, Any]]
    id_customers: list[str]
    free_customers: list[dict[str, Any]]
    plaintext: list[str]


@dataclass(frozen=True)
class Sample:
    """A copy of the sample database after one run, with keys and picks."""

    db: Path
    tokens: dict[str, str]
    picks: Picks


def pick(store: Store) -> Picks:
    """Open tasks (highest impact first), customers with one valid ID, and customers without any,
    the customers chosen so none holds a record of the first 40 tasks; every ID number and mobile."""
    tasks = store.review_tasks(limit=1000)
    busy = set(tasks.head(40)["rid_l"].to_list()) | set(tasks.head(40)["rid_r"].to_list())
    customers = store.query(_CUSTOMERS).filter(
        ~pl.col("rids").list.eval(pl.element().is_in(sorted(busy))).list.any()
    )
    with_id = customers.filter(pl.col("has_id") & (pl.col("ids") == 1))["customer_id"].head(4).to_list()
    free = customers.filter(~pl.col("has_id")).sort("n", "customer_id", descending=[True, False]).head(12)
    plain = store.query(
        """SELECT DISTINCT v FROM (SELECT id_number_std AS v FROM current_records
        UNION ALL SELECT right(unnest(mobiles), 11) FROM current_records) WHERE length(v) >= 11"""
    )["v"].to_list()
    return Picks(tasks.head(40).to_dicts(), with_id, free.to_dicts(), plain)


def build_sample(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path, keys: dict[str, str]) -> Sample:
    """A fresh copy of the run sample with one API key per entry of ``keys`` (name -> role)."""
    db = copy_store(sample_run(tmp_path_factory, sample_dir).db, tmp_path_factory.mktemp("steward"))
    with open_api_store(db) as store:
        tokens = {name: create_key(store, name, role, "pytest", ROLES).token for name, role in keys.items()}
        picks = pick(store)
    return Sample(db, tokens, picks)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Sample:
    return build_sample(tmp_path_factory, sample_dir, KEYS)


@pytest.fixture(scope="module")
def client(sample: Sample) -> Iterator[httpx.Client]:
    with LiveServer(create_app(sample.db)) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def call(client: httpx.Client, sample: Sample, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
    return client.request(method, url, headers={"Authorization": f"Bearer {sample.tokens[who]}"}, **kw)


REASON = {"reason": "checked with the branch"}
#: endpoint -> (policy name, method, url, body, status for an allowed role); IDs that do not exist, so an
#: allowed call is refused by the domain (404) without changing anything.
ENDPOINTS: dict[str, tuple[str, str, str, dict[str, Any] | None, int]] = {
    "list": ("review_read", "GET", "/v1/review/tasks?limit=5", None, 200),
    "detail": ("review_read", "GET", "/v1/review/tasks/999999", None, 404),
    "claim": ("review_decide", "POST", "/v1/review/tasks/999999/claim", None, 404),
    "release": ("review_decide", "POST", "/v1/review/tasks/999999/release", None, 404),
    "decision": ("review_decide", "POST", "/v1/review/tasks/999999/decision", {"decision": "match"}, 404),
    "revoke": ("review_decide", "POST", "/v1/review/decisions/999999/revoke", {}, 404),
    "merge": (
        "customer_merge",
        "POST",
        "/v1/customers/merge",
        {"customer_a": "C99999999990", "customer_b": "C99999999981", **REASON},
        404,
    ),
    "approve": ("customer_merge", "POST", "/v1/merge-requests/999999/approve", REASON, 404),
    "split": ("customer_split", "POST", "/v1/customers/C99999999990/split", {"rid": 1, **REASON}, 404),
    "pin": (
        "customer_pin",
        "POST",
        "/v1/customers/C99999999990/pins",
        {"attribute": "company", "value": "x", **REASON},
        404,
    ),
}
ALLOWED = {"review_read": {"steward", "admin"}}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("who", sorted(KEYS))
def test_authorization_matrix(client: httpx.Client, sample: Sample, who: str, endpoint: str) -> None:
    name, method, url, body, ok = ENDPOINTS[endpoint]
    r = call(client, sample, who, method, url, json=body)
    if KEYS[who] in ALLOWED.get(name, {"steward"}):
        assert r.status_code == ok, r.text
    else:
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.request(method, url, json=body).status_code == 401


@pytest.mark.parametrize("name", sorted({e[0] for e in ENDPOINTS.values()} | {"steward_page"}))
def test_matrix_is_the_policy(name: str) -> None:
    allowed = {role for role in ROLES if load_policy().allows(role, name)}
    assert allowed == ALLOWED.get(name, {"steward"})


def test_task_detail_is_masked(client: httpx.Client, sample: Sample) -> None:
    task = sample.picks.tasks[0]
    r = call(client, sample, "li", "GET", f"/v1/review/tasks/{task['task_id']}")
    body = r.json()
    assert r.status_code == 200 and body["task"]["task_id"] == task["task_id"]
    assert {body["left"]["rid"], body["right"]["rid"]} == {task["rid_l"], task["rid_r"]}
    assert body["waterfall"] and body["effect"]["if_match"] and 0 < body["probability"] < 1
    assert any(f["differs"] for f in body["fields"])
    assert not [v for v in sample.picks.plaintext if v in r.text]


def test_double_claim_is_409(client: httpx.Client, sample: Sample) -> None:
    task_id = sample.picks.tasks[1]["task_id"]
    url = f"/v1/review/tasks/{task_id}"
    steps = [
        ("li", "claim", None, 200),
        ("wang", "claim", None, 409),
        ("li", "claim", None, 200),
        ("wang", "decision", {"decision": "no-match"}, 409),
        ("li", "decision", {"decision": "unsure"}, 422),
        ("li", "decision", {"decision": "no-match", "note": "different mothers"}, 200),
        ("li", "decision", {"decision": "match"}, 409),
        ("wang", "claim", None, 409),
    ]
    codes = [
        call(client, sample, who, "POST", f"{url}/{what}", json=body).status_code
        for who, what, body, _ in steps
    ]
    assert codes == [s[3] for s in steps]
    detail = call(client, sample, "wang", "GET", url).json()
    assert detail["task"]["status"] == "decided" and detail["task"]["assignee"] == "li"
    assert [(d["decision"], d["user"]) for d in detail["decisions"]] == [("no-match", "li")]


def test_release_and_revoke(client: httpx.Client, sample: Sample) -> None:
    task_id = sample.picks.tasks[2]["task_id"]
    url = f"/v1/review/tasks/{task_id}"
    assert call(client, sample, "li", "POST", f"{url}/claim").status_code == 200
    assert call(client, sample, "wang", "POST", f"{url}/release").status_code == 409
    assert call(client, sample, "li", "POST", f"{url}/release").json() == {"status": "open"}
    decided = call(client, sample, "wang", "POST", f"{url}/decision", json={"decision": "match"}).json()
    revoke = f"/v1/review/decisions/{decided['decision_id']}/revoke"
    first = call(client, sample, "li", "POST", revoke, json={"note": "too hasty"})
    second = call(client, sample, "li", "POST", revoke, json={})
    assert (first.status_code, second.status_code) == (200, 409)
    decisions = call(client, sample, "li", "GET", url).json()["decisions"]
    assert decisions[-1]["revoked_at"] is not None and decided["link_id"] is not None


def test_queue_filters(client: httpx.Client, sample: Sample) -> None:
    everything = call(
        client, sample, "li", "GET", "/v1/review/tasks", params={"status": "all", "limit": 1000}
    )
    mine = call(client, sample, "li", "GET", "/v1/review/tasks", params={"status": "all", "assignee": "li"})
    source = sample.picks.tasks[0]["left_source"]
    by_source = call(
        client, sample, "li", "GET", "/v1/review/tasks", params={"source": source, "order": "oldest"}
    )
    assert everything.json()["count"] >= len(sample.picks.tasks)
    assert mine.json()["count"] >= 1 and {t["assignee"] for t in mine.json()["tasks"]} == {"li"}
    assert all(source in (t["left_source"], t["right_source"]) for t in by_source.json()["tasks"])
    created = [t["created_at"] for t in by_source.json()["tasks"]]
    assert created == sorted(created)


def owner(client: httpx.Client, sample: Sample, source: str, key: str) -> str:
    r = call(client, sample, "sys", "GET", f"/v1/xref/{source}/{key}")
    assert r.status_code == 200, r.text
    return str(r.json()["customer_id"])


def test_four_eyes_merge(client: httpx.Client, sample: Sample) -> None:
    a, b = sample.picks.id_customers[:2]
    body = {"customer_a": a, "customer_b": b, "reason": "same person, new ID card"}
    asked = call(client, sample, "li", "POST", "/v1/customers/merge", json=body)
    assert asked.status_code == 202 and asked.json()["status"] == "pending_approval"
    approve = f"/v1/merge-requests/{asked.json()['request_id']}/approve"
    own = call(client, sample, "li", "POST", approve, json={"reason": "looks right to me"})
    assert own.status_code == 409
    assert call(client, sample, "li", "GET", f"/v1/customers/{b}").json()["customer_id"] == b
    done = call(client, sample, "wang", "POST", approve, json={"reason": "documents checked"})
    assert done.status_code == 200 and done.json()["status"] == "merged"
    survivor, retired = done.json()["customer_id"], done.json()["retired"]
    assert {survivor, retired} == {a, b}
    read = call(client, sample, "sys", "GET", f"/v1/customers/{retired}").json()
    assert read["merged_into"] == survivor and len(read["records"]) >= 2
    again = call(client, sample, "wang", "POST", approve, json={"reason": "documents checked"})
    assert again.status_code == 409


def test_direct_merge_split_and_pin(client: httpx.Client, sample: Sample) -> None:
    a, b = sample.picks.free_customers[0], sample.picks.free_customers[1]
    body = {"customer_a": a["customer_id"], "customer_b": b["customer_id"], "reason": "same advisor notes"}
    merged = call(client, sample, "li", "POST", "/v1/customers/merge", json=body)
    assert merged.status_code == 200, merged.text
    survivor = merged.json()["customer_id"]
    assert owner(client, sample, b["sources"][0], b["keys"][0]) == survivor
    assert owner(client, sample, a["sources"][0], a["keys"][0]) == survivor
    split_body = {"source": a["sources"][0], "source_key": a["keys"][0], "reason": "another person"}
    split = call(client, sample, "li", "POST", f"/v1/customers/{survivor}/split", json=split_body)
    assert split.status_code == 200, split.text
    assert split.json()["from"] == survivor
    assert owner(client, sample, a["sources"][0], a["keys"][0]) == split.json()["customer_id"] != survivor
    pin = {"attribute": "company", "value": "长青餐饮管理有限公司", "reason": "client called the branch"}
    pinned = call(client, sample, "li", "POST", f"/v1/customers/{survivor}/pins", json=pin)
    assert pinned.status_code == 201, pinned.text
    golden = call(client, sample, "li", "GET", f"/v1/customers/{survivor}").json()
    assert golden["attributes"]["company"] == pin["value"]


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        (
            "/v1/customers/merge",
            {"customer_a": "C99999999990", "customer_b": "C99999999981", "reason": "x"},
            422,
        ),
        ("/v1/customers/merge", {"customer_a": "nope", "customer_b": "C99999999981", **REASON}, 422),
        ("/v1/customers/{c}/split", {"reason": "no record named"}, 422),
        ("/v1/customers/{c}/split", {"source": "branch_crm", "source_key": "no-such-key", **REASON}, 404),
        ("/v1/customers/{c}/split", {"rid": 1, **REASON}, 404),
        ("/v1/customers/{single}/split", {"rid": 0, **REASON}, 422),
        ("/v1/review/tasks/1/decision", {"decision": "maybe"}, 422),
        ("/v1/customers/merge", {"customer_a": "{c}", "customer_b": "{c}", **REASON}, 409),
    ],
)
def test_refusals(client: httpx.Client, sample: Sample, url: str, body: dict[str, Any], status: int) -> None:
    c = sample.picks.free_customers[5]["customer_id"]
    fill = {k: (v.format(c=c) if isinstance(v, str) else v) for k, v in body.items()}
    r = call(client, sample, "li", "POST", url.format(c=c, single=c), json=fill)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message", "request_id"}


def login(base_url: str, token: str, **headers: str) -> tuple[httpx.Client, httpx.Response]:
    """A fresh browser-like client (its own cookie jar) after posting ``token`` to the login form."""
    browser = httpx.Client(base_url=base_url, timeout=60)
    answer = browser.post(
        "/steward/login",
        content=f"api_key={token}",
        headers={"content-type": "application/x-www-form-urlencoded", **headers},
        follow_redirects=False,
    )
    return browser, answer


def page_csrf(browser: httpx.Client) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', browser.get("/steward/").text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("who", "origin", "status", "cookie"),
    [
        ("li", None, 303, True),
        ("li", "http://evil.example", 403, False),
        ("ops", None, 403, False),
        ("sys", None, 403, False),
        (None, None, 401, False),
    ],
)
def test_login(
    client: httpx.Client, sample: Sample, who: str | None, origin: str | None, status: int, cookie: bool
) -> None:
    token = sample.tokens[who] if who else "mdm_000000000000_nope"
    browser, r = login(str(client.base_url), token, **({"origin": origin} if origin else {}))
    with closing(browser):
        assert r.status_code == status
        set_cookie = r.headers.get("set-cookie", "")
        assert set_cookie.startswith("mdm_steward=") == cookie
        queue = browser.get("/steward/")
        assert ('id="queue"' in queue.text) == cookie and ('id="api_key"' in queue.text) != cookie
        if cookie:
            assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
            assert sample.tokens["li"].split("_", 2)[2] not in set_cookie
            assert queue.headers["x-frame-options"] == "DENY"
            browser.post("/steward/logout", data={"csrf": page_csrf(browser)})
            assert 'id="api_key"' in browser.get("/steward/").text


@pytest.mark.parametrize(
    ("csrf", "status"),
    [(None, 403), ("0" * 64, 403), ("session", 200)],
)
def test_csrf_on_session_writes(client: httpx.Client, sample: Sample, csrf: str | None, status: int) -> None:
    browser, _ = login(str(client.base_url), sample.tokens["wang"])
    task_id = sample.picks.tasks[3]["task_id"]
    with closing(browser):
        headers = {"x-csrf-token": page_csrf(browser) if csrf == "session" else csrf} if csrf else {}
        claimed = browser.post(f"/v1/review/tasks/{task_id}/claim", headers=headers)
        assert claimed.status_code == status
        if status == 403:
            assert claimed.json()["error"]["code"] == "csrf_failed"
        read = browser.get(f"/v1/review/tasks/{task_id}")
    assert read.status_code == 200 and read.json()["task"]["assignee"] == ("wang" if status == 200 else None)


def test_audit_holds_every_action_without_plaintext(client: httpx.Client, sample: Sample) -> None:
    entries = call(client, sample, "aud", "GET", "/v1/audit", params={"limit": 1000}).json()["entries"]
    actions = {e["action"] for e in entries}
    expected = {"review.claim", "review.decide", "review.revoke", "customer.merge", "customer.merge_approve"}
    assert expected | {"customer.split", "customer.pin", "steward.login", "denied"} <= actions
    text = str(entries)
    assert not [v for v in sample.picks.plaintext if v in text]
    assert call(client, sample, "aud", "GET", "/v1/audit/verify").json()["first_broken"] is None
