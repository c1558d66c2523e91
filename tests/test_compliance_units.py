"""Pure parts of the compliance package: retention clock, masking, tokens, signatures, backoff, matrix, HTML."""

from __future__ import annotations

import re
from datetime import date

import polars as pl
import pytest

from mdm.compliance.classification import load_classification, permission_matrix
from mdm.compliance.html import render_html, stacked_bars
from mdm.compliance.retention import RETENTION_INPUT, past_retention
from mdm.compliance.sharing import (
    PartnerProfile,
    apply_actions,
    partner_key,
    token,
)
from mdm.compliance.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Backoff,
    SignatureError,
    sign,
    verify,
    webhook_secret,
)
from mdm.config import load_sources
from mdm.privacy import mask_address, mask_date, mask_email

TODAY = date(2026, 6, 1)


def record(
    rid: int, source: str, ended: bool, ended_on: date | None, updated_on: date | None
) -> dict[str, object]:
    return {
        "rid": rid,
        "source": source,
        "source_key": f"k{rid}",
        "ended": ended,
        "ended_on": ended_on,
        "updated_on": updated_on,
        "ingested_on": date(2026, 5, 1),
    }


@pytest.mark.parametrize(
    ("row", "due"),
    [
        (record(1, "core_banking", True, date(2020, 1, 1), None), True),  # ended > 5 years ago
        (record(2, "core_banking", True, date(2024, 1, 1), None), False),  # ended, still within 5 years
        (record(3, "core_banking", False, None, None), False),  # live relationship of a full extract
        (record(4, "advisor_mail", False, None, date(2023, 1, 1)), True),  # delta: mail older than 1095 days
        (record(5, "advisor_mail", False, None, date(2025, 1, 1)), False),
        (record(6, "advisor_mail", False, None, None), False),  # no date: clock starts at ingest
        (record(7, "unknown_source", True, date(2000, 1, 1), None), False),  # no declared retention
    ],
)
def test_past_retention(row: dict[str, object], due: bool) -> None:
    frame = pl.DataFrame([row], schema=RETENTION_INPUT)
    got = past_retention(frame, load_sources(), TODAY)
    assert (got.height == 1) is due
    if due:
        assert got["expired_on"][0] < TODAY


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (mask_email, "zhang.wei@qq.com", "z***@qq.com"),
        (mask_email, None, ""),
        (mask_address, "重庆市渝中区民族路361号", "重庆市渝中区***"),
        (mask_address, "广西壮族自治区南宁市青秀区民族大道1号", "广西壮族自治区南宁市青秀区***"),
        (mask_address, "上海市浦东新区", "上海市浦东新区***"),
        (mask_date, "1994-02-11", "1994-**-**"),
    ],
)
def test_maskers(fn: object, value: str | None, expected: str) -> None:
    assert fn(value) == expected  # type: ignore[operator]


@pytest.mark.parametrize(("a", "b"), [("bank_a", "insurer_b"), ("x", "y")])
def test_tokens_stable_per_partner_and_unlinkable_across(a: str, b: str) -> None:
    master = b"m" * 32
    ka, kb = partner_key(master, a), partner_key(master, b)
    assert token(ka, "mobiles", "+8613800138000") == token(ka, "mobiles", "+8613800138000")
    assert token(ka, "mobiles", "+8613800138000") != token(kb, "mobiles", "+8613800138000")
    assert token(ka, "mobiles", "+8613800138000") != token(ka, "phones", "+8613800138000")
    assert not re.search(r"[0189]", token(ka, "id_number", "110105199001010011"))


def test_apply_actions_masks_tokenizes_and_drops() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "id_number": ["110105199001010011", None],
            "mobiles": [["+8613800138000", "+8613900139000"], []],
            "sex": ["M", "F"],
        }
    )
    profile = PartnerProfile(
        name="p",
        partner="p",
        purpose="test",
        fields={"customer_id": "token", "mobiles": "masked", "sex": "plain"},
    )
    out = apply_actions(frame, profile, b"k" * 32)
    assert out.columns == ["customer_id", "mobiles", "sex"]
    assert out["mobiles"].to_list() == [["138****8000", "139****9000"], []]
    assert out["customer_id"][0] == token(b"k" * 32, "customer_id", "C1")


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"company": "masked"}, "no masker"), ({}, "at least 1")],
)
def test_bad_profiles(fields: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PartnerProfile(name="p", partner="p", purpose="x", fields=fields)  # type: ignore[arg-type]


SECRET = webhook_secret(b"master", "insurer_demo")
BODY = b'{"event": {"event_id": 1}}'


@pytest.mark.parametrize(
    ("headers", "now", "ok"),
    [
        ({TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign(SECRET, 1000, BODY)}, 1100, True),
        ({TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign(SECRET, 1000, BODY)}, 1000 + 301, False),  # stale
        ({TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign(SECRET, 1001, BODY)}, 1000, False),  # other ts
        ({TIMESTAMP_HEADER: "1000", SIGNATURE_HEADER: sign(b"wrong", 1000, BODY)}, 1000, False),
        ({TIMESTAMP_HEADER: "abc", SIGNATURE_HEADER: sign(SECRET, 1000, BODY)}, 1000, False),
        ({SIGNATURE_HEADER: sign(SECRET, 1000, BODY)}, 1000, False),
    ],
)
def test_reference_verifier(headers: dict[str, str], now: float, ok: bool) -> None:
    if ok:
        assert verify(SECRET, headers, BODY, now=now) == 1000
    else:
        with pytest.raises(SignatureError):
            verify(SECRET, headers, BODY, now=now)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 0.5), (2, 1.0), (4, 4.0), (20, 60.0)])
def test_backoff_is_exponential_and_capped(attempt: int, delay: float) -> None:
    assert Backoff().delay(attempt) == delay


@pytest.mark.parametrize(
    ("role", "field", "view"),
    [("analyst", "mobiles", "masked"), ("analyst", "sex", "plain"), ("auditor", "name", "none")],
)
def test_permission_matrix_from_policy(role: str, field: str, view: str) -> None:
    matrix = permission_matrix(load_classification())
    row = matrix.filter((pl.col("role") == role) & (pl.col("field") == field))
    assert row["view"].to_list() == [view]


def test_svg_chart_and_page_are_self_contained() -> None:
    svg = stacked_bars([("a", {"C1": 3, "C2": 5})], {"C1": "#0f0", "C2": "#f00"}, "t")
    assert svg.startswith("<svg") and svg.count("<rect") == 4  # two segments, two legend keys
    page = render_html(
        {
            "blocking": True,
            "findings": [{"severity": "blocking", "code": "no_legal_basis", "message": "<x>"}],
            "as_of": "2026-01-01",
            "database": {"path": "db", "encrypted": False},
            "classification": "c",
            "sources": [],
            "by_class": [{"source": "s", "class": "C2", "values": 4}],
            "inventory": [],
            "retention": {"past_retention": {}},
            "cross_border": [],
            "access_review": {"status": "absent"},
            "permissions": {"matrix": [], "live_check": {"status": "pending"}},
            "audit_chain": {"status": "absent"},
            "erasure": {"items": []},
            "exports": [],
            "webhooks": [],
        }
    )
    assert (
        "&lt;x&gt;" in page
        and "BLOCKED" in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
