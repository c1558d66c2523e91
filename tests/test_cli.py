"""The command line: --db / MDM_DB on every command, clear errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import SampleRun, copy_store
from typer.testing import CliRunner

from mdm.cli import app
from mdm.store import Store

runner = CliRunner()


def test_sources_lists_the_shipped_configuration() -> None:
    result = runner.invoke(app, ["sources"])
    assert result.exit_code == 0, result.output
    for name in ("branch_crm", "advisor_mail", "advisor_contacts", "core_banking", "wealth_app"):
        assert name in result.output


def test_ingest_then_dq(sample_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    result = runner.invoke(app, ["ingest", str(sample_dir), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "core_banking" in result.output and "1500" in result.output
    again = runner.invoke(app, ["ingest", str(sample_dir)], env={"MDM_DB": str(db)})
    assert again.exit_code == 0, again.output
    dq = runner.invoke(app, ["dq", "--db", str(db)])
    assert dq.exit_code == 0, dq.output
    assert "id_number" in dq.output


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["ingest", "/nonexistent/folder"], "no such file", 1),
        (["ingest", "{tmp}", "--source", "nope"], "unknown source", 1),
    ],
)
def test_errors_are_clear(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--db", str(tmp_path / "e.duckdb")]
    result = runner.invoke(app, argv)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "k.duckdb"
    ok = runner.invoke(app, ["dq", "--db", str(db)], env={"MDM_DB_KEY": "right"})
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["dq", "--db", str(db)], env={"MDM_DB_KEY": "wrong"})
    assert bad.exit_code == 1
    assert "wrong MDM_DB_KEY" in bad.output


@pytest.mark.parametrize(("flags", "id_column"), [([], "customer_id"), (["--as-clusters"], "cluster_id")])
def test_export_xref_writes_every_current_record(
    sample_resolved: SampleRun, tmp_path: Path, flags: list[str], id_column: str
) -> None:
    db = copy_store(sample_resolved.db, tmp_path / "db")
    out = tmp_path / "xref.csv"
    result = runner.invoke(app, ["export", "xref", "--db", str(db), "--out", str(out), *flags])
    assert result.exit_code == 0, result.output
    exported = pl.read_csv(out, infer_schema=False)
    assert exported.columns == ["source", "source_key", id_column]
    with Store(db) as store:
        current = store.current_xref().select("source", "source_key", "customer_id")
    assert exported.height == current.height > 0
    assert (
        exported.rename({id_column: "customer_id"})
        .sort("source", "source_key")
        .equals(current.sort("source", "source_key"))
    )
