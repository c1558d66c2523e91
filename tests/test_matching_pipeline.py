"""Train, predict, cluster and explain on a small seeded synthetic frame of standardized records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import splink.comparison_library as cl
from splink.internals import expectation_maximisation as splink_em

from matching_rules import RuleSet, load_ruleset
from mdm.matching.cluster import cluster, id_conflicts, review_pairs
from mdm.matching.explain import explain, explain_records, format_waterfall, total_weight
from mdm.matching.predict import predict
from mdm.matching.train import TrainedModel, clamped_em_updates, data_version, random_pairs, train

SURNAMES = [("张", "zhang"), ("王", "wang"), ("李", "li"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang")]
GIVEN = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("静", "jing"),
    ("强", "qiang"),
    ("敏", "min"),
    ("磊", "lei"),
    ("洋", "yang"),
]
DISTRICTS = ["朝阳区", "海淀区", "浦东新区", "天河区"]


def _people(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, len(SURNAMES), n)
    g = rng.integers(0, len(GIVEN), n)
    born = [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20000, n)]
    return pl.DataFrame(
        {
            "person": np.arange(n),
            "name_simplified": [SURNAMES[a][0] + GIVEN[b][0] for a, b in zip(s, g, strict=True)],
            "surname_pinyin": [SURNAMES[a][1] for a in s],
            "given_pinyin": [GIVEN[b][1] for b in g],
            "birth_date_std": born,
            "id_number_std": [f"{110100 + i % 50:06d}{d:%Y%m%d}{i % 1000:03d}X" for i, d in enumerate(born)],
            "mobile": [f"+86139{10_000_000 + i * 7:08d}" for i in range(n)],
            "addr_district": [DISTRICTS[i % len(DISTRICTS)] for i in range(n)],
            "addr_detail": [f"建国路{i % 300}号{i}室" for i in range(n)],
        }
    )


def _records(n_people: int = 400, seed: int = 3) -> pl.DataFrame:
    """Each person: an ID-bearing bank record, a contact record (pinyin name, mobile, no ID) and, for
    every second person, a branch record (ID, hanzi name, a mobile that changed for every fourth)."""
    p = _people(n_people, seed)
    pinyin = pl.col("surname_pinyin") + " " + pl.col("given_pinyin")
    common: list[pl.Expr | str] = [
        pl.col("person"),
        pinyin.alias("name_pinyin"),
        pl.concat_str(
            pl.min_horizontal("surname_pinyin", "given_pinyin"),
            pl.lit(" "),
            pl.max_horizontal("surname_pinyin", "given_pinyin"),
        ).alias("name_pinyin_sorted"),
        "surname_pinyin",
        pl.concat_list("mobile").alias("mobiles"),
        "addr_district",
        "addr_detail",
        (pl.col("addr_district") + pl.col("addr_detail")).alias("address_std"),
    ]
    bank = p.select(
        *common,
        "name_simplified",
        pl.lit("CN_RESIDENT").alias("id_type_std"),
        "id_number_std",
        pl.lit(True).alias("id_valid"),
        "birth_date_std",
        pl.lit("bank").alias("source"),
    )
    contact = p.select(
        *common, pl.lit(None, pl.String).alias("name_simplified"), pl.lit("vcf").alias("source")
    )
    branch = p.filter(pl.col("person") % 2 == 0).select(
        "person",
        "name_simplified",
        pinyin.alias("name_pinyin"),
        pl.concat_str(
            pl.min_horizontal("surname_pinyin", "given_pinyin"),
            pl.lit(" "),
            pl.max_horizontal("surname_pinyin", "given_pinyin"),
        ).alias("name_pinyin_sorted"),
        "surname_pinyin",
        pl.lit("CN_RESIDENT").alias("id_type_std"),
        "id_number_std",
        pl.lit(True).alias("id_valid"),
        pl.when(pl.col("person") % 4 == 0)
        .then(pl.concat_list(pl.lit("+86137") + pl.col("mobile").str.slice(6)))
        .otherwise(pl.concat_list("mobile"))
        .alias("mobiles"),
        "addr_district",
        "addr_detail",
        (pl.col("addr_district") + pl.col("addr_detail")).alias("address_std"),
        pl.lit("branch").alias("source"),
    )
    return (
        pl.concat([bank, contact, branch], how="diagonal_relaxed")
        .with_row_index("rid", 1)
        .with_columns(pl.col("rid").cast(pl.Int64))
    )


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    rules = load_ruleset()
    return rules.model_copy(update={"training": rules.training.model_copy(update={"u_max_pairs": 2e5})})


@pytest.fixture(scope="module")
def records() -> pl.DataFrame:
    return _records()


@pytest.fixture(scope="module")
def model(records: pl.DataFrame, ruleset: RuleSet) -> TrainedModel:
    return train(records.drop("person"), ruleset, seed=7)


def test_model_roundtrips_through_json(model: TrainedModel, tmp_path: Path) -> None:
    loaded = TrainedModel.load(model.save(tmp_path / "person.model.json"))
    assert loaded.version == model.version
    assert loaded.data_version == model.data_version
    assert 0 < loaded.prior < 1


def test_training_is_reproducible(records: pl.DataFrame, ruleset: RuleSet, model: TrainedModel) -> None:
    assert train(records.drop("person"), ruleset, seed=7).version == model.version


@pytest.mark.parametrize(("rows", "same"), [(slice(0, 10), True), (slice(0, 11), False)])
def test_data_version_tracks_content(records: pl.DataFrame, rows: slice, same: bool) -> None:
    assert (data_version(records[rows]) == data_version(records[0:10])) is same


def test_predict_and_cluster_recover_persons(records: pl.DataFrame, model: TrainedModel) -> None:
    pairs = predict(records.drop("person"), model)
    assert (pairs["rid_l"] < pairs["rid_r"]).all()
    assert {f"gamma_{c.name}" for c in model.ruleset.comparisons} <= set(pairs.columns)
    clusters = cluster(
        records["rid"], pairs, upper=model.ruleset.thresholds.upper, conflicts=id_conflicts(records)
    )
    joined = clusters.join(records.select("rid", "person"), on="rid")
    assert (
        joined.group_by("cluster_id").agg(pl.col("person").n_unique()).select(pl.col("person").max()).item()
        == 1
    )
    together = joined.group_by("person").agg(pl.col("cluster_id").n_unique().alias("n"))
    assert together.filter(pl.col("n") == 1).height >= 0.95 * together.height
    band = review_pairs(pairs, lower=0.5, upper=0.99)
    assert band.filter(pl.col("match_probability") >= 0.99).height == 0


def test_explain_sums_to_the_pair_weight(records: pl.DataFrame, model: TrainedModel) -> None:
    pairs = predict(records.drop("person"), model)
    row = pairs.row(0, named=True)
    steps = explain(row, model)
    assert steps[0].comparison == "prior"
    assert [s.comparison for s in steps[1:]] == [c.name for c in model.ruleset.comparisons]
    assert total_weight(steps) == pytest.approx(row["match_weight"], abs=1e-6)
    assert "total" in format_waterfall(steps)
    again = explain_records(records.drop("person"), row["rid_l"], row["rid_r"], model)
    assert total_weight(again) == pytest.approx(row["match_weight"], abs=1e-6)


def _level(model: TrainedModel, comparison: str, label: str) -> dict[str, Any]:
    found = next(c for c in model.splink_settings["comparisons"] if c["output_column_name"] == comparison)
    return next(lv for lv in found["comparison_levels"] if lv.get("label_for_charts") == label)


def test_posterior_u_takes_true_matches_out_of_u(records: pl.DataFrame, ruleset: RuleSet) -> None:
    """Every person here has 2-3 records sharing a mobile, and no two persons share one: the random
    pairs sharing a mobile are all true matches, so u of that level falls to the one-pair floor, while
    levels with term-frequency adjustments keep Splink's sampled u."""
    plain_rules = ruleset.model_copy(update={"training": ruleset.training.model_copy(update={"u_rounds": 0})})
    plain = train(records.drop("person"), plain_rules, seed=7)
    fixed = train(records.drop("person"), ruleset, seed=7)
    floor = 1.0 / ruleset.training.u_max_pairs
    before = _level(plain, "mobile", "shares a private mobile")["u_probability"]
    after = _level(fixed, "mobile", "shares a private mobile")["u_probability"]
    assert before > 20 * floor
    assert after == pytest.approx(floor)
    for label in ("hanzi exact", "romanized equal (one side without hanzi, any order)"):
        assert _level(fixed, "name", label)["u_probability"] == _level(plain, "name", label)["u_probability"]


@pytest.mark.parametrize(("ids", "count"), [(10, 45), (10, 20), (2_000, 5_000)])
def test_random_pairs_are_distinct_ordered_and_seeded(ids: int, count: int) -> None:
    rids = pl.Series("rid", range(100, 100 + ids), pl.Int64)
    pairs = random_pairs(rids, count, seed=3)
    assert pairs.height == count
    assert (pairs["join_key_l"] < pairs["join_key_r"]).all()
    assert pairs.select("join_key_l", "join_key_r").is_unique().all()
    assert pairs["join_key_l"].is_in(rids.implode()).all() and pairs["join_key_r"].is_in(rids.implode()).all()
    assert pairs.equals(random_pairs(rids, count, seed=3))
    assert not pairs.equals(random_pairs(rids, count, seed=4)) or count == ids * (ids - 1) // 2


@pytest.mark.parametrize(("estimate", "expected"), [(0.0, 1e-300), (0.25, 0.25)])
def test_em_estimates_of_zero_are_clamped_not_fatal(estimate: float, expected: float) -> None:
    """Splink 5 refuses an m of exactly 0, which EM reaches when every pair at a level scores as a
    non-match; inside training's guard the value is lifted to Splink's minimum instead."""
    level = cl.ExactMatch("x").get_comparison("duckdb")._comparison_levels_excluding_null[0]
    lookup = {"x": {level.comparison_vector_value: {"m_probability": estimate, "u_probability": 0.5}}}
    if estimate == 0.0:
        with pytest.raises(ValueError, match="below the minimum"):
            splink_em.populate_m_u_from_lookup({"u"}, level, "x", lookup)
    with clamped_em_updates():
        splink_em.populate_m_u_from_lookup({"u"}, level, "x", lookup)
    assert level.m_probability == expected
    assert splink_em.populate_m_u_from_lookup.__name__ == "populate_m_u_from_lookup"
