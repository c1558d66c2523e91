"""JSON Lines reader: the shipped sample, path flattening, and generated files per edge case."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from mdm.config import DEFAULT_CONFIG_DIR, load_source_config
from mdm.errors import SourceError
from mdm.sources.jsonl import decode_dtype, read_jsonl

CFG = load_source_config(DEFAULT_CONFIG_DIR / "wealth_app.yaml")
ID = "110105199001011234"


def obj(key: str = "WA1", name: str = "张斌", **extra: object) -> str:
    record: dict[str, object] = {
        "user_id": key,
        "profile": {"name": name, "name_en": "ZHANG BIN", "gender": "M", "birthday": "1975-08-26"},
        "identity": {"type": "ID_CARD", "number": ID, "verified": True},
        "contacts": [
            {"type": "mobile", "value": "135-1923-0473"},
            {"type": "email", "value": "a@qq.com"},
            {"type": "mobile", "value": "13800138000"},
        ],
        "addresses": [{"province": "湖北省", "city": "武汉市", "district": "武昌区", "detail": "武珞路1号"}],
        "bank_cards": ["6228487814578862"],
        "risk_level": "C1",
        "updated_at": "2026-03-03T18:20:00+08:00",
    }
    record.update(extra)
    return json.dumps(record, ensure_ascii=False)


def write(tmp_path: Path, lines: list[str], eol: str = "\n") -> Path:
    path = tmp_path / "wealth_app.jsonl"
    path.write_text(eol.join(lines) + eol, encoding="utf-8")
    return path


def test_sample_reads_every_record(sample_dir: Path) -> None:
    result = read_jsonl(sample_dir / "wealth_app.jsonl", CFG)
    truth = pl.read_csv(sample_dir / "truth.csv", schema_overrides={"source_key": pl.String})
    keys = truth.filter(pl.col("source") == "wealth_app")["source_key"]
    assert result.frame.height == 1000
    assert set(result.frame["user_id"]) == set(keys)
    assert result.rejects == []
    assert result.frame["contacts.mobile"].list.len().min() == 1


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("user_id", "WA1"),
        ("profile.name", "张斌"),
        ("identity.verified", "true"),
        ("contacts.mobile", ["135-1923-0473", "13800138000"]),
        ("contacts.email", ["a@qq.com"]),
        ("contacts.phone", []),
        ("addresses.0.province", "湖北省"),
        ("addresses.0.detail", "武珞路1号"),
        ("bank_cards", ["6228487814578862"]),
        ("_locator", "line 1"),
        ("_flags", []),
    ],
)
def test_flattens_nested_object(tmp_path: Path, column: str, expected: object) -> None:
    frame = read_jsonl(write(tmp_path, [obj()]), CFG).frame
    value = frame[column][0]
    assert (value.to_list() if isinstance(value, pl.Series) else value) == expected


@pytest.mark.parametrize(
    ("lines", "eol", "check"),
    [
        ([obj("WA1"), obj("WA2", addresses=[])], "\n", lambda r: r.frame["addresses.0.city"][1] is None),
        ([obj("WA1"), "", obj("WA2")], "\n", lambda r: r.frame["_locator"].to_list() == ["line 1", "line 3"]),
        ([obj("WA1"), obj("WA2")], "\r\n", lambda r: r.frame["user_id"].to_list() == ["WA1", "WA2"]),
        ([obj("WA1", risk_level=3)], "\n", lambda r: r.frame["risk_level"][0] == "3"),
    ],
)
def test_reads_generated_file(tmp_path: Path, lines: list[str], eol: str, check: Callable[..., bool]) -> None:
    assert check(read_jsonl(write(tmp_path, lines, eol), CFG))


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"user_id": "WA2", "profile": {', "malformed"),
        ("not json at all", "malformed"),
        ('{"user_id": "WA2", "profile": "a string"}', "malformed"),
        ("[1, 2]", "malformed"),
        ("null", "not a JSON object"),
    ],
)
def test_malformed_line_is_rejected_with_its_number(tmp_path: Path, bad: str, reason: str) -> None:
    result = read_jsonl(write(tmp_path, [obj("WA1"), "", bad, obj("WA3")]), CFG)
    assert result.frame["user_id"].to_list() == ["WA1", "WA3"]
    assert result.frame["_locator"].to_list() == ["line 1", "line 4"]
    assert [r.locator for r in result.rejects] == ["line 3"]
    assert reason in result.rejects[0].reason


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        (obj("WA2", name="张" * 10_000), "name", "longer than 200"),
        (obj(""), "source_key", "no key"),
        (obj("WA 2"), "source_key", "does not look like a key"),
    ],
)
def test_bad_row_is_rejected(tmp_path: Path, line: str, field: str, reason: str) -> None:
    result = read_jsonl(write(tmp_path, [obj("WA1"), line]), CFG)
    assert result.frame["user_id"].to_list() == ["WA1"]
    assert [(r.field, r.locator) for r in result.rejects] == [(field, "line 2")]
    assert reason in result.rejects[0].reason


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\xff\xfe garbage " * 50, "binary"),
        (b"just some text\nand more text\n", "not a JSON Lines file"),
        ("\n".join([obj("WA1"), obj("WA1")]).encode(), "repeats"),
        (obj("WA1").encode("utf-8") + b"\n\xff\xfe{}\n", "not utf-8 text"),
        (b"\n\n", "no JSON lines"),
    ],
)
def test_refuses_unreadable_file(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "wealth_app.jsonl"
    path.write_bytes(data)
    with pytest.raises(SourceError) as err:
        read_jsonl(path, CFG)
    assert message in str(err.value)
    assert err.value.file == str(path)
    assert ID not in str(err.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"a": "a"}, pl.Struct({"a": pl.String})),
        ({"a": "p.n", "b": "p.m"}, pl.Struct({"p": pl.Struct({"n": pl.String, "m": pl.String})})),
        ({"a": "xs[]"}, pl.Struct({"xs": pl.List(pl.String)})),
        ({"a": "xs.0.c"}, pl.Struct({"xs": pl.List(pl.Struct({"c": pl.String}))})),
        (
            {"a": "cs[type=mobile].value"},
            pl.Struct({"cs": pl.List(pl.Struct({"value": pl.String, "type": pl.String}))}),
        ),
    ],
)
def test_decode_dtype_from_paths(fields: dict[str, str], expected: pl.Struct) -> None:
    assert decode_dtype(fields) == expected


def test_conflicting_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="disagree"):
        decode_dtype({"a": "p", "b": "p.q"})
