"""Chinese addresses: province / city / district recognized from a bundled table, detail normalized.

``data/regions.csv`` lists province, city and districts (full names); short forms (北京, 浦东, 天河)
are derived by dropping the administrative suffix. Short district forms are only recognized inside
a known city (``西城`` means 西城区 only within 北京); a full district name alone implies its city and
province when it is unique in the table (``徐汇区`` -> 上海市). Structured parts given by the source
fill the levels the text lacks. Only the head of each address (up to its first digit) is parsed, once per distinct head; the
detail (``28-3-1701`` -> ``28号楼3单元1701室``) is normalized with polars expressions.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from mdm.standardize.vec import flag_list, run

DATA = Path(__file__).parent / "data"
HEAD_CHARS = 20
ADDRESS_COLUMNS = ("addr_province", "addr_city", "addr_district", "addr_detail", "address_std")
_SUFFIXES = (
    "壮族自治区",
    "回族自治区",
    "维吾尔自治区",
    "特别行政区",
    "自治区",
    "新区",
    "省",
    "市",
    "区",
    "县",
)


def short_form(full: str) -> str | None:
    """The name without its administrative suffix, if at least two characters remain."""
    for suffix in _SUFFIXES:
        if full.endswith(suffix) and len(full) - len(suffix) >= 2:
            return full[: -len(suffix)]
    return None


@dataclass(frozen=True)
class Regions:
    """Lookup tables built from ``data/regions.csv``."""

    provinces: dict[str, str]  # full or short name -> full province
    cities: dict[str, tuple[str, str]]  # full or short city name -> (province, city)
    city_districts: dict[str, dict[str, str]]  # city -> {full or short district -> full district}
    district_homes: dict[str, list[tuple[str, str]]]  # full district -> [(province, city), ...]


@lru_cache(maxsize=1)
def regions() -> Regions:
    """Load and index the region table."""
    provinces: dict[str, str] = {}
    cities: dict[str, tuple[str, str]] = {}
    city_districts: dict[str, dict[str, str]] = {}
    homes: dict[str, list[tuple[str, str]]] = {}
    with (DATA / "regions.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            prov, city = row["province"], row["city"]
            for name in (prov, short_form(prov)):
                if name:
                    provinces[name] = prov
            for name in (city, short_form(city)):
                if name:
                    cities.setdefault(name, (prov, city))
            table = city_districts.setdefault(city, {})
            for district in row["districts"].split():
                homes.setdefault(district, []).append((prov, city))
                for name in (district, short_form(district)):
                    if name:
                        table.setdefault(name, district)
    return Regions(provinces, cities, city_districts, homes)


def _all_matches(text: str, pos: int, names: dict[str, str] | dict[str, tuple[str, str]]) -> list[str]:
    """Keys of ``names`` that start ``text`` at ``pos``, longest first."""
    return [
        text[pos : pos + n] for n in range(min(9, len(text) - pos), 1, -1) if text[pos : pos + n] in names
    ]


def _longest(text: str, pos: int, names: dict[str, str] | dict[str, tuple[str, str]]) -> str | None:
    """Longest key of ``names`` that starts ``text`` at ``pos``."""
    hits = _all_matches(text, pos, names)
    return hits[0] if hits else None


def parse_head(text: str) -> tuple[str | None, str | None, str | None, int]:
    """(province, city, district, characters consumed) recognized at the start of an address."""
    reg = regions()
    pos = 0
    prov = city = district = None
    hit = _longest(text, pos, reg.provinces)
    if hit and not _is_street(text, pos + len(hit), hit, reg.provinces[hit]):
        prov = reg.provinces[hit]
        pos += len(hit)
        if prov in reg.cities and reg.cities[prov][1] == prov:
            city = prov
            if text.startswith(prov, pos) and prov != hit:
                pos += len(prov)
    if city is None:
        hits = [
            h
            for h in _all_matches(text, pos, reg.cities)
            if (prov is None or reg.cities[h][0] == prov)
            and not _is_street(text, pos + len(h), h, reg.cities[h][1])
        ]
        if hits:
            names = reg.city_districts.get(reg.cities[hits[0]][1], {})
            hit = next((h for h in hits if _longest(text, pos + len(h), names)), hits[0])
            prov, city = reg.cities[hit]
            pos += len(hit)
    if city is not None:
        names = reg.city_districts.get(city, {})
        hit = _longest(text, pos, names)
        if hit and not _is_street(text, pos + len(hit), hit, names[hit]):
            district = names[hit]
            pos += len(hit)
    else:
        hit = _longest(text, pos, {d: d for d in reg.district_homes})
        if hit:
            district = hit
            pos += len(hit)
            homes = [h for h in reg.district_homes[hit] if prov is None or h[0] == prov]
            if len(homes) == 1:
                prov, city = homes[0]
    return prov, city, district, pos


_STREET = re.compile(r"[东西南北中]?(?:路|街|大街|大道|道|巷|胡同)")


def _is_street(text: str, end: int, hit: str, full: str) -> bool:
    """A short form followed by a road word is a street name (北京西路, 南京路, 香港中路), not a region."""
    return hit != full and _STREET.match(text, end) is not None


def parse_parts(
    province: str | None, city: str | None, district: str | None
) -> tuple[str | None, str | None, str | None]:
    """Structured parts given by the source, each mapped to its full name when the table knows it."""
    reg = regions()
    prov = reg.provinces.get(province, province) if province else None
    full_city = reg.cities[city][1] if city and city in reg.cities else city
    if full_city and not prov and full_city in reg.cities:
        prov = reg.cities[full_city][0]
    dist = district
    if district and full_city:
        dist = reg.city_districts.get(full_city, {}).get(district, district)
    return prov or None, full_city or None, dist or None


def resolve(
    head: str | None, province: str | None, city: str | None, district: str | None
) -> tuple[str | None, str | None, str | None, int, bool]:
    """Combine text head and structured parts: (province, city, district, consumed, conflict)."""
    sp, sc, sd = parse_parts(province, city, district)
    tp, tc, td, used = parse_head(head) if head else (None, None, None, 0)
    if head and td is None and sc is not None and tc is None:
        names = regions().city_districts.get(sc, {})
        hit = _longest(head, used, names)
        if hit:
            td, used = names[hit], used + len(hit)
    conflict = (tp is not None and sp is not None and tp != sp) or (
        tc is not None and sc is not None and tc != sc
    )
    if conflict:
        return tp, tc, td, used, True
    return tp or sp, tc or sc, td or sd, used, False


DETAIL_RULES: tuple[tuple[str, str], ...] = (
    (r"\s+", ""),
    (r"(\d+)[栋幢座]", "${1}号楼"),
    (r"(\d+)-(\d+)-(\d+)室?$", "${1}号楼${2}单元${3}室"),
    (r"(\d+)号楼(\d+)-(\d+)室?$", "${1}号楼${2}单元${3}室"),
    (r"(\d+)单元(\d+)$", "${1}单元${2}室"),
)


def normalize_detail(col: pl.Expr) -> pl.Expr:
    """Building-unit-room written one way: ``28-3-1701`` / ``28栋3单元1701`` -> ``28号楼3单元1701室``."""
    out = col
    for pattern, repl in DETAIL_RULES:
        out = out.str.replace_all(pattern, repl)
    return pl.when(out.str.len_chars() > 0).then(out)


_KEYS = ["_head", "province", "city", "district"]


@lru_cache(maxsize=1)
def _steps() -> tuple[list[pl.Expr], pl.Expr, list[pl.Expr]]:
    """(text and head, detail, output columns) of :func:`standardize_addresses`, built once."""
    text = pl.col("address").str.normalize("NFKC").str.replace_all(r"\s+", "")
    prepared = [
        text.alias("_addr"),
        text.str.extract(r"^([^0-9]*)", 1).str.slice(0, HEAD_CHARS).alias("_head"),
    ]
    detail = normalize_detail(pl.col("_addr").str.slice(pl.col("_used"))).alias("addr_detail")
    parts = [pl.col(c).fill_null("") for c in ("addr_province", "addr_city", "addr_district", "addr_detail")]
    std = pl.concat_str(parts)
    outputs = [
        pl.when(std.str.len_chars() > 0)
        .then(
            pl.concat_str(
                pl.col("addr_province").fill_null(""),
                pl.when(pl.col("addr_city") != pl.col("addr_province"))
                .then(pl.col("addr_city"))
                .fill_null(""),
                pl.col("addr_district").fill_null(""),
                pl.col("addr_detail").fill_null(""),
            )
        )
        .alias("address_std"),
        flag_list(pl.when(pl.col("_conflict")).then(pl.lit("address:conflicts_with_parts"))).alias(
            "_flag_addresses"
        ),
    ]
    return prepared, detail, outputs


def standardize_addresses(df: pl.DataFrame) -> pl.DataFrame:
    """Add ADDRESS_COLUMNS and ``_flag_addresses`` from address, province, city, district."""
    prepared, detail, outputs = _steps()
    work = run(df.lazy().with_columns(prepared))
    keys = run(work.lazy().select(_KEYS).unique())
    parsed = [resolve(*row) for row in keys.iter_rows()]
    table = keys.hstack(
        [
            pl.Series("addr_province", [p[0] for p in parsed], dtype=pl.String),
            pl.Series("addr_city", [p[1] for p in parsed], dtype=pl.String),
            pl.Series("addr_district", [p[2] for p in parsed], dtype=pl.String),
            pl.Series("_used", [p[3] for p in parsed], dtype=pl.Int64),
            pl.Series("_conflict", [p[4] for p in parsed], dtype=pl.Boolean),
        ]
    )
    plan = work.lazy().join(table.lazy(), on=_KEYS, how="left", nulls_equal=True, maintain_order="left")
    return run(plan.with_columns(detail).with_columns(outputs).drop("_addr", "_head", "_used", "_conflict"))
