"""Real-time match and upsert on the shared sample: the same pair scores the same as in batch, a record's
raw fields find the customer the batch gave it, and upserts follow the stable-ID rules without touching
other customers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import SampleRun

from mdm.errors import MdmError
from mdm.matching import realtime as rt
from mdm.matching.predict import blocked_pairs
from mdm.schema import RAW_FIELDS
from mdm.store import Store

RAW_FIELDS_SQL = ", ".join(f'"{f}"' for f in RAW_FIELDS if f not in ("source", "source_key"))


@pytest.fixture(scope="module")
def resolved(sample_resolved: SampleRun) -> Path:
    """The sample ingested and run once (trains its own model, as `mdm run` does), shared by the session."""
    return sample_resolved.db


@pytest.fixture
def store(resolved: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the resolved sample (tests that upsert change it)."""
    db = tmp_path / "s.duckdb"
    shutil.copy(resolved, db)
    shutil.copy(
        resolved.with_name(f"{resolved.name}.person.model.json"), db.with_name(f"{db.name}.person.model.json")
    )
    rt.forget_indexes()
    with Store(db) as s:
        yield s
    rt.forget_indexes()


def raw_fields(store: Store, rid: int) -> dict[str, Any]:
    row = store.query(f"SELECT {RAW_FIELDS_SQL} FROM current_records WHERE rid = ?", [rid]).row(0, named=True)
    return {k: v for k, v in row.items() if v not in (None, "", []) and k in RAW_FIELDS}


def owners(store: Store) -> dict[int, str]:
    return dict(store.current_xref().select("rid", "customer_id").iter_rows())


def test_row_keys_are_the_blocking_keys(store: Store) -> None:
    index = rt.index_for(store)
    sample = index.frame.sample(300, seed=3)
    for rule in index.ruleset.blocking:
        frame_keys = rt.block_keys(sample, rule)
        by_row = sorted(
            (key, rid)
            for row in sample.iter_rows(named=True)
            for key in rt.row_keys(row, rule.columns)
            for rid in [row["rid"]]
        )
        assert by_row == sorted(frame_keys.iter_rows()), rule.columns


def test_candidates_are_the_batch_blocked_pairs(store: Store) -> None:
    index = rt.index_for(store)
    batch = blocked_pairs(index.frame, index.ruleset)
    for rid in index.frame["rid"].sample(40, seed=5).to_list():
        row = index.frame.filter(pl.col("rid") == rid)
        expected = set(batch.filter(pl.col("join_key_l") == rid)["join_key_r"].to_list())
        expected |= set(batch.filter(pl.col("join_key_r") == rid)["join_key_l"].to_list())
        assert set(index.candidates(row, exclude=[rid])["rid"].to_list()) == expected


def test_same_pair_same_probability_as_batch(store: Store) -> None:
    index = rt.index_for(store)
    kept = store.query(
        "SELECT rid_l, rid_r, match_probability, match_weight FROM match_pairs USING SAMPLE 60 ROWS (reservoir, 9)"
    )
    assert kept.height == 60
    for pair in kept.iter_rows(named=True):
        left = index.frame.filter(pl.col("rid") == pair["rid_l"])
        right = index.frame.filter(pl.col("rid") == pair["rid_r"])
        scored = rt.score(index, left, right).row(0, named=True)
        assert scored["match_weight"] == pytest.approx(pair["match_weight"], abs=1e-9)
        assert scored["match_probability"] == pytest.approx(pair["match_probability"], abs=1e-12)


def test_python_and_duckdb_scoring_agree_on_every_candidate(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = rt.index_for(store)
    assert index.pair_scorer is not None, "the person model's statement should compile to Python"
    capped = store.query(
        "SELECT DISTINCT rid_l FROM match_pairs WHERE abs(match_probability - ?) < 1e-9 ORDER BY rid_l LIMIT 20",
        [max(g.max_probability for g in index.ruleset.guards)],
    )["rid_l"].to_list()
    compared = guarded = 0
    for rid in [*index.frame["rid"].sample(60, seed=21).to_list(), *capped]:
        row = index.frame.filter(pl.col("rid") == rid)
        candidates = index.candidates(row, exclude=[rid])
        if candidates.is_empty():
            continue
        in_python = rt.score(index, row, candidates)
        with monkeypatch.context() as m:
            m.setattr(rt, "MAX_PYTHON_PAIRS", 0)
            in_duckdb = rt.score(index, row, candidates)
        assert in_python.columns == in_duckdb.columns
        assert in_python.select(pl.selectors.integer()).equals(in_duckdb.select(pl.selectors.integer()))
        for column in in_python.select(pl.selectors.float()).columns:
            gap = (in_python[column] - in_duckdb[column]).abs().max()
            assert gap is not None and gap < 1e-9, column
        compared += candidates.height
        guarded += int((in_duckdb["mw_guard"] < 0).sum())
    assert compared > 60
    assert guarded > 0, "no guard held for any compared pair: the guard path went untested"


def test_match_on_raw_fields_ranks_the_batch_customer_first(store: Store) -> None:
    xref = owners(store)
    rids = store.query("SELECT rid FROM current_records USING SAMPLE 40 ROWS (reservoir, 13)")[
        "rid"
    ].to_list()
    for rid in rids:
        ranked = rt.match_one(store, raw_fields(store, rid))
        assert ranked and ranked[0]["customer_id"] == xref[rid]
        assert ranked[0]["match_probability"] > 0.99
        top = ranked[0]
        assert {step["comparison"] for step in top["explanation"]} == {
            c.name for c in rt.index_for(store).ruleset.comparisons
        }
        assert "name" in top["attributes"] and "id_number" in top["attributes"]
    probabilities = [c["match_probability"] for c in ranked]
    assert probabilities == sorted(probabilities, reverse=True)


def test_upsert_attaches_creates_and_is_idempotent(store: Store) -> None:
    before = owners(store)
    opened = dict(store.query("SELECT rid, valid_from_run FROM xref WHERE valid_to_run IS NULL").iter_rows())
    rid = store.query("SELECT rid FROM current_records WHERE id_valid AND mobiles IS NOT NULL LIMIT 1").item()
    same_person = raw_fields(store, rid)

    first = rt.upsert_one(store, "wealth_app", "RT-0001", same_person)
    assert first == {"customer_id": before[rid], "created": False, "changed": True}
    again = rt.upsert_one(store, "wealth_app", "RT-0001", same_person)
    assert again == {"customer_id": before[rid], "created": False, "changed": False}

    stranger = {"name": "欧阳明远", "birth_date": "1961-02-03", "mobile": ["13900001111"]}
    new = rt.upsert_one(store, "wealth_app", "RT-0002", stranger)
    assert new["created"] and new["customer_id"] not in before.values()
    assert rt.match_one(store, stranger)[0]["customer_id"] == new["customer_id"]

    after = owners(store)
    assert {r: c for r, c in after.items() if r in before} == before
    still = dict(store.query("SELECT rid, valid_from_run FROM xref WHERE valid_to_run IS NULL").iter_rows())
    assert {r: still[r] for r in opened} == opened
    kinds = store.query("SELECT kind, count(*) AS n FROM runs GROUP BY kind ORDER BY kind").rows()
    assert kinds == [("batch", 1), ("realtime", 2)]


def test_upsert_refuses_unknown_source_and_fields(store: Store) -> None:
    stamp = store.data_stamp()
    with pytest.raises(MdmError, match="unknown source"):
        rt.upsert_one(store, "nowhere", "k", {"name": "王芳"})
    with pytest.raises(MdmError, match="unknown fields: shoe_size"):
        rt.upsert_one(store, "wealth_app", "k", {"name": "王芳", "shoe_size": "42"})
    assert store.data_stamp() == stamp


def test_no_model_is_a_matching_error(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as empty, pytest.raises(rt.MatchingError, match="no trained model"):
        rt.match_one(empty, {"name": "王芳"})
