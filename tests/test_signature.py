"""Signature-block extraction: quoted advisor blocks, English and missing signatures, phone forms."""

from __future__ import annotations

import pytest

from mdm.sources.signature import extract_signature, phone_key, split_company_title, split_quoted

ADVISOR = "lvpinghui8@cnbank.example.cn"

REPLY_WITH_QUOTED_ADVISOR = """好的，谢谢吕经理，我这周找时间过去办理。

陈娟萍

在 2026年2月25日 05:43，吕平辉 <lvpinghui8@cnbank.example.cn> 写道：
> 陈先生/女士您好，
>
> 吕平辉
> 客户经理 | XX银行天河支行
> 手机：13112861873
"""
REPLY_NO_SIGNATURE = """好的，谢谢李经理，我这周找时间过去办理。



在 2026年2月28日 05:02，李艳 <liyan5@cnbank.example.cn> 写道：
> 李艳
> 手机：13275239653
"""
ENGLISH_WROTE = """Thanks, see you next week.

Best regards,
Jiemin Wu
Mobile: +86 156 8877 7154

On Mon, 2 Mar 2026 at 10:00, Advisor <a@cnbank.example.cn> wrote:
> Advisor
> Mobile: 13112861873
"""
OUTLOOK_ORIGINAL = """请查收。

--
王伟
Tel 13112861873
-----Original Message-----
From: 吕平辉
手机：13112861873
"""
DASHES_FULL = """魏经理您好：

谢谢！

--
郑雯雪
手机：+86-136-1476-4878
新元物流有限公司 财务总监
"""
HALF_WIDTH_LATIN = """Hello,

--
WANG Huaning
手机:180 5436 7538
恒丰科技股份有限公司 项目经理
"""
NAME_ONLY = """胡经理您好：

谢谢！

Leiying Zhang
"""
ONE_PARAGRAPH = "请问信用卡额度可以临时调高吗？"
SIG_WITH_ADVISOR_EMAIL = f"""Hi

--
吕平辉
手机：13112861873
邮箱：{ADVISOR}
"""
LABELLED_ORG = """你好

--
Chen Ming
Tel: 021-62345678
Company: Huaxin Trading Co. Ltd
Title: Engineer
"""


@pytest.mark.parametrize(
    ("body", "name", "mobiles", "phones", "company", "title", "suspected"),
    [
        (REPLY_WITH_QUOTED_ADVISOR, "陈娟萍", (), (), None, None, False),
        (REPLY_NO_SIGNATURE, None, (), (), None, None, False),
        (ENGLISH_WROTE, "Jiemin Wu", ("+86 156 8877 7154",), (), None, None, False),
        (OUTLOOK_ORIGINAL, "王伟", ("13112861873",), (), None, None, True),
        (DASHES_FULL, "郑雯雪", ("+86-136-1476-4878",), (), "新元物流有限公司", "财务总监", False),
        (HALF_WIDTH_LATIN, "WANG Huaning", ("180 5436 7538",), (), "恒丰科技股份有限公司", "项目经理", False),
        (NAME_ONLY, "Leiying Zhang", (), (), None, None, False),
        (ONE_PARAGRAPH, None, (), (), None, None, False),
        (SIG_WITH_ADVISOR_EMAIL, "吕平辉", ("13112861873",), (), None, None, True),
        (LABELLED_ORG, "Chen Ming", (), ("021-62345678",), "Huaxin Trading Co. Ltd", "Engineer", False),
    ],
    ids=[
        "quoted-advisor-signature",
        "reply-without-signature",
        "english-on-wrote",
        "original-message-same-phone",
        "dashes-plus86",
        "half-width-colon",
        "name-only-no-dashes",
        "single-paragraph",
        "advisor-address-in-signature",
        "labelled-company-title",
    ],
)
def test_extract_signature(
    body: str,
    name: str | None,
    mobiles: tuple[str, ...],
    phones: tuple[str, ...],
    company: str | None,
    title: str | None,
    suspected: bool,
) -> None:
    sig = extract_signature(body, ADVISOR)
    assert (sig.name, sig.mobiles, sig.phones, sig.company, sig.title) == (
        name,
        mobiles,
        phones,
        company,
        title,
    )
    assert sig.advisor_phone_suspected is suspected


def test_quoted_advisor_phone_never_reaches_the_customer() -> None:
    sig = extract_signature(REPLY_WITH_QUOTED_ADVISOR, ADVISOR)
    assert sig.mobiles == ()
    assert phone_key("13112861873") in sig.quoted_phones


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("+86-136-1476-4878", "13614764878"),
        ("+86 15558892553", "15558892553"),
        ("0086 155 5889 2553", "15558892553"),
        ("151 4950 3905", "15149503905"),
        ("１３６１４７６４８７８", "13614764878"),
        ("021-62345678", "02162345678"),
    ],
)
def test_phone_key(value: str, key: str) -> None:
    assert phone_key(value) == key


@pytest.mark.parametrize(
    ("line", "company", "title"),
    [
        ("新元物流有限公司 财务总监", "新元物流有限公司", "财务总监"),
        ("客户经理 | XX银行天河支行", "XX银行天河支行", "客户经理"),
        ("Manager, Huaxin Trading Ltd", "Huaxin Trading Ltd", "Manager"),
        ("东方建设集团", "东方建设集团", None),
        ("工程师", None, "工程师"),
    ],
)
def test_split_company_title(line: str, company: str | None, title: str | None) -> None:
    assert split_company_title(line) == (company, title)


@pytest.mark.parametrize(
    ("body", "own", "quoted"),
    [
        ("hi\n> quoted\nbye", "hi\nbye", "quoted"),
        (
            "hi\nOn Mon, 2 Mar 2026, A <a@b.cn> wrote:\nold text",
            "hi",
            "On Mon, 2 Mar 2026, A <a@b.cn> wrote:\nold text",
        ),
        ("hi\r\n-----Original Message-----\r\nold", "hi", "-----Original Message-----\nold"),
    ],
)
def test_split_quoted(body: str, own: str, quoted: str) -> None:
    assert split_quoted(body) == (own, quoted)
