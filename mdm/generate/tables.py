"""Data tables (names, places, companies) and noise profiles for the generator, loaded from YAML."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import opencc
import polars as pl
import yaml
from pypinyin import lazy_pinyin

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Tables:
    """Everything the generator draws from; plain lists so numpy can index them."""

    surnames: list[str]
    surname_weights: list[float]
    surname_pinyin: dict[str, str]
    given_male: list[str]
    given_female: list[str]
    common_names: list[tuple[str, int]]
    char_pinyin: dict[str, str]
    s2t: dict[str, str]
    districts: pl.DataFrame
    branches: list[tuple[str, str]]
    mobile_prefixes: list[str]
    card_bins: list[tuple[str, int]]
    companies: list[str]
    titles: list[str]
    notes: list[str]
    crm_remarks: list[str]
    outlook_categories: list[str]
    mail_topics: list[tuple[str, str]]
    phone_change_topic: tuple[str, str]
    reply_topic: tuple[str, str, str]


def _read(name: str) -> Any:
    """Parse one YAML file of the data folder."""
    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


@cache
def load_tables() -> Tables:
    """Load and derive the tables once: per-character pinyin and traditional spellings."""
    names = _read("names.yaml")
    places = _read("places.yaml")
    comp = _read("companies.yaml")
    surnames = list(names["surnames"])
    chars = sorted(
        set(names["given_male"])
        | set(names["given_female"])
        | {c for n, _ in names["common_names"] for c in n[1:]}
    )
    converter = opencc.OpenCC("s2t")
    all_chars = sorted(set(chars) | {c for s in surnames for c in s})
    s2t = {c: t for c in all_chars if (t := converter.convert(c)) != c}
    districts = pl.DataFrame(
        [
            {
                "province": p,
                "city": c,
                "district": d,
                "area_code": code,
                "landline": ll,
                "streets": streets,
            }
            for p, c, d, code, ll, streets in places["districts"]
        ]
    )
    return Tables(
        surnames=surnames,
        surname_weights=[float(v[0]) for v in names["surnames"].values()],
        surname_pinyin={k: str(v[1]) for k, v in names["surnames"].items()},
        given_male=list(names["given_male"]),
        given_female=list(names["given_female"]),
        common_names=[(str(n), int(s)) for n, s in names["common_names"]],
        char_pinyin={c: lazy_pinyin(c)[0] for c in chars},
        s2t=s2t,
        districts=districts,
        branches=[(str(a), str(b)) for a, b in places["branches"]],
        mobile_prefixes=[str(p) for p in places["mobile_prefixes"]],
        card_bins=[(str(b), int(n)) for b, n in places["card_bins"]],
        companies=list(comp["companies"]),
        titles=list(comp["titles"]),
        notes=list(comp["notes"]),
        crm_remarks=list(comp["crm_remarks"]),
        outlook_categories=list(comp["outlook_categories"]),
        mail_topics=[(str(a), str(b)) for a, b in comp["mail_topics"]],
        phone_change_topic=(str(comp["phone_change_topic"][0]), str(comp["phone_change_topic"][1])),
        reply_topic=(str(comp["reply_topic"][0]), str(comp["reply_topic"][1]), str(comp["reply_topic"][2])),
    )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two profile mappings: nested mappings merge, other values replace."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_profile(name: str) -> dict[str, Any]:
    """Resolve a named profile (following `extends`) into one mapping of rates."""
    profiles: dict[str, Any] = _read("profiles.yaml")
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(sorted(profiles))}")
    prof = dict(profiles[name])
    parent = prof.pop("extends", None)
    return _merge(load_profile(parent), prof) if parent else prof
