"""vCard reader: the sample file, 2.1 quoted-printable, folding, 4.0 URIs, birthdays, bad input."""

from __future__ import annotations

import quopri
from pathlib import Path

import polars as pl
import pytest

from mdm.config import DEFAULT_CONFIG_DIR, SourceConfig, load_source_config
from mdm.errors import SourceError
from mdm.sources.mapping import map_columns
from mdm.sources.vcard import join_address, read_vcard, unfold

ID_NUMBER = "110102197304056931"


@pytest.fixture(scope="module")
def cfg() -> SourceConfig:
    return load_source_config(DEFAULT_CONFIG_DIR / "advisor_contacts.yaml")


def qp_soft_broken(text: str, width: int = 20) -> str:
    """Quoted-printable UTF-8 of ``text`` cut into lines of ``width`` with ``=`` soft breaks (may split
    a character's bytes across lines, as phone exports do)."""
    encoded = quopri.encodestring(text.encode("utf-8")).decode("ascii").replace("=\n", "")
    return "=\r\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))


CARD_21 = (
    "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:u21\r\n"
    f"N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{qp_soft_broken('刘;飞俊;;;')}\r\n"
    f"FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{qp_soft_broken('刘飞俊')}\r\n"
    "TEL;CELL:185 9697 2539\r\nTEL;HOME:010-62345678\r\nEMAIL;INTERNET:a@qq.com\r\n"
    f"ADR;HOME;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{qp_soft_broken(';;北京市朝阳区东三环中路196号6单元3002室;;;;中国')}\r\n"
    "BDAY:--1226\r\nEND:VCARD\r\n"
)
CARD_30 = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u30\r\nN:Yue;Huiliang;;;\r\nFN:Huiliang Yue\r\n"
    "TEL;TYPE=CELL:18092402009\r\nADR;TYPE=HOME:;;广东省深圳市福田区福华路192号17号院20号楼6\r\n"
    " 单元1604室;;;;中国\r\nBDAY:1975-03-22\r\nORG:华信贸易有限公司\r\n"
    f"NOTE:老客户\\, 身份证 {ID_NUMBER}\r\nEND:VCARD\r\n"
)
CARD_40 = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u40\r\nN:刘;芳;;;\r\nFN:刘芳\r\n"
    "TEL;TYPE=cell;VALUE=uri:tel:+86-153-7234-6908\r\nTEL;TYPE=home;VALUE=uri:tel:+86-10-62345678\r\n"
    "BDAY:19650216\r\nEND:VCARD\r\n"
)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "c.vcf"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_sample_keys_equal_truth(sample_dir: Path, cfg: SourceConfig) -> None:
    result = read_vcard(sample_dir / "advisor_contacts.vcf", cfg)
    truth = pl.read_csv(sample_dir / "truth.csv", infer_schema=False).filter(
        pl.col("source") == "advisor_contacts"
    )
    assert result.frame.height == 826
    assert result.rejects == []
    assert sorted(result.frame["uid"]) == sorted(truth["source_key"])
    raw = map_columns(result.frame, cfg, "advisor_contacts.vcf")
    assert raw["name"].null_count() == 0
    assert not raw["name"].str.contains("=").any()
    assert raw.filter(pl.col("mobile").list.len() == 0).height == 0


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (
            CARD_21,
            {
                "fn": "刘飞俊",
                "n_name": "刘飞俊",
                "tel_cell": ["185 9697 2539"],
                "tel_other": ["010-62345678"],
                "email": ["a@qq.com"],
                "adr": "北京市朝阳区东三环中路196号6单元3002室",
                "bday": "--1226",
                "_locator": "card 1 (line 1)",
            },
        ),
        (
            CARD_30,
            {
                "fn": "Huiliang Yue",
                "n_name": "Huiliang Yue",
                "tel_cell": ["18092402009"],
                "adr": "广东省深圳市福田区福华路192号17号院20号楼6单元1604室",
                "bday": "1975-03-22",
                "org": "华信贸易有限公司",
                "note": f"老客户, 身份证 {ID_NUMBER}",
                "note_id_number": ID_NUMBER,
            },
        ),
        (
            CARD_40,
            {
                "n_name": "刘芳",
                "tel_cell": ["+86-153-7234-6908"],
                "tel_other": ["+86-10-62345678"],
                "bday": "19650216",
            },
        ),
    ],
    ids=["v21-qp-soft-breaks", "v30-folded", "v40-tel-uri"],
)
def test_card_versions(tmp_path: Path, cfg: SourceConfig, card: str, expected: dict[str, object]) -> None:
    row = read_vcard(write(tmp_path, card), cfg).frame.row(0, named=True)
    assert {k: row[k] for k in expected} == expected


def test_lf_line_ends_and_bom(tmp_path: Path, cfg: SourceConfig) -> None:
    text = "\ufeff" + (CARD_30 + CARD_40).replace("\r\n", "\n")
    frame = read_vcard(write(tmp_path, text), cfg).frame
    assert frame["uid"].to_list() == ["u30", "u40"]
    assert frame["_locator"].to_list() == ["card 1 (line 1)", "card 2 (line 13)"]


def test_card_without_uid_is_rejected(tmp_path: Path, cfg: SourceConfig) -> None:
    result = read_vcard(write(tmp_path, CARD_30.replace("UID:u30\r\n", "") + CARD_40), cfg)
    assert result.frame["uid"].to_list() == ["u40"]
    assert [(r.locator, r.field) for r in result.rejects] == [("card 1 (line 1)", "source_key")]


def test_long_name_is_rejected(tmp_path: Path, cfg: SourceConfig) -> None:
    result = read_vcard(write(tmp_path, CARD_40.replace("FN:刘芳", "FN:" + "刘" * 10_000) + CARD_30), cfg)
    assert result.frame["uid"].to_list() == ["u30"]
    assert [(r.locator, r.field) for r in result.rejects] == [("card 1 (line 1)", "name")]


@pytest.mark.parametrize(
    ("data", "locator", "words"),
    [
        (b"", None, "empty"),
        (b"name,phone\nA,1\n", "line 1", "not a vCard"),
        (CARD_30.encode()[:-40], "line 1", "truncated"),
        (CARD_30.encode() + b"\x00\x89PNG", "line 13", "binary"),
        (CARD_30.encode() + b"garbage line\r\n", "line 13", "outside"),
        (CARD_30.encode("gbk"), "card 1 (line 1)", "wrong encoding"),
    ],
    ids=["empty", "csv", "truncated", "binary", "garbage-after", "gbk-not-utf8"],
)
def test_unreadable_vcard(
    tmp_path: Path, cfg: SourceConfig, data: bytes, locator: str | None, words: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(SourceError) as info:
        read_vcard(path, cfg)
    assert (info.value.file, info.value.locator) == (str(path), locator)
    assert words in info.value.message
    assert ID_NUMBER not in str(info.value)


@pytest.mark.parametrize(
    ("lines", "logical"),
    [
        ([b"NOTE:a", b" b", b"\tc"], [(1, b"NOTE:abc")]),
        (
            [b"FN;ENCODING=QUOTED-PRINTABLE:=E5=88=", b"=98", b"END:VCARD"],
            [(1, b"FN;ENCODING=QUOTED-PRINTABLE:=E5=88=98"), (3, b"END:VCARD")],
        ),
        ([b"NOTE:ends with =", b"X:1"], [(1, b"NOTE:ends with ="), (2, b"X:1")]),
    ],
    ids=["rfc6350-folding", "qp-soft-break", "equals-not-qp"],
)
def test_unfold(lines: list[bytes], logical: list[tuple[int, bytes]]) -> None:
    assert unfold(lines) == logical


@pytest.mark.parametrize(
    ("parts", "address", "postal"),
    [
        (
            ["", "", "朝阳区东三环中路1号", "北京市", "北京市", "100020", "中国"],
            "北京市朝阳区东三环中路1号",
            "100020",
        ),
        (["", "", "北京市朝阳区东三环中路1号", "北京市", "", "", "中国"], "北京市朝阳区东三环中路1号", None),
        (
            ["", "Apt 2", "1 Main St", "Springfield", "IL", "62701", "USA"],
            "Apt 2, 1 Main St, Springfield, IL, USA",
            "62701",
        ),
    ],
)
def test_join_address(parts: list[str], address: str, postal: str | None) -> None:
    assert join_address(parts) == (address, postal)
