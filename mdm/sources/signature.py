"""Signature-block extraction from a customer's e-mail body (pure functions, no I/O).

A customer's message ends with a signature: after a ``--`` line, or as a short last paragraph. The
signature gives name, mobile, company and title. Replies quote the advisor's own message and with it
the advisor's signature, so quoted text (``>`` lines, and everything after ``在 … 写道：``,
``On … wrote:`` or ``-----Original Message-----``) is cut off before the signature is looked for.
A phone that still equals one in the quoted text, or a block giving the advisor's address, is
flagged as suspected to be the advisor's.

Values are returned as written (``+86-136-1476-4878``): normalization belongs to standardization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

#: A line opening the quoted part of a reply; everything from it on is quoted.
_QUOTE_HEADER = re.compile(
    r"^\s*(?:在.{0,120}写道\s*[：:]"
    r"|On\s.{0,200}\swrote\s*:"
    r"|-{2,}\s*(?:Original Message|原始邮件|Forwarded message|转发的邮件|转发邮件)\s*-{2,}"
    r"|_{10,})\s*$",
    re.IGNORECASE,
)
#: The conventional signature delimiter ``-- `` (also ``--`` and dash runs without text).
_SIG_DELIMITER = re.compile(r"^\s*(?:--|—{1,2}|-{2,6})\s*$")
_MOBILE_LABEL = r"手机号码|手机号|手机|移动电话|mobile\s*phone|mobile|mob|cell\s*phone|cellphone|cell|m"
_PHONE_LABEL = r"办公电话|联系电话|电话|座机|固话|tel|telephone|phone|office|t"
_NUMBER = r"(?P<value>\+?[0-9０-９(（][0-9０-９\s\-.()（）]{5,}[0-9０-９])"
_LABELLED_PHONE = re.compile(
    rf"^\s*(?P<label>{_MOBILE_LABEL}|{_PHONE_LABEL})\.?\s*(?:[:：]\s*|\s+){_NUMBER}\s*$", re.IGNORECASE
)
_BARE_PHONE = re.compile(rf"^\s*{_NUMBER}\s*$")
_MOBILE_LABELS = re.compile(rf"^(?:{_MOBILE_LABEL})$", re.IGNORECASE)
_EMAIL_LINE = re.compile(
    r"^\s*(?:(?:邮箱|电子邮件|电邮|e-?mail)\s*[:：]?\s*)?(?P<value>[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+)\s*$",
    re.IGNORECASE,
)
_LABELLED_ORG = re.compile(
    r"^\s*(?P<label>公司|单位|company|org|职位|职务|title)\s*[:：]\s*(?P<value>.+?)\s*$", re.I
)
_PHONE_IN_TEXT = re.compile(r"\+?[0-9][0-9\s\-]{6,}[0-9]")
_HANZI_NAME = re.compile(r"^[\u3400-\u9fff][\u3400-\u9fff·•]{0,5}(?:\s[\u3400-\u9fff]{1,4})?$")
_LATIN_NAME = re.compile(r"^[A-Za-z][A-Za-z.'\-]*(?:\s+[A-Za-z][A-Za-z.'\-]*){0,3}$")
_CLOSINGS = frozenset(
    {
        "谢谢",
        "多谢",
        "感谢",
        "此致",
        "敬礼",
        "祝好",
        "顺祝商祺",
        "thanks",
        "thank you",
        "regards",
        "best regards",
        "kind regards",
        "best",
        "cheers",
        "sincerely",
        "br",
    }
)
_ORG_WORDS = re.compile(
    r"(公司|集团|事务所|医院|银行|支行|分行|大学|学院|学校|中学|小学|研究院|研究所|中心|委员会|局|厂|店|"
    r"\bLtd\b|\bLimited\b|\bInc\b|\bCorp\b|\bCo\b|\bGroup\b|\bBank\b|\bLLC\b|\bLLP\b|\bHospital\b|\bUniversity\b)",
    re.IGNORECASE,
)
_TITLE_WORDS = re.compile(
    r"(经理|总监|主管|工程师|会计|教师|医师|医生|合伙人|律师|总裁|董事|主任|专员|顾问|助理|老师|店长|"
    r"\bManager\b|\bDirector\b|\bEngineer\b|\bAccountant\b|\bTeacher\b|\bPartner\b|\bCEO\b|\bCFO\b|\bPresident\b)",
    re.IGNORECASE,
)
_PART_SEPARATOR = re.compile(r"\s*(?:[|｜]|，|,\s|\s-\s)\s*")
#: Longest line a signature may have, and most lines in a signature without ``--``.
MAX_SIGNATURE_LINE = 60
MAX_UNDELIMITED_LINES = 6


@dataclass(frozen=True)
class Signature:
    """What a signature block gives; empty fields are None / empty tuples."""

    name: str | None = None
    mobiles: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    company: str | None = None
    title: str | None = None
    advisor_phone_suspected: bool = False
    #: phone keys (phone_key) of numbers in the quoted part: the advisor's, most likely
    quoted_phones: tuple[str, ...] = ()


def split_quoted(body: str) -> tuple[str, str]:
    """(own text, quoted text) of a message body; ``>`` lines anywhere count as quoted."""
    own: list[str] = []
    quoted: list[str] = []
    in_quote = False
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not in_quote and _QUOTE_HEADER.match(line):
            in_quote = True
        if in_quote or line.lstrip().startswith(">"):
            quoted.append(re.sub(r"^[\s>]+", "", line).rstrip())
        else:
            own.append(line.rstrip())
    return "\n".join(own), "\n".join(quoted)


def phone_key(value: str) -> str:
    """Digits of a phone without the country code 86 (for comparing numbers written differently)."""
    digits = re.sub(r"\D", "", value.translate(_FULLWIDTH_DIGITS))
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def looks_like_mobile(value: str) -> bool:
    """A mainland mobile number once separators and +86 are removed (11 digits, 1[3-9]…)."""
    return re.fullmatch(r"1[3-9]\d{9}", phone_key(value)) is not None


def is_name_line(line: str) -> bool:
    """A line that can be a person's name: 1-6 hanzi (one inner space allowed) or 1-4 latin words."""
    text = line.strip()
    if not text or len(text) > 40 or text.lower().rstrip(",.!！，。") in _CLOSINGS:
        return False
    return bool(_HANZI_NAME.match(text) or _LATIN_NAME.match(text))


def _paragraphs(text: str) -> list[list[str]]:
    """Non-empty lines grouped by blank lines."""
    groups: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line.strip():
            groups[-1].append(line.strip())
        elif groups[-1]:
            groups.append([])
    return [g for g in groups if g]


def signature_block(own: str) -> list[str]:
    """Lines of the signature in the sender's own text, or [] when there is none.

    After the last ``--`` line when there is one; otherwise the last paragraph when it is not the
    only one, is short, and starts (after closing words such as ``Best regards,``) with a name or a
    labelled phone.
    """
    lines = own.split("\n")
    delimiters = [i for i, line in enumerate(lines) if _SIG_DELIMITER.match(line)]
    if delimiters:
        return [line.strip() for line in lines[delimiters[-1] + 1 :] if line.strip()]
    paragraphs = _paragraphs(own)
    if len(paragraphs) < 2:
        return []
    block = paragraphs[-1]
    while block and block[0].lower().rstrip(",.!！，。") in _CLOSINGS:
        block = block[1:]
    if not block or len(block) > MAX_UNDELIMITED_LINES or any(len(x) > MAX_SIGNATURE_LINE for x in block):
        return []
    if not (is_name_line(block[0]) or _LABELLED_PHONE.match(block[0])):
        return []
    return block


def split_company_title(line: str) -> tuple[str | None, str | None]:
    """(company, title) of an unlabelled line such as ``新元物流有限公司 财务总监`` or ``经理 | XX银行``."""
    text = line.strip()
    parts = [p for p in _PART_SEPARATOR.split(text) if p]
    if len(parts) == 1 and re.search(r"[\u3400-\u9fff]", text):
        parts = text.rsplit(None, 1) if " " in text else [text]
    company = next((p for p in parts if _ORG_WORDS.search(p)), None)
    rest = [p for p in parts if p is not company]
    if company is None and len(parts) == 1:
        return (None, text) if _TITLE_WORDS.search(text) else (text, None)
    if company is None:
        company, rest = parts[0], parts[1:]
    return company, (" ".join(rest) or None)


def parse_block(block: list[str]) -> Signature:
    """Name, phones, e-mails, company and title from the lines of a signature block."""
    name: str | None = None
    mobiles: list[str] = []
    phones: list[str] = []
    emails: list[str] = []
    company: str | None = None
    title: str | None = None
    for line in block:
        labelled = _LABELLED_PHONE.match(line)
        bare = _BARE_PHONE.match(line)
        mail = _EMAIL_LINE.match(line)
        org = _LABELLED_ORG.match(line)
        if labelled or bare:
            match = labelled or bare
            assert match is not None
            value = match.group("value").strip()
            is_mobile = bool(labelled and _MOBILE_LABELS.match(labelled.group("label").strip()))
            (mobiles if is_mobile or looks_like_mobile(value) else phones).append(value)
        elif mail:
            emails.append(mail.group("value"))
        elif org:
            is_title = org.group("label").lower() in {"职位", "职务", "title"}
            title, company = (org.group("value"), company) if is_title else (title, org.group("value"))
        elif name is None and company is None and is_name_line(line):
            name = line.strip()
        elif company is None and title is None:
            company, title = split_company_title(line)
    return Signature(name, tuple(mobiles), tuple(phones), tuple(emails), company, title)


def quoted_phone_keys(quoted: str) -> tuple[str, ...]:
    """Comparable keys (see phone_key) of every phone-like number in quoted text."""
    return tuple(dict.fromkeys(phone_key(m.group(0)) for m in _PHONE_IN_TEXT.finditer(quoted)))


def extract_signature(body: str, advisor_address: str | None = None) -> Signature:
    """The sender's signature from a message body, with quoted text removed first.

    ``advisor_address`` is the recipient's (To): a signature giving that address, or a phone also
    present in the quoted text, sets ``advisor_phone_suspected``. A signature name equal to the
    advisor's is not enough: customers share common names with their advisors.
    """
    own, quoted = split_quoted(body)
    sig = parse_block(signature_block(own))
    keys = quoted_phone_keys(quoted)
    sig = replace(sig, quoted_phones=keys)
    numbers = sig.mobiles + sig.phones
    if not numbers:
        return sig
    in_quote = any(phone_key(n) in keys for n in numbers)
    address = (advisor_address or "").strip().lower()
    names_advisor = bool(address) and address in {e.lower() for e in sig.emails}
    return replace(sig, advisor_phone_suspected=in_quote or names_advisor)
