"""Excel reader: the shipped workbook, and workbooks generated with xlsxwriter for every edge case."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import xlsxwriter

from mdm.config import DEFAULT_CONFIG_DIR, SourceConfig, load_source_config
from mdm.errors import SourceError
from mdm.sources.excel import read_excel

CFG = load_source_config(DEFAULT_CONFIG_DIR / "branch_crm.yaml")
HEADER = ["客户编号", "客户姓名", "性别", "证件类型", "证件号码", "出生日期", "手机号码", "固定电话", "电子邮箱", "联系地址", "客户经理", "开户日期", "备注"]  # fmt: skip
ID = "110105199001011234"


def record(key: str = "BR0000001", **cells: Any) -> dict[str, Any]:
    """One data row: column name -> cell value (str, int, float or datetime)."""
    return {"客户编号": key, "客户姓名": "张三", "证件号码": ID, "开户日期": datetime(2020, 1, 2), **cells}


def workbook(
    path: Path,
    sheets: dict[str, list[dict[str, Any]]],
    titles: int = 2,
    footer: Callable[[int], list[str]] = lambda n: [f"合计：{n} 条", "制表人：李四"],
    header: list[str] = HEADER,
) -> Path:
    """A branch workbook: title rows, a blank row, the header, typed data cells, footer rows."""
    wb = xlsxwriter.Workbook(str(path))
    date = wb.add_format({"num_format": "yyyy-mm-dd"})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for t in range(titles):
            ws.write_string(t, 0, f"标题 {t}")
        top = titles + 1 if titles else 0
        for c, col in enumerate(header):
            ws.write_string(top, c, col)
        for r, row in enumerate(rows, start=top + 1):
            for c, col in enumerate(header):
                value = row.get(col)
                if isinstance(value, datetime):
                    ws.write_datetime(r, c, value, date)
                elif isinstance(value, int | float):
                    ws.write_number(r, c, value)
                elif value is not None:
                    ws.write_string(r, c, value)
        for i, text in enumerate(footer(len(rows))):
            ws.write_string(top + len(rows) + 2 + i, 0, text)
    wb.close()
    return path


def test_sample_reads_every_record(sample_dir: Path) -> None:
    result = read_excel(sample_dir / "branch_crm.xlsx", CFG)
    truth = pl.read_csv(sample_dir / "truth.csv", schema_overrides={"source_key": pl.String})
    keys = truth.filter(pl.col("source") == "branch_crm")["source_key"]
    frame = result.frame
    assert frame.height == 1400
    assert frame["客户编号"].n_unique() == 1400
    assert set(frame["客户编号"]) == set(keys)
    assert result.rejects == []
    assert frame["_locator"][0] == "sheet 朝阳支行 row 5"
    assert frame["开户日期"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    lost = frame.filter(pl.col("_flags").list.contains("id_number:excel_precision_loss"))
    assert lost.height > 0
    assert lost["证件号码"].str.contains(r"^\d{16,}$").all()


@pytest.mark.parametrize(
    ("sheets", "titles", "check"),
    [
        ({"A": [record("BR1"), record("BR2")]}, 2, lambda r: r.frame["客户编号"].to_list() == ["BR1", "BR2"]),
        ({"A": [record("BR1")]}, 2, lambda r: r.frame["_locator"].to_list() == ["sheet A row 5"]),
        ({"A": [record("BR1")]}, 0, lambda r: r.frame["_locator"].to_list() == ["sheet A row 2"]),
        (
            {"朝阳": [record("BR1")], "海淀": [record("BR2"), record("BR3")]},
            2,
            lambda r: (
                r.frame["_locator"].to_list() == ["sheet 朝阳 row 5", "sheet 海淀 row 5", "sheet 海淀 row 6"]
            ),
        ),
        (
            {"A": [record(证件号码=440305199001061123)]},
            2,
            lambda r: r.frame["证件号码"][0] != "440305199001061123",
        ),
        (
            {"A": [record(证件号码=440305199001061123)]},
            2,
            lambda r: r.frame["_flags"][0].to_list() == ["id_number:excel_precision_loss"],
        ),
        ({"A": [record(证件号码=110105900101123)]}, 2, lambda r: r.frame["_flags"][0].to_list() == []),
        ({"A": [record(证件号码=110105900101123)]}, 2, lambda r: r.frame["证件号码"][0] == "110105900101123"),
        ({"A": [record(手机号码=13800138000)]}, 2, lambda r: r.frame["手机号码"][0] == "13800138000"),
        ({"A": [record(出生日期=datetime(1990, 1, 2))]}, 2, lambda r: r.frame["出生日期"][0] == "1990-01-02"),
        ({"A": [record(出生日期=32875)]}, 2, lambda r: r.frame["出生日期"][0] == "32875"),
        ({"A": [record(出生日期="1990年1月2日")]}, 2, lambda r: r.frame["出生日期"][0] == "1990年1月2日"),
        ({"A": [record(出生日期="19900102")]}, 2, lambda r: r.frame["出生日期"][0] == "19900102"),
        (
            {"A": [record(开户日期=datetime(2020, 1, 2, 9, 30))]},
            2,
            lambda r: r.frame["开户日期"][0] == "2020-01-02T09:30:00",
        ),
        ({"A": [record(备注=None)]}, 2, lambda r: r.frame["备注"][0] is None),
    ],
)
def test_reads_generated_workbook(
    tmp_path: Path, sheets: dict[str, list[dict[str, Any]]], titles: int, check: Callable[..., bool]
) -> None:
    assert check(read_excel(workbook(tmp_path / "branch_crm.xlsx", sheets, titles), CFG))


@pytest.mark.parametrize(
    ("rows", "field", "reason"),
    [
        ([record(""), record("BR2")], "source_key", "no key"),
        ([record("备注：以下为新客户"), record("BR2")], "source_key", "does not look like a key"),
        ([record("BR1", 客户姓名="张" * 10_000), record("BR2")], "name", "longer than 200"),
    ],
)
def test_rejects_bad_rows(tmp_path: Path, rows: list[dict[str, Any]], field: str, reason: str) -> None:
    result = read_excel(workbook(tmp_path / "branch_crm.xlsx", {"A": rows}), CFG)
    assert result.frame["客户编号"].to_list() == ["BR2"]
    assert [(r.field, r.locator) for r in result.rejects] == [(field, "sheet A row 5")]
    assert reason in result.rejects[0].reason


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: workbook(p, {"A": [record("BR1")]}, footer=lambda n: ["合计：5 条"]), "footer states 5"),
        (lambda p: workbook(p, {"A": [record("BR1"), record("BR1")]}), "repeats"),
        (lambda p: workbook(p, {"A": [record("BR1")]}, header=["编号", *HEADER[1:]]), "key column 客户编号"),
        (lambda p: workbook(p, {"A": [record("BR1")]}, header=HEADER[:-1]), "has no column 备注"),
        (lambda p: p.write_bytes(b"PK\x03\x04 not really a workbook") and p, "not a zip archive"),
        (
            lambda p: p.write_text("客户编号,客户姓名\nBR1,张三\n", encoding="utf-8") and p,
            "not a zip archive",
        ),
        (lambda p: _zip(p, {"readme.txt": b"hello"}), "no xl/workbook.xml"),
        (
            lambda p: _zip(p, {"xl/workbook.xml": b"<x/>", "xl/worksheets/sheet1.xml": b"\0" * 64 * 2**20}),
            "zip bomb",
        ),
        (lambda p: _zip(p, {"xl/workbook.xml": b"<x/>", "xl/sharedStrings.xml": b"<x/>"}), "unreadable xlsx"),
    ],
)
def test_refuses_bad_workbook(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    path = make(tmp_path / "branch_crm.xlsx")
    with pytest.raises(SourceError) as err:
        read_excel(path, CFG)
    assert message in str(err.value)
    assert err.value.file == str(path)
    assert ID not in str(err.value)


def test_inflated_size_limit_is_configurable(tmp_path: Path) -> None:
    cfg = SourceConfig.model_validate(
        {**CFG.model_dump(), "options": {**CFG.options, "max_uncompressed_mb": 1}}
    )
    path = _zip(
        tmp_path / "b.xlsx", {"xl/workbook.xml": b"<x/>", "xl/worksheets/sheet1.xml": b" " * 2 * 2**20}
    )
    with pytest.raises(SourceError, match="over the 1 MB limit"):
        read_excel(path, cfg)


def test_duplicate_error_names_both_rows(tmp_path: Path) -> None:
    path = workbook(tmp_path / "b.xlsx", {"A": [record("BR1")], "B": [record("BR2"), record("BR1")]})
    with pytest.raises(SourceError) as err:
        read_excel(path, CFG)
    assert "sheet A row 5, sheet B row 6" in str(err.value)
