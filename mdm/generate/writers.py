"""One writer per file kind: rendered records in, a file (or folder) and its truth rows out.

Columnar kinds (fixed-width, JSONL, delimited, Outlook CSV) are built with polars expressions. The
workbook, mbox, vCard and .eml writers emit one message / row at a time because every record needs
its own charset and transfer encoding; those sources are small (hundreds to thousands of records).
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xlsxwriter

from mdm.generate.noise import pick
from mdm.generate.persons import ALNUM, chars_to_str, random_digits
from mdm.generate.tables import Tables

EXTRACT_DATE = "20261031"
CHUNK = 200_000
ID_TYPE_CN = {"01": "身份证", "03": "护照", "04": "港澳居民来往内地通行证", "05": "台湾居民来往大陆通行证"}
ID_TYPE_APP = {"01": "ID_CARD", "03": "PASSPORT", "04": "HK_MACAO_PERMIT", "05": "TAIWAN_PERMIT"}
CRM_COLUMNS = [
    "客户编号",
    "客户姓名",
    "性别",
    "证件类型",
    "证件号码",
    "出生日期",
    "手机号码",
    "固定电话",
    "电子邮箱",
    "联系地址",
    "客户经理",
    "开户日期",
    "备注",
]
OUTLOOK_COLUMNS = ["First Name", "Middle Name", "Last Name", "Title", "Suffix", "Nickname", "E-mail Address", "E-mail 2 Address", "Home Phone", "Business Phone", "Mobile Phone", "Other Phone", "Job Title", "Department", "Company", "Business Street", "Business City", "Home Street", "Home City", "Home State", "Home Postal Code", "Home Country/Region", "Birthday", "Anniversary", "Categories", "Notes", "Web Page"]  # fmt: skip


def truth(source: str, keys: pl.Series, persons: pl.Series) -> pl.DataFrame:
    """Truth rows `source,source_key,person_id` for one source."""
    return pl.DataFrame({"source": source, "source_key": keys.cast(pl.String), "person_id": persons})


def gb_width(e: pl.Expr) -> pl.Expr:
    """Width in GB18030 bytes of text made of ASCII and BMP hanzi / full-width forms (1 or 2 bytes each)."""
    return e.str.len_chars() + e.str.count_matches(r"[^\x00-\x7f]")


def fixed(e: pl.Expr, width: int) -> pl.Expr:
    """Cut to `width` GB18030 bytes at a character boundary, then pad with spaces to exactly `width`."""
    e = e.fill_null("")
    widths = pl.when(pl.element().str.len_bytes() == 1).then(1).otherwise(2).cum_sum()
    keep = e.str.split("").list.eval(widths <= width).list.sum()
    cut = pl.when(gb_width(e) > width).then(e.str.slice(0, keep)).otherwise(e)
    return pl.concat_str(cut, pl.lit(" " * width).str.slice(0, pl.lit(width) - gb_width(cut)))


def sorted_keys(rng: np.random.Generator, n: int, start: int, step: int) -> np.ndarray:
    """Ascending distinct integer keys from a random start with random gaps."""
    return start + np.cumsum(rng.integers(1, step, n))


def write_core_banking(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """Fixed-width GB18030 extract: HDR line, 162-byte detail lines, TRL line with the count, CRLF."""
    keys = pl.Series(sorted_keys(rng, rec.height, 10_224_000_000, 1000)).cast(pl.String).str.zfill(12)
    mobile_blank = pl.Series(rng.random(rec.height) < 0.04)
    branch_codes = dict(enumerate(code for _, code in t.branches))
    lines = rec.select(
        pl.concat_str(
            pl.lit("D"),
            pl.lit(keys),
            fixed(pl.col("r_name"), 20),
            pl.col("sex").cast(pl.String),
            pl.col("id_type"),
            fixed(pl.col("r_id"), 18),
            pl.col("r_birth").dt.strftime("%Y%m%d").fill_null("00000000"),
            fixed(pl.when(mobile_blank).then(None).otherwise(pl.col("r_mobile")), 11),
            fixed(pl.col("r_home"), 15),
            fixed(pl.col("r_address"), 60),
            pl.col("r_open").dt.strftime("%Y%m%d"),
            pl.col("branch_idx").replace_strict(branch_codes, return_dtype=pl.String),
        ).alias("line")
    )["line"]
    with path.open("wb") as fh:
        fh.write(f"HDR{EXTRACT_DATE}CORECIF".ljust(162).encode("ascii") + b"\r\n")
        for start in range(0, len(lines), CHUNK):
            chunk = lines.slice(start, CHUNK)
            fh.write(("\r\n".join(chunk.to_list()) + "\r\n").encode("gb18030"))
        fh.write(f"TRL{rec.height:010d}".ljust(162).encode("ascii") + b"\r\n")
    return truth("core_banking", keys, rec["person_id"])


def write_wealth_app(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """JSON Lines with nested profile, identity, contacts, addresses, bank cards (written by polars)."""
    n = rec.height
    uid = chars_to_str(ALNUM[rng.integers(0, len(ALNUM), size=(n, 10))])
    keys = pl.concat_str(pl.lit("WA"), pl.lit(uid)).alias("user_id")
    fmt = pl.Series(rng.integers(0, 5, n))
    stamp = pl.Series(rng.integers(0, 365 * 24 * 60, n)) * 60_000_000 + int(
        datetime(2026, 1, 1).timestamp() * 1e6
    )
    contact = pl.struct(pl.lit("mobile").alias("type"), pl.col("r_mobile_fmt").alias("value"))
    email = pl.struct(pl.lit("email").alias("type"), pl.col("r_email").alias("value"))
    phone = pl.struct(pl.lit("phone").alias("type"), pl.col("r_home").alias("value"))
    address = pl.struct("province", "city", "district", "detail")
    has_value = pl.element().struct.field("value").is_not_null()
    out = rec.with_columns(pl.Series("u_fmt", fmt)).select(
        keys,
        pl.struct(
            pl.col("r_name").alias("name"),
            pl.when(pl.col("u_pinyin")).then(pl.col("r_pinyin").str.to_uppercase()).alias("name_en"),
            pl.when(pl.col("sex") == 1).then(pl.lit("M")).otherwise(pl.lit("F")).alias("gender"),
            pl.col("r_birth").dt.strftime("%Y-%m-%d").alias("birthday"),
        ).alias("profile"),
        pl.struct(
            pl.col("id_type").replace_strict(ID_TYPE_APP, return_dtype=pl.String).alias("type"),
            pl.col("r_id").fill_null(pl.col("id_no")).alias("number"),
            (pl.col("u_int") % 6 != 0).alias("verified"),
        ).alias("identity"),
        pl.concat_list(contact, email, phone).list.eval(pl.element().filter(has_value)).alias("contacts"),
        pl.concat_list(pl.when(~pl.col("u_addr_missing")).then(address)).list.drop_nulls().alias("addresses"),
        pl.concat_list("card1", "card2").list.drop_nulls().alias("bank_cards"),
        pl.format("C{}", pl.col("u_int") % 5 + 1).alias("risk_level"),
        pl.lit(stamp).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:00+08:00").alias("updated_at"),
    )
    out.write_ndjson(path)
    return truth("wealth_app", out["user_id"], rec["person_id"])


def write_card_system(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """`|`-delimited GBK extract with `H|system|date|version` header and `T|count` trailer, CRLF."""
    n = rec.height
    keys = pl.concat_str(
        pl.lit("CC"), chars_to_str(random_digits(rng, n, 8)), pl.int_range(0, n).cast(pl.String).str.zfill(4)
    )
    lines = rec.select(
        pl.concat_str(
            keys,
            pl.col("r_name"),
            pl.when(pl.col("sex") == 1).then(pl.lit("男")).otherwise(pl.lit("女")),
            pl.col("r_id").fill_null(""),
            pl.col("r_mobile_fmt"),
            pl.col("card1"),
            pl.col("r_address").fill_null(""),
            separator="|",
        ).alias("line"),
        keys.alias("key"),
    )
    body = "\r\n".join([f"H|CARDSYS|{EXTRACT_DATE}|V2", *lines["line"].to_list(), f"T|{n}", ""])
    path.write_bytes(body.encode("gbk"))
    return truth("card_system", lines["key"], rec["person_id"])


def write_outlook(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """Outlook contacts CSV: UTF-8 BOM, every field quoted, CRLF, notes spanning lines; key = row number."""
    n = rec.height
    order = pl.Series(rng.integers(0, 3, n))
    note = pl.Series(t.notes).gather(rng.integers(0, len(t.notes), n))
    cats = pl.Series(t.outlook_categories).gather(rng.integers(0, len(t.outlook_categories), n))
    pinyin = pl.col("u_pinyin")
    first = pl.when(pinyin).then(pl.col("py_given")).otherwise(pl.col("given"))
    last = pl.when(pinyin).then(pl.col("py_surname")).otherwise(pl.col("surname"))
    empty = pl.lit("")
    cols: dict[str, pl.Expr] = {c: empty for c in OUTLOOK_COLUMNS}
    cols |= {
        "First Name": pl.when(pl.lit(order) == 1).then(last).otherwise(first),
        "Last Name": pl.when(pl.lit(order) == 1).then(first).otherwise(last),
        "E-mail Address": pl.col("r_email").fill_null(""),
        "Home Phone": pl.col("r_home").fill_null(""),
        "Mobile Phone": pl.col("r_mobile_fmt"),
        "Job Title": pl.col("title"),
        "Company": pl.col("company"),
        "Home Street": pl.concat_str(pl.col("district"), pl.col("detail")),
        "Home City": pl.col("city"),
        "Home State": pl.col("province"),
        "Birthday": pl.col("r_birth").dt.strftime("%-m/%-d/%Y").fill_null("0/0/00"),
        "Anniversary": pl.lit("0/0/00"),
        "Categories": pl.lit(cats),
        "Notes": pl.when(pl.col("u_id_note"))
        .then(pl.concat_str(pl.lit(note), pl.lit("\r\n证件："), pl.col("id_no")))
        .otherwise(empty),
    }
    out = rec.select(**cols)
    csv = out.write_csv(quote_style="always", line_terminator="\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + csv.encode("utf-8"))
    return truth("outlook_contacts", pl.Series(np.arange(1, n + 1)), rec["person_id"])


def write_branch_crm(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """Workbook of branch sheets: titles, blank row, header, typed cells (text, numbers, dates), footers."""
    n = rec.height
    keys = pl.Series(sorted_keys(rng, n, 150_000, 25)).cast(pl.String).str.zfill(7)
    keys = "BR" + keys
    date_fmt = pl.Series(rng.integers(0, 6, n))
    remark = pl.Series(t.crm_remarks).gather(rng.integers(0, len(t.crm_remarks), n))
    y, m, d = (pl.col("r_birth").dt.year(), pl.col("r_birth").dt.month(), pl.col("r_birth").dt.day())
    birth_text = pick(
        pl.lit(date_fmt),
        [
            pl.col("r_birth").dt.strftime("%Y.%m.%d"),
            pl.col("r_birth").dt.strftime("%Y%m%d"),
            pl.format("{}/{}/{}", y, m, d),
            pl.format("{}年{}月{}日", y, m, d),
            pl.col("r_birth").dt.strftime("%Y-%m-%d"),
            pl.col("r_birth").dt.strftime("%Y-%m-%d"),
        ],
    )
    u = pl.Series(rng.random(n))
    v = pl.Series(rng.random(n))
    w = pl.Series(rng.random(n))
    rates = noise["excel_float"], noise["excel_number_mobile"], noise["crm_date_text"]
    cells = rec.select(
        pl.lit(keys).alias("key"),
        pl.col("r_name"),
        pl.when(pl.col("u_sex_missing"))
        .then(None)
        .when(pl.col("sex") == 1)
        .then(pl.lit("男"))
        .otherwise(pl.lit("女"))
        .alias("sex"),
        pl.col("id_type").replace_strict(ID_TYPE_CN, return_dtype=pl.String).alias("id_type"),
        pl.col("r_id"),
        (pl.lit(u) < rates[0]).and_(pl.col("r_id").str.contains(r"^\d{18}$")).alias("id_as_float"),
        pl.col("r_birth"),
        pl.when(pl.lit(v) < rates[2]).then(birth_text).alias("birth_text"),
        pl.col("r_mobile_fmt"),
        (pl.lit(w) < rates[1]).alias("mobile_as_number"),
        pl.col("r_mobile"),
        pl.col("r_home"),
        pl.col("r_email"),
        pl.col("r_address").fill_null(pl.concat_str(pl.col("district"), pl.col("detail"))),
        pl.col("adv_name"),
        pl.col("r_open"),
        pl.when(pl.col("u_int") % 10 == 0).then(pl.lit(remark)).alias("remark"),
        (pl.col("branch_idx") % 3).alias("sheet"),
    )
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    wb.set_properties({"created": datetime(2026, 10, 31, 9, 0, 0), "author": "cbs"})
    date_cell = wb.add_format({"num_format": "yyyy-mm-dd"})
    for s, (sheet_name, _) in enumerate(t.branches[:3]):
        part = cells.filter(pl.col("sheet") == s)
        _write_sheet(wb.add_worksheet(sheet_name), part, date_cell, rng, rec["adv_name"])
    wb.close()
    return truth("branch_crm", keys, rec["person_id"])


def _excel_float(id18: str) -> float:
    """An 18-digit ID as Excel keeps a typed number: 15 significant digits, the rest lost."""
    return float(f"{int(id18):.14e}")


def _write_sheet(
    ws: Any, part: pl.DataFrame, date_cell: Any, rng: np.random.Generator, staff: pl.Series
) -> None:
    """Write one branch sheet row by row (xlsxwriter streams rows in order)."""
    maker, exporter = staff.gather(rng.integers(0, len(staff), 2)).to_list()
    ws.write_string(0, 0, "XX银行个人客户信息登记表")
    ws.write_string(1, 0, f"导出日期：2026-10-31 导出人：{exporter}")
    for c, name in enumerate(CRM_COLUMNS):
        ws.write_string(3, c, name)
    r = 4
    for row in part.iter_rows(named=True):
        texts = [row["key"], row["r_name"], row["sex"], row["id_type"]]
        for c, val in enumerate(texts):
            if val is not None:
                ws.write_string(r, c, val)
        if row["r_id"] is not None:
            if row["id_as_float"]:
                ws.write_number(r, 4, _excel_float(row["r_id"]))
            else:
                ws.write_string(r, 4, row["r_id"])
        if row["birth_text"] is not None:
            ws.write_string(r, 5, row["birth_text"])
        elif row["r_birth"] is not None:
            ws.write_datetime(r, 5, datetime.combine(row["r_birth"], datetime.min.time()), date_cell)
        if row["mobile_as_number"]:
            ws.write_number(r, 6, int(row["r_mobile"]))
        else:
            ws.write_string(r, 6, row["r_mobile_fmt"])
        for c, key in ((7, "r_home"), (8, "r_email"), (9, "r_address"), (10, "adv_name")):
            if row[key] is not None:
                ws.write_string(r, c, row[key])
        ws.write_datetime(r, 11, datetime.combine(row["r_open"], datetime.min.time()), date_cell)
        if row["remark"] is not None:
            ws.write_string(r, 12, row["remark"])
        r += 1
    ws.write_string(r + 1, 0, f"合计：{part.height} 条")
    ws.write_string(r + 2, 0, f"制表人：{maker}")


def _fits_gb2312(text: str) -> bool:
    """Whether the text is encodable in GB2312 (else a correct label is GBK)."""
    try:
        text.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def encoded_word(text: str, charset: str, q: bool = False) -> str:
    """RFC 2047 encoded word (B or Q) for a header value."""
    if charset == "gb2312" and not _fits_gb2312(text):
        charset = "GBK"
    raw = text.encode("utf-8" if charset.lower() == "utf-8" else "gbk")
    if q:
        q_text = "".join(
            chr(b) if chr(b).isalnum() and b < 128 else "_" if b == 32 else f"={b:02X}" for b in raw
        )
        return f"=?{charset}?Q?{q_text}?="
    return f"=?{charset}?B?{base64.b64encode(raw).decode('ascii')}?="


def _header(text: str, choice: int) -> str:
    """A display name or subject as plain ASCII or one of the sample's encoded-word styles."""
    if text.isascii():
        return text
    return [
        lambda: encoded_word(text, "UTF-8"),
        lambda: encoded_word(text, "utf-8", q=True),
        lambda: encoded_word(text, "gb2312"),
        lambda: encoded_word(text, "GBK"),
    ][choice % 4]()


def _mail_messages(rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any], kind: str) -> Iterator[tuple[str, bytes, str]]:  # fmt: skip
    """(envelope sender + date line, message bytes with LF ends, Message-ID) per record, oldest first."""
    n = rec.height
    start = datetime(2026, 3, 1) if kind == "mbox" else datetime(2026, 6, 1)
    minutes = np.sort(rng.integers(0, 200 * 24 * 60, n))
    body_kind = rng.choice(5, n, p=[0.35, 0.18, 0.2, 0.18, 0.09])
    hdr_choice = rng.integers(0, 8, n)
    topic = rng.integers(0, len(t.mail_topics), n)
    reply = rng.random(n) < noise["advisor_reply"]
    gbk_only = rng.random(n) < noise["gbk_only_in_gb2312"]
    rand6 = rng.integers(100_000, 1_000_000, n)
    upper = rng.random(n) < 0.05
    for i, row in enumerate(rec.iter_rows(named=True)):
        when = start + timedelta(minutes=int(minutes[i]))
        addr = row["email"] if row["has_email"] else f"{row['qq']}@qq.com"
        addr = addr.upper() if upper[i] else addr
        domain = addr.split("@")[1].lower()
        mid = (
            f"<{when:%Y%m%d%H%M%S}.{rand6[i]}@{domain}>"
            if kind == "mbox"
            else f"<eml{i + 1:04d}.{rand6[i]}@{domain}>"
        )
        english = row["english_name"] or row["u_pinyin"]
        display = row["r_pinyin"] if english else row["r_name"]
        sig_name = display
        cs = int(body_kind[i])
        charset = ["utf-8", "utf-8", "utf-8", "gb2312", "gbk"][cs]
        if charset == "gb2312" and gbk_only[i] and not english:
            sig_name = row["name"].translate(str.maketrans(t.s2t))
        adv_sur = row["adv_name"][0]
        if reply[i]:
            subject = "Re: " + t.reply_topic[0]
            sent = when - timedelta(days=int(rng.integers(1, 9)))
            body = (
                t.reply_topic[2].format(adv=adv_sur)
                + f"\n\n{sig_name}\n\n在 {sent.year}年{sent.month}月{sent.day}日 {sent:%H:%M}，"
                + f"{row['adv_name']} <{row['adv_email']}> 写道：\n"
                + f"> {row['surname']}先生/女士您好，\n> {t.reply_topic[1]}\n>\n> {row['adv_name']}\n"
                + f"> 客户经理 | XX银行{t.branches[row['branch_idx']][0]}\n> 手机：{row['adv_mobile']}\n"
                + f"> 邮箱：{row['adv_email']}\n"
            )
        else:
            changed = row["mobile_prev"] is not None and int(rand6[i]) % 2 == 0
            subject, text = t.phone_change_topic if changed else t.mail_topics[int(topic[i])]
            sig_mobile = row["mobile"] if changed else row["r_mobile_fmt"]
            body = (
                f"{adv_sur}经理您好：\n\n{text}\n\n谢谢！\n\n--\n{sig_name}\n手机：{sig_mobile}\n"
                f"{row['company']} {row['title']}\n"
            )
        if charset == "gb2312" and not gbk_only[i] and not _fits_gb2312(body):
            charset = "gbk"
        raw = body.encode("gbk" if charset in ("gb2312", "gbk") else "utf-8")
        cte = ["base64", "8bit", "quoted-printable", "base64", "8bit"][cs]
        if cte == "base64":
            payload = base64.encodebytes(raw)
        elif cte == "quoted-printable":
            payload = quopri.encodestring(raw)
        else:
            payload = raw
        headers = (
            f"From: {_header(display, int(hdr_choice[i]))} <{addr}>\n"
            f"To: {_header(row['adv_name'], int(hdr_choice[i]) + 1)} <{row['adv_email']}>\n"
            f"Subject: {_header(subject, int(hdr_choice[i]) + 2)}\n"
            f"Date: {when:%a, %d %b %Y %H:%M:%S} +0800\n"
            f"Message-ID: {mid}\nMIME-Version: 1.0\n"
            f'Content-Type: text/plain; charset="{charset}"\nContent-Transfer-Encoding: {cte}\n\n'
        )
        yield f"From {addr} {when:%a %b %e %H:%M:%S %Y}", headers.encode("ascii") + payload, mid


def write_mbox(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """mbox of customers' mails to advisors: encoded headers, mixed charsets and transfer encodings."""
    keys: list[str] = []
    with path.open("wb") as fh:
        for envelope, msg, mid in _mail_messages(rec, rng, t, noise, "mbox"):
            fh.write(envelope.encode("ascii") + b"\n" + msg.rstrip(b"\n") + b"\n\n")
            keys.append(mid)
    return truth("advisor_mail", pl.Series(keys), rec["person_id"])


def write_eml(folder: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """Single RFC 5322 messages with CRLF line ends, one file each (0001.eml, …)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for i, (_, msg, mid) in enumerate(_mail_messages(rec, rng, t, noise, "eml"), start=1):
        (folder / f"{i:04d}.eml").write_bytes(msg.replace(b"\n", b"\r\n"))
        keys.append(mid)
    return truth("mail_files", pl.Series(keys), rec["person_id"])


def _qp_lines(prefix: str, value: str) -> list[str]:
    """vCard 2.1 quoted-printable property split with `=` soft breaks, never inside an `=XX` escape."""
    tokens = [
        chr(b) if (chr(b).isalnum() and b < 128) or chr(b) in ";-. " else f"={b:02X}" for b in value.encode()
    ]
    lines, cur = [], prefix
    for tok in tokens:
        if len(cur) + len(tok) > 75:
            lines.append(cur + "=")
            cur = ""
        cur += tok
    return [*lines, cur]


def _fold(line: str) -> list[str]:
    """vCard 3.0/4.0 line folding at 75 octets without splitting a UTF-8 character."""
    out, cur, size = [], "", 0
    for ch in line:
        b = len(ch.encode())
        if size + b > 75:
            out.append(cur)
            cur, size = " ", 1
        cur += ch
        size += b
    return [*out, cur]


def write_vcf(path: Path, rec: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:  # fmt: skip
    """Advisors' phone contacts: vCard 2.1 (QP), 3.0 and 4.0 mixed, CRLF, folded lines."""
    n = rec.height
    version = rng.choice(3, n, p=[0.28, 0.51, 0.21])
    hexes = rng.integers(0, 16, size=(n, 32))
    uid_raw = chars_to_str(np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[hexes]).to_list()
    bday_kind = rng.integers(0, 4, n)
    show = rng.random((n, 4))
    note_pick = rng.integers(0, len(t.notes), n)
    out: list[str] = []
    keys: list[str] = []
    for i, row in enumerate(rec.iter_rows(named=True)):
        h = uid_raw[i]
        uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        keys.append(uid)
        v = int(version[i])
        pinyin = row["english_name"] or row["u_pinyin"]
        sur, giv = (row["py_surname"], row["py_given"]) if pinyin else (row["surname"], row["given"])
        if row["u_trad"] and not pinyin:
            sur, giv = (x.translate(str.maketrans(t.s2t)) for x in (sur, giv))
        fn = f"{giv} {sur}" if pinyin else sur + giv
        props: list[tuple[str, str]] = [("N", f"{sur};{giv};;;"), ("FN", fn)]
        mob = row["r_mobile_fmt"]
        if v == 2:
            props.append(("TEL;TYPE=cell;VALUE=uri", "tel:" + _plus86(row["r_mobile"])))
        else:
            props.append(("TEL;CELL" if v == 0 else "TEL;TYPE=CELL", mob))
        if row["r_home"] is not None and show[i, 0] < 0.5:
            home = row["r_home"]
            props.append(
                ("TEL;TYPE=home;VALUE=uri", f"tel:+86-{home.lstrip('0')}")
                if v == 2
                else ("TEL;HOME" if v == 0 else "TEL;TYPE=HOME", home)
            )
        if row["r_email"] is not None:
            props.append(
                (
                    "EMAIL;INTERNET" if v == 0 else ("EMAIL" if v == 2 else "EMAIL;TYPE=INTERNET"),
                    row["r_email"],
                )
            )
        if row["r_address"] is not None and show[i, 1] < 0.5:
            tail = ";;;" if v == 0 else ";;;;中国"
            props.append(("ADR;HOME" if v == 0 else "ADR;TYPE=HOME", f";;{row['r_address']}{tail}"))
        if row["r_birth"] is not None and show[i, 2] < 0.6:
            b: date = row["r_birth"]
            props.append(
                ("BDAY", [f"--{b:%m%d}", f"{b:%Y-%m-%d}", f"{b:%Y%m%d}", f"{b:%Y-%m-%d}"][int(bday_kind[i])])
            )
        props.append(("ORG", row["company"]))
        if show[i, 3] < 0.22:
            note = f"身份证 {row['id_no']}" if row["u_id_note"] else t.notes[int(note_pick[i])]
            props.append(("NOTE", note))
        out += ["BEGIN:VCARD", f"VERSION:{['2.1', '3.0', '4.0'][v]}", f"UID:{uid}"]
        for name, value in props:
            if v == 0 and not value.isascii():
                out += _qp_lines(f"{name};CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:", value)
            else:
                out += _fold(f"{name}:{value}")
        out.append("END:VCARD")
    path.write_bytes(("\r\n".join(out) + "\r\n").encode("utf-8"))
    return truth("advisor_contacts", pl.Series(keys), rec["person_id"])


def _plus86(mobile: str) -> str:
    """`+86-153-7234-6908` form used by vCard 4.0 tel URIs."""
    return f"+86-{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
