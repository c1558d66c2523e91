"""Column mapping, row guards and file discovery of the ingest path."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mdm.config import SourceConfig
from mdm.errors import MdmError, SourceError
from mdm.ingest import check_unique_keys, discover, guard_rows
from mdm.schema import RAW_SCHEMA
from mdm.sources.mapping import map_columns


def cfg(**over: object) -> SourceConfig:
    base: dict[str, object] = {
        "name": "crm",
        "format": "delimited",
        "pattern": "crm*.txt",
        "natural_key": "key",
        "columns": {"name": "姓名", "mobile": ["手机", "手机2"], "email": "mails"},
    }
    return SourceConfig.model_validate(base | over)


NATIVE = pl.DataFrame(
    {
        "key": [" 1", "2"],
        "姓名": ["张伟 ", ""],
        "手机": ["138 1234 5678", None],
        "手机2": ["", "139"],
        "mails": [["a@qq.com", ""], None],
        "_locator": ["line 2", "line 3"],
        "_flags": [["id_number:excel_precision_loss"], None],
    },
    schema_overrides={"mails": pl.List(pl.String)},
)


def test_map_columns_builds_the_raw_schema() -> None:
    raw = map_columns(NATIVE, cfg(), "crm.txt")
    assert raw.schema == pl.Schema(RAW_SCHEMA)
    assert raw["source"].to_list() == ["crm", "crm"]
    assert raw["source_key"].to_list() == ["1", "2"]
    assert raw["name"].to_list() == ["张伟", None]
    assert raw["mobile"].to_list() == [["138 1234 5678"], ["139"]]
    assert raw["email"].to_list() == [["a@qq.com"], []]
    assert raw["dq_flags"].to_list() == [["id_number:excel_precision_loss"], []]
    assert raw["locator"].to_list() == ["line 2", "line 3"]
    assert raw["id_number"].null_count() == 2


@pytest.mark.parametrize(
    ("columns", "missing"),
    [({"name": "客户名"}, "客户名"), ({"mobile": ["手机", "电话"]}, "电话")],
)
def test_map_columns_names_missing_columns(columns: dict[str, object], missing: str) -> None:
    with pytest.raises(SourceError, match=missing) as err:
        map_columns(NATIVE, cfg(columns=columns), "crm.txt")
    assert "crm.txt" in str(err.value)


def test_unknown_canonical_field_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown canonical fields"):
        cfg(columns={"nmae": "姓名"})


def raw(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame([{c: r.get(c) for c in RAW_SCHEMA} for r in rows], schema=RAW_SCHEMA)


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"source_key": None}, "source_key", "no key"),
        ({"source_key": ""}, "source_key", "no key"),
        ({"source_key": "1", "name": "张" * 10_000}, "name", "longer than 100 characters (10000)"),
        ({"source_key": "1", "address": "路" * 301}, "address", "longer than 300"),
        ({"source_key": "1", "company": "x" * 201}, "company", "longer than 200"),
    ],
)
def test_guard_rows_quarantines_with_reason(row: dict[str, object], field: str, reason: str) -> None:
    ok = {"source_key": "9", "name": "王芳", "file": "f.txt", "locator": "line 2"}
    frame = raw([ok, {"file": "f.txt", "locator": "line 3", **row}])
    kept, rejects = guard_rows(frame, "f.txt")
    assert kept["source_key"].to_list() == ["9"]
    assert len(rejects) == 1
    assert (rejects[0].file, rejects[0].locator, rejects[0].field) == ("f.txt", "line 3", field)
    assert reason in rejects[0].reason
    assert "张张" not in rejects[0].reason


def test_duplicate_keys_refuse_the_file() -> None:
    frame = raw(
        [
            {"source_key": "7", "file": "f.txt", "locator": "line 2"},
            {"source_key": "8", "file": "f.txt", "locator": "line 3"},
            {"source_key": "7", "file": "f.txt", "locator": "line 9"},
        ]
    )
    with pytest.raises(SourceError, match="line 2, line 9"):
        check_unique_keys(frame, "crm")
    check_unique_keys(frame.head(2), "crm")


def test_discover_by_pattern_and_forced_source(tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir()
    for name in ("crm_a.txt", "mail/1.eml", "truth.csv", "notes.doc"):
        (tmp_path / name).write_text("x")
    sources = {"crm": cfg(), "mail": cfg(name="mail", format="eml", pattern="mail/*.eml")}
    found, unclaimed = discover([tmp_path], sources)
    assert {k: [p.name for p in v] for k, v in found.items()} == {"crm": ["crm_a.txt"], "mail": ["1.eml"]}
    assert [p.name for p in unclaimed] == ["notes.doc"]
    forced, _ = discover([tmp_path / "notes.doc"], sources, source="crm")
    assert [p.name for p in forced["crm"]] == ["notes.doc"]
    with pytest.raises(MdmError, match="unknown source"):
        discover([tmp_path], sources, source="nope")
    with pytest.raises(MdmError, match="no such file"):
        discover([tmp_path / "missing"], sources)
