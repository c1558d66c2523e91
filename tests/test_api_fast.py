"""The fast path of the hot reads (api.fast): which requests it takes, and that what it answers is the
FastAPI route's answer byte for byte (status, headers, body) for every role and every outcome."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from test_api_steward import KEYS, Sample, build_sample

import api.cache as cache
import api.fast as fast
from api.app import create_app, open_api_store
from api.deps import ApiContext
from api.errors import TokenBucket


@pytest.mark.parametrize(
    ("method", "path", "query", "root", "expected"),
    [
        ("GET", "/v1/xref/core_banking/K1", b"", "", ("xref", "core_banking", "K1")),
        ("GET", "/v1/customers/C00000000012", b"", "", ("customer", "C00000000012")),
        ("GET", "/v1/customers/C0000000001X", b"", "", ("customer", "C0000000001X")),
        ("GET", "/v1/customers/C00000000012", b"unmask=true", "", None),
        ("GET", "/v1/xref/core_banking/K1", b"run=3", "", None),
        ("GET", "/v1/xref/core_banking/K1", b"", "/api", None),
        ("HEAD", "/v1/customers/C00000000012", b"", "", None),
        ("POST", "/v1/xref/core_banking/K1", b"", "", None),
        ("GET", "/v1/customers/C0000000001", b"", "", None),
        ("GET", "/v1/customers/C000000000١2", b"", "", None),
        ("GET", "/v1/customers/C00000000012/", b"", "", None),
        ("GET", "/v1/xref/bad source/K1", b"", "", None),
        ("GET", "/v1/xref/core_banking/" + "k" * 129, b"", "", None),
        ("GET", "/v1/xref/core_banking/" + "k" * 128, b"", "", ("xref", "core_banking", "k" * 128)),
        ("GET", "/v1/xref/core_banking/K1/more", b"", "", None),
        ("GET", "/v1/customers", b"", "", None),
    ],
)
def test_fast_plan(method: str, path: str, query: bytes, root: str, expected: Any) -> None:
    assert fast.fast_plan(method, path, query, root) == expected


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Sample:
    return build_sample(tmp_path_factory, sample_dir, KEYS)


@pytest.fixture(scope="module")
def ids(sample: Sample) -> dict[str, str]:
    """A live customer, one retired into it (made here: the sample run retires none) and a record."""
    with open_api_store(sample.db) as store:
        live, gone = store.query(
            "SELECT customer_id FROM customers WHERE merged_into IS NULL ORDER BY customer_id LIMIT 2"
        )["customer_id"].to_list()
        store.con.execute(
            "UPDATE customers SET status = 'retired', merged_into = ? WHERE customer_id = ?", [live, gone]
        )
        record = store.query(
            "SELECT source, source_key FROM xref WHERE valid_to_run IS NULL ORDER BY rid LIMIT 1"
        ).row(0)
    return {"live": str(live), "retired": str(gone), "record": f"{record[0]}/{record[1]}"}


@pytest.fixture(scope="module")
def client(sample: Sample, ids: dict[str, str]) -> Iterator[TestClient]:
    """The app over the sample (after ``ids`` read it: the app is the database's one opener)."""
    with TestClient(create_app(sample.db)) as c:
        yield c


class Spy:
    """Counts the fast path's authorizations (the FastAPI route authorizes through ``api.deps``)."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = fast.authorize

    async def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return await self.real(*args)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    found = Spy()
    monkeypatch.setattr(fast, "authorize", found)
    return found


def normalized(r: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body with the per-request ID taken out (it differs between any two requests)."""
    rid = r.headers.get("x-request-id", "")
    headers = {k: v for k, v in r.headers.items() if k != "x-request-id"}
    return r.status_code, headers, r.content.replace(rid.encode(), b"RID") if rid else r.content


URLS = {
    "customer": "/v1/customers/{live}",
    "retired": "/v1/customers/{retired}",
    "unknown_customer": "/v1/customers/C99999999999",
    "xref": "/v1/xref/{record}",
    "unknown_record": "/v1/xref/core_banking/no-such-key",
}
HEADERS = {
    **{who: f"Bearer {{{who}}}" for who in KEYS},
    "missing": None,
    "malformed": "Bearer mdm_nonsense",
    "wrong_scheme": "Basic {sys}",
    "wrong_secret": "Bearer {sys}x",
}
EXPECTED = {
    "customer": 200,
    "retired": 200,
    "unknown_customer": 404,
    "xref": 200,
    "unknown_record": 404,
}


@pytest.mark.parametrize("caller", sorted(HEADERS))
@pytest.mark.parametrize("target", sorted(URLS))
def test_fast_answer_is_the_route_answer(
    client: TestClient, sample: Sample, ids: dict[str, str], spy: Spy, caller: str, target: str
) -> None:
    url = URLS[target].format(**ids)
    header = HEADERS[caller]
    headers = {"Authorization": header.format(**sample.tokens)} if header else {}
    fast_answer = client.get(url, headers=headers)
    assert spy.calls == 1
    routed = client.get(url, params={"via": "fastapi"}, headers=headers)
    assert spy.calls == 1
    assert normalized(fast_answer) == normalized(routed)
    role = KEYS.get(caller)
    if role is None:
        expected = 401
    elif role == "auditor":
        expected = 403
    else:
        expected = EXPECTED[target]
    assert fast_answer.status_code == expected, fast_answer.text


def test_retired_id_answers_successor_on_fast_path(
    client: TestClient, sample: Sample, ids: dict[str, str], spy: Spy
) -> None:
    body = client.get(
        f"/v1/customers/{ids['retired']}", headers={"Authorization": f"Bearer {sample.tokens['sys']}"}
    )
    assert spy.calls == 1
    answer = body.json()
    assert (answer["requested_id"], answer["customer_id"], answer["merged_into"]) == (
        ids["retired"],
        ids["live"],
        ids["live"],
    )


@pytest.mark.parametrize("target", ["customer", "xref"])
def test_rate_limited_answer_is_the_route_answer(
    client: TestClient,
    sample: Sample,
    ids: dict[str, str],
    spy: Spy,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    ctx: ApiContext = client.app.state.ctx  # type: ignore[attr-defined]
    monkeypatch.setattr(ctx, "limiter", TokenBucket(rate=0.01, burst=2))
    url = URLS[target].format(**ids)
    headers = {"Authorization": f"Bearer {sample.tokens['sys']}"}
    first = [client.get(url, headers=headers), client.get(url, params={"via": "fastapi"}, headers=headers)]
    fast_answer = client.get(url, headers=headers)
    routed = client.get(url, params={"via": "fastapi"}, headers=headers)
    assert [r.status_code for r in first] == [200, 200]
    assert spy.calls == 2
    assert fast_answer.status_code == 429 and fast_answer.headers["retry-after"] == "100"
    assert normalized(fast_answer) == normalized(routed)


def test_fast_reads_are_audited_and_counted(
    client: TestClient, sample: Sample, ids: dict[str, str], spy: Spy
) -> None:
    ctx: ApiContext = client.app.state.ctx  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {sample.tokens['ana']}"}
    before = ctx.metrics.registry.get_sample_value("mdm_audit_entries_total")
    for _ in range(3):
        assert client.get(f"/v1/customers/{ids['live']}", headers=headers).status_code == 200
    assert spy.calls == 3
    assert ctx.metrics.registry.get_sample_value("mdm_audit_entries_total") == (before or 0) + 3
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {sample.tokens['sys']}"}).text
    assert re.search(
        r'mdm_http_requests_total\{method="GET",route="/v1/customers/\{customer_id\}",status="200"\}', metrics
    )


def empty_model() -> cache.ReadModel:
    """A read model without rows (enough for its memo)."""
    none = pa.array([], pa.string())
    return cache.ReadModel(0, {}, [], [], [], [], [], {}, [], [], [], [], [], [], [], none, none, none)


@pytest.mark.parametrize(
    ("limit", "keys", "builds", "held"),
    [
        (10, ["a", "a", "b", "a"], ["a", "b"], {"a", "b"}),
        (2, ["a", "b", "c", "a"], ["a", "b", "c", "a"], {"c", "a"}),
        (10, [("customer", "analyst", "C1"), ("customer", "steward", "C1")], ["customer", "customer"], None),
    ],
)
def test_memo_builds_once_per_key_and_starts_over_when_full(
    monkeypatch: pytest.MonkeyPatch, limit: int, keys: list[Any], builds: list[Any], held: set[str] | None
) -> None:
    monkeypatch.setattr(cache, "MEMO_LIMIT", limit)
    model = empty_model()
    built: list[Any] = []

    def build(key: Any) -> Any:
        built.append(key[0] if isinstance(key, tuple) else key)
        return key

    answers = [model.memoized(key, partial(build, key)) for key in keys]
    assert answers == keys
    assert built == builds
    if held is not None:
        assert set(model.memo) == held
