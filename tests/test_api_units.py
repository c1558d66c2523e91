"""Units of the API: maskers and role views, token bucket, key handling, the audit chain, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app, open_api_store
from api.audit import AuditWriter
from api.auth import Authenticator, bearer_token, create_key, generate_key, parse_token
from api.cli import api_app
from api.deps import ApiStore
from api.errors import TokenBucket
from api.policy import ROLES, golden_view, load_policy, redact
from mdm.errors import MdmError
from mdm.privacy import mask_address, mask_date, mask_email
from mdm.store.api_repo import hmac_pads, index_digest, sql_hmac

POLICY = load_policy()


@pytest.mark.parametrize(
    ("masker", "value", "expected"),
    [
        (mask_address, "北京市朝阳区建国路88号", "北京市朝阳区***"),
        (mask_address, "广东省深圳市南山区科技园1栋", "广东省深圳市南山区***"),
        (mask_address, "内蒙古自治区鄂尔多斯市伊金霍洛旗阿镇", "内蒙古自治区鄂尔多斯市伊金霍洛旗***"),
        (mask_address, "上海市某路1号", "上海市***"),
        (mask_address, "某地某路1号", "***"),
        (mask_address, None, ""),
        (mask_email, "zhangwei@qq.com", "z***@qq.com"),
        (mask_email, "nodomain", "***"),
        (mask_date, "1985-03-15", "1985-**-**"),
        (mask_date, "March 85", "***"),
        (redact, "anything", "***"),
        (redact, "", ""),
    ],
)
def test_maskers(masker: Any, value: str | None, expected: str) -> None:
    assert masker(value) == expected


GOLDEN = {
    "name": "张伟",
    "id_number": "11010519491231002X",
    "id_type": "CN_RESIDENT",
    "mobiles": [{"value": "+8613800138000", "sources": ["crm"]}],
    "note_free": "free text",
}


@pytest.mark.parametrize(
    ("role", "unmask", "expected"),
    [
        (
            "analyst",
            False,
            {
                "name": "张*",
                "id_number": "110105********002X",
                "id_type": "CN_RESIDENT",
                "mobiles": [{"value": "138****8000", "sources": ["crm"]}],
                "note_free": "***",
            },
        ),
        ("analyst", True, None),
        ("steward", True, GOLDEN),
        ("auditor", False, {}),
        ("auditor", True, {}),
    ],
)
def test_golden_view_per_role(role: str, unmask: bool, expected: dict[str, Any] | None) -> None:
    shown, c2 = golden_view(POLICY, role, GOLDEN, unmask)
    assert shown == (expected if expected is not None else golden_view(POLICY, role, GOLDEN)[0])
    assert c2 == ([] if role == "auditor" else ["name", "id_number", "mobiles", "note_free"])


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5]),
        ([0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0, 0.25], [0.0, 0.0, 0.0, 0.25]),
    ],
)
def test_token_bucket(times: list[float], expected: list[float]) -> None:
    clock = iter(times)
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: next(clock))
    assert [bucket.take("k") for _ in times] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("Bearer mdm_0123456789ab_secret", ("0123456789ab", "secret")),
        ("bearer mdm_0123456789ab_se_cr_et", ("0123456789ab", "se_cr_et")),
        ("Basic mdm_0123456789ab_secret", None),
        ("Bearer other_0123456789ab_secret", None),
        ("Bearer mdm_short_secret", None),
        ("Bearer mdm_0123456789ab_", None),
        ("", None),
    ],
)
def test_token_parsing(header: str, parsed: tuple[str, str] | None) -> None:
    token = bearer_token(header)
    assert (parse_token(token) if token else None) == parsed


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ApiStore]:
    with open_api_store(tmp_path / "u.duckdb") as s:
        yield s


def test_keys_store_only_a_digest(store: ApiStore) -> None:
    new = create_key(store, "crm", "system", "pytest", ROLES)
    auth = Authenticator(store.api_key, store.api_secret("pepper"))
    stored = store.query("SELECT * FROM api_keys").to_dicts()[0]
    assert new.token.split("_", 2)[2] not in str(stored) and stored["digest"] == new.digest
    who = auth.verify(f"Bearer {new.token}")
    assert who is not None and (who.key_id, who.role, who.name) == (new.key_id, "system", "crm")
    assert auth.verify(f"Bearer {new.token}x") is None
    assert auth.verify(f"Bearer {generate_key(b'other').token}") is None
    assert store.revoke_api_key(new.key_id) and not store.revoke_api_key(new.key_id)
    auth.forget(new.key_id)
    assert auth.verify(f"Bearer {new.token}") is None
    with pytest.raises(MdmError):
        create_key(store, "x", "root", "pytest", ROLES)


def test_sql_hmac_equals_python(store: ApiStore) -> None:
    key = store.api_secret("index")
    (digest,) = store.con.execute(
        f"SELECT {sql_hmac('$msg')}", {**hmac_pads(key), "msg": "mobile\x1f+8613800138000"}
    ).fetchone()  # type: ignore[misc]
    assert digest == index_digest(key, "mobile", "+8613800138000")


TAMPER = {
    "changed field": ("UPDATE audit_log SET target = 'C0000000001X' WHERE seq = 3", 3),
    "changed hash and field": ("UPDATE audit_log SET action = 'x', hash = 'ff' WHERE seq = 2", 2),
    "deleted entry": ("DELETE FROM audit_log WHERE seq = 4", 5),
    "renumbered entry": ("UPDATE audit_log SET seq = 9 WHERE seq = 5", 9),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_audit_chain_reports_first_broken_entry(store: ApiStore, case: str) -> None:
    for i in range(5):
        store.audit(action="customer.read", key_id="k", role="system", target=f"C{i}", status=200)
    assert store.verify_audit() == {"entries": 5, "verified_to": 5, "first_broken": None}
    sql, broken = TAMPER[case]
    store.con.execute(sql)
    assert store.verify_audit()["first_broken"] == broken


def test_audit_key_is_needed_to_forge(store: ApiStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.audit(action="customer.read", key_id="k")
    monkeypatch.setenv("MDM_AUDIT_KEY", "another key")
    assert store.verify_audit()["first_broken"] == 1


def test_failed_audit_fails_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "f.duckdb"
    with open_api_store(db) as s:
        token = create_key(s, "ops", "admin", "pytest", ROLES).token

    def broken(self: AuditWriter, entry: dict[str, Any]) -> int:
        raise OSError("disk full")

    with TestClient(create_app(db)) as client:
        monkeypatch.setattr(AuditWriter, "write", broken)
        r = client.post(
            "/v1/admin/keys",
            json={"name": "n", "role": "system"},
            headers={"Authorization": f"Bearer {token}"},
        )
        monkeypatch.undo()
        keys = client.get("/v1/admin/keys", headers={"Authorization": f"Bearer {token}"}).json()
    assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable"
    assert [k["name"] for k in keys] == ["ops"]


def test_cli_keys_and_audit_verify(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "cli.duckdb")
    made = runner.invoke(api_app, ["apikey", "create", "--name", "crm", "--role", "system", "--db", db])
    token = made.output.strip().splitlines()[-1]
    assert made.exit_code == 0 and parse_token(token) is not None
    listed = runner.invoke(api_app, ["apikey", "list", "--db", db])
    assert listed.exit_code == 0 and "crm" in listed.output and token not in listed.output
    bad = runner.invoke(api_app, ["apikey", "create", "--name", "x", "--role", "root", "--db", db])
    assert bad.exit_code == 1
    ok = runner.invoke(api_app, ["audit", "verify", "--db", db])
    assert ok.exit_code == 0 and "1 entries" in ok.output
    with open_api_store(db) as s:
        s.con.execute("UPDATE audit_log SET target = 'other' WHERE seq = 1")
    broken = runner.invoke(api_app, ["audit", "verify", "--db", db])
    assert broken.exit_code == 4 and "broken at entry 1" in broken.output
