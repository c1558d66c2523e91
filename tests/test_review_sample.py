"""The steward loop on the shared sample: a run fills the queue, a scripted steward answers from truth.csv
(standing in for a human), and the next run is better and merges no two persons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from conftest import SampleRun, copy_store

from mdm import steward
from mdm.metrics import Scores, score_frames
from mdm.pipeline import run_batch
from mdm.store import Store


def truth(sample_dir: Path) -> pl.DataFrame:
    return pl.read_csv(sample_dir / "truth.csv", schema_overrides={"source_key": pl.String})


def scores(store: Store, sample_dir: Path) -> Scores:
    return score_frames(truth(sample_dir), store.current_xref().rename({"customer_id": "cluster_id"}))


def truth_answers(tasks: pl.DataFrame, persons: pl.DataFrame) -> pl.DataFrame:
    """task_id and the true answer (match / no-match) of each task: what a careful human would say."""
    left = persons.rename({"source": "left_source", "source_key": "left_key", "person_id": "p_l"})
    right = persons.rename({"source": "right_source", "source_key": "right_key", "person_id": "p_r"})
    return (
        tasks.join(left, on=["left_source", "left_key"])
        .join(right, on=["right_source", "right_key"])
        .select(
            "task_id",
            pl.when(pl.col("p_l") == pl.col("p_r"))
            .then(pl.lit("match"))
            .otherwise(pl.lit("no-match"))
            .alias("answer"),
        )
    )


@dataclass(frozen=True)
class Reviewed:
    """What the review loop on the sample produced."""

    band: pl.DataFrame
    band_size: int
    queue: pl.DataFrame
    answers: pl.DataFrame
    before: Scores
    after: Scores
    requeued: pl.DataFrame
    labels: pl.DataFrame
    db: Path


@pytest.fixture(scope="module")
def reviewed(
    sample_dir: Path, sample_resolved: SampleRun, tmp_path_factory: pytest.TempPathFactory
) -> Reviewed:
    """The sample ingested and run (a copy of the session's), its band and queue recorded, every task answered
    from truth, then run again."""
    tmp = tmp_path_factory.mktemp("review")
    first = sample_resolved.summary
    db = copy_store(sample_resolved.db, tmp)
    with Store(db) as store:
        band = store.review_band()
        queue = steward.list_tasks(store, limit=100_000)
        before = scores(store, sample_dir)
        answers = truth_answers(queue, truth(sample_dir))
        for task_id, answer in answers.rows():
            steward.decide_task(store, task_id, answer, "script", "answered from truth.csv")
        run_batch(store, reports_dir=tmp / "reports")
        after = scores(store, sample_dir)
        requeued = steward.list_tasks(store, limit=100_000)
        labels = steward.labels(store)
    return Reviewed(band, first.review_pairs, queue, answers, before, after, requeued, labels, db)


def test_queue_holds_the_review_band(reviewed: Reviewed) -> None:
    assert reviewed.band.height == reviewed.band_size > 0
    pairs = reviewed.queue.select("rid_l", "rid_r").sort("rid_l", "rid_r")
    assert pairs.equals(reviewed.band.select("rid_l", "rid_r"))
    assert reviewed.queue["impact"].is_sorted(descending=True)


def test_answers_cover_every_task(reviewed: Reviewed) -> None:
    assert reviewed.answers.height == reviewed.band_size
    given = reviewed.answers["answer"].value_counts().sort("answer").rename({"answer": "label"})
    assert reviewed.labels["label"].value_counts().sort("label").equals(given)


@pytest.mark.parametrize("figure", ["f1", "recall"])
def test_answers_raise_quality_without_false_merges(reviewed: Reviewed, figure: str) -> None:
    assert getattr(reviewed.after, figure) > getattr(reviewed.before, figure)
    assert reviewed.after.false_merge_clusters == 0
    assert reviewed.after.precision >= reviewed.before.precision


def test_decided_pairs_do_not_come_back(reviewed: Reviewed) -> None:
    assert reviewed.requeued.join(reviewed.queue, on=["rid_l", "rid_r"], how="semi").height == 0


def test_labels_suite_scores_the_decided_pairs_as_batch_did(reviewed: Reviewed) -> None:
    from benchmarks import labels as suite

    result = suite.run(reviewed.db)
    assert result["labels"] == reviewed.answers.height
    assert result["match_labels"] == int((reviewed.answers["answer"] == "match").sum())
    with Store(reviewed.db) as store:
        scored = suite.scored_labels(store)
    band = reviewed.band.select("rid_l", "rid_r", pl.col("match_probability").alias("batch"))
    both = scored.join(band, on=["rid_l", "rid_r"])
    assert both.height == scored.height
    assert (both["match_probability"] - both["batch"]).abs().max() < 1e-9
    at_half, at_upper = result["at"]
    assert at_upper["true_positives"] + at_upper["false_positives"] == 0
    expected_tp = both.filter(pl.col("label") & (pl.col("batch") >= 0.5)).height
    assert at_half["true_positives"] == expected_tp
    assert 0.0 <= at_half["precision"] <= 1.0 and 0.0 < at_half["recall"] <= 1.0
