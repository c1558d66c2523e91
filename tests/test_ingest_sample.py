"""Ingest of the shared sample and extra delivery: every record, exactly once, nothing on re-ingest."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from mdm.config import load_sources
from mdm.errors import SourceError
from mdm.ingest import ingest_paths
from mdm.store import Store


def keys(store: Store) -> pl.DataFrame:
    return store.current_records(["source", "source_key"]).sort("source", "source_key")


def truth_keys(folder: Path) -> pl.DataFrame:
    truth = pl.read_csv(folder / "truth.csv", schema_overrides={"source_key": pl.String})
    return truth.select("source", "source_key").sort("source", "source_key")


def test_sample_ingests_every_record_once(sample_dir: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        results, unclaimed = ingest_paths(store, [sample_dir], load_sources())
        assert unclaimed == []
        assert sum(r.n_new for r in results) == 5426
        assert keys(store).equals(truth_keys(sample_dir))
        again, _ = ingest_paths(store, [sample_dir], load_sources())
        assert sum(r.n_new + r.n_changed + r.n_ended for r in again) == 0
        assert store.query("SELECT count(*) FROM records").item() == 5426


def test_extra_delivery_ingests_every_record(extra_dir: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "x.duckdb") as store:
        results, _ = ingest_paths(store, [extra_dir], load_sources())
        assert {r.source: r.n_new for r in results} == {
            "card_system": 400,
            "mail_files": 40,
            "outlook_contacts": 300,
        }
        assert keys(store).equals(truth_keys(extra_dir))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("core_banking.dat", lambda b: b[: len(b) // 2]),
        ("wealth_app.jsonl", lambda b: b"\x00\xff\xfe garbage " * 50),
        ("branch_crm.xlsx", lambda b: b"PK\x03\x04 not really a workbook"),
        ("advisor_contacts.vcf", lambda b: "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:张三\r\n".encode("utf-16")),
    ],
)
def test_bad_file_leaves_store_unchanged(sample_dir: Path, tmp_path: Path, name: str, damage) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good"
    shutil.copytree(sample_dir, good)
    (good / "truth.csv").unlink()
    with Store(tmp_path / "s.duckdb") as store:
        ingest_paths(store, [good], load_sources())
        before = store.query("SELECT count(*) AS n, max(batch_id) AS b FROM records").row(0)
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / name).write_bytes(damage((good / name).read_bytes()))
        with pytest.raises(SourceError) as err:
            ingest_paths(store, [bad], load_sources())
        assert name in str(err.value)
        after = store.query("SELECT count(*) AS n, max(batch_id) AS b FROM records").row(0)
        assert after == before
        assert store.query("SELECT count(*) FROM current_records").item() == 5426
