"""Standardization and matching features give the same rows for a record alone as within a whole batch.

Real time standardizes one record (or a few) through the batch code; the small-frame paths must never
change a value. Each case runs the whole frame at once and then row by row (or a few rows at a time) and
requires equal frames: on raw records read from the shared sample and on hand-made edge records.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from matching_rules import RuleSet, load_ruleset
from mdm.config import load_sources
from mdm.ingest import discover, read_source
from mdm.matching.features import base_frame, find_hubs, matching_frame
from mdm.matching.hubs import hub_values
from mdm.schema import RAW_SCHEMA
from mdm.standardize.pipeline import standardize

TODAY = dt.date(2025, 6, 1)
PER_SOURCE = 70

#: Hand-made raw records exercising empty, blank, repeated and odd values of every family.
EDGE_RECORDS: list[dict[str, object]] = [
    {},
    {"name": "", "mobile": [], "phone": [], "email": [], "bank_card": [], "dq_flags": []},
    {"name": "  ", "mobile": [None], "phone": [None, ""], "email": [None, " "], "bank_card": [None, ""]},
    {"name": "張偉", "id_number": "110101800101001", "sex": "男", "birth_date": "1980-01-01"},
    {"name": "ZHANG Wei", "id_number": "1.10101E+17", "id_type": "身份证"},
    {"name": "李娜", "id_number": "11010119800101001X", "dq_flags": ["id_number:excel_precision_loss"]},
    {"name": "王芳", "id_number": "١١٠١٠١٨٠٠١٠١٠٠١", "id_type": "01", "sex": "female"},
    {"name": "Chen, Jie", "id_number": "E12345678", "id_type": "护照", "birth_date": "--0512"},
    {"name": "欧阳娜娜", "id_number": "H12345678", "birth_date": "20001332", "sex": "unknown"},
    {"name": "司马光", "birth_date": "3/4/85", "sex": "x?", "id_type": "weird", "id_number": "ABC-123"},
    {"name": "赵六", "birth_date": "36526", "id_number": "110101203001010018"},
    {
        "name": "孙七",
        "mobile": ["138 0013 8000", "+86 138-0013-8000", "13800138000", "12345"],
        "phone": ["010-62345678", "13900139000", "+1 650 253 0000", " "],
    },
    {
        "name": "周八",
        "email": ["A.B+x@GoogleMail.com", "mailto:<a.b@gmail.com>", "bad@", "x@foxmail.com", "x@foxmail.com"],
        "bank_card": ["6222 0212 3456 7890 128", "6222021234567890128", "4111111111111111", "12"],
    },
    {"name": "吴九", "address": "北京西城区金融大街28-3-1701", "province": "上海", "city": "上海市"},
    {"name": "郑十", "address": "徐汇区漕溪北路88号3栋2单元101", "district": "徐汇区"},
    {"name": "钱一", "address": "  ", "province": "广东省", "city": "广州", "district": "天河"},
    {"name": "Ｌｉ Ｍｉｎｇ", "mobile": ["１３８００１３８０００"], "birth_date": "1985年3月4日"},
]


def _sample_raw(sample: Path) -> pl.DataFrame:
    """The first PER_SOURCE raw records of each sample source, as the readers deliver them."""
    configs = load_sources()
    found, _ = discover([sample], configs)
    frames = [read_source(configs[name], files).raw.head(PER_SOURCE) for name, files in sorted(found.items())]
    return pl.concat([f.select(pl.col(c).cast(t) for c, t in RAW_SCHEMA.items()) for f in frames])


def _edge_raw() -> pl.DataFrame:
    rows = [{c: r.get(c) for c in RAW_SCHEMA} for r in EDGE_RECORDS]
    return pl.DataFrame(rows, schema=RAW_SCHEMA)


@pytest.fixture(scope="module")
def raw(sample_dir: Path) -> pl.DataFrame:
    """Sample records followed by the edge records: more rows than any small-frame path takes."""
    return pl.concat([_sample_raw(sample_dir), _edge_raw()])


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_ruleset("person")


@pytest.fixture(scope="module")
def standard(raw: pl.DataFrame) -> pl.DataFrame:
    """The whole raw frame standardized at once, with a record id."""
    return standardize(raw, TODAY).with_row_index("rid", offset=1).with_columns(pl.col("rid").cast(pl.Int64))


def _in_chunks(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    return [frame.slice(start, size) for start in range(0, frame.height, size)]


@pytest.mark.parametrize("size", [1, 3])
def test_standardize_small_frames_equal_whole_frame(
    raw: pl.DataFrame, standard: pl.DataFrame, size: int
) -> None:
    parts = pl.concat([standardize(part, TODAY) for part in _in_chunks(raw, size)])
    assert raw.height > 300
    assert_frame_equal(parts, standard.drop("rid"))


def test_standardize_edge_records_alone(standard: pl.DataFrame) -> None:
    edges = standard.drop("rid").tail(len(EDGE_RECORDS))
    alone = standardize(_edge_raw(), TODAY)
    assert_frame_equal(alone, edges)
    assert alone["id_number_std"].null_count() < alone.height


@pytest.mark.parametrize(("min_names", "size"), [(None, 1), (None, 3), (1, 1), (1, 4)])
def test_matching_frame_small_frames_equal_whole_frame(
    standard: pl.DataFrame, ruleset: RuleSet, min_names: int | None, size: int
) -> None:
    """``min_names`` None: the rule set's own hubs; 1: every value is a hub (all lists split)."""
    base = base_frame(standard)
    if min_names is None:
        hubs = find_hubs(base, ruleset)
    else:
        hubs = {c: hub_values(base, c, min_names) for c in ruleset.hubs.columns}
        assert all(h.height > 0 for h in hubs.values())
    whole = matching_frame(standard, ruleset, hubs)
    parts = pl.concat([matching_frame(part, ruleset, hubs) for part in _in_chunks(standard, size)])
    assert whole.height == standard.height
    assert_frame_equal(parts, whole)


def test_matching_frame_finds_same_hubs_alone(standard: pl.DataFrame, ruleset: RuleSet) -> None:
    """Without given hubs a one-record frame finds none of its own (one name only)."""
    row = standard.slice(0, 1)
    alone = matching_frame(row, ruleset)
    no_hubs = {c: hub_values(base_frame(row), c, ruleset.hubs.min_names) for c in ruleset.hubs.columns}
    assert all(h.is_empty() for h in no_hubs.values())
    assert_frame_equal(alone, matching_frame(row, ruleset, no_hubs))
