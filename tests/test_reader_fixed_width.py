"""Fixed-width GB18030 reader: the shipped sample, and generated files for every edge case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from mdm.config import DEFAULT_CONFIG_DIR, SourceConfig, load_source_config
from mdm.errors import SourceError
from mdm.sources.fixed_width import read_fixed_width

CFG = load_source_config(DEFAULT_CONFIG_DIR / "core_banking.yaml")
ID = "110105199001011234"


def detail(
    key: str = "000000000001", name: str = "张三", id_no: str = ID, address: str = "北京市朝阳区"
) -> bytes:
    """One 162-byte detail line laid out as in the sample README."""

    def pad(text: str, width: int) -> bytes:
        raw = text.encode("gb18030")
        return raw + b" " * (width - len(raw))

    return (
        b"D"
        + pad(key, 12)
        + pad(name, 20)
        + b"1"
        + b"01"
        + pad(id_no, 18)
        + b"19900101"
        + pad("13800138000", 11)
        + pad("010-12345678", 15)
        + pad(address, 60)
        + b"20200101"
        + b"110105"
    )


HEADER = b"HDR20261031CORECIF".ljust(162)


def trailer(n: int) -> bytes:
    return f"TRL{n:010d}".encode().ljust(162)


def extract(lines: list[bytes], eol: bytes = b"\r\n") -> bytes:
    return eol.join(lines) + eol


def good(n: int = 3) -> list[bytes]:
    return [HEADER, *[detail(key=f"{i:012d}") for i in range(1, n + 1)], trailer(n)]


def test_sample_reads_every_record(sample_dir: Path) -> None:
    result = read_fixed_width(sample_dir / "core_banking.dat", CFG)
    truth = pl.read_csv(sample_dir / "truth.csv", schema_overrides={"source_key": pl.String})
    keys = truth.filter(pl.col("source") == "core_banking")["source_key"]
    assert result.frame.height == 1500
    assert result.frame["cust_no"].n_unique() == 1500
    assert set(result.frame["cust_no"]) == set(keys)
    assert result.meta["extract_date"] == "2026-10-31"
    assert result.frame["_locator"][0] == "line 2"
    assert result.frame["id_no"].str.contains("[０-９]").any()


@pytest.mark.parametrize(
    ("lines", "eol", "check"),
    [
        (good(3), b"\r\n", lambda r: r.frame.height == 3 and r.frame["_locator"].to_list()[-1] == "line 4"),
        (good(2), b"\n", lambda r: r.frame["cust_no"].to_list() == ["000000000001", "000000000002"]),
        (good(1), b"\r\n", lambda r: r.frame.row(0, named=True)["name"] == "张三"),
        (good(1), b"\r\n", lambda r: r.frame.row(0, named=True)["address"] == "北京市朝阳区"),
        (good(1), b"\r\n", lambda r: r.meta == {"system": "CORECIF", "extract_date": "2026-10-31"}),
        (
            [HEADER, detail(id_no="１１０１０５１９９"), trailer(1)],
            b"\r\n",
            lambda r: r.frame["id_no"][0] == "１１０１０５１９９",
        ),
        ([HEADER, trailer(0)], b"\r\n", lambda r: r.frame.height == 0),
    ],
)
def test_reads_generated_extract(
    tmp_path: Path, lines: list[bytes], eol: bytes, check: Callable[..., bool]
) -> None:
    path = tmp_path / "core_banking.dat"
    path.write_bytes(extract(lines, eol))
    assert check(read_fixed_width(path, CFG))


def _bad_name_bytes(n: int, bad: int) -> bytes:
    """n detail lines, the first ``bad`` of them with an undecodable byte pair in the name."""
    rows = [detail(key=f"{i:012d}") for i in range(1, n + 1)]
    rows[:bad] = [r[:13] + b"\x81\x20" + r[15:] for r in rows[:bad]]
    return extract([HEADER, *rows, trailer(n)])


def test_undecodable_name_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "core_banking.dat"
    path.write_bytes(_bad_name_bytes(40, 1))
    frame = read_fixed_width(path, CFG).frame
    assert frame["_flags"][0].to_list() == ["name:bad_encoding"]
    assert frame["_flags"][1].to_list() == []
    assert frame["cust_no"][0] == "000000000001"


@pytest.mark.parametrize(
    ("data", "message", "locator"),
    [
        (extract([HEADER, detail(), trailer(2)]), "trailer states 2", "line 3"),
        (extract(good(3)[:-1]), "not the trailer", "line 4"),
        (extract(good(3))[:-100], "line is", "line 5"),
        (extract([HEADER, detail()[:-3], trailer(1)]), "every line must be 162", "line 2"),
        (extract([b"XXX".ljust(162), detail(), trailer(1)]), "not a header", "line 1"),
        (extract([HEADER, detail().replace(b"D", b"X", 1), trailer(1)]), "not a detail line", "line 2"),
        (extract(good(2)).replace("张三".encode("gb18030"), "张".encode() + b" "), "do not decode", "line 2"),
        (
            extract([HEADER, detail(address="Beijing"), trailer(1)]).replace(
                "张三".encode("gb18030"), "张".encode() + b" "
            ),
            "the file is UTF-8 text",
            None,
        ),
        (b"\x00\x01\x02garbage" * 30, "binary", "line 1"),
        (_bad_name_bytes(10, 5), "do not decode as gb18030", "line 2"),
        (
            extract([HEADER, detail(key="000000000001"), detail(key="000000000001"), trailer(2)]),
            "repeats",
            "line 2",
        ),
        (b"", "empty", None),
    ],
)
def test_refuses_broken_extract(tmp_path: Path, data: bytes, message: str, locator: str | None) -> None:
    path = tmp_path / "core_banking.dat"
    path.write_bytes(data)
    with pytest.raises(SourceError) as err:
        read_fixed_width(path, CFG)
    assert message in str(err.value)
    assert err.value.file == str(path)
    assert err.value.locator == locator
    assert ID not in str(err.value)


@pytest.mark.parametrize(
    ("rows", "field", "locator"),
    [
        ([detail(key=" " * 12)], "source_key", "line 2"),
        ([detail(key="ABC")], "source_key", "line 2"),
    ],
)
def test_rejects_bad_rows(tmp_path: Path, rows: list[bytes], field: str, locator: str) -> None:
    path = tmp_path / "core_banking.dat"
    path.write_bytes(extract([HEADER, *rows, detail(key="000000000009"), trailer(len(rows) + 1)]))
    result = read_fixed_width(path, CFG)
    assert result.frame["cust_no"].to_list() == ["000000000009"]
    assert [(r.field, r.locator) for r in result.rejects] == [(field, locator)]


def test_long_value_rejected_with_configured_limit(tmp_path: Path) -> None:
    cfg = SourceConfig.model_validate(
        {**CFG.model_dump(), "options": {**CFG.options, "max_length": {"name": 2}}}
    )
    path = tmp_path / "core_banking.dat"
    path.write_bytes(extract([HEADER, detail(name="张三丰"), detail(key="000000000002"), trailer(2)]))
    result = read_fixed_width(path, cfg)
    assert result.frame.height == 1
    assert result.rejects[0].field == "name"
    assert "longer than 2" in result.rejects[0].reason
