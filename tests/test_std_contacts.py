"""Phones, e-mails, bank cards and sex codes."""

from __future__ import annotations

import phonenumbers
import polars as pl
import pytest

from mdm.standardize.cards import standardize_cards
from mdm.standardize.emails import standardize_emails
from mdm.standardize.phones import classify_one, fast_codes, standardize_phones
from mdm.standardize.sex import standardize_sex

L = pl.List(pl.String)


@pytest.mark.parametrize(
    ("mobile", "phone", "mobiles", "phones", "flags"),
    [
        (["13112088439"], None, ["+8613112088439"], [], []),
        (["133-3233-5638", "185 9697 2539"], [], ["+8613332335638", "+8618596972539"], [], []),
        (["+86-153-7234-6908", "+86 15372346908"], None, ["+8615372346908"], [], []),
        (["008613112088439", "8613112088439"], None, ["+8613112088439"], [], []),
        (None, ["010-58887261"], [], ["+861058887261"], []),
        (None, ["+86-21-47177511", "027-20230382"], [], ["+862147177511", "+862720230382"], []),
        (["13112088439"], ["13112088439", "0532-52313504"], ["+8613112088439"], ["+8653252313504"], []),
        (["010-58887261"], None, [], ["+861058887261"], []),
        (["12345"], ["0532-5125912"], [], [], ["mobile:invalid", "phone:invalid"]),
        (["+852 9123 4567"], None, ["+85291234567"], [], []),
        (None, None, [], [], []),
    ],
)
def test_phones(
    mobile: list[str] | None, phone: list[str] | None, mobiles: list[str], phones: list[str], flags: list[str]
) -> None:
    df = pl.DataFrame({"mobile": [mobile], "phone": [phone]}, schema={"mobile": L, "phone": L})
    row = standardize_phones(df).row(0, named=True)
    assert (row["mobiles"], row["phones"], row["_flag_phones"]) == (mobiles, phones, flags)


@pytest.mark.parametrize(
    "value",
    ["13112088439", "+86-153-7234-6908", "010-58887261", "027-20230382", "0532-52313504", "0755-4042359"],
)
def test_fast_path_agrees_with_phonenumbers(value: str) -> None:
    fast = fast_codes(pl.Series([value])).item()
    assert (fast or "X") == classify_one(value)
    assert classify_one(value) == "X" or phonenumbers.is_valid_number(phonenumbers.parse(value, "CN"))


@pytest.mark.parametrize(
    ("raw", "emails", "keys", "flags"),
    [
        ([" Li.Wei@QQ.COM "], ["li.wei@qq.com"], ["li.wei@qq.com"], []),
        (["123@foxmail.com", "123@qq.com"], ["123@foxmail.com", "123@qq.com"], ["123@qq.com"], []),
        (["Wang.Fang+bank@googlemail.com"], ["wang.fang+bank@googlemail.com"], ["wangfang@gmail.com"], []),
        (["li.wei@163.com", "li.wei@163.com"], ["li.wei@163.com"], ["li.wei@163.com"], []),
        (["not-an-email", "a@b.cn"], ["a@b.cn"], ["a@b.cn"], ["email:invalid"]),
        (None, [], [], []),
    ],
)
def test_emails(raw: list[str] | None, emails: list[str], keys: list[str], flags: list[str]) -> None:
    df = pl.DataFrame({"email": [raw]}, schema={"email": L})
    row = standardize_emails(df).row(0, named=True)
    assert (row["emails"], row["email_keys"], row["_flag_emails"]) == (emails, keys, flags)


@pytest.mark.parametrize(
    ("raw", "cards", "valid", "flags"),
    [
        (["6222024279246522011"], ["6222024279246522011"], True, []),
        (["6228 4878 1457 8862"], ["6228487814578862"], True, []),
        (["4111111111111111", "4111-1111-1111-1111"], ["4111111111111111"], True, []),
        (["4111111111111112"], ["4111111111111112"], False, ["bank_card:luhn_failed"]),
        (None, [], None, []),
    ],
)
def test_cards(raw: list[str] | None, cards: list[str], valid: bool | None, flags: list[str]) -> None:
    df = pl.DataFrame({"bank_card": [raw]}, schema={"bank_card": L})
    row = standardize_cards(df).row(0, named=True)
    assert row["bank_cards"] == cards
    assert (row["bank_card_valid"], row["_flag_cards"]) == (valid, flags)


@pytest.mark.parametrize(
    ("raw", "expected", "flags"),
    [
        ("男", "M", []),
        ("女", "F", []),
        ("M", "M", []),
        ("f", "F", []),
        ("1", "M", []),
        ("2", "F", []),
        ("Male", "M", []),
        ("FEMALE", "F", []),
        ("先生", "M", []),
        ("女士", "F", []),
        (" 男 ", "M", []),
        ("未知", None, []),
        (None, None, []),
        ("?", None, ["sex:unrecognized"]),
    ],
)
def test_sex(raw: str | None, expected: str | None, flags: list[str]) -> None:
    row = standardize_sex(pl.DataFrame({"sex": [raw]}, schema={"sex": pl.String})).row(0, named=True)
    assert (row["sex_std"], row["_flag_sex"]) == (expected, flags)
