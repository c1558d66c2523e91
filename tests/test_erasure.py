"""Erasure (PIPL) with AML holds: no trace in the file, restriction, release, re-arrival, tombstones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from golden_record.pipeline import run_golden
from mdm.erasure import (
    DECISION_INPUT,
    RE_ARRIVAL_FLAG,
    RetentionPolicy,
    add_years,
    bytes_containing,
    decide,
    load_retention,
)
from mdm.erasure_cli import erase_app
from mdm.errors import MdmError
from mdm.schema import RAW_SCHEMA
from mdm.store import Store
from mdm.store.erasure_repo import ERASURE_DDL, ErasureRepo

NAME, ID_NUMBER, MOBILE = "欧阳秘密", "110105199001011234", "13987654321"
SECRET_KEY = f"<{MOBILE}@qq.com>"  # a key that is itself personal (Message-ID with the sender)
SECRETS = [NAME, ID_NUMBER, MOBILE]
POLICY = RetentionPolicy(retention_years=5, aml_sources=["core"], re_arrival="quarantine")
NOW = datetime(2026, 3, 1, tzinfo=UTC)


class ErasureStore(Store, ErasureRepo):
    """The store with the erasure mixin and its tables (as Store will be once the lead mounts it)."""

    def __init__(self, path: Path, key: str | None = None) -> None:
        self._db_key = key
        super().__init__(path, key=key)

    def _migrate(self) -> None:
        super()._migrate()
        with self.transaction():
            for stmt in ERASURE_DDL:
                self.con.execute(stmt)


def person(source: str, key: str, name: str, id_number: str, mobile: str) -> dict[str, object]:
    return {
        "source": source,
        "source_key": key,
        "file": f"{source}.csv",
        "locator": f"line {key}",
        "name": name,
        "id_number": id_number,
        "mobile": [mobile],
        "dq_flags": [],
        "name_simplified": name,
        "id_number_std": id_number,
        "mobiles": [f"+86{mobile}"],
    }


OTHERS = {
    "mail": [person("mail", "<w1@qq.com>", "王芳", "110105198505052345", "13700001111")],
    "core": [person("core", "C2", "李娜", "310101197707073456", "13600002222")],
}


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        **RAW_SCHEMA,
        "name_simplified": pl.String(),
        "id_number_std": pl.String(),
        "mobiles": pl.List(pl.String),
    }
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def ingest(store: Store, tmp: Path, source: str, rows: list[dict[str, object]], **kw: object) -> None:
    src = tmp / f"{source}.csv"
    src.write_text("x")
    store.ingest_batch(source, [src], frame(rows), [], **kw)  # type: ignore[arg-type]


def golden_run(store: Store) -> None:
    """One golden run with clusters by ID number (each person one cluster)."""
    recs = store.query("SELECT rid, id_number_std FROM processable_records")
    clusters = recs.select("rid", pl.col("id_number_std").rank("dense").cast(pl.Int64).alias("cluster_id"))
    run_id = store.start_run("test")
    store.finish_run(run_id, "succeeded", run_golden(store, clusters, run_id))


def customer_of(store: Store, key: str) -> str:
    return str(store.query("SELECT customer_id FROM xref WHERE source_key = ?", [key]).item())


def snapshot(store: Store) -> dict[str, object]:
    """What other customers see: their golden records and current records."""
    return {
        "golden": store.golden_current()
        .filter(pl.col("attributes").str.contains("王芳|李娜"))
        .select("customer_id", "version", "attributes")
        .rows(),
        "records": store.query(
            "SELECT rid, source_key, name, version FROM current_records WHERE name <> ? ORDER BY rid", [NAME]
        ).rows(),
    }


def db_files(tmp: Path) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if p.name.startswith("db.duckdb"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ErasureStore]:
    s = ErasureStore(tmp_path / "db.duckdb")
    try:
        yield s
    finally:
        s.close()


def populate(store: ErasureStore, tmp: Path, secret_sources: tuple[str, ...]) -> str:
    """The secret person in ``secret_sources`` plus two others; golden run; steward traces. Returns its ID."""
    secret = {
        "mail": person("mail", SECRET_KEY, NAME, ID_NUMBER, MOBILE),
        "core": person("core", "C1", NAME, ID_NUMBER, MOBILE),
    }
    for source in ("mail", "core"):
        rows = [secret[source]] if source in secret_sources else []
        ingest(store, tmp, source, rows + OTHERS[source], extract_date="2020-01-01")
    golden_run(store)
    first = SECRET_KEY if "mail" in secret_sources else "C1"
    cid = customer_of(store, first)
    rid = int(store.query("SELECT rid FROM record_keys WHERE source_key = ?", [first]).item())
    other = int(store.query("SELECT rid FROM record_keys WHERE source_key = 'C2'").item())
    store.pin_attribute(cid, "name", NAME, "steward1", note="checked by phone")
    store.add_link("cannot", rid, other, "steward1")
    if "mail" in secret_sources:
        store.con.execute(
            "INSERT INTO rejects VALUES (1, 'mail', 'mail.csv', 'line 9', 'mobile', 'bad', ?)", [SECRET_KEY]
        )
    store.con.execute("CHECKPOINT")
    return cid


def test_erase_without_hold_leaves_no_trace_in_the_file(store: ErasureStore, tmp_path: Path) -> None:
    cid = populate(store, tmp_path, ("mail",))
    store.con.execute("CREATE TABLE scratch_pairs (rid_l BIGINT, rid_r BIGINT, note VARCHAR)")
    store.con.execute(
        "INSERT INTO scratch_pairs SELECT rid, rid + 1, if(source_key = ?, ?, 'x') FROM record_keys",
        [SECRET_KEY, f"tf {MOBILE}"],
    )
    before = snapshot(store)
    assert bytes_containing(db_files(tmp_path), SECRETS), "the check could pass silently"

    result = store.erase_customer(cid, "request 2026-001", "dpo", NOW, POLICY)

    assert (result.action, result.records, result.verified, result.file_rewritten) == (
        "erased",
        1,
        True,
        True,
    )
    assert "erased customer" in result.message()
    tables = {"records", "xref", "golden_versions", "pins", "steward_links", "rejects", "scratch_pairs"}
    assert tables <= set(result.removed)
    assert store.query("SELECT count(*) FROM scratch_pairs").item() == 2
    assert bytes_containing(db_files(tmp_path), [*SECRETS, SECRET_KEY]) == {}
    assert snapshot(store) == before
    assert store.query("SELECT status FROM customers WHERE customer_id = ?", [cid]).item() == "erased"
    assert store.customer(cid) is not None
    keys = store.query("SELECT source_key FROM record_keys WHERE source = 'mail' ORDER BY rid")["source_key"]
    assert keys.to_list() == ["erased:1:1", "<w1@qq.com>"]
    tomb = store.tombstones()
    assert tomb.select("action", "customer_id", "n_records").rows() == [("erased", cid, 1)]
    assert tomb["completed_at"].is_not_null().all()
    event = store.query(
        "SELECT action, actor, target, detail FROM audit_log WHERE action LIKE 'erasure.%'"
    ).rows()
    assert event == [("erasure.erased", "dpo", cid, "tombstone 1")]
    assert store.verify_audit()["first_broken"] is None


def test_encrypted_store_is_rewritten_with_its_key(tmp_path: Path) -> None:
    store = ErasureStore(tmp_path / "db.duckdb", key="correct horse")
    cid = populate(store, tmp_path, ("mail",))
    result = store.erase_customer(cid, "request", "dpo", NOW, POLICY)
    store.close()
    assert (result.action, result.file_rewritten) == ("erased", True)
    again = ErasureStore(tmp_path / "db.duckdb", key="correct horse")
    assert sorted(again.current_records(["name"])["name"].to_list()) == ["李娜", "王芳"]
    assert again.tombstone_match(id_number=ID_NUMBER).height == 1
    again.close()
    with pytest.raises(MdmError, match="wrong MDM_DB_KEY"):
        ErasureStore(tmp_path / "db.duckdb", key="wrong")


def test_tombstone_holds_no_personal_data(store: ErasureStore, tmp_path: Path) -> None:
    cid = populate(store, tmp_path, ("mail",))
    store.erase_customer(cid, f"request 2026-002 for {ID_NUMBER}", "dpo", NOW, POLICY)
    text = str(store.query("SELECT * FROM tombstones").rows())
    for value in [*SECRETS, SECRET_KEY, "+86" + MOBILE]:
        assert value not in text
    for probe, kind in (
        ({"source": "mail", "source_key": SECRET_KEY}, ["key"]),
        ({"id_number": ID_NUMBER.lower()[:-1] + "4"}, ["id"]),
        ({"mobile": "+86" + MOBILE}, ["mobile"]),
        ({"id_number": "110105198505052345"}, []),
    ):
        found = store.tombstone_match(**probe)
        assert [m for ms in found["matched_on"].to_list() for m in ms] == kind


@pytest.mark.parametrize(
    ("end_core", "expected_open", "hold_until"),
    [
        (None, True, None),  # relationship still open
        ("2024-06-30", False, date(2029, 6, 30)),  # ended less than five years ago
    ],
)
def test_erase_under_hold_restricts(
    store: ErasureStore, tmp_path: Path, end_core: str | None, expected_open: bool, hold_until: date | None
) -> None:
    cid = populate(store, tmp_path, ("mail", "core"))
    if end_core:
        ingest(store, tmp_path, "core", OTHERS["core"], extract_date=end_core)
    n_records = store.query("SELECT count(*) FROM records").item()

    result = store.erase_customer(cid, "request 2026-003", "dpo", NOW, POLICY)

    assert (result.action, result.relationship_open, result.hold_until, result.records) == (
        "restricted",
        expected_open,
        hold_until,
        2,
    )
    assert "restricted customer" in result.message() and "storage only" in result.message()
    assert store.query("SELECT count(*) FROM records").item() == n_records
    assert NAME not in store.query("SELECT name FROM processable_records")["name"].to_list()
    assert store.query("SELECT count(*) FROM restrictions").item() == 2
    assert cid not in store.golden_current()["customer_id"].to_list()
    assert store.query("SELECT status FROM customers WHERE customer_id = ?", [cid]).item() == "restricted"
    golden_run(store)
    assert store.current_xref().filter(pl.col("customer_id") == cid).height == 0
    assert store.query("SELECT count(*) FROM customers WHERE status = 'live'").item() == 2
    with pytest.raises(MdmError, match="already restricted"):
        store.erase_customer(cid, "again", "dpo", NOW, POLICY)


@pytest.mark.parametrize(
    ("release_at", "released"),
    [
        (datetime(2024, 12, 31, tzinfo=UTC), False),
        (datetime(2025, 1, 2, tzinfo=UTC), True),
    ],
)
def test_release_after_hold_ends_erases(
    store: ErasureStore, tmp_path: Path, release_at: datetime, released: bool
) -> None:
    cid = populate(store, tmp_path, ("core",))
    ingest(store, tmp_path, "core", OTHERS["core"], extract_date="2020-01-01")
    golden_run(store)
    before = snapshot(store)
    held = store.erase_customer(cid, "request", "dpo", datetime(2021, 1, 1, tzinfo=UTC), POLICY)
    assert (held.action, held.hold_until) == ("restricted", date(2025, 1, 1))

    done = store.release_expired_holds(release_at, POLICY)

    assert [r.action for r in done] == (["erased"] if released else [])
    assert bool(bytes_containing(db_files(tmp_path), SECRETS)) is not released
    assert store.tombstones()["action"].to_list() == ["erased" if released else "restricted"]
    assert snapshot(store) == before


def test_erase_record_keeps_the_rest_of_the_customer(store: ErasureStore, tmp_path: Path) -> None:
    cid = populate(store, tmp_path, ("mail", "core"))
    result = store.erase_record("mail", SECRET_KEY, "request", "dpo", NOW, POLICY)
    assert (result.action, result.customer_id, result.records, result.verified) == ("erased", cid, 1, True)
    assert bytes_containing(db_files(tmp_path), [SECRET_KEY]) == {}
    assert store.query("SELECT status FROM customers WHERE customer_id = ?", [cid]).item() == "live"
    assert store.current_xref().filter(pl.col("customer_id") == cid)["source_key"].to_list() == ["C1"]
    held = store.erase_record("core", "C1", "request", "dpo", NOW, POLICY)
    assert (held.action, held.relationship_open) == ("restricted", True)


@pytest.mark.parametrize(
    ("mode", "kept", "rejected"),
    [("quarantine", ["<new@qq.com>"], 2), ("flag", ["<new@qq.com>", "C9", SECRET_KEY], 0)],
)
def test_re_arrival_is_caught(
    store: ErasureStore, tmp_path: Path, mode: str, kept: list[str], rejected: int
) -> None:
    cid = populate(store, tmp_path, ("mail",))
    store.erase_customer(cid, "request", "dpo", NOW, POLICY)
    policy = POLICY.model_copy(update={"re_arrival": mode})
    again = frame(
        [
            person("mail", SECRET_KEY, NAME, ID_NUMBER, MOBILE),  # same key
            person("mail", "<new@qq.com>", "赵六", "440101199202024567", "13500003333"),
            person("mail", "C9", "欧阳 秘密", ID_NUMBER.replace("1234", "1234 "), "13999999999"),  # same ID
        ]
    )
    kept_frame, rejects = store.filter_erased(again, "mail", policy)
    assert sorted(kept_frame["source_key"].to_list()) == sorted(kept)
    assert len(rejects) == rejected
    assert all(r.reason == "erased on 2026-03-01: re-arrival" and r.source_key is None for r in rejects)
    flagged = kept_frame.filter(pl.col("dq_flags").list.contains(RE_ARRIVAL_FLAG))["source_key"]
    assert sorted(flagged.to_list()) == sorted(k for k in kept if k != "<new@qq.com>")


def test_restricted_record_keeps_arriving(store: ErasureStore, tmp_path: Path) -> None:
    cid = populate(store, tmp_path, ("core",))
    store.erase_customer(cid, "request", "dpo", NOW, POLICY)
    same = frame([person("core", "C1", NAME, ID_NUMBER, MOBILE), *OTHERS["core"]])
    kept, rejects = store.filter_erased(same, "core", POLICY)
    assert (kept.height, rejects) == (2, [])


def row(source: str, ended: bool, ended_on: date | None) -> dict[str, object]:
    return {"rid": 1, "source": source, "ended": ended, "ended_on": ended_on}


@pytest.mark.parametrize(
    ("records", "action", "until"),
    [
        ([row("mail", False, None)], "erased", None),
        ([row("core", False, None)], "restricted", None),
        ([row("core", True, date(2020, 1, 1))], "erased", date(2025, 1, 1)),
        ([row("core", True, date(2022, 1, 1))], "restricted", date(2027, 1, 1)),
        (
            [row("core", True, date(2019, 1, 1)), row("core", True, date(2022, 1, 1))],
            "restricted",
            date(2027, 1, 1),
        ),
        ([row("core", True, date(2019, 1, 1)), row("core", False, None)], "restricted", None),
        ([row("mail", False, None), row("core", True, date(2019, 1, 1))], "erased", date(2024, 1, 1)),
        ([], "erased", None),
    ],
)
def test_decide(records: list[dict[str, object]], action: str, until: date | None) -> None:
    got = decide(pl.DataFrame(records, schema=DECISION_INPUT), POLICY, date(2026, 3, 1))
    assert (got.action, got.hold_until) == (action, until)


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (date(2020, 2, 29), 5, date(2025, 2, 28)),
        (date(2020, 2, 29), 4, date(2024, 2, 29)),
        (date(2021, 3, 1), 5, date(2026, 3, 1)),
    ],
)
def test_add_years(day: date, years: int, expected: date) -> None:
    assert add_years(day, years) == expected


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("retention_years: 7\naml_sources: [a]\n", True),
        ("retention_years: -1\n", False),
        ("retain: 5\n", False),
    ],
)
def test_policy_is_validated(tmp_path: Path, text: str, ok: bool) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(text)
    if ok:
        assert load_retention(path).retention_years == 7
    else:
        with pytest.raises(MdmError, match="invalid retention policy"):
            load_retention(path)
    assert load_retention().retention_years == 5


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--customer", "CUSTOMER", "--reason", "r1"], 0, "erased customer"),
        (["--customer", "NOPE", "--reason", "r1"], 1, "unknown customer"),
        (["--customer", "CUSTOMER"], 1, "--reason is required"),
        (["release-holds"], 0, "0 holds ended"),
    ],
)
def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, says: str) -> None:
    import mdm.erasure_cli as cli

    monkeypatch.setattr(cli, "_open", lambda db: ErasureStore(db))
    s = ErasureStore(tmp_path / "db.duckdb")
    cid = populate(s, tmp_path, ("mail",))
    s.close()
    policy = tmp_path / "policy.yaml"
    policy.write_text("aml_sources: [core]\n")
    argv = ["--db", str(tmp_path / "db.duckdb"), "--policy", str(policy)]
    argv += [cid if a == "CUSTOMER" else a for a in args]
    out = CliRunner().invoke(erase_app, argv)
    assert out.exit_code == code, out.output
    assert says in out.output
