"""Legal basis per source: declaration fields, the ingest refusal (nothing stored), the basis kept per batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mdm.compliance.legal import (
    ALLOW_ENV,
    LegalBasisError,
    LegalBasisWarning,
    allow_missing_basis,
    check_legal_basis,
    declaration,
)
from mdm.config import DEFAULT_CONFIG_DIR, SourceConfig, load_source_config, load_sources
from mdm.errors import MdmError
from mdm.ingest import ingest_paths
from mdm.store import Store

LEGAL_KEYS = (
    "legal_basis",
    "proof_ref",
    "purpose",
    "retention_days",
    "retention_years",
    "cross_border",
    "data_owner",
)


def wealth_cfg(**over: object) -> SourceConfig:
    """The shipped wealth_app source with some keys replaced (None removes a key)."""
    data = yaml.safe_load((DEFAULT_CONFIG_DIR / "wealth_app.yaml").read_text(encoding="utf-8"))
    for key, value in over.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return SourceConfig.model_validate(data)


def test_every_shipped_source_is_fully_declared() -> None:
    cfgs = load_sources()
    assert {n: c.missing_legal_fields() for n, c in cfgs.items()} == {n: [] for n in cfgs}
    assert {c.legal_basis for c in cfgs.values()} <= {"consent", "contract", "legal_obligation"}


@pytest.mark.parametrize(
    ("removed", "missing"),
    [
        ({"legal_basis": None}, ["legal_basis"]),
        ({"proof_ref": None, "purpose": None}, ["proof_ref", "purpose"]),
        ({"retention_years": None}, ["retention"]),
        ({"data_owner": None}, ["data_owner"]),
        ({"data_owner": "  "}, ["data_owner"]),
        ({}, []),
    ],
)
def test_missing_legal_fields(removed: dict[str, object], missing: list[str]) -> None:
    assert wealth_cfg(**removed).missing_legal_fields() == missing


@pytest.mark.parametrize(
    ("over", "days"),
    [({"retention_years": 3}, 1095), ({"retention_years": None, "retention_days": 90}, 90)],
)
def test_retention_period_days(over: dict[str, object], days: int) -> None:
    assert wealth_cfg(**over).retention_period_days == days


@pytest.mark.parametrize(
    "over",
    [{"retention_days": 10}, {"legal_basis": "because"}, {"retention_years": 0}],
)
def test_bad_declarations_are_config_errors(over: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        wealth_cfg(**over)


@pytest.mark.parametrize(
    ("env", "allowed"),
    [({ALLOW_ENV: "1"}, True), ({ALLOW_ENV: "yes"}, True), ({ALLOW_ENV: "0"}, False), ({}, False)],
)
def test_allow_setting(env: dict[str, str], allowed: bool) -> None:
    assert allow_missing_basis(env) is allowed


def test_check_refuses_or_warns() -> None:
    bad = wealth_cfg(legal_basis=None)
    with pytest.raises(LegalBasisError, match=r"wealth_app lacks legal_basis.*nothing was stored"):
        check_legal_basis([bad], allow=False)
    with pytest.warns(LegalBasisWarning, match="wealth_app"):
        assert len(check_legal_basis([bad], allow=True)) == 1
    assert check_legal_basis([wealth_cfg()], allow=False) == []


def test_declaration_is_the_basis_in_force() -> None:
    doc = json.loads(declaration(wealth_cfg()) or "")
    assert doc["basis"] == "consent" and doc["retention_days"] == 1095 and doc["cross_border"] is False
    assert declaration(wealth_cfg(legal_basis=None)) is None


def _undeclared_config(tmp_path: Path) -> Path:
    """A config folder where wealth_app declares no legal basis."""
    folder = tmp_path / "sources"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder)
    data = yaml.safe_load((folder / "wealth_app.yaml").read_text(encoding="utf-8"))
    for key in LEGAL_KEYS:
        data.pop(key, None)
    (folder / "wealth_app.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.mark.parametrize("only_that_source", [True, False])
def test_ingest_of_undeclared_source_is_refused_and_stores_nothing(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch, only_that_source: bool
) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    cfgs = load_sources(_undeclared_config(tmp_path))
    target = [sample_dir / "wealth_app.jsonl"] if only_that_source else [sample_dir]
    with Store(tmp_path / "m.duckdb") as store:
        with pytest.raises(
            MdmError, match=r"refused: no legal basis declared .*wealth_app lacks legal_basis"
        ):
            ingest_paths(store, target, cfgs)
        counts = store.query(
            "SELECT (SELECT count(*) FROM batches) AS b, (SELECT count(*) FROM records) AS r, "
            "(SELECT count(*) FROM rejects) AS j"
        ).row(0)
    assert counts == (0, 0, 0)


def test_allowed_undeclared_ingest_warns_and_stores_without_basis(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")
    cfgs = load_sources(_undeclared_config(tmp_path))
    with Store(tmp_path / "m.duckdb") as store:
        with pytest.warns(LegalBasisWarning):
            results, _ = ingest_paths(store, [sample_dir / "wealth_app.jsonl"], cfgs)
        stored = store.query("SELECT legal_basis FROM batches")["legal_basis"].to_list()
    assert results[0].n_new == 1000 and stored == [None]


def test_basis_in_force_is_stored_with_the_batch(tmp_path: Path, sample_dir: Path) -> None:
    cfg = load_source_config(DEFAULT_CONFIG_DIR / "core_banking.yaml")
    with Store(tmp_path / "m.duckdb") as store:
        ingest_paths(store, [sample_dir / "core_banking.dat"], {"core_banking": cfg})
        basis = store.query(
            """SELECT json_extract_string(b.legal_basis, '$.basis') AS basis,
                json_extract_string(b.legal_basis, '$.proof_ref') AS proof, count(*) AS n
            FROM current_records r JOIN batches b USING (batch_id) GROUP BY ALL"""
        ).rows()
    assert basis == [("legal_obligation", cfg.proof_ref, 1500)]
