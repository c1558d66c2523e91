"""Person names: simplified hanzi, pinyin with correct surname readings, surname/given split, script.

Hanzi names are folded to simplified with OpenCC (t2s) and romanized with pypinyin; surnames come
from a bundled table (``data/surnames.csv``) because pypinyin has no surname mode and reads 单, 曾,
解, 区, 仇, 朴, 查 … with their common readings. Romanized names are split into pinyin syllables
(syllable set taken from pypinyin's own dictionary) and put surname first. Library calls run once
per distinct name, never per row.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import opencc
import polars as pl
from pypinyin import Style, lazy_pinyin
from pypinyin.contrib.tone_convert import to_normal
from pypinyin.pinyin_dict import pinyin_dict

DATA = Path(__file__).parent / "data"
NAME_COLUMNS: dict[str, pl.DataType] = {
    "name_simplified": pl.String(),
    "name_pinyin": pl.String(),
    "name_pinyin_sorted": pl.String(),
    "surname": pl.String(),
    "surname_pinyin": pl.String(),
    "given_pinyin": pl.String(),
    "name_script": pl.String(),
}
_HANZI = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_ALL_HANZI = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\s·•・‧.\u00b7\u2027\u30fb]+")
_DOTS = re.compile(r"[\s·•・‧.\u00b7\u2027\u30fb]+")
_TOKEN = re.compile(r"[A-Za-zü]+")
#: Passport spellings of ü syllables folded to pypinyin's ``v`` spelling.
_LATIN_FOLD = {"lyu": "lv", "nyu": "nv"}


@dataclass(frozen=True)
class ParsedName:
    """Standardized parts of one name (the values of NAME_COLUMNS)."""

    name_simplified: str | None
    name_pinyin: str | None
    name_pinyin_sorted: str | None
    surname: str | None
    surname_pinyin: str | None
    given_pinyin: str | None
    name_script: str | None


@lru_cache(maxsize=1)
def surname_table() -> dict[str, str]:
    """Hanzi surname (single or compound) -> pinyin reading as a surname."""
    with (DATA / "surnames.csv").open(encoding="utf-8") as fh:
        return {row["surname"]: row["pinyin"] for row in csv.DictReader(fh)}


@lru_cache(maxsize=1)
def surname_pinyins() -> frozenset[str]:
    """Pinyin spellings that are surnames (compound ones written as one word, e.g. ``zhuge``)."""
    return frozenset(surname_table().values()) | {"lyu", "lu"}


@lru_cache(maxsize=1)
def pinyin_syllables() -> frozenset[str]:
    """Every toneless pinyin syllable pypinyin knows (``ü`` written ``v``), plus ``lyu``/``nyu``."""
    out: set[str] = {"lyu", "nyu"}
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            syl = to_normal(reading).replace("ü", "v")
            if syl.isascii() and syl.isalpha():
                out.add(syl)
    return frozenset(out - {"m", "n", "ng", "hm", "hng", "r"})


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def split_syllables(word: str) -> list[str]:
    """A latin word split into the fewest pinyin syllables (``leiying`` -> lei ying); unsplittable stays whole."""
    word = word.lower().replace("ü", "v")
    syllables = pinyin_syllables()
    if word in syllables:
        return [_LATIN_FOLD.get(word, word)]
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(max(0, end - 6), end):
            prev = best[start]
            piece = word[start:end]
            if prev is not None and piece in syllables:
                cand = [*prev, piece]
                current = best[end]
                if current is None or len(cand) < len(current):
                    best[end] = cand
    found = best[n]
    return [_LATIN_FOLD.get(s, s) for s in found] if found else [word]


def script_of(name: str) -> str | None:
    """``hanzi``, ``latin`` or ``mixed``; None for a name with neither."""
    has_h = bool(_HANZI.search(name))
    has_l = bool(_LATIN.search(name))
    if has_h and has_l:
        return "mixed"
    if has_h:
        return "hanzi"
    return "latin" if has_l else None


def _hanzi_surname(name: str) -> str:
    table = surname_table()
    if len(name) >= 3 and name[:2] in table:
        return name[:2]
    return name[:1]


def _build(
    surname: str | None, surname_py: str, given: list[str], simplified: str | None, script: str
) -> ParsedName:
    syllables = [surname_py, *given] if surname_py else given
    pinyin = " ".join(syllables) or None
    return ParsedName(
        name_simplified=simplified,
        name_pinyin=pinyin,
        name_pinyin_sorted="".join(sorted(syllables)) or None,
        surname=surname or surname_py or None,
        surname_pinyin=surname_py or None,
        given_pinyin="".join(given) or None,
        name_script=script,
    )


def _split_hanzi(name: str) -> tuple[str, str, str]:
    """(simplified name, hanzi surname, given part) of a hanzi or mixed name."""
    simplified = _converter().convert(_DOTS.sub("", name))
    surname = _hanzi_surname(simplified)
    return simplified, surname, simplified[len(surname) :]


def batch_given_pinyin(givens: list[str]) -> list[list[str]]:
    """lazy_pinyin of many all-hanzi given names in one call (names joined by newlines).

    pypinyin segments only within hanzi runs, so the newline keeps names apart and the result equals
    one call per name at a fraction of the per-call overhead.
    """
    out: list[list[str]] = [[]]
    for piece in lazy_pinyin("\n".join(givens), style=Style.NORMAL, errors="default"):
        first, *rest = piece.split("\n")
        if first:
            out[-1].append(first)
        out.extend([part] if part else [] for part in rest)
    return out


def parse_hanzi(name: str, script: str = "hanzi", given_pinyin: list[str] | None = None) -> ParsedName:
    """A hanzi (or mixed) name: simplified, surname from the table, pinyin per syllable.

    ``given_pinyin`` is the pypinyin output for the given part when already computed in a batch.
    """
    simplified, surname, given = _split_hanzi(name)
    surname_py = surname_table().get(surname) or "".join(lazy_pinyin(surname, style=Style.NORMAL))
    pieces = (
        given_pinyin if given_pinyin is not None else lazy_pinyin(given, style=Style.NORMAL, errors="default")
    )
    syllables = [syl for piece in pieces for tok in _TOKEN.findall(piece) for syl in split_syllables(tok)]
    return _build(surname, surname_py.lower(), syllables, simplified, script)


def _surname_index(tokens: list[str], raw_tokens: list[str]) -> int:
    """Which token is the surname: an all-caps token among mixed case, else first/last by the surname table."""
    caps = [i for i, t in enumerate(raw_tokens) if t.isupper() and len(t) > 1]
    if len(caps) == 1 and len(raw_tokens) > 1 and any(not t.isupper() for t in raw_tokens):
        return caps[0]
    known = surname_pinyins()
    first, last = tokens[0] in known, tokens[-1] in known
    if last and not first:
        return len(tokens) - 1
    return 0


def parse_latin(name: str) -> ParsedName:
    """A romanized name in either order: surname first, given name split into syllables."""
    raw_tokens = _TOKEN.findall(unicodedata.normalize("NFKC", name))
    tokens = [_LATIN_FOLD.get(t.lower(), t.lower().replace("ü", "v")) for t in raw_tokens]
    if not tokens:
        return ParsedName(None, None, None, None, None, None, "latin")
    if len(tokens) == 1:
        syl = split_syllables(tokens[0])
        cut = 2 if len(syl) > 2 and syl[0] + syl[1] in _compound_pinyins() else 1
        return _build(None, "".join(syl[:cut]), syl[cut:], None, "latin")
    idx = _surname_index(tokens, raw_tokens)
    surname_py = tokens[idx]
    rest = [t for i, t in enumerate(tokens) if i != idx]
    given = [s for t in rest for s in split_syllables(t)]
    return _build(None, surname_py, given, None, "latin")


@lru_cache(maxsize=1)
def _compound_pinyins() -> frozenset[str]:
    return frozenset(py for s, py in surname_table().items() if len(s) == 2)


def parse_name(name: str | None) -> ParsedName:
    """Standardize one name of any script (pure; the frame path calls it once per distinct name)."""
    if name is None:
        return ParsedName(None, None, None, None, None, None, None)
    text = unicodedata.normalize("NFKC", name).strip()
    script = script_of(text)
    if script is None:
        return ParsedName(None, None, None, None, None, None, None)
    if script == "latin":
        return parse_latin(text)
    return parse_hanzi(text, script)


def standardize_names(df: pl.DataFrame, column: str = "name") -> pl.DataFrame:
    """Add NAME_COLUMNS computed from ``column``, one library call per distinct name."""
    uniques = df.select(pl.col(column).unique()).to_series().to_list()
    texts = [unicodedata.normalize("NFKC", v).strip() if v is not None else None for v in uniques]
    batchable = [i for i, t in enumerate(texts) if t and script_of(t) == "hanzi" and _ALL_HANZI.fullmatch(t)]
    givens = [_split_hanzi(texts[i] or "")[2] for i in batchable]
    batched = dict(zip(batchable, batch_given_pinyin(givens), strict=True)) if batchable else {}
    parsed = [
        parse_hanzi(texts[i] or "", "hanzi", batched[i]) if i in batched else parse_name(v)
        for i, v in enumerate(uniques)
    ]
    table = pl.DataFrame(
        {column: uniques, **{c: [getattr(p, c) for p in parsed] for c in NAME_COLUMNS}},
        schema={column: pl.String(), **NAME_COLUMNS},
    )
    return df.join(table, on=column, how="left", nulls_equal=True, maintain_order="left")
