"""The store: versioned, idempotent, all-or-nothing ingest; encryption at rest."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mdm.errors import MdmError, RowReject
from mdm.schema import RAW_SCHEMA
from mdm.store import Store
from mdm.store.store import StoreError


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """A raw canonical frame with the given values and every other column null."""
    full = [{c: r.get(c) for c in RAW_SCHEMA} for r in rows]
    return pl.DataFrame(full, schema=RAW_SCHEMA)


def people(names: dict[str, str]) -> pl.DataFrame:
    return frame(
        [
            {"source": "crm", "source_key": k, "name": v, "mobile": ["13812345678"], "dq_flags": []}
            for k, v in names.items()
        ]
    )


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "crm.csv"
    p.write_text("x")
    return p


def counts(store: Store) -> tuple[int, int]:
    return (
        store.query("SELECT count(*) FROM records").item(),
        store.query("SELECT count(*) FROM current_records").item(),
    )


def test_versioned_idempotent_ingest(tmp_path: Path, src: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        first = store.ingest_batch("crm", [src], people({"1": "张伟", "2": "王芳"}), [])
        assert (first.n_new, first.n_changed, first.n_unchanged) == (2, 0, 0)
        again = store.ingest_batch("crm", [src], people({"1": "张伟", "2": "王芳"}), [])
        assert (again.n_new, again.n_changed, again.n_unchanged) == (0, 0, 2)
        assert counts(store) == (2, 2)
        changed = store.ingest_batch("crm", [src], people({"1": "张伟", "2": "王芳芳"}), [])
        assert (changed.n_new, changed.n_changed) == (0, 1)
        assert counts(store) == (3, 2)
        cur = store.current_records(["source_key", "name", "version"]).sort("source_key")
        assert cur.rows() == [("1", "张伟", 1), ("2", "王芳芳", 2)]


def test_full_extract_end_dates_missing(tmp_path: Path, src: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest_batch("crm", [src], people({"1": "张伟", "2": "王芳", "3": "李娜"}), [])
        res = store.ingest_batch("crm", [src], people({"1": "张伟", "3": "李娜"}), [])
        assert res.n_ended == 1
        assert sorted(store.current_records(["source_key"])["source_key"]) == ["1", "3"]
        back = store.ingest_batch("crm", [src], people({"1": "张伟", "2": "王芳", "3": "李娜"}), [])
        assert back.n_changed == 1
        delta = store.ingest_batch("crm", [src], people({"1": "张伟"}), [], extract_kind="delta")
        assert delta.n_ended == 0


def test_rids_are_stable_per_key(tmp_path: Path, src: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest_batch("crm", [src], people({"a": "张伟"}), [])
        store.ingest_batch("app", [src], people({"a": "张伟"}), [])
        store.ingest_batch("crm", [src], people({"a": "张伟伟", "b": "王芳"}), [])
        keys = store.query("SELECT source, source_key, rid FROM record_keys ORDER BY rid").rows()
        assert keys == [("crm", "a", 1), ("app", "a", 2), ("crm", "b", 3)]


def test_failed_batch_changes_nothing(tmp_path: Path, src: Path) -> None:
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest_batch(
            "crm", [src], people({"1": "张伟"}), [RowReject(str(src), "line 3", "name", "long")]
        )
        before = (store.batches().height, *counts(store), store.query("SELECT count(*) FROM rejects").item())
        dup = pl.concat([people({"1": "张伟"}), people({"1": "张伟"})])
        with pytest.raises(StoreError, match="duplicate source keys"):
            store.ingest_batch("crm", [src], dup, [])
        with pytest.raises(RuntimeError, match="crash after the insert"), store.transaction():
            store.ingest_batch("crm", [src], people({"9": "赵六"}), [])
            raise RuntimeError("crash after the insert")
        after = (store.batches().height, *counts(store), store.query("SELECT count(*) FROM rejects").item())
        assert after == before


def test_dq_summary_counts_flags_and_rejects(tmp_path: Path, src: Path) -> None:
    f = people({"1": "张伟", "2": "王芳"}).with_columns(
        pl.Series(
            "dq_flags", [["id_number:invalid_checksum"], ["id_number:invalid_checksum", "mobile:invalid"]]
        )
    )
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest_batch("crm", [src], f, [RowReject(str(src), "line 9", "name", "too long")])
        got = {(r[1], r[2]): r[3] for r in store.dq_summary().rows()}
        assert got == {
            ("id_number", "invalid_checksum"): 2,
            ("mobile", "invalid"): 1,
            ("name", "rejected"): 1,
        }


SECRET_NAME, SECRET_ID, SECRET_PHONE = "欧阳秘密", "110105199001011234", "13987654321"


def test_encrypted_store_has_no_plaintext(tmp_path: Path, src: Path) -> None:
    db = tmp_path / "enc.duckdb"
    rows = frame(
        [
            {
                "source": "crm",
                "source_key": "1",
                "name": SECRET_NAME,
                "id_number": SECRET_ID,
                "mobile": [SECRET_PHONE],
                "dq_flags": [],
            }
        ]
    )
    with Store(db, key="correct horse") as store:
        store.ingest_batch("crm", [src], rows, [])
        out = tmp_path / "enc.duckdb.export.parquet"
        assert store.export_parquet("SELECT name, id_number, mobile FROM records", out) == 1
        assert store.read_parquet(out)["name"].to_list() == [SECRET_NAME]
    blobs = [p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("enc.duckdb")]
    assert len(blobs) >= 2
    for blob in blobs:
        for secret in (SECRET_NAME.encode(), SECRET_ID.encode(), SECRET_PHONE.encode()):
            assert secret not in blob
    with Store(db, key="correct horse") as store:
        assert store.current_records(["name"])["name"].to_list() == [SECRET_NAME]
    with pytest.raises(MdmError, match="wrong MDM_DB_KEY"):
        Store(db, key="wrong key")
    with pytest.raises(MdmError, match="encrypted"):
        Store(db)


def test_plain_store_does_hold_plaintext(tmp_path: Path, src: Path) -> None:
    """The encryption test above could not fail silently: without a key the values are visible."""
    db = tmp_path / "plain.duckdb"
    rows = frame([{"source": "crm", "source_key": "1", "name": SECRET_NAME, "dq_flags": []}])
    with Store(db) as store:
        store.ingest_batch("crm", [src], rows, [])
        store.con.execute("CHECKPOINT")
    assert SECRET_NAME.encode() in db.read_bytes()
