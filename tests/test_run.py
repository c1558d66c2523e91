"""`mdm run` end to end on the shared sample: quality, coverage, stable IDs across deliveries."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import SampleRun, copy_store

from golden_record.ids import is_valid_customer_id
from mdm.config import load_sources
from mdm.ingest import ingest_paths
from mdm.metrics import score_frames
from mdm.pipeline import run_batch
from mdm.store import Store

FIRST = ("branch_crm.xlsx", "core_banking.dat", "advisor_contacts.vcf")
SECOND = ("advisor_mail.mbox", "wealth_app.jsonl")


@pytest.fixture(scope="module")
def model_path(sample_model: Path) -> Path:
    """One model trained on the whole sample with the production settings (no truth involved), shared by the
    session."""
    return sample_model


def truth(sample_dir: Path) -> pl.DataFrame:
    return pl.read_csv(sample_dir / "truth.csv", schema_overrides={"source_key": pl.String})


def split_delivery(sample_dir: Path, tmp: Path) -> tuple[Path, Path]:
    halves = []
    for name, files in (("first", FIRST), ("second", SECOND)):
        folder = tmp / name
        folder.mkdir()
        for f in files:
            shutil.copy(sample_dir / f, folder / f)
        halves.append(folder)
    return halves[0], halves[1]


def test_sample_run_quality_and_coverage(
    sample_dir: Path, sample_resolved: SampleRun, tmp_path: Path, model_path: Path
) -> None:
    with Store(copy_store(sample_resolved.ingested, tmp_path)) as store:
        summary = run_batch(store, model_path=model_path)
        xref = store.current_xref()
    assert summary.records == 5426
    assert xref.height == 5426
    assert xref.select("source", "source_key").is_unique().all()
    assert xref["customer_id"].map_elements(is_valid_customer_id, return_dtype=pl.Boolean).all()
    s = score_frames(truth(sample_dir), xref.rename({"customer_id": "cluster_id"}))
    assert s.records == 5426
    assert s.precision >= 0.995
    assert s.false_merge_clusters <= 5
    assert s.f1 >= 0.98


def test_two_deliveries_keep_ids(sample_dir: Path, tmp_path: Path, model_path: Path) -> None:
    first, second = split_delivery(sample_dir, tmp_path)
    with Store(tmp_path / "s.duckdb") as store:
        ingest_paths(store, [first], load_sources())
        run_batch(store, model_path=model_path)
        before = store.current_xref().select("rid", pl.col("customer_id").alias("old"))
        ingest_paths(store, [second], load_sources())
        run_batch(store, model_path=model_path)
        after = store.current_xref()
        customers = store.customers_frame()
        resolved = {c: store.resolve_customer_id(c) for c in customers["customer_id"]}
    joined = after.join(before, on="rid", how="left")
    single_old = (
        joined.group_by("customer_id")
        .agg(pl.col("old").drop_nulls().unique().alias("olds"))
        .filter(pl.col("olds").list.len() == 1)
        .with_columns(pl.col("olds").list.first().alias("old"))
    )
    whole = (
        before.group_by("old")
        .len("n_old")
        .join(
            joined.filter(pl.col("old").is_not_null()).group_by("old", "customer_id").len("n_new"),
            on="old",
        )
    )
    unchanged = whole.filter(pl.col("n_old") == pl.col("n_new")).select("old", "customer_id")
    kept = unchanged.join(single_old.select("customer_id", pl.col("old").alias("sole")), on="customer_id")
    assert kept.height > 1000
    assert (kept["old"] == kept["customer_id"]).all()
    assert customers["customer_id"].is_unique().all()
    live = set(customers.filter(pl.col("status") == "live")["customer_id"])
    assert all(resolved[c] in live for c in customers.filter(pl.col("status") == "retired")["customer_id"])
    assert set(after["customer_id"]) <= live


def test_rerun_without_new_data_changes_nothing(
    sample_resolved: SampleRun, tmp_path: Path, model_path: Path
) -> None:
    with Store(copy_store(sample_resolved.db, tmp_path)) as store:
        first = store.current_xref()
        events = store.query("SELECT count(*) FROM id_events").item()
        again = run_batch(store, model_path=model_path)
        assert store.current_xref().equals(first)
        assert store.query("SELECT count(*) FROM id_events").item() == events
    assert (
        sum(
            v
            for k, v in again.counts.items()
            if k in ("created", "merged_into", "split_from", "record_moved")
        )
        == 0
    )


def test_same_inputs_give_identical_ids(sample_dir: Path, tmp_path: Path, model_path: Path) -> None:
    xrefs = []
    for name in ("a", "b"):
        with Store(tmp_path / f"{name}.duckdb") as store:
            ingest_paths(store, [sample_dir], load_sources())
            run_batch(store, model_path=model_path)
            xrefs.append(store.current_xref().select("source", "source_key", "customer_id"))
    assert xrefs[0].equals(xrefs[1])
