"""Outlook contacts CSV reader: the extra delivery, BOM, multi-line notes, 0/0/00, names, bad input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mdm.config import DEFAULT_CONFIG_DIR, SourceConfig, load_source_config
from mdm.errors import SourceError
from mdm.sources.mapping import map_columns
from mdm.sources.outlook import full_name, note_id_number, read_outlook_csv

ID_NUMBER = "610113200912039598"
HEADER = [
    "First Name",
    "Middle Name",
    "Last Name",
    "E-mail Address",
    "E-mail 2 Address",
    "Home Phone",
    "Business Phone",
    "Mobile Phone",
    "Other Phone",
    "Company",
    "Job Title",
    "Home Street",
    "Home City",
    "Home State",
    "Birthday",
    "Notes",
]


@pytest.fixture(scope="module")
def cfg() -> SourceConfig:
    return load_source_config(DEFAULT_CONFIG_DIR / "outlook_contacts.yaml")


def csv_bytes(rows: list[list[str]], bom: bool = True) -> bytes:
    """An Outlook-style export: every field quoted, CRLF, UTF-8 (with BOM by default)."""
    lines = [",".join(f'"{v}"' for v in row) for row in [HEADER, *rows]]
    return (b"\xef\xbb\xbf" if bom else b"") + ("\r\n".join(lines) + "\r\n").encode("utf-8")


def contact(
    first: str, last: str, birthday: str = "0/0/00", notes: str = "", mobile: str = "13691549371"
) -> list[str]:
    row = dict.fromkeys(HEADER, "")
    row |= {
        "First Name": first,
        "Last Name": last,
        "Birthday": birthday,
        "Notes": notes,
        "Mobile Phone": mobile,
    }
    row |= {"Home Phone": "0571-4024236", "E-mail Address": "a@163.com", "E-mail 2 Address": "b@qq.com"}
    row |= {"Home Street": "武侯区人民南路77号", "Home City": "成都市", "Home State": "四川省"}
    return [row[h] for h in HEADER]


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "outlook_contacts.csv"
    path.write_bytes(data)
    return path


def test_extra_keys_equal_truth(extra_dir: Path, cfg: SourceConfig) -> None:
    result = read_outlook_csv(extra_dir / "outlook_contacts.csv", cfg)
    truth = pl.read_csv(extra_dir / "truth.csv", infer_schema=False).filter(
        pl.col("source") == "outlook_contacts"
    )
    assert result.frame.height == 300
    assert result.rejects == []
    assert sorted(result.frame["row_number"], key=int) == sorted(truth["source_key"], key=int)
    assert result.frame["Birthday"].drop_nulls().str.contains("0/0/00", literal=True).sum() == 0


def test_rows_notes_and_mapping(tmp_path: Path, cfg: SourceConfig) -> None:
    rows = [
        contact("霞娜", "蔡", "2/13/1959"),
        contact("磊斌", "朱", notes=f"周末方便\r\n证件：{ID_NUMBER}"),
        contact("Peng", "Sun", "1977/9/30", notes="介绍人：蒋先生\r\n喜欢电话联系\r\n"),
        contact("Liu", "Hongying"),
    ]
    result = read_outlook_csv(write(tmp_path, csv_bytes(rows)), cfg)
    frame = result.frame
    assert frame["row_number"].to_list() == ["1", "2", "3", "4"]
    assert frame["_locator"].to_list() == [
        "row 1 (line 2)",
        "row 2 (line 3)",
        "row 3 (line 5)",
        "row 4 (line 8)",
    ]
    assert frame["Birthday"].to_list() == ["2/13/1959", None, "1977/9/30", None]
    raw = map_columns(frame, cfg, "outlook_contacts.csv")
    assert raw["name"].to_list() == ["蔡霞娜", "朱磊斌", "Peng Sun", "Liu Hongying"]
    assert raw["id_number"].to_list() == [None, ID_NUMBER, None, None]
    first = raw.row(0, named=True)
    assert {k: first[k] for k in EXPECTED_FIRST} == EXPECTED_FIRST


EXPECTED_FIRST = {
    "mobile": ["13691549371"],
    "phone": ["0571-4024236"],
    "email": ["a@163.com", "b@qq.com"],
    "province": "四川省",
    "city": "成都市",
    "address": "武侯区人民南路77号",
    "birth_date": "2/13/1959",
}


def test_without_bom(tmp_path: Path, cfg: SourceConfig) -> None:
    frame = read_outlook_csv(write(tmp_path, csv_bytes([contact("悦", "陈")], bom=False)), cfg).frame
    assert frame.select("First Name", "full_name").row(0) == ("悦", "陈悦")


@pytest.mark.parametrize(
    ("length", "field"),
    [(300, "name"), (10_000, "First Name")],
    ids=["over-name-limit", "over-any-column-limit"],
)
def test_long_name_is_rejected(tmp_path: Path, cfg: SourceConfig, length: int, field: str) -> None:
    result = read_outlook_csv(
        write(tmp_path, csv_bytes([contact("x" * length, "陈"), contact("悦", "陈")])), cfg
    )
    assert result.frame["row_number"].to_list() == ["2"]
    assert [(r.locator, r.field) for r in result.rejects] == [("row 1 (line 2)", field)]
    assert "x" * 50 not in result.rejects[0].reason


@pytest.mark.parametrize(
    ("first", "middle", "last", "name"),
    [
        ("霞娜", "", "蔡", "蔡霞娜"),
        ("蔡", "", "霞娜", "霞娜蔡"),
        ("Peng", "", "Sun", "Peng Sun"),
        ("Mary", "Ann", "Lee", "Mary Ann Lee"),
        ("", "", "", None),
    ],
)
def test_full_name(first: str, middle: str, last: str, name: str | None) -> None:
    frame = pl.DataFrame({"f": [first], "m": [middle], "l": [last]})
    assert frame.select(full_name(pl.col("f"), pl.col("m"), pl.col("l")).alias("n"))["n"].item() == name


@pytest.mark.parametrize(
    ("note", "id_number"),
    [
        (f"周末方便\r\n证件：{ID_NUMBER}", ID_NUMBER),
        ("证件: 51010719820621698x", "51010719820621698x"),
        ("身份证 110102730405693", "110102730405693"),
        ("介绍人：蒋先生", None),
        ("证件：1234567890123456789", None),
    ],
)
def test_note_id_number(note: str, id_number: str | None) -> None:
    assert pl.select(note_id_number(pl.lit(note))).item() == id_number


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (csv_bytes([contact("a", "b", notes="line one\r\nline")])[:-10], "truncated"),
        (b'"Name","Phone"\r\n"A","1"\r\n', "not an Outlook contacts export"),
        (csv_bytes([contact("a", "b")]) + b"\x00\x00", "binary"),
        (csv_bytes([contact("霞娜", "蔡")], bom=False).decode("utf-8").encode("gbk"), "wrong encoding"),
    ],
    ids=["empty", "truncated", "other-csv", "binary", "gbk"],
)
def test_unreadable(tmp_path: Path, cfg: SourceConfig, data: bytes, words: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(SourceError) as info:
        read_outlook_csv(path, cfg)
    assert info.value.file == str(path)
    assert words in info.value.message
    assert "13691549371" not in str(info.value)
