"""The compliance features on the shared sample after ingest and a run: report figures checked against
independent counts, partner exports, webhook deliveries to a real loopback receiver, retention apply."""

from __future__ import annotations

import json
import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest
import typer
import yaml
from conftest import SampleRun, copy_store
from typer.testing import CliRunner

from mdm.compliance.classification import DEFAULT_CLASSIFICATION, load_classification
from mdm.compliance.cli import BLOCKED_EXIT, register
from mdm.compliance.report import build_report, write_report
from mdm.compliance.retention import apply_retention
from mdm.compliance.sharing import export_profile, load_profile, share_events
from mdm.compliance.webhooks import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Backoff,
    SignatureError,
    deliver,
    sign,
    verify,
    webhook_secret,
)
from mdm.config import DEFAULT_CONFIG_DIR, load_sources
from mdm.schema import RAW_LIST_FIELDS
from mdm.store import Store
from mdm.store.compliance_repo import compliance_repo

MOBILE = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, sample_resolved: SampleRun) -> Path:
    """A private copy of a store holding the sample after ingest and one run (the tests here write to it)."""
    return copy_store(sample_resolved.db, tmp_path_factory.mktemp("compliance"))


def expected_by_class(store: Store) -> dict[tuple[str, str], tuple[int, int]]:
    """(source, class) -> (fields mapped, values held), counted with polars from the records and the YAMLs."""
    classes = yaml.safe_load(DEFAULT_CLASSIFICATION.read_text(encoding="utf-8"))["raw_fields"]
    records = store.query("SELECT * FROM current_records")
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for name, cfg in load_sources().items():
        rows = records.filter(pl.col("source") == name)
        for field in cfg.columns:
            col = pl.col(field)
            held = (
                col.list.eval(pl.element().str.strip_chars() != "").list.any().fill_null(False)
                if field in RAW_LIST_FIELDS
                else col.str.strip_chars().fill_null("") != ""
            )
            n = rows.select(held.sum()).item()
            fields, values = out.get((name, classes[field]), (0, 0))
            out[(name, classes[field])] = (fields + 1, values + n)
    return out


def test_report_figures_equal_independent_counts(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        report = build_report(store, load_sources(), load_classification())
        expected = expected_by_class(store)
        held = store.query("SELECT source, count(*) AS n FROM current_records GROUP BY source").rows()
    got = {(r["source"], r["class"]): (r["fields"], r["values"]) for r in report["by_class"]}
    assert got == expected
    assert {r["source"]: r["records"] for r in report["sources"] if r["records"]} == dict(held)
    assert report["blocking"] is False
    assert report["permissions"]["live_check"]["status"] == "pending"
    json_path, html_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text(encoding="utf-8"))["by_class"] == report["by_class"]
    page = html_path.read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and "<script" not in page


def test_report_blocks_on_a_source_without_legal_basis(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sources"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder)
    data = yaml.safe_load((folder / "core_banking.yaml").read_text(encoding="utf-8"))
    data.pop("legal_basis")
    (folder / "core_banking.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "rep"
    root = typer.Typer()
    register(root)
    args = ["compliance", "report", "--out", str(out), "--db", str(db), "--config", str(folder)]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == BLOCKED_EXIT, result.output
    doc = json.loads((out / "compliance.json").read_text(encoding="utf-8"))
    blocking = [f for f in doc["findings"] if f["severity"] == "blocking"]
    assert [f["code"] for f in blocking] == ["no_legal_basis"] and "core_banking" in blocking[0]["message"]


def _profile(tmp_path: Path, name: str, partner: str) -> Path:
    """A profile sending every live customer's masked mobiles, no ID numbers, tokenized IDs."""
    path = tmp_path / f"{name}.yaml"
    doc = {
        "name": name,
        "partner": partner,
        "purpose": "test",
        "fields": {
            "customer_id": "token",
            "name": "masked",
            "mobiles": "masked",
            "phones": "masked",
            "emails": "masked",
            "addresses": "masked",
            "birth_date": "masked",
        },
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_partner_export_has_no_plaintext_identifiers_and_unlinkable_tokens(db: Path, tmp_path: Path) -> None:
    a, b = (
        load_profile(_profile(tmp_path, "pa", "partner_a")),
        load_profile(_profile(tmp_path, "pb", "partner_b")),
    )
    with Store(db) as store:
        first = export_profile(store, a, tmp_path / "a1.csv", "tester")
        again = export_profile(store, a, tmp_path / "a2.csv", "tester")
        other = export_profile(store, b, tmp_path / "b.csv", "tester")
        live = store.query("SELECT count(*) FROM customers WHERE status = 'live'").item()
        audit = compliance_repo(store).exports()
    text = (tmp_path / "a1.csv").read_text(encoding="utf-8")
    assert first.rows == live and MOBILE.search(text) is None and ID_NUMBER.search(text) is None
    assert re.search(r"1\d\d\*{4}\d{4}", text)
    ids = [pl.read_csv(tmp_path / f)["customer_id"] for f in ("a1.csv", "a2.csv", "b.csv")]
    assert ids[0].to_list() == ids[1].to_list()
    assert set(ids[0]).isdisjoint(set(ids[2])) and ids[2].n_unique() == live
    tail = audit.tail(3).select("profile", "partner", "n_rows").rows()
    assert tail == [
        ("pa", "partner_a", first.rows),
        ("pa", "partner_a", again.rows),
        ("pb", "partner_b", other.rows),
    ]


def test_profile_customer_filter_equals_independent_count(db: Path, tmp_path: Path) -> None:
    profile = load_profile("insurer_demo")
    cfgs = load_sources()
    allowed = [n for n, c in cfgs.items() if c.legal_basis == "consent" and not c.cross_border]
    with Store(db) as store:
        result = export_profile(store, profile, tmp_path / "ins.csv", "tester")
        xref = store.current_xref()
        live = store.query("SELECT customer_id FROM customers WHERE status = 'live'")
    expected = (
        xref.group_by("customer_id")
        .agg(pl.col("source").is_in(allowed).all().alias("ok"))
        .filter(pl.col("ok"))
        .join(live, on="customer_id", how="semi")
        .height
    )
    assert result.rows == expected > 0
    assert pl.read_csv(tmp_path / "ins.csv").columns == list(profile.fields)


class Receiver(BaseHTTPRequestHandler):
    """Partner endpoint on loopback: verifies with the reference verifier; fails on demand."""

    secret: ClassVar[bytes] = b""
    fail_event: ClassVar[int | None] = None
    failures_left: ClassVar[int] = 0
    received: ClassVar[list[int]] = []
    rejected: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify(type(self).secret, dict(self.headers.items()), body)
        except SignatureError as exc:
            type(self).rejected.append(str(exc))
            self.send_response(401)
            self.end_headers()
            return
        event_id = json.loads(body)["event"]["event_id"]
        cls = type(self)
        if event_id == cls.fail_event and cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        cls.received.append(event_id)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Silent."""


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_webhook_delivers_every_event_once_in_order_after_failure(db: Path, receiver: str) -> None:
    sleeps: list[float] = []
    with Store(db) as store:
        repo = compliance_repo(store)
        sid = repo.add_webhook("insurer_demo", "insurer_demo", receiver, "tester")
        Receiver.secret = webhook_secret(repo.partner_master_key(), "insurer_demo")

        expected = share_events(store, store.events_since(event_id=0), load_profile("insurer_demo"))[
            "event_id"
        ]
        Receiver.received, Receiver.rejected = [], []
        Receiver.fail_event, Receiver.failures_left = int(expected[5]), 4
        first = deliver(store, sid, backoff=Backoff(base=0.01, attempts=2), sleep=sleeps.append)
        second = deliver(store, sid, backoff=Backoff(base=0.01, attempts=3), sleep=sleeps.append)
        log = repo.deliveries(sid)
        cursor = repo.webhook(sid)["after_event"]
        last_event = store.query("SELECT max(event_id) FROM id_events").item()
    assert first.failed_event == expected[5] and first.delivered == expected[:5].to_list()
    assert second.failed_event is None
    assert Receiver.received == expected.to_list() and len(expected) > 100 and Receiver.rejected == []
    assert sleeps == [0.01, 0.01, 0.02]  # first pass gives up after 2 tries; the second backs off 2x
    failed = log.filter(pl.col("status") == "failed")
    assert failed.select("event_id", "attempt", "http_status").rows() == [
        (expected[5], 1, 503),
        (expected[5], 2, 503),
        (expected[5], 1, 503),
        (expected[5], 2, 503),
    ]
    assert log.filter(pl.col("status") == "delivered").height == len(expected) and cursor == last_event


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [("body", "signature mismatch"), ("stale", "timestamp outside"), ("secret", "signature mismatch")],
)
def test_receiver_rejects_wrong_signature_or_stale_timestamp(receiver: str, tamper: str, reason: str) -> None:
    Receiver.secret, Receiver.rejected, Receiver.received = b"s" * 32, [], []
    body = json.dumps({"event": {"event_id": 1}}).encode()
    ts = int(datetime.now(UTC).timestamp()) - (1000 if tamper == "stale" else 0)
    signature = sign(b"other" if tamper == "secret" else Receiver.secret, ts, body)
    sent = body.replace(b"1", b"2") if tamper == "body" else body
    headers = {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature, EVENT_HEADER: "1"}
    assert _post(receiver, sent, headers) == 401
    assert Receiver.received == [] and reason in Receiver.rejected[0]


def _richest_customer(store: Store) -> tuple[str, dict[str, Any]]:
    """The live customer whose golden record has the most non-empty attributes, with its attributes."""
    from mdm.compliance.sharing import golden_frame

    frame = golden_frame(store)
    filled = pl.sum_horizontal(
        (pl.col(c).list.len() > 0).fill_null(False)
        if isinstance(t, pl.List)
        else pl.col(c).is_not_null() & (pl.col(c).cast(pl.String) != "")
        for c, t in frame.schema.items()
    )
    best = (
        frame.with_columns(filled.alias("_n"))
        .sort("_n", "customer_id", descending=[True, False])
        .row(0, named=True)
    )
    doc = store.customer(best["customer_id"])
    assert doc is not None
    return best["customer_id"], doc["attributes"]


def test_permission_simulation_matches_a_running_api(db: Path) -> None:
    pytest.importorskip("api.app")
    import uvicorn

    from api.app import create_app
    from api.auth import create_key
    from api.policy import ROLES
    from mdm.compliance.classification import permission_matrix
    from mdm.compliance.permissions import live_permission_check

    policy = load_classification()
    with Store(db) as store:
        customer_id, attributes = _richest_customer(store)
    app = create_app(db)
    api_store = app.state.ctx.store
    keys = {role: create_key(api_store, f"sim-{role}", role, "tester", ROLES).token for role in policy.roles}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        live = live_permission_check(
            f"http://127.0.0.1:{port}", keys, customer_id, attributes, permission_matrix(policy)
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert live["status"] == "confirmed", live["mismatches"]
    assert set(live["observed"]) == {*policy.roles, *(f"{r} (unmask)" for r in policy.unmask_roles)}
    with Store(db) as store:
        report = build_report(store, load_sources(), policy, live_permissions=live)
    review = report["access_review"]
    c2_shown = sum(
        1 for n, v in attributes.items() if policy.golden_class(n) == "C2" and v not in (None, "", [])
    )
    by_role = {r["role"]: r for r in review["per_key"]}
    assert [u["reason"] for u in review["unmasks"]] == ["compliance permission simulation"]
    assert by_role["steward"]["c2_unmasked"] == c2_shown == by_role["analyst"]["c2_masked"]
    assert report["permissions"]["live_check"]["status"] == "confirmed"
    assert report["audit_chain"]["status"] == "ok" and report["blocking"] is False


def test_retention_apply_erases_expired_mails_and_reports_them(db: Path) -> None:
    cfgs = load_sources()
    days = cfgs["advisor_mail"].retention_period_days or 0
    with Store(db) as store:
        dates = store.query(
            """SELECT CAST(left(source_updated_at, 10) AS DATE) AS d FROM current_records
            WHERE source = 'advisor_mail' ORDER BY d"""
        )["d"]
        now = datetime.combine(dates[1] + timedelta(days=days + 1), datetime.min.time(), UTC)
        expected = int((dates + timedelta(days=days) < now.date()).sum())
        dry = apply_retention(store, cfgs, user="tester", now=now, dry_run=True)
        assert dry.due == {"advisor_mail": expected} and dry.erased == 0
        before = store.query("SELECT count(*) FROM current_records").item()
        done = apply_retention(store, cfgs, user="tester", now=now)
        after = store.query("SELECT count(*) FROM current_records").item()
        report = build_report(store, cfgs, load_classification(), today=now.date())
    assert 2 <= expected <= 10 and done.erased == expected and before - after == expected
    assert done.recomputed_run == 2
    assert report["retention"]["total"] == 0
    assert report["erasure"]["requests"] == expected == report["erasure"]["erased_completed"]
