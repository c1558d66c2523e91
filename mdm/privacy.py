"""Masking of personal identifiers for logs, errors and masked API responses."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d")


def mask_id(value: str | None) -> str:
    """ID document number: first 6 and last 4 kept (``110105********002X``)."""
    if not value:
        return ""
    v = str(value)
    if len(v) <= 10:
        return v[:2] + "*" * max(len(v) - 2, 0)
    return v[:6] + "*" * (len(v) - 10) + v[-4:]


def mask_card(value: str | None) -> str:
    """Bank card: first 6 and last 4 kept."""
    return mask_id(value)


def mask_phone(value: str | None) -> str:
    """Phone: first 3 and last 4 digits of the national number kept (``138****5678``)."""
    if not value:
        return ""
    v = str(value)
    if v.startswith("+86"):
        v = v[3:]
    if len(v) <= 7:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 7) + v[-4:]


def mask_name(value: str | None) -> str:
    """Name: first and last character kept (``张*伟``); two-character names keep the first."""
    if not value:
        return ""
    v = str(value)
    if len(v) <= 1:
        return v
    if len(v) == 2:
        return v[0] + "*"
    return v[0] + "*" * (len(v) - 2) + v[-1]


REDACTED = "***"
_DISTRICT = re.compile(
    r"^((?:.{1,10}?(?:省|自治区|特别行政区))?(?:.{1,10}?(?:市|自治州|地区|盟))?.{1,10}?(?:区|县|旗|市))"
)


def mask_address(value: str | None) -> str:
    """Address kept down to its district (``北京市朝阳区***``); without a district, down to the city."""
    if not value:
        return ""
    text = str(value)
    found = _DISTRICT.match(text)
    return (found.group(1) if found else "") + REDACTED


def mask_email(value: str | None) -> str:
    """E-mail: first character of the local part and the domain (``z***@qq.com``)."""
    if not value:
        return ""
    local, sep, domain = str(value).partition("@")
    return (local[:1] + REDACTED + sep + domain) if sep else REDACTED


def mask_date(value: str | None) -> str:
    """Date: the year only (``1985-**-**``)."""
    if not value:
        return ""
    text = str(value)
    return text[:4] + "-**-**" if re.match(r"^\d{4}", text) else REDACTED


def mask(value: object) -> str:
    """Mask any value that may hold an identifier: every digit run of 7+ keeps only its ends."""
    text = str(value)
    return re.sub(r"[0-9０-９Xx*\-\s]{7,}", lambda m: mask_id(re.sub(r"[\s\-]", "", m.group(0))), text)


def _as_is(value: str | None) -> str:
    return value or ""


#: Golden attribute -> masker for the CLI and the demo: every C2 golden field of the API's policy
#: (``api/policy.yaml``, tested to agree); attributes not listed are shown as they are.
GOLDEN_MASKS = {
    "name": mask_name,
    "name_alt": mask_name,
    "name_pinyin": mask_name,
    "id_number": mask_id,
    "birth_date": mask_date,
    "mobiles": mask_phone,
    "phones": mask_phone,
    "emails": mask_email,
    "addresses": mask_address,
    "bank_cards": mask_card,
}


def mask_golden(attributes: dict[str, object]) -> dict[str, object]:
    """A golden record's attributes with every identifier masked (multi-valued ones value by value)."""
    out: dict[str, object] = {}
    for name, value in attributes.items():
        masker = GOLDEN_MASKS.get(name, _as_is)
        if isinstance(value, list):
            out[name] = [masker(str(v.get("value")) if isinstance(v, dict) else str(v)) for v in value]
        elif masker is _as_is:
            out[name] = value
        else:
            out[name] = masker(None if value is None else str(value))
    return out
