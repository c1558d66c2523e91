"""The synthetic population: one row per true person, every attribute drawn as a numpy array."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mdm.generate.tables import Tables

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
ALNUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)
DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
EPOCH = date(1970, 1, 1)


def chars_to_str(mat: np.ndarray) -> pl.Series:
    """Join each row of an (n, k) array of ASCII codes into one string, via Arrow buffers (no per-row work)."""
    n, k = mat.shape
    data = np.ascontiguousarray(mat, dtype=np.uint8).tobytes()
    offsets = np.arange(0, n * k + 1, k, dtype=np.int64)
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    return pl.Series(pl.from_arrow(arr)).cast(pl.String)


def keep_where(mask: np.ndarray, values: pl.Series | np.ndarray, name: str) -> pl.Series:
    """`values` where `mask` holds, null elsewhere."""
    return pl.select(pl.when(pl.Series(mask)).then(pl.Series(values)).alias(name)).to_series()


def random_digits(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """An (n, k) array of random ASCII digit codes."""
    return DIGITS[rng.integers(0, 10, size=(n, k))]


def id_check_chars(id17: np.ndarray) -> np.ndarray:
    """GB 11643 check characters for an (n, 17) array of digit values."""
    return ID_CHECK[(id17 @ ID_WEIGHTS) % 11]


def luhn_digit(payload: np.ndarray) -> np.ndarray:
    """Luhn check digits for an (n, k) array of digit values (the card without its last digit)."""
    rev = payload[:, ::-1]
    doubled = rev.copy()
    doubled[:, 0::2] = rev[:, 0::2] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    return (10 - doubled.sum(axis=1) % 10) % 10


def _int_digits(values: np.ndarray, k: int) -> np.ndarray:
    """(n, k) digit values of non-negative integers, zero-padded on the left."""
    powers = 10 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers) % 10


def _redraw_duplicates(
    rng: np.random.Generator, values: pl.Series, draw: Any, keep: np.ndarray | None = None
) -> pl.Series:
    """Redraw later duplicates (outside `keep`, rows meant to share) until all values are distinct."""
    for _ in range(50):
        dup = ~values.is_first_distinct().to_numpy()
        if keep is not None:
            dup &= ~keep
        if not dup.any():
            return values
        idx = np.flatnonzero(dup)
        values = values.scatter(idx, draw(len(idx)))
    raise RuntimeError("could not draw distinct values")


def mobiles(rng: np.random.Generator, n: int, prefixes: list[str]) -> pl.Series:
    """Random 11-digit mainland mobile numbers."""
    table = np.frombuffer("".join(prefixes).encode(), dtype=np.uint8).reshape(len(prefixes), 3)
    mat = np.concatenate([table[rng.integers(0, len(prefixes), n)], random_digits(rng, n, 8)], axis=1)
    return chars_to_str(mat)


def bank_cards(rng: np.random.Generator, n: int, bins: list[tuple[str, int]]) -> pl.Series:
    """Random bank card numbers from the BIN table, each passing the Luhn check."""
    which = rng.integers(0, len(bins), n)
    parts: list[pl.Series] = []
    order: list[np.ndarray] = []
    for b, (bin_, length) in enumerate(bins):
        rows = np.flatnonzero(which == b)
        body = rng.integers(0, 10, size=(len(rows), length - 7))
        payload = np.concatenate([np.tile(np.array([int(c) for c in bin_]), (len(rows), 1)), body], axis=1)
        full = np.concatenate([payload, luhn_digit(payload)[:, None]], axis=1)
        parts.append(chars_to_str(DIGITS[full]))
        order.append(rows)
    return pl.concat(parts).gather(np.argsort(np.concatenate(order), kind="stable"))


def _names(rng: np.random.Generator, n: int, t: Tables, p: dict[str, Any]) -> pl.DataFrame:
    """Sex, surname and given name per person: common namesakes or weighted surname + 1-2 given characters."""
    sex = rng.integers(1, 3, n)
    w = np.array(t.surname_weights)
    surname_idx = rng.choice(len(w), n, p=w / w.sum())
    male, female = pl.Series(t.given_male), pl.Series(t.given_female)

    def pick_char() -> pl.Series:
        m = male.gather(rng.integers(0, len(male), n))
        f = female.gather(rng.integers(0, len(female), n))
        return pl.select(pl.when(pl.Series(sex == 1)).then(m).otherwise(f)).to_series()

    first, second = pick_char(), pick_char()
    single = pl.Series(rng.random(n) < p["single_char_given"])
    common = pl.Series(rng.random(n) < p["namesake"])
    pick = rng.integers(0, len(t.common_names), n)
    cn = pl.Series([c for c, _ in t.common_names]).gather(pick)
    cs = pl.Series([s for _, s in t.common_names]).gather(pick)
    return pl.select(
        pl.when(common).then(cs).otherwise(pl.Series(sex)).cast(pl.Int8).alias("sex"),
        pl.when(common)
        .then(cn.str.slice(0, 1))
        .otherwise(pl.Series(t.surnames).gather(surname_idx))
        .alias("surname"),
        pl.when(common)
        .then(cn.str.slice(1))
        .otherwise(first + pl.when(single).then(pl.lit("")).otherwise(second))
        .alias("given"),
    )


def build_population(n: int, rng: np.random.Generator, t: Tables, p: dict[str, Any]) -> pl.DataFrame:
    """Draw `n` persons with names, documents, contacts, addresses, cards, households and advisors."""
    names = _names(rng, n, t, p)
    d = t.districts
    n_d = d.height
    district = rng.integers(0, n_d, n)
    n_streets = d["streets"].list.len().to_numpy()
    street_pick = (rng.random(n) * n_streets[district]).astype(np.int64)
    birth_days = rng.integers((date(1945, 1, 1) - EPOCH).days, (date(2006, 12, 31) - EPOCH).days, n)
    yard = np.where(rng.random(n) < 0.5, rng.integers(1, 30, n), 0)
    frame = names.with_columns(
        pl.Series("district_idx", district),
        pl.Series("street_pick", street_pick),
        pl.Series("birth", birth_days).cast(pl.Date),
        pl.Series("house_no", rng.integers(1, 400, n)),
        pl.Series("yard", yard),
        pl.Series("bldg", rng.integers(1, 30, n)),
        pl.Series("unit", rng.integers(1, 7, n)),
        pl.Series("room", rng.integers(1, 34, n) * 100 + rng.integers(1, 5, n)),
        pl.Series("home_local", rng.integers(20_000_000, 90_000_000, n)),
        pl.Series("has_home", rng.random(n) < p["home_phone"]),
    )
    frame = _households_and_clones(frame, rng, p)
    frame = _documents(frame, rng, t, p)
    frame = _contacts(frame, rng, t, p)
    return frame.with_row_index("pid").with_columns(
        pl.format("P{}", pl.col("pid").cast(pl.String).str.zfill(max(6, len(str(n))))).alias("person_id")
    )


def _households_and_clones(frame: pl.DataFrame, rng: np.random.Generator, p: dict[str, Any]) -> pl.DataFrame:
    """Household members copy a head's address and home phone (and maybe surname); clones copy demographics."""
    n = frame.height
    member = rng.random(n) < p["household_member"]
    heads = np.flatnonzero(~member)
    head = np.arange(n)
    head[member] = heads[rng.integers(0, len(heads), member.sum())]
    addr_cols = ["district_idx", "street_pick", "house_no", "yard", "bldg", "unit", "room", "home_local"]
    same_surname = member & (rng.random(n) < p["household_same_surname"])
    clone = ~member & (rng.random(n) < p["demographic_clone"])
    donor = np.arange(n)
    donor[clone] = heads[rng.integers(0, len(heads), clone.sum())]
    frame = frame.with_columns(
        *[pl.col(c).gather(head) for c in addr_cols],
        pl.when(pl.Series(member)).then(pl.col("has_home").gather(head)).otherwise(pl.col("has_home")),
        pl.when(pl.Series(same_surname)).then(pl.col("surname").gather(head)).otherwise(pl.col("surname")),
        pl.Series("household", head),
        pl.Series("shares_mobile", member & (rng.random(n) < p["household_shared_mobile"])),
    )
    return frame.with_columns(
        *[
            pl.when(pl.Series(clone)).then(pl.col(c).gather(donor)).otherwise(pl.col(c))
            for c in ["surname", "given", "sex", "birth", "district_idx"]
        ]
    )


def _documents(frame: pl.DataFrame, rng: np.random.Generator, t: Tables, p: dict[str, Any]) -> pl.DataFrame:
    """Resident IDs (GB 11643, unique, sex parity), their 15-digit legacy form, or foreign documents."""
    n = frame.height
    d = t.districts
    area_codes = d["area_code"].cast(pl.Int64).to_numpy()
    district = frame["district_idx"].to_numpy()
    elsewhere = rng.random(n) < p["birthplace_elsewhere"]
    area = np.where(elsewhere, area_codes[rng.integers(0, d.height, n)], area_codes[district])
    ymd = frame.select(pl.col("birth").dt.strftime("%Y%m%d").cast(pl.Int64))["birth"].to_numpy()
    male = frame["sex"].to_numpy() == 1
    seq = pl.Series("seq", rng.integers(0, 500, n) * 2 + male)

    def key(s: pl.Series) -> pl.Series:
        return pl.Series(area * 10_000_000_000_000 + ymd * 1000 + s.to_numpy())

    for _ in range(50):
        dup = ~key(seq).is_first_distinct().to_numpy()
        if not dup.any():
            break
        idx = np.flatnonzero(dup)
        seq = seq.scatter(idx, rng.integers(0, 500, len(idx)) * 2 + male[idx])
    seqv = seq.to_numpy()
    digits17 = np.concatenate([_int_digits(area, 6), _int_digits(ymd, 8), _int_digits(seqv, 3)], axis=1)
    id18 = chars_to_str(np.concatenate([DIGITS[digits17], id_check_chars(digits17)[:, None]], axis=1))
    id15 = chars_to_str(np.concatenate([DIGITS[digits17[:, :6]], DIGITS[digits17[:, 8:17]]], axis=1))
    foreign = rng.random(n) < p["foreign_document"]
    kind = rng.choice(np.array(["03", "04", "05"]), n, p=[0.4, 0.45, 0.15])
    prefix = np.where(kind == "03", "E", np.where(rng.random(n) < 0.7, "H", "M"))
    prefix = np.where(kind == "05", "", prefix)
    digits8 = _redraw_duplicates(
        rng, chars_to_str(random_digits(rng, n, 8)), lambda k: chars_to_str(random_digits(rng, k, 8))
    )
    foreign_no = pl.Series(prefix) + digits8
    return frame.with_columns(
        pl.Series("id_type", np.where(foreign, kind, "01")),
        pl.when(pl.Series(foreign)).then(foreign_no).otherwise(id18).alias("id_no"),
        keep_where(~foreign, id15, "id15"),
    )


def _contacts(frame: pl.DataFrame, rng: np.random.Generator, t: Tables, p: dict[str, Any]) -> pl.DataFrame:
    """Mobiles (with old numbers for phone changers), QQ numbers, e-mails, cards, employer and advisor."""
    n = frame.height
    mob = _redraw_duplicates(
        rng, mobiles(rng, n, t.mobile_prefixes), lambda k: mobiles(rng, k, t.mobile_prefixes)
    )
    head = frame["household"].to_numpy()
    shares = frame["shares_mobile"].to_numpy()
    mob = pl.select(pl.when(pl.Series(shares)).then(mob.gather(head)).otherwise(mob)).to_series()
    prev = mobiles(rng, n, t.mobile_prefixes)
    changed = rng.random(n) < p["phone_change"]
    qq = rng.integers(10_000_000, 3_999_999_999, n)
    card1 = _redraw_duplicates(
        rng, bank_cards(rng, n, t.card_bins), lambda k: bank_cards(rng, k, t.card_bins)
    )
    card2 = bank_cards(rng, n, t.card_bins)
    email_kind = rng.choice(9, n, p=[0.3, 0.1, 0.15, 0.1, 0.08, 0.08, 0.07, 0.07, 0.05])
    local_kind = rng.integers(0, 4, n)
    frame = frame.with_columns(
        pl.Series("mobile", mob),
        keep_where(changed, prev, "mobile_prev"),
        pl.Series("qq", qq).cast(pl.String),
        pl.Series("card1", card1),
        keep_where(rng.random(n) < p["second_card"], card2, "card2"),
        pl.Series("has_email", rng.random(n) < p["email"]),
        pl.Series("email_kind", email_kind),
        pl.Series("local_kind", local_kind),
        pl.Series("email_num", rng.integers(1, 99, n)),
        pl.Series(t.companies).gather(rng.integers(0, len(t.companies), n)).alias("company"),
        pl.Series(t.titles).gather(rng.integers(0, len(t.titles), n)).alias("title"),
        pl.Series("english_name", rng.random(n) < p["english_name"]),
        pl.Series(
            "open_days", rng.integers((date(2005, 1, 1) - EPOCH).days, (date(2026, 6, 1) - EPOCH).days, n)
        ),
    )
    frame = frame.with_columns(
        pl.col("surname").replace_strict(t.surname_pinyin).alias("py_surname"),
        (
            pl.col("given").str.slice(0, 1).replace_strict(t.char_pinyin, default="")
            + pl.col("given").str.slice(1, 1).replace_strict(t.char_pinyin, default="")
        )
        .str.to_titlecase()
        .alias("py_given"),
        (pl.col("surname") + pl.col("given")).alias("name"),
    )
    return (
        frame.with_columns(_email_local().alias("email"))
        .with_columns(_email_expr().alias("email"))
        .with_columns(
            pl.when(pl.col("email").is_first_distinct())
            .then(pl.col("email"))
            .otherwise(
                pl.col("email").str.replace("@", pl.format("{}@", pl.col("qq").str.slice(0, 3)), literal=True)
            )
        )
    )


def _email_local() -> pl.Expr:
    """The pinyin local part of a person's e-mail in one of four common styles."""
    sur = pl.col("py_surname").str.to_lowercase()
    giv = pl.col("py_given").str.to_lowercase()
    num = pl.col("email_num").cast(pl.String)
    year = pl.col("birth").dt.year().cast(pl.String)
    k = pl.col("local_kind")
    return pl.concat_str(
        pl.when(k == 3).then(giv).otherwise(sur),
        pl.when(k == 1).then(pl.lit(".")).when(k == 2).then(pl.lit("_")).otherwise(pl.lit("")),
        pl.when(k == 2).then(giv.str.slice(0, 1)).when(k == 3).then(sur).otherwise(giv),
        pl.when(k == 0).then(pl.lit("")).when(k == 3).then(year).otherwise(num),
    )


EMAIL_DOMAINS = [
    "qq.com",
    "foxmail.com",
    "163.com",
    "126.com",
    "139.com",
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "sina.com",
]


def _email_expr() -> pl.Expr:
    """A person's e-mail (`email` holds the pinyin local part): numeric QQ/foxmail or pinyin at a provider."""
    domain = pl.col("email_kind").replace_strict(dict(enumerate(EMAIL_DOMAINS)), return_dtype=pl.String)
    local = pl.when(pl.col("email_kind") < 2).then(pl.col("qq")).otherwise(pl.col("email"))
    return pl.concat_str(local, pl.lit("@"), domain)


def build_advisors(rng: np.random.Generator, n_persons: int, t: Tables, p: dict[str, Any]) -> pl.DataFrame:
    """Relationship managers: name, bank e-mail, own mobile and branch."""
    n = int(min(60, max(8, n_persons // 150)))
    names = _names(rng, n, t, {**p, "namesake": 0.05})
    py = pl.col("surname").replace_strict(t.surname_pinyin).str.to_lowercase()
    giv = pl.col("given").str.slice(0, 1).replace_strict(t.char_pinyin, default="") + pl.col(
        "given"
    ).str.slice(1, 1).replace_strict(t.char_pinyin, default="")
    branch = rng.integers(0, min(3, len(t.branches)), n)
    return names.with_row_index("adv").with_columns(
        (pl.col("surname") + pl.col("given")).alias("adv_name"),
        pl.format("{}{}{}@cnbank.example.cn", py, giv, pl.col("adv")).alias("adv_email"),
        pl.Series("adv_mobile", mobiles(rng, n, t.mobile_prefixes)),
        pl.Series("branch_idx", branch),
    )
