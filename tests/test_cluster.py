"""Constrained clustering: table-driven cases and hypothesis properties (networkx only here)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.matching.cluster import cluster, connected_components, id_conflicts, review_pairs


def _pairs(rows: list[tuple[int, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"rid_l": pl.Int64, "rid_r": pl.Int64, "match_probability": pl.Float64}, orient="row"
    ).with_columns(
        (pl.col("match_probability") / (1 - pl.col("match_probability") + 1e-12)).log(2).alias("match_weight")
    )


def _docs(rows: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(r, "CN_RESIDENT", d) for r, d in rows],
        schema={"rid": pl.Int64, "id_type": pl.String, "doc": pl.String},
        orient="row",
    )


def _groups(result: pl.DataFrame) -> set[frozenset[int]]:
    return {frozenset(g) for g in result.group_by("cluster_id").agg("rid")["rid"].to_list()}


CASES = [
    ("chain without conflict joins", [(1, 2, 0.999), (2, 3, 0.995)], [], None, None, [{1, 2, 3}]),
    ("below upper stays apart", [(1, 2, 0.98)], [], None, None, [{1}, {2}, {3}]),
    (
        "weakest link of a conflicting chain is cut",
        [(1, 2, 0.9999), (2, 3, 0.995)],
        [(1, "A"), (3, "B")],
        None,
        None,
        [{1, 2}, {3}],
    ),
    (
        "hub record goes to its strongest side",
        [(1, 2, 0.995), (2, 3, 0.9999)],
        [(1, "A"), (3, "B")],
        None,
        None,
        [{1}, {2, 3}],
    ),
    (
        "same document never conflicts",
        [(1, 2, 0.995), (2, 3, 0.995)],
        [(1, "A"), (3, "A")],
        None,
        None,
        [{1, 2, 3}],
    ),
    ("steward not-a-match splits a chain", [(1, 2, 0.999), (2, 3, 0.995)], [], None, [(1, 3)], [{1, 2}, {3}]),
    ("steward match joins", [], [], [(1, 3)], None, [{1, 3}, {2}]),
    ("steward match beats an ID conflict", [], [(1, "A"), (2, "B")], [(1, 2)], None, [{1, 2}, {3}]),
]


@pytest.mark.parametrize(
    ("name", "links", "docs", "must", "cannot", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_cluster_cases(
    name: str,
    links: list[tuple[int, int, float]],
    docs: list[tuple[int, str]],
    must: list[tuple[int, int]] | None,
    cannot: list[tuple[int, int]] | None,
    expected: list[set[int]],
) -> None:
    pair_schema = {"rid_l": pl.Int64, "rid_r": pl.Int64}
    result = cluster(
        pl.Series("rid", [1, 2, 3]),
        _pairs(links),
        upper=0.99,
        must_link=pl.DataFrame(must, schema=pair_schema, orient="row") if must else None,
        cannot_link=pl.DataFrame(cannot, schema=pair_schema, orient="row") if cannot else None,
        conflicts=_docs(docs),
    )
    assert _groups(result) == {frozenset(g) for g in expected}
    assert (
        result.group_by("cluster_id")
        .agg(pl.col("rid").min().alias("m"))
        .select((pl.col("m") == pl.col("cluster_id")).all())
        .item()
    )


@pytest.mark.parametrize(
    ("id_type", "number", "valid", "expected_doc"),
    [
        ("CN_RESIDENT", "110105199001011234", True, "110105900101123"),
        ("PASSPORT", "E12345678", True, "E12345678"),
        ("CN_RESIDENT", "110105199001011234", False, None),
    ],
)
def test_id_conflicts_keys(id_type: str, number: str, valid: bool, expected_doc: str | None) -> None:
    docs = id_conflicts(
        pl.DataFrame({"rid": [7], "id_type_std": [id_type], "id_number_std": [number], "id_valid": [valid]})
    )
    assert docs["doc"].to_list() == ([expected_doc] if expected_doc else [])


@pytest.mark.parametrize(
    ("lower", "upper", "expected"), [(0.5, 0.99, [(1, 3)]), (0.9, 0.99, []), (0.5, 0.999, [(1, 2), (1, 3)])]
)
def test_review_pairs_band(lower: float, upper: float, expected: list[tuple[int, int]]) -> None:
    pairs = _pairs([(1, 2, 0.995), (1, 3, 0.6), (2, 3, 0.3)])
    got = review_pairs(pairs, lower=lower, upper=upper)
    assert sorted(got.select("rid_l", "rid_r").iter_rows()) == expected


def test_review_pairs_drops_pairs_already_together() -> None:
    pairs = _pairs([(1, 2, 0.7), (1, 3, 0.7)])
    clusters = pl.DataFrame({"rid": [1, 2, 3], "cluster_id": [1, 1, 3]})
    assert review_pairs(pairs, lower=0.5, upper=0.99, clusters=clusters).select("rid_l", "rid_r").rows() == [
        (1, 3)
    ]


edges_strategy = st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29), st.floats(0.0, 1.0)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(edges=edges_strategy)
def test_without_constraints_equals_networkx(edges: list[tuple[int, int, float]]) -> None:
    links = [(a, b, p) for a, b, p in edges if a != b]
    result = cluster(pl.Series("rid", list(range(30))), _pairs(links), upper=0.5)
    graph = nx.Graph()
    graph.add_nodes_from(range(30))
    graph.add_edges_from((a, b) for a, b, p in links if p >= 0.5)
    assert _groups(result) == {frozenset(c) for c in nx.connected_components(graph)}


@settings(max_examples=150, deadline=None)
@given(
    edges=edges_strategy,
    docs=st.dictionaries(st.integers(0, 29), st.sampled_from(["A", "B", "C", "D"]), max_size=20),
    cannot=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), max_size=10),
)
def test_constraints_always_hold(
    edges: list[tuple[int, int, float]], docs: dict[int, str], cannot: list[tuple[int, int]]
) -> None:
    links = [(a, b, p) for a, b, p in edges if a != b]
    cannot_pairs = [(a, b) for a, b in cannot if a != b]
    result = cluster(
        pl.Series("rid", list(range(30))),
        _pairs(links),
        upper=0.5,
        cannot_link=pl.DataFrame(cannot_pairs, schema={"rid_l": pl.Int64, "rid_r": pl.Int64}, orient="row"),
        conflicts=_docs(list(docs.items())),
    )
    cluster_of = dict(result.select("rid", "cluster_id").iter_rows())
    per_cluster = (
        _docs(list(docs.items())).join(result, on="rid").group_by("cluster_id").agg(pl.col("doc").n_unique())
    )
    assert (per_cluster["doc"] <= 1).all()
    assert all(cluster_of[a] != cluster_of[b] for a, b in cannot_pairs)
    # every cluster is connected by links at or above the threshold
    graph = nx.Graph()
    graph.add_edges_from((a, b) for a, b, p in links if p >= 0.5)
    for members in _groups(result):
        assert len(members) == 1 or nx.is_connected(graph.subgraph(members))


@pytest.mark.parametrize(
    ("n", "edges"), [(1, []), (5, [(0, 4), (4, 2)]), (6, [(5, 0), (1, 2), (2, 3), (3, 1)])]
)
def test_connected_components_numpy(n: int, edges: list[tuple[int, int]]) -> None:
    src = np.array([a for a, _ in edges], dtype=np.int64)
    dst = np.array([b for _, b in edges], dtype=np.int64)
    labels = connected_components(n, src, dst)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    for comp in nx.connected_components(graph):
        assert {int(labels[i]) for i in comp} == {min(comp)}
