"""Delimited GBK reader (card system extract): the shipped file, and generated files per edge case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from mdm.config import DEFAULT_CONFIG_DIR, load_source_config
from mdm.errors import SourceError
from mdm.sources.delimited import read_delimited

CFG = load_source_config(DEFAULT_CONFIG_DIR / "card_system.yaml")
ID = "110105199001011234"
HEADER = "H|CARDSYS|20261031|V2"


def row(key: str = "CC000001", name: str = "王勇", id_no: str = ID) -> str:
    return f"{key}|{name}|男|{id_no}|13800138000|6228480000000000|北京市西城区金融大街1号"


def extract(lines: list[str], encoding: str = "gbk", eol: str = "\r\n") -> bytes:
    return (eol.join(lines) + eol).encode(encoding)


def good(n: int) -> list[str]:
    return [HEADER, *[row(key=f"CC{i:06d}") for i in range(1, n + 1)], f"T|{n}"]


def test_extra_delivery_reads_every_record(extra_dir: Path) -> None:
    result = read_delimited(extra_dir / "card_system.txt", CFG)
    truth = pl.read_csv(extra_dir / "truth.csv", schema_overrides={"source_key": pl.String})
    keys = truth.filter(pl.col("source") == "card_system")["source_key"]
    assert result.frame.height == 400
    assert set(result.frame["card_cust_key"]) == set(keys)
    assert result.rejects == []
    assert result.meta == {"system": "CARDSYS", "version": "V2", "extract_date": "2026-10-31"}


@pytest.mark.parametrize(
    ("data", "check"),
    [
        (extract(good(2)), lambda r: r.frame["card_cust_key"].to_list() == ["CC000001", "CC000002"]),
        (extract(good(2), eol="\n"), lambda r: r.frame["_locator"].to_list() == ["line 2", "line 3"]),
        (extract(good(1)), lambda r: r.frame.row(0, named=True)["name"] == "王勇"),
        (extract(good(1)), lambda r: r.frame.row(0, named=True)["sex"] == "男"),
        (extract([HEADER, row(id_no=""), "T|1"]), lambda r: r.frame["id_number"][0] is None),
        (extract([HEADER, row(), "", "T|1"]), lambda r: r.frame.height == 1),
        (extract(good(1)) + b"\r\n\r\n", lambda r: r.frame.height == 1),
        (extract([HEADER, "T|0"]), lambda r: r.frame.height == 0),
    ],
)
def test_reads_generated_extract(tmp_path: Path, data: bytes, check: Callable[..., bool]) -> None:
    path = tmp_path / "card_system.txt"
    path.write_bytes(data)
    assert check(read_delimited(path, CFG))


@pytest.mark.parametrize(
    ("data", "message", "locator"),
    [
        (extract([HEADER, row(), "T|2"]), "trailer states 2", "line 3"),
        (extract(good(3)[:-1]), "not the trailer", "line 4"),
        (extract(good(3))[:-40], "not the trailer", "line 4"),
        (extract(["garbage", row(), "T|1"]), "not a header", "line 1"),
        (extract(good(2), encoding="utf-8"), "the file is UTF-8 text", None),
        (b"\x00\x01\x02 binary garbage" * 20, "binary", "line 1"),
        (extract([HEADER, row(key="CC1"), row(key="CC1"), "T|2"]), "repeats", "line 2"),
        (extract([HEADER, row().replace("|", ","), "T|1"]), "no detail line has the 7", "line 2"),
        (b"", "empty", None),
    ],
)
def test_refuses_broken_extract(tmp_path: Path, data: bytes, message: str, locator: str | None) -> None:
    path = tmp_path / "card_system.txt"
    path.write_bytes(data)
    with pytest.raises(SourceError) as err:
        read_delimited(path, CFG)
    assert message in str(err.value)
    assert err.value.file == str(path)
    assert err.value.locator == locator
    assert ID not in str(err.value)


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        (row(key=""), "source_key", "no key"),
        (row(key="CC 1"), "source_key", "does not look like a key"),
        (row(name="王" * 10_000), "name", "longer than 200"),
        (row() + "|extra", None, "8 fields"),
    ],
)
def test_rejects_bad_rows(tmp_path: Path, bad: str, field: str | None, reason: str) -> None:
    path = tmp_path / "card_system.txt"
    path.write_bytes(extract([HEADER, row(key="CC9"), bad, "T|2"]))
    result = read_delimited(path, CFG)
    assert result.frame["card_cust_key"].to_list() == ["CC9"]
    assert len(result.rejects) == 1
    assert (result.rejects[0].field, result.rejects[0].locator) == (field, "line 3")
    assert reason in result.rejects[0].reason


def test_undecodable_bytes_are_flagged(tmp_path: Path) -> None:
    lines = [HEADER, *[row(key=f"CC{i}") for i in range(30)], "T|30"]
    data = extract(lines).replace("王勇".encode("gbk"), b"\x81\x20", 1)
    path = tmp_path / "card_system.txt"
    path.write_bytes(data)
    frame = read_delimited(path, CFG).frame
    assert frame["_flags"][0].to_list() == ["name:bad_encoding"]
    assert frame["_flags"].list.len().sum() == 1
