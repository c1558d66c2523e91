"""The synthetic generator: every file kind well formed (checked with independent parsers), truth consistent,
seeded determinism, profile differences, vectorized helpers correct."""

from __future__ import annotations

import email
import email.header
import email.policy
import hashlib
import json
import mailbox
import time
from pathlib import Path

import fastexcel
import numpy as np
import polars as pl
import pytest

from mdm.generate import KINDS, assign_records, generate
from mdm.generate.persons import build_population, id_check_chars, luhn_digit
from mdm.generate.tables import load_profile, load_tables

ALL = list(KINDS)


def id_valid(v: str) -> bool:
    """Independent GB 11643 check of an 18-character resident ID."""
    if len(v) != 18 or not v[:17].isdigit():
        return False
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(c) * k for c, k in zip(v, w, strict=False)) % 11] == v[17].upper()


def luhn_ok(card: str) -> bool:
    """Independent Luhn check."""
    digits = [int(c) for c in reversed(card)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gen")
    generate(d, persons=400, seed=11, kinds=ALL)
    return d


@pytest.fixture(scope="module")
def truth(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "truth.csv", schema_overrides={"source_key": pl.String})


def keys_core(out: Path) -> list[str]:
    raw = (out / "core_banking.dat").read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b""
    body = lines[1:-2]
    assert all(len(line) == 162 for line in lines[:-1])
    assert lines[0].startswith(b"HDR") and lines[-2] == f"TRL{len(body):010d}".ljust(162).encode()
    for line in body:
        line.decode("gb18030")
    return [line[1:13].decode() for line in body]


def keys_wealth(out: Path) -> list[str]:
    rows = [json.loads(x) for x in (out / "wealth_app.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(list(r) == ["user_id", "profile", "identity", "contacts", "addresses", "bank_cards", "risk_level", "updated_at"] for r in rows)  # fmt: skip
    assert all(luhn_ok(c) for r in rows for c in r["bank_cards"])
    return [r["user_id"] for r in rows]


def keys_crm(out: Path) -> list[str]:
    reader = fastexcel.read_excel(out / "branch_crm.xlsx")
    keys: list[str] = []
    for name in reader.sheet_names:
        df = reader.load_sheet(name, header_row=None, dtypes="string").to_polars()
        first = df.columns[0]
        assert df[0, first] == "XX银行个人客户信息登记表" and df[2, first] is None
        assert df.row(3) == ("客户编号", "客户姓名", "性别", "证件类型", "证件号码", "出生日期", "手机号码", "固定电话", "电子邮箱", "联系地址", "客户经理", "开户日期", "备注")  # fmt: skip
        data = df[4:].filter(pl.col(first).str.starts_with("BR"))
        assert df[-2, first] == f"合计：{data.height} 条" and df[-1, first].startswith("制表人：")
        keys += data[first].to_list()
    return keys


def keys_mbox(out: Path) -> list[str]:
    keys = []
    for m in mailbox.mbox(out / "advisor_mail.mbox"):
        for h in ("From", "To", "Subject"):
            str(email.header.make_header(email.header.decode_header(m[h])))
        payload = m.get_payload(decode=True)
        assert isinstance(payload, bytes)
        payload.decode("gb18030" if m.get_content_charset() != "utf-8" else "utf-8")
        keys.append(m["Message-ID"])
    return keys


def keys_vcf(out: Path) -> list[str]:
    text = (out / "advisor_contacts.vcf").read_bytes().decode("utf-8")
    assert "\n" not in text.replace("\r\n", "")
    cards = text.split("BEGIN:VCARD\r\n")[1:]
    assert all(c.endswith("END:VCARD\r\n") for c in cards)
    return [line[4:] for c in cards for line in c.split("\r\n") if line.startswith("UID:")]


def keys_outlook(out: Path) -> list[str]:
    raw = (out / "outlook_contacts.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    df = pl.read_csv(raw[3:], infer_schema=False)
    assert df.columns[0] == "First Name" and df.width == 27
    return [str(i) for i in range(1, df.height + 1)]


def keys_eml(out: Path) -> list[str]:
    keys = []
    for f in sorted((out / "mail_files").glob("*.eml")):
        raw = f.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n")
        keys.append(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"])
    return keys


def keys_card(out: Path) -> list[str]:
    lines = (out / "card_system.txt").read_bytes().decode("gbk").split("\r\n")
    assert lines[0].startswith("H|CARDSYS|") and lines[-2] == f"T|{len(lines) - 3}" and lines[-1] == ""
    rows = [line.split("|") for line in lines[1:-2]]
    assert all(len(r) == 7 and luhn_ok(r[5]) for r in rows)
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("source", "reader"),
    [
        ("core_banking", keys_core),
        ("wealth_app", keys_wealth),
        ("branch_crm", keys_crm),
        ("advisor_mail", keys_mbox),
        ("advisor_contacts", keys_vcf),
        ("outlook_contacts", keys_outlook),
        ("mail_files", keys_eml),
        ("card_system", keys_card),
    ],
)
def test_file_parses_and_matches_truth(out: Path, truth: pl.DataFrame, source: str, reader: object) -> None:
    keys = reader(out)  # type: ignore[operator]
    expected = truth.filter(pl.col("source") == source)["source_key"].to_list()
    assert len(keys) == len(set(keys)) > 0
    assert sorted(keys) == sorted(expected)


def test_every_person_has_a_record_and_duplicates_exist(truth: pl.DataFrame) -> None:
    per_person = truth.group_by("person_id").len()["len"].to_list()
    assert len(per_person) == 400
    assert max(per_person) > 1
    assert max(truth.group_by("source", "person_id").len()["len"].to_list()) > 1


@pytest.mark.parametrize("profile", ["sample", "hard"])
def test_population_documents_are_valid_and_unique(profile: str) -> None:
    pop = build_population(3000, np.random.default_rng(5), load_tables(), load_profile(profile)["population"])
    resident = pop.filter(pl.col("id_type") == "01")
    assert resident["id_no"].n_unique() == resident.height
    assert all(id_valid(v) for v in resident["id_no"])
    assert all(
        (int(v[16]) % 2 == 1) == (s == 1) for v, s in zip(resident["id_no"], resident["sex"], strict=True)
    )
    assert all(luhn_ok(c) for c in pop["card1"])
    assert pop["mobile"].str.contains(r"^1\d{10}$").all()


def test_files_have_mostly_valid_ids_and_some_noise(out: Path) -> None:
    ids = [
        json.loads(x)["identity"] for x in (out / "wealth_app.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    resident = [i["number"] for i in ids if i["type"] == "ID_CARD"]
    valid = sum(id_valid(v) for v in resident)
    assert 0.85 * len(resident) < valid < len(resident) + 1


@pytest.mark.parametrize(
    ("payload", "check"),
    [("622848781457886", 2), ("7992739871", 3), ("622202123456789012", None)],
)
def test_luhn_digit(payload: str, check: int | None) -> None:
    got = int(luhn_digit(np.array([[int(c) for c in payload]]))[0])
    assert luhn_ok(payload + str(got))
    if check is not None:
        assert got == check


@pytest.mark.parametrize("id17", ["11010519491231002", "44030419870910316", "42010619830404102"])
def test_id_check_chars(id17: str) -> None:
    ch = chr(int(id_check_chars(np.array([[int(c) for c in id17]]))[0]))
    assert id_valid(id17 + ch)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    def digest(d: Path) -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()
        }

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, 3), (b, 3), (c, 4)):
        generate(d, persons=150, seed=seed, kinds=ALL)
    assert digest(a) == digest(b)
    assert digest(a)["core_banking.dat"] != digest(c)["core_banking.dat"]


def test_hard_profile_has_more_namesakes() -> None:
    t = load_tables()

    def namesake_share(profile: str) -> float:
        pop = build_population(4000, np.random.default_rng(9), t, load_profile(profile)["population"])
        return float(pop["name"].is_duplicated().mean())  # type: ignore[arg-type]

    assert namesake_share("hard") > namesake_share("sample") + 0.05


@pytest.mark.parametrize(
    ("rates", "n"),
    [({"a": 0.5, "b": 0.4}, 1000), ({"a": 0.53, "b": 0.26, "c": 0.31, "d": 0.57, "e": 0.38}, 2650)],
)
def test_assign_records_covers_every_person(rates: dict[str, float], n: int) -> None:
    got = assign_records(n, rates, 0.03, np.random.default_rng(1))
    assert set(np.concatenate(list(got.values())).tolist()) == set(range(n))
    for kind, rate in rates.items():
        assert len(got[kind]) >= round(rate * n) * 0.97


def test_unknown_kind_and_profile_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        generate(tmp_path, persons=10, seed=1, kinds=["nope"])
    with pytest.raises(ValueError, match="unknown profile"):
        generate(tmp_path, persons=10, seed=1, profile="nope")


def test_columnar_kinds_scale_smoke(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    result = generate(tmp_path, persons=20_000, seed=2, kinds=["core_banking", "wealth_app"])
    elapsed = time.perf_counter() - t0
    assert result.records >= 20_000 and elapsed > 0
    assert (tmp_path / "core_banking.dat").stat().st_size == 164 * (result.counts["core_banking"] + 2)
