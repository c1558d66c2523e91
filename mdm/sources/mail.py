"""E-mail readers: an mbox export (one record per message) and single ``.eml`` files.

The customer is the sender: From gives name and address, the signature block (mdm.sources.signature)
gives name, mobile, company and title. Headers are decoded from RFC 2047 and bodies from their
transfer encoding and charset here, because the stdlib decodes GB2312 strictly while Chinese mail
clients label GBK text as GB2312: every GB-family charset is decoded as GB18030 (a superset).

Parsing is per message with the stdlib ``email`` package (``policy.default``); there is no vectorised
MIME parser, so the per-message loop is the reader itself. The frame is built once at the end.

Native columns: ``message_id`` (as written, angle brackets kept), ``from_name``, ``from_address``,
``to_name``, ``to_address``, ``subject``, ``date`` (as written), ``date_iso`` (ISO 8601 of ``date``),
``sig_name``, ``sig_mobile`` (List), ``sig_phone`` (List), ``sig_email`` (List), ``sig_company``,
``sig_title``.
"""

from __future__ import annotations

import email
import mailbox
import re
from email import errors, policy
from email.header import decode_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

import polars as pl

from mdm.config import SourceConfig
from mdm.errors import SourceError
from mdm.sources.base import LOCATOR, ROW_FLAGS, ReadResult
from mdm.sources.row_checks import REPLACEMENT, check_text_bytes, flag_bad_encoding, guard_rows
from mdm.sources.signature import extract_signature, phone_key

#: Charsets decoded as GB18030: mail labelled GB2312 often holds GBK characters (e.g. 镕, 喆).
GB_FAMILY = frozenset(
    {"gb2312", "gb_2312", "gb_2312-80", "csgb2312", "euc-cn", "gbk", "x-gbk", "cp936", "gb18030"}
)
_ERRORS = "mdm-replace-one-byte"  # registered by mdm.sources.row_checks
_DAMAGE = (
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64LengthDefect,
    errors.MissingHeaderBodySeparatorDefect,
)
STRING_COLUMNS: tuple[str, ...] = (
    "message_id",
    "from_name",
    "from_address",
    "to_name",
    "to_address",
    "subject",
    "date",
    "date_iso",
    "sig_name",
    "sig_company",
    "sig_title",
)
LIST_COLUMNS: tuple[str, ...] = ("sig_mobile", "sig_phone", "sig_email")
SCHEMA: dict[str, pl.DataType] = {
    **{c: pl.String() for c in STRING_COLUMNS},
    **{c: pl.List(pl.String()) for c in LIST_COLUMNS},
    LOCATOR: pl.String(),
    ROW_FLAGS: pl.List(pl.String()),
}
_SIG_KEYS = "_sig_phone_keys"
_QUOTED_KEYS = "_quoted_phone_keys"
_WORK_SCHEMA: dict[str, pl.DataType] = {
    **SCHEMA,
    _SIG_KEYS: pl.List(pl.String()),
    _QUOTED_KEYS: pl.List(pl.String()),
}
SUSPECTED = "mobile:advisor_phone_suspected"
Row = dict[str, str | list[str] | None]


def codec_for(charset: str | None) -> str:
    """Python codec for a MIME charset label (GB family -> gb18030; none -> utf-8)."""
    label = (charset or "utf-8").strip().strip('"').lower()
    return "gb18030" if label in GB_FAMILY else label


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes in a MIME charset to text; bad bytes become U+FFFD, an unknown charset is read as UTF-8."""
    try:
        return data.decode(codec_for(charset), errors=_ERRORS)
    except LookupError:
        return data.decode("utf-8", errors=_ERRORS)


def _unfold(raw: str) -> str:
    """A header value on one line (RFC 5322 unfolding)."""
    return re.sub(r"\r?\n[ \t]*", " ", raw).strip()


def _raw_chunk(text: str) -> bytes:
    """Bytes of an unencoded header chunk (8-bit bytes survive as surrogate escapes)."""
    return text.encode("utf-8", errors="surrogateescape")


def decode_header_text(raw: str) -> str:
    """An RFC 2047 header value as text, decoding each encoded word in its (GB-tolerant) charset.

    Unencoded 8-bit text is taken as UTF-8, else GB18030.
    """
    parts: list[str] = []
    for chunk, charset in decode_header(_unfold(raw)):
        if charset is not None:
            parts.append(
                decode_text(bytes(chunk) if not isinstance(chunk, str) else _raw_chunk(chunk), charset)
            )
            continue
        data = _raw_chunk(chunk) if isinstance(chunk, str) else _raw_chunk(chunk.decode("raw-unicode-escape"))
        try:
            parts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            parts.append(decode_text(data, "gb18030"))
    return "".join(parts).strip()


def _raw_header(msg: Message, name: str) -> str | None:
    """The header's value as stored in the message (undecoded), first occurrence."""
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _address(msg: Message, name: str) -> tuple[str | None, str | None]:
    """(display name, address) of the first mailbox in an address header."""
    raw = _raw_header(msg, name)
    if raw is None:
        return None, None
    pairs = getaddresses([_unfold(raw)])
    if not pairs:
        return None, None
    display, address = pairs[0]
    return (decode_header_text(display) or None), (address.strip() or None)


def _body(msg: Message) -> tuple[str, bool]:
    """(text/plain body, damaged?) of a message; damaged when its transfer encoding is broken."""
    part: Message | None = msg
    if isinstance(msg, EmailMessage):
        part = msg.get_body(preferencelist=("plain",))
    if part is None or part.is_multipart():
        return "", False
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    damaged = any(isinstance(d, _DAMAGE) for d in (*msg.defects, *part.defects))
    return decode_text(data, part.get_content_charset()), damaged


def _iso_date(raw: str | None) -> str | None:
    """ISO 8601 of an RFC 5322 date, or None when it does not parse."""
    if not raw:
        return None
    try:
        return parsedate_to_datetime(_unfold(raw)).isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def message_row(msg: Message, locator: str) -> Row:
    """Native columns and flags of one parsed message."""
    from_name, from_address = _address(msg, "From")
    to_name, to_address = _address(msg, "To")
    raw_id = _raw_header(msg, "Message-ID")
    raw_subject = _raw_header(msg, "Subject")
    raw_date = _raw_header(msg, "Date")
    body, damaged = _body(msg)
    sig = extract_signature(body, to_address)
    flags: list[str] = []
    if sig.advisor_phone_suspected:
        flags.append(SUSPECTED)
    if damaged:
        flags.append("mobile:damaged_body")
    if REPLACEMENT in body:
        flags.append("mobile:bad_encoding")
    date_iso = _iso_date(raw_date)
    if raw_date and date_iso is None:
        flags.append("source_updated_at:unparsed_date")
    return {
        "message_id": _unfold(raw_id) if raw_id is not None else None,
        "from_name": from_name,
        "from_address": from_address,
        "to_name": to_name,
        "to_address": to_address,
        "subject": decode_header_text(raw_subject) if raw_subject is not None else None,
        "date": _unfold(raw_date) if raw_date is not None else None,
        "date_iso": date_iso,
        "sig_name": sig.name,
        "sig_company": sig.company,
        "sig_title": sig.title,
        "sig_mobile": list(sig.mobiles),
        "sig_phone": list(sig.phones),
        "sig_email": list(sig.emails),
        _SIG_KEYS: [phone_key(n) for n in (*sig.mobiles, *sig.phones)],
        _QUOTED_KEYS: list(sig.quoted_phones),
        LOCATOR: locator,
        ROW_FLAGS: flags,
    }


def parse_message(data: bytes) -> EmailMessage:
    """One RFC 5322 message parsed with ``policy.default``."""
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def flag_quoted_advisor_phones(frame: pl.DataFrame) -> pl.DataFrame:
    """Flag signatures giving a phone that any message of the file quotes (an advisor's phone).

    An advisor's signature is quoted in replies; a customer signature carrying one of those numbers
    most likely copied the advisor's block. Adds the flag once; drops the working key columns.
    """
    quoted = frame.get_column(_QUOTED_KEYS).explode().drop_nulls().unique()
    hit = pl.col(_SIG_KEYS).list.eval(pl.element().is_in(quoted.implode())).list.any().fill_null(False)
    needs = hit & ~pl.col(ROW_FLAGS).list.contains(SUSPECTED)
    flags = (
        pl.when(needs).then(pl.col(ROW_FLAGS).list.concat(pl.lit([SUSPECTED]))).otherwise(pl.col(ROW_FLAGS))
    )
    return frame.with_columns(flags.alias(ROW_FLAGS)).drop(_SIG_KEYS, _QUOTED_KEYS)


def _finish(rows: list[Row], cfg: SourceConfig, file: str) -> ReadResult:
    """Frame of the rows, with advisor-phone and bad-encoding flags, key and length checks."""
    work = (
        pl.DataFrame(rows, schema=_WORK_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_WORK_SCHEMA)
    )
    frame = flag_quoted_advisor_phones(work)
    frame = flag_bad_encoding(frame, cfg, file)
    frame, rejects = guard_rows(frame, cfg, file)
    return ReadResult(frame=frame, rejects=rejects, meta={"messages": str(len(rows))})


def read_mbox(path: Path, cfg: SourceConfig) -> ReadResult:
    """One record per message of an mbox file; locator ``message N`` (1-based)."""
    file = str(path)
    data = path.read_bytes()
    check_text_bytes(data, file, "utf-8")
    if not data.strip():
        raise SourceError(file, "the file is empty")
    if not data.lstrip(b"\r\n").startswith(b"From "):
        raise SourceError(file, "not an mbox file: it does not start with a 'From ' separator line", "line 1")
    box = mailbox.mbox(path, create=False)
    try:
        rows = [
            message_row(parse_message(box.get_bytes(key)), f"message {n}")
            for n, key in enumerate(box.keys(), 1)
        ]
    finally:
        box.close()
    if not data.endswith(b"\n") or (rows and _is_cut(rows[-1])):
        raise SourceError(file, "the last message is cut off: the file is truncated", f"message {len(rows)}")
    return _finish(rows, cfg, file)


def _is_cut(row: Row) -> bool:
    """True when the row's body has a broken transfer encoding."""
    return "mobile:damaged_body" in (row[ROW_FLAGS] or [])


def read_eml(path: Path, cfg: SourceConfig) -> ReadResult:
    """One record from one ``.eml`` message file; the locator is the file name."""
    file = str(path)
    data = path.read_bytes()
    check_text_bytes(data, file, "utf-8")
    if not data.strip():
        raise SourceError(file, "the file is empty")
    msg = parse_message(data)
    if not msg.keys() or any(isinstance(d, errors.MissingHeaderBodySeparatorDefect) for d in msg.defects):
        raise SourceError(file, "not an RFC 5322 message: no header section", "line 1")
    row = message_row(msg, path.name)
    if _is_cut(row):
        raise SourceError(file, "the message body is cut off: the file is truncated", path.name)
    return _finish([row], cfg, file)
