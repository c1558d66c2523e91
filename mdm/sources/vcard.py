"""vCard reader (``.vcf``): versions 2.1, 3.0 and 4.0 mixed in one file, one record per card.

No PyPI library was used: ``vobject`` 0.9.9 fails on the sample's vCard 2.1 properties, whose
quoted-printable soft line breaks split UTF-8 characters across lines. Lines are therefore unfolded
on bytes, before any decoding: RFC 6350 folding (a line starting with a space or tab continues the
previous one) and 2.1 quoted-printable soft breaks (a QP line ending in ``=`` continues on the next).
Each value is then decoded from QP with its CHARSET (GB-family charsets as GB18030) or from the
file's encoding. Parsing is per card in Python: there is no vectorised vCard parser.

Native columns: ``uid``, ``version``, ``fn``, ``n_family``, ``n_given``, ``n_name`` (family+given for
hanzi, "given family" otherwise), ``tel_cell`` (List: TYPE=CELL), ``tel_other`` (List: HOME, WORK,
VOICE, … landlines), ``email`` (List), ``adr`` (components joined, country 中国 dropped), ``adr_postal``,
``bday`` (as written: ``19650216``, ``1975-03-22``, ``--1226``), ``org``, ``title``, ``note``,
``note_id_number`` (an ID number the note gives after 证件/身份证). Locator ``card N (line L)``.
"""

from __future__ import annotations

import quopri
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mdm.config import SourceConfig
from mdm.errors import RowReject, SourceError
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.mail import codec_for
from mdm.sources.outlook import note_id_number
from mdm.sources.row_checks import check_text_bytes, flag_bad_encoding, guard_rows

_ERRORS = "mdm-replace-one-byte"  # registered by mdm.sources.row_checks
DEFAULT_COUNTRIES = frozenset({"中国", "中华人民共和国", "china", "cn", "prc", "people's republic of china"})
_HAN = re.compile(r"[\u3400-\u9fff]")
STRING_COLUMNS: tuple[str, ...] = (
    "uid",
    "version",
    "fn",
    "n_family",
    "n_given",
    "n_name",
    "adr",
    "adr_postal",
    "bday",
    "org",
    "title",
    "note",
)
LIST_COLUMNS: tuple[str, ...] = ("tel_cell", "tel_other", "email")
SCHEMA: dict[str, pl.DataType] = {
    **{c: pl.String() for c in STRING_COLUMNS},
    **{c: pl.List(pl.String()) for c in LIST_COLUMNS},
    LOCATOR: pl.String(),
    ROW_FLAGS: pl.List(pl.String()),
}


@dataclass(frozen=True)
class Property:
    """One unfolded content line: name, parameters (upper-cased keys) and decoded value."""

    name: str
    params: dict[str, list[str]]
    value: str
    line: int


@dataclass
class Card:
    """The properties of one BEGIN:VCARD … END:VCARD block; ``index`` counts cards from 1."""

    index: int
    line: int
    props: list[Property] = field(default_factory=list)


def unfold(lines: list[bytes]) -> list[tuple[int, bytes]]:
    """Logical lines with the 1-based number of their first physical line.

    RFC 6350 folding: a line starting with space or tab continues the previous one (the one
    whitespace character is removed). vCard 2.1 quoted-printable: a QP line ending in ``=``
    (soft break) continues on the next line.
    """
    out: list[tuple[int, bytes]] = []
    for number, line in enumerate(lines, 1):
        if out and line[:1] in (b" ", b"\t"):
            out[-1] = (out[-1][0], out[-1][1] + line[1:])
        elif out and _is_qp(out[-1][1]) and out[-1][1].endswith(b"="):
            out[-1] = (out[-1][0], out[-1][1][:-1] + line)
        else:
            out.append((number, line))
    return out


def _is_qp(line: bytes) -> bool:
    """True when the line's parameters (before the first colon) declare quoted-printable."""
    head = line.split(b":", 1)[0].upper()
    return b"QUOTED-PRINTABLE" in head


def parse_params(raw: list[str]) -> dict[str, list[str]]:
    """``TYPE=CELL,VOICE`` / bare ``CELL`` (2.1) / ``type="cell,voice"`` -> {"TYPE": ["CELL", "VOICE"]}."""
    params: dict[str, list[str]] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            key, value = (
                ("ENCODING", item) if item.upper() in {"QUOTED-PRINTABLE", "BASE64"} else ("TYPE", item)
            )
        values = [v.strip().strip('"').upper() for v in value.strip('"').split(",") if v.strip()]
        params.setdefault(key.strip().upper(), []).extend(values)
    return params


def parse_line(line: bytes, number: int, encoding: str) -> Property | None:
    """One content line as a Property, or None when it has no ``name:value`` form."""
    head, sep, raw_value = line.partition(b":")
    if not sep or not head.strip():
        return None
    head_text = head.decode("ascii", errors="replace")
    name, *raw_params = head_text.split(";")
    params = parse_params(raw_params)
    name = name.split(".")[-1].strip().upper()
    if "QUOTED-PRINTABLE" in params.get("ENCODING", []):
        charset = (params.get("CHARSET") or ["UTF-8"])[0]
        value = quopri.decodestring(raw_value).decode(codec_for(charset), errors=_ERRORS)
    else:
        value = raw_value.decode(encoding, errors=_ERRORS)
    return Property(name, params, value, number)


def split_components(value: str) -> list[str]:
    """Structured value (N, ADR, ORG) split on unescaped ``;``, with ``\\,`` ``\\;`` ``\\n`` unescaped."""
    return [unescape(part) for part in re.split(r"(?<!\\);", value)]


def unescape(value: str) -> str:
    """RFC 6350 text escapes undone."""
    return re.sub(r"\\([\\,;nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def read_cards(
    text_lines: list[tuple[int, bytes]], encoding: str, file: str
) -> tuple[list[Card], list[RowReject]]:
    """Cards of the file; a card not closed before the next BEGIN is rejected, one cut off at the end
    of the file, or content outside any card, makes the file unreadable."""
    cards: list[Card] = []
    rejects: list[RowReject] = []
    current: Card | None = None
    for number, line in text_lines:
        upper = line.strip().upper()
        if upper == b"BEGIN:VCARD":
            if current is not None:
                rejects.append(_reject(file, current, "the card has no END:VCARD"))
            current = Card(len(cards) + len(rejects) + 1, number)
        elif upper == b"END:VCARD" and current is not None:
            cards.append(current)
            current = None
        elif current is not None:
            prop = parse_line(line, number, encoding)
            if prop is None:
                raise SourceError(file, "a line inside a card is not a vCard property", f"line {number}")
            current.props.append(prop)
        elif line.strip():
            raise SourceError(
                file, "content outside BEGIN:VCARD … END:VCARD: not a vCard file", f"line {number}"
            )
    if current is not None:
        raise SourceError(
            file, "the last card has no END:VCARD: the file is truncated", f"line {current.line}"
        )
    return cards, rejects


def _reject(file: str, card: Card, reason: str) -> RowReject:
    """A quarantined card."""
    return RowReject(file=file, locator=f"card {card.index} (line {card.line})", field=None, reason=reason)


def join_address(parts: list[str]) -> tuple[str | None, str | None]:
    """(address, postal code) of ADR components [pobox, ext, street, locality, region, code, country].

    Hanzi addresses run from large to small (region, locality, street) without separators; others
    run from small to large, comma-separated. A default country (中国) is dropped; a locality or region
    the street already starts with, or a locality equal to the region (北京市), is not repeated.
    """
    pobox, ext, street, locality, region, code, country = ([*parts, *[""] * 7])[:7]
    country = "" if country.strip().lower() in DEFAULT_COUNTRIES else country.strip()
    if _HAN.search("".join(parts)):
        pieces = [
            p.strip() for p in (country, region, locality) if p.strip() and not street.startswith(p.strip())
        ]
        pieces = list(dict.fromkeys(pieces))
        text = "".join(p.strip() for p in [*pieces, street, ext, pobox] if p.strip())
    else:
        text = ", ".join(p.strip() for p in [pobox, ext, street, locality, region, country] if p.strip())
    return (text or None), (code.strip() or None)


def _first(props: list[Property], name: str) -> Property | None:
    """First property with this name."""
    return next((p for p in props if p.name == name), None)


def _tel_value(prop: Property) -> str:
    """A TEL value without its ``tel:`` URI scheme (vCard 4.0 ``VALUE=uri``)."""
    value = prop.value.strip()
    return value[4:] if value.lower().startswith("tel:") else value


def card_row(card: Card) -> dict[str, object]:
    """Native columns of one card."""
    props = card.props
    values = {
        name: (p.value.strip() if (p := _first(props, name)) else None) for name in ("UID", "VERSION", "BDAY")
    }
    n = split_components(p.value) if (p := _first(props, "N")) else []
    family, given = [*n, "", ""][:2]
    han = bool(_HAN.search(family + given))
    n_name = (family + given if han else " ".join(x for x in (given, family) if x)) or None
    adr_prop = next((p for p in props if p.name == "ADR" and "HOME" in p.params.get("TYPE", [])), None)
    adr_prop = adr_prop or _first(props, "ADR")
    adr, postal = join_address(split_components(adr_prop.value)) if adr_prop else (None, None)
    tels = [p for p in props if p.name == "TEL"]
    cell = [_tel_value(p) for p in tels if {"CELL", "MOBILE"} & set(p.params.get("TYPE", []))]
    other = [_tel_value(p) for p in tels if not {"CELL", "MOBILE"} & set(p.params.get("TYPE", []))]
    org = " ".join(x for x in split_components(p.value) if x.strip()) if (p := _first(props, "ORG")) else None
    text = {
        name: (unescape(p.value).strip() if (p := _first(props, name)) else None)
        for name in ("FN", "TITLE", "NOTE")
    }
    return {
        "uid": values["UID"],
        "version": values["VERSION"],
        "fn": text["FN"],
        "n_family": family or None,
        "n_given": given or None,
        "n_name": n_name,
        "adr": adr,
        "adr_postal": postal,
        "bday": values["BDAY"],
        "org": org or None,
        "title": text["TITLE"],
        "note": text["NOTE"],
        "tel_cell": [t for t in cell if t],
        "tel_other": [t for t in other if t],
        "email": [p.value.strip() for p in props if p.name == "EMAIL" and p.value.strip()],
        LOCATOR: f"card {card.index} (line {card.line})",
        ROW_FLAGS: [],
    }


def read_vcard(path: Path, cfg: SourceConfig) -> ReadResult:
    """One record per vCard of a ``.vcf`` file (2.1, 3.0 and 4.0 mixed)."""
    file = str(path)
    data = path.read_bytes()
    check_text_bytes(data, file, cfg.encoding)
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data.strip():
        raise SourceError(file, "the file is empty")
    if not data.lstrip().upper().startswith(b"BEGIN:VCARD"):
        raise SourceError(file, "not a vCard file: it does not start with BEGIN:VCARD", "line 1")
    physical = [line.rstrip(b"\r") for line in data.split(b"\n")]
    cards, rejects = read_cards(unfold(physical), cfg.encoding, file)
    rows = [card_row(card) for card in cards]
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)
    frame = frame.with_columns(note_id_number(pl.col("note")).alias("note_id_number"))
    frame = flag_bad_encoding(frame, cfg, file)
    frame, guarded = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects + guarded, meta={"cards": str(len(rows))})
