"""Mail readers: the sample mbox and the .eml delivery, charsets, encodings, bad input."""

from __future__ import annotations

import base64
import quopri
from email.header import Header
from pathlib import Path

import polars as pl
import pytest

from mdm.config import DEFAULT_CONFIG_DIR, SourceConfig, load_source_config
from mdm.errors import SourceError
from mdm.sources.mail import decode_header_text, read_eml, read_mbox
from mdm.sources.mapping import map_columns

PHONE = "13912345678"


@pytest.fixture(scope="module")
def mbox_cfg() -> SourceConfig:
    return load_source_config(DEFAULT_CONFIG_DIR / "advisor_mail.yaml")


@pytest.fixture(scope="module")
def eml_cfg() -> SourceConfig:
    return load_source_config(DEFAULT_CONFIG_DIR / "mail_files.yaml")


def encoded(text: str, charset: str) -> str:
    """RFC 2047 encoded word of ``text`` in ``charset``."""
    return Header(text, charset).encode()


def message(
    body: bytes,
    *,
    charset: str = "utf-8",
    cte: str = "8bit",
    sender: str = "=?UTF-8?B?6YOR6Zuv6Zuq?= <wen@139.com>",
    message_id: str | None = "<m1@139.com>",
) -> bytes:
    """One RFC 5322 message (LF line ends) with a text/plain body already transfer-encoded."""
    head = [f"From: {sender}", "To: =?UTF-8?B?6IOh6Imz?= <huyan18@cnbank.example.cn>", "Subject: hi"]
    head.append("Date: Sun, 01 Mar 2026 16:18:00 +0800")
    if message_id is not None:
        head.append(f"Message-ID: {message_id}")
    head += [
        "MIME-Version: 1.0",
        f'Content-Type: text/plain; charset="{charset}"',
        f"Content-Transfer-Encoding: {cte}",
    ]
    return ("\n".join(head) + "\n\n").encode("ascii") + body + b"\n"


def mbox(*messages: bytes) -> bytes:
    """An mbox file of the messages."""
    return b"".join(b"From x@y Sun Mar  1 16:18:00 2026\n" + m + b"\n" for m in messages)


SIGNED = f"胡经理您好：\n\n谢谢！\n\n--\n刘辉镕\n手机：{PHONE}\n新元物流有限公司 财务总监\n"


def test_sample_mbox_keys_equal_truth(sample_dir: Path, mbox_cfg: SourceConfig) -> None:
    result = read_mbox(sample_dir / "advisor_mail.mbox", mbox_cfg)
    truth = pl.read_csv(sample_dir / "truth.csv", infer_schema=False).filter(
        pl.col("source") == "advisor_mail"
    )
    assert result.frame.height == 700
    assert result.rejects == []
    assert sorted(result.frame["message_id"]) == sorted(truth["source_key"])
    raw = map_columns(result.frame, mbox_cfg, "advisor_mail.mbox")
    assert raw["name"].null_count() == 0
    assert raw.filter(pl.col("mobile").list.len() > 0).height == 527
    assert raw.filter(pl.col("dq_flags").list.contains("mobile:advisor_phone_suspected")).height == 0


def test_mail_files_keys_equal_truth(extra_dir: Path, eml_cfg: SourceConfig) -> None:
    frames = [read_eml(p, eml_cfg).frame for p in sorted((extra_dir / "mail_files").glob("*.eml"))]
    frame = pl.concat(frames)
    truth = pl.read_csv(extra_dir / "truth.csv", infer_schema=False).filter(pl.col("source") == "mail_files")
    assert frame.height == 40
    assert sorted(frame["message_id"]) == sorted(truth["source_key"])
    assert frame.filter(pl.col("_locator") == "0030.eml")["to_name"].item() == "刘辉镕"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("=?UTF-8?B?6YOR6Zuv6Zuq?=", "郑雯雪"),
        ("=?gb2312?B?wO7D9LzR?=", "李敏佳"),
        (encoded("刘辉镕", "gbk").replace("gbk", "gb2312"), "刘辉镕"),
        ("=?GBK?B?wsDGvbvU?=", "吕平辉"),
        ("=?utf-8?Q?=E9=99=88=E5=A8=9F=E8=90=8D?=", "陈娟萍"),
        ("Leiying Zhang", "Leiying Zhang"),
        ("=?UTF-8?B?UmU6IA==?=\n =?UTF-8?B?5L+h55So?=", "Re: 信用"),
    ],
    ids=["utf8-b", "gb2312-b", "gb2312-labelled-gbk", "gbk-b", "utf8-q", "plain", "folded-two-words"],
)
def test_decode_header_text(raw: str, text: str) -> None:
    assert decode_header_text(raw) == text


@pytest.mark.parametrize(
    ("body", "charset", "cte"),
    [
        (base64.encodebytes(SIGNED.encode("utf-8")), "utf-8", "base64"),
        (quopri.encodestring(SIGNED.encode("utf-8")), "utf-8", "quoted-printable"),
        (SIGNED.encode("utf-8"), "utf-8", "8bit"),
        (base64.encodebytes(SIGNED.encode("gbk")), "gb2312", "base64"),
        (SIGNED.encode("gbk"), "GB2312", "8bit"),
        (quopri.encodestring(SIGNED.encode("gb18030")), "gbk", "quoted-printable"),
    ],
    ids=[
        "utf8-base64",
        "utf8-qp",
        "utf8-8bit",
        "gb2312-labelled-gbk-base64",
        "gb2312-labelled-gbk-8bit",
        "gbk-qp",
    ],
)
def test_body_charsets_and_encodings(
    tmp_path: Path, mbox_cfg: SourceConfig, body: bytes, charset: str, cte: str
) -> None:
    path = tmp_path / "m.mbox"
    path.write_bytes(mbox(message(body, charset=charset, cte=cte)))
    row = read_mbox(path, mbox_cfg).frame.row(0, named=True)
    assert (row["sig_name"], row["sig_mobile"], row["sig_company"]) == ("刘辉镕", [PHONE], "新元物流有限公司")
    assert (row["from_name"], row["from_address"], row["_locator"]) == ("郑雯雪", "wen@139.com", "message 1")
    assert row["date_iso"] == "2026-03-01T16:18:00+08:00"
    assert row["_flags"] == []


def test_message_without_id_is_rejected_with_position(tmp_path: Path, mbox_cfg: SourceConfig) -> None:
    path = tmp_path / "m.mbox"
    path.write_bytes(mbox(message(b"a"), message(b"b", message_id=None), message(b"c", message_id="<m3@x>")))
    result = read_mbox(path, mbox_cfg)
    assert result.frame["message_id"].to_list() == ["<m1@139.com>", "<m3@x>"]
    assert [(r.locator, r.field) for r in result.rejects] == [("message 2", "source_key")]


def test_long_name_is_rejected_naming_the_field(tmp_path: Path, mbox_cfg: SourceConfig) -> None:
    path = tmp_path / "m.mbox"
    long_sender = f"{'A' * 10_000} <x@y.cn>"
    path.write_bytes(mbox(message(SIGNED.encode(), sender=long_sender), message(b"ok", message_id="<m2@x>")))
    result = read_mbox(path, mbox_cfg)
    assert result.frame.height == 1
    assert [(r.locator, r.field) for r in result.rejects] == [("message 1", "name")]
    assert "A" * 50 not in result.rejects[0].reason


def test_suspected_when_signature_repeats_a_quoted_phone(tmp_path: Path, mbox_cfg: SourceConfig) -> None:
    reply = f"好的\n\n--\n王伟\n手机：{PHONE}\n\n在 2026年2月25日 05:43，胡艳 <huyan18@cnbank.example.cn> 写道：\n> 手机：{PHONE}\n"
    path = tmp_path / "m.mbox"
    path.write_bytes(mbox(message(reply.encode())))
    frame = read_mbox(path, mbox_cfg).frame
    assert frame["_flags"].to_list() == [["mobile:advisor_phone_suspected"]]


def test_phone_quoted_elsewhere_in_the_file_is_suspected(tmp_path: Path, mbox_cfg: SourceConfig) -> None:
    quoting = "好的\n\n在 2026年2月25日 05:43，胡艳 写道：\n> 手机：139-1234-5678\n"
    path = tmp_path / "m.mbox"
    path.write_bytes(mbox(message(SIGNED.encode()), message(quoting.encode(), message_id="<m2@x>")))
    frame = read_mbox(path, mbox_cfg).frame
    assert frame["_flags"].to_list() == [["mobile:advisor_phone_suspected"], []]


@pytest.mark.parametrize(
    ("data", "locator", "words"),
    [
        (b"", None, "empty"),
        (b"Hello, this is a text file\nnot mail\n", "line 1", "not an mbox"),
        (b"From x\n\x00\x01\x02garbage", "line 2", "binary"),
        (mbox(message(base64.encodebytes(SIGNED.encode()), cte="base64"))[:-40], "message 1", "truncated"),
    ],
    ids=["empty", "not-mbox", "binary", "truncated"],
)
def test_unreadable_mbox(
    tmp_path: Path, mbox_cfg: SourceConfig, data: bytes, locator: str | None, words: str
) -> None:
    path = tmp_path / "bad.mbox"
    path.write_bytes(data)
    with pytest.raises(SourceError) as info:
        read_mbox(path, mbox_cfg)
    assert info.value.file == str(path)
    assert info.value.locator == locator
    assert words in info.value.message


def test_mostly_undecodable_mbox_is_refused_without_echoing_values(
    tmp_path: Path, mbox_cfg: SourceConfig
) -> None:
    path = tmp_path / "m.mbox"
    broken = SIGNED.encode("utf-8")[:-5] + b"\xff\xfe\n"
    path.write_bytes(mbox(message(broken, charset="utf-8")))
    with pytest.raises(SourceError) as info:
        read_mbox(path, mbox_cfg)
    assert "wrong encoding" in str(info.value)
    assert PHONE not in str(info.value)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"just some words\nand more\n", "not an RFC 5322 message"),
        (message(base64.encodebytes(SIGNED.encode()), cte="base64")[:-30], "truncated"),
        (b"\x00\x00binary", "binary"),
    ],
    ids=["not-a-message", "truncated", "binary"],
)
def test_unreadable_eml(tmp_path: Path, eml_cfg: SourceConfig, data: bytes, words: str) -> None:
    path = tmp_path / "x.eml"
    path.write_bytes(data)
    with pytest.raises(SourceError, match=words):
        read_eml(path, eml_cfg)


def test_eml_locator_is_file_name(tmp_path: Path, eml_cfg: SourceConfig) -> None:
    path = tmp_path / "0001.eml"
    path.write_bytes(message(SIGNED.encode()).replace(b"\n", b"\r\n"))
    frame = read_eml(path, eml_cfg).frame
    assert frame.select("_locator", "message_id", "sig_mobile").row(0) == (
        "0001.eml",
        "<m1@139.com>",
        [PHONE],
    )


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_unencoded_8bit_headers(tmp_path: Path, eml_cfg: SourceConfig, encoding: str) -> None:
    path = tmp_path / "raw.eml"
    head = "From: 刘辉镕 <a@b.cn>\r\nTo: x@y.cn\r\nMessage-ID: <r@x>\r\nSubject: 你好\r\n\r\nhi\r\n"
    path.write_bytes(head.encode(encoding))
    row = read_eml(path, eml_cfg).frame.select("from_name", "from_address", "subject", "to_address").row(0)
    assert row == ("刘辉镕", "a@b.cn", "你好", "x@y.cn")
