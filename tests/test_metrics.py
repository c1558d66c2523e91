"""Our metrics agree with the shared scorer on the same files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.metrics import score_frames
from tests.conftest import SHARED

SCORER = SHARED / "eval" / "score.py"


def shared_score(truth: pl.DataFrame, pred: pl.DataFrame, tmp: Path) -> dict:
    truth.write_csv(tmp / "t.csv")
    pred.write_csv(tmp / "p.csv")
    subprocess.run(
        [
            sys.executable,
            str(SCORER),
            "--truth",
            str(tmp / "t.csv"),
            "--pred",
            str(tmp / "p.csv"),
            "--json",
            str(tmp / "o.json"),
            "--allow-missing",
        ],
        check=True,
        capture_output=True,
    )
    return json.loads((tmp / "o.json").read_text())


@pytest.mark.parametrize(
    ("persons", "clusters"),
    [
        (["a", "a", "b", "b", "c"], ["1", "1", "2", "2", "3"]),
        (["a", "a", "b", "b", "c"], ["1", "1", "1", "1", "1"]),
        (["a", "a", "a", "b"], ["1", "2", "3", "4"]),
        (["a", "b", "c"], ["1", "1", "2"]),
    ],
)
def test_known_cases(persons: list[str], clusters: list[str], tmp_path: Path) -> None:
    if not SCORER.exists():
        pytest.skip("shared scorer not present")
    keys = [str(i) for i in range(len(persons))]
    truth = pl.DataFrame({"source": "s", "source_key": keys, "person_id": persons})
    pred = pl.DataFrame({"source": "s", "source_key": keys, "cluster_id": clusters})
    ours = score_frames(truth, pred)
    theirs = shared_score(truth, pred, tmp_path)
    assert ours.precision == pytest.approx(theirs["pairwise"]["precision"])
    assert ours.recall == pytest.approx(theirs["pairwise"]["recall"])
    assert ours.bcubed_f1 == pytest.approx(theirs["bcubed"]["f1"])
    assert ours.false_merge_clusters == theirs["false_merge_clusters"]
    assert ours.false_merge_records == theirs["false_merge_records"]
    assert ours.split_persons == theirs["split_persons"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40))
def test_random_clusterings_agree(
    tmp_path_factory: pytest.TempPathFactory, labels: list[tuple[int, int]]
) -> None:
    if not SCORER.exists():
        pytest.skip("shared scorer not present")
    tmp = tmp_path_factory.mktemp("m")
    keys = [str(i) for i in range(len(labels))]
    truth = pl.DataFrame({"source": "s", "source_key": keys, "person_id": [f"p{p}" for p, _ in labels]})
    pred = pl.DataFrame(
        {"source": "s", "source_key": keys[: len(keys) - 1], "cluster_id": [f"c{c}" for _, c in labels[:-1]]}
    )
    ours = score_frames(truth, pred)
    theirs = shared_score(truth, pred, tmp)
    assert ours.f1 == pytest.approx(theirs["pairwise"]["f1"])
    assert ours.bcubed_precision == pytest.approx(theirs["bcubed"]["precision"])
    assert ours.bcubed_recall == pytest.approx(theirs["bcubed"]["recall"])
    assert (ours.false_merge_clusters, ours.split_persons) == (
        theirs["false_merge_clusters"],
        theirs["split_persons"],
    )
