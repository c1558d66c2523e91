"""Constrained clustering of scored pairs into persons.

Links are pairs at or above the upper threshold plus steward "match" pairs. Plain connected components
chain namesakes and households into giant clusters, so components that would hold a conflict (two
different valid ID numbers of one type, or a steward "not a match" pair) are rebuilt greedily: links are
taken strongest first and a link is skipped when it would join two groups that conflict. Steward matches
are applied first and always hold. Components without a conflict (nearly all) are kept as they are, so
the Python work is limited to the few conflicting components; the rest is numpy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from mdm.matching.features import id_key

CONFLICT_COLUMNS = ("id_type_std", "id_number_std", "id_valid")


def connected_components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Component label (smallest member index) of nodes 0..n-1 given undirected edges; numpy only.

    Hook-and-compress: each round points the larger root of every edge at the smaller one, then
    compresses paths fully, until no edge joins two roots.
    """
    parent = np.arange(n, dtype=np.int64)
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    while True:
        a, b = parent[src], parent[dst]
        differ = a != b
        if not differ.any():
            return parent
        lo, hi = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        np.minimum.at(parent, hi, lo)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        keep = parent[src] != parent[dst]
        src, dst = src[keep], dst[keep]


def id_conflicts(records: pl.DataFrame) -> pl.DataFrame:
    """Valid identity documents per record: ``rid, doc`` where doc is "type:number".

    Two records whose docs differ for the same type conflict and must never share a cluster. A resident
    ID is compared in its 15-digit legacy form, so an ID converted from 15 digits with another century
    guess does not conflict with itself.
    """

    present = [c for c in CONFLICT_COLUMNS if c in records.columns]
    if len(present) < len(CONFLICT_COLUMNS):
        return pl.DataFrame(schema={"rid": pl.Int64, "id_type": pl.String, "doc": pl.String})
    return records.filter(
        pl.col("id_valid").fill_null(False)
        & pl.col("id_number_std").is_not_null()
        & pl.col("id_type_std").is_not_null()
    ).select(
        pl.col("rid").cast(pl.Int64),
        pl.col("id_type_std").alias("id_type"),
        id_key().alias("doc"),
    )


def _pair_frame(pairs: pl.DataFrame | None) -> pl.DataFrame:
    empty = pl.DataFrame(schema={"rid_l": pl.Int64, "rid_r": pl.Int64})
    if pairs is None or pairs.height == 0:
        return empty
    return pairs.select(pl.col("rid_l").cast(pl.Int64), pl.col("rid_r").cast(pl.Int64))


class _Groups:
    """Union-find over the records of one conflicting component, tracking each group's documents."""

    def __init__(
        self, members: Iterable[int], docs: dict[int, dict[str, set[str]]], cannot: set[tuple[int, int]]
    ):
        self.parent = {m: m for m in members}
        self.docs: dict[int, dict[str, set[str]]] = {
            m: {t: set(v) for t, v in docs.get(m, {}).items()} for m in self.parent
        }
        self.members: dict[int, set[int]] = {m: {m} for m in self.parent}
        self.cannot: dict[int, set[int]] = {m: set() for m in self.parent}
        for a, b in cannot:
            if a in self.parent and b in self.parent:
                self.cannot[a].add(b)
                self.cannot[b].add(a)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def conflict(self, a: int, b: int) -> bool:
        """Would joining groups a and b put two different valid documents of one type together?"""
        da, db = self.docs[a], self.docs[b]
        for t in da.keys() & db.keys():
            if len(da[t] | db[t]) > 1:
                return True
        small, large = (a, b) if len(self.members[a]) <= len(self.members[b]) else (b, a)
        return any(self.cannot[m] & self.members[large] for m in self.members[small])

    def union(self, a: int, b: int) -> None:
        if len(self.members[a]) < len(self.members[b]):
            a, b = b, a
        self.parent[b] = a
        self.members[a] |= self.members.pop(b)
        for t, v in self.docs.pop(b).items():
            self.docs[a].setdefault(t, set()).update(v)


def _constrained(
    members: list[int],
    links: pl.DataFrame,
    must: pl.DataFrame,
    docs: dict[int, dict[str, set[str]]],
    cannot: set[tuple[int, int]],
) -> dict[int, int]:
    """Greedy constrained clustering of one component: steward matches first, then links strongest first."""
    groups = _Groups(members, docs, cannot)
    for a, b in must.iter_rows():
        ra, rb = groups.find(a), groups.find(b)
        if ra != rb:
            groups.union(ra, rb)
    for a, b in (
        links.sort("weight", "rid_l", "rid_r", descending=[True, False, False])
        .select("rid_l", "rid_r")
        .iter_rows()
    ):
        ra, rb = groups.find(a), groups.find(b)
        if ra != rb and not groups.conflict(ra, rb):
            groups.union(ra, rb)
    return {m: groups.find(m) for m in members}


def cluster(
    rids: pl.Series,
    pairs: pl.DataFrame,
    *,
    upper: float,
    must_link: pl.DataFrame | None = None,
    cannot_link: pl.DataFrame | None = None,
    conflicts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Cluster records: ``rid, cluster_id`` (cluster_id = smallest rid of the cluster).

    `pairs` has ``rid_l, rid_r, match_probability`` (and ``match_weight``, used to order links when
    present); links are pairs with probability >= `upper`. `must_link` / `cannot_link` are steward pairs
    (``rid_l, rid_r``). `conflicts` is ``rid, id_type, doc`` from :func:`id_conflicts`: records with
    different docs of one type never share a cluster unless a steward linked them.
    """
    ids = rids.cast(pl.Int64).unique().sort()
    index = pl.DataFrame({"rid": ids, "i": np.arange(ids.len(), dtype=np.int64)})
    weight = pl.col("match_weight") if "match_weight" in pairs.columns else pl.col("match_probability")
    links = pairs.filter(pl.col("match_probability") >= upper).select(
        pl.col("rid_l").cast(pl.Int64),
        pl.col("rid_r").cast(pl.Int64),
        weight.cast(pl.Float64).alias("weight"),
    )
    must = _pair_frame(must_link)
    cannot = _pair_frame(cannot_link)
    edges = pl.concat([links.select("rid_l", "rid_r"), must])
    edges = (
        edges.join(index, left_on="rid_l", right_on="rid")
        .rename({"i": "a"})
        .join(index, left_on="rid_r", right_on="rid")
        .rename({"i": "b"})
    )
    labels = connected_components(ids.len(), edges["a"].to_numpy(), edges["b"].to_numpy())
    comp = index.with_columns(pl.Series("comp", labels))

    docs = (
        conflicts
        if conflicts is not None
        else pl.DataFrame(schema={"rid": pl.Int64, "id_type": pl.String, "doc": pl.String})
    )
    docs = docs.join(comp.select("rid", "comp"), on="rid")
    bad_by_doc = (
        docs.group_by("comp", "id_type").agg(pl.col("doc").n_unique().alias("n")).filter(pl.col("n") > 1)
    )
    cannot_c = (
        cannot.join(comp.select(pl.col("rid").alias("rid_l"), pl.col("comp").alias("cl")), on="rid_l")
        .join(comp.select(pl.col("rid").alias("rid_r"), pl.col("comp").alias("cr")), on="rid_r")
        .filter(pl.col("cl") == pl.col("cr"))
    )
    bad = pl.concat([bad_by_doc.select("comp"), cannot_c.select(pl.col("cl").alias("comp"))]).unique()
    result = comp.select("rid", "comp")
    if bad.height:
        result = result.with_columns(_rebuild(comp, bad, links, must, cannot_c, docs))
    rid_of = ids.to_numpy()
    return (
        result.with_columns(
            pl.col("comp").replace_strict(np.arange(ids.len()), rid_of, default=None).alias("root")
        )
        .with_columns(pl.col("root").min().over("root").alias("cluster_id"))
        .select("rid", pl.col("cluster_id").cast(pl.Int64))
        .sort("rid")
    )


def _rebuild(
    comp: pl.DataFrame,
    bad: pl.DataFrame,
    links: pl.DataFrame,
    must: pl.DataFrame,
    cannot: pl.DataFrame,
    docs: pl.DataFrame,
) -> pl.Series:
    """New component labels (record indexes) after greedy constrained clustering of conflicting components."""
    bad_members = comp.join(bad, on="comp")
    owner = bad_members.select(pl.col("rid").alias("rid_l"), "comp")
    empty_links = links.clear()
    link_parts = links.join(owner, on="rid_l").partition_by("comp", as_dict=True, include_key=False)
    must_parts = must.join(owner, on="rid_l").partition_by("comp", as_dict=True, include_key=False)
    doc_map: dict[int, dict[str, set[str]]] = {}
    for rid, id_type, doc in docs.join(bad, on="comp").select("rid", "id_type", "doc").iter_rows():
        doc_map.setdefault(rid, {}).setdefault(id_type, set()).add(doc)
    cannot_pairs = set(cannot.select("rid_l", "rid_r").iter_rows())
    new_root: dict[int, int] = {}
    for (c,), part in bad_members.group_by("comp"):
        new_root.update(
            _constrained(
                part["rid"].to_list(),
                link_parts.get((c,), empty_links),
                must_parts.get((c,), must.clear()),
                doc_map,
                cannot_pairs,
            )
        )
    index_of = dict(zip(comp["rid"].to_list(), comp["i"].to_list(), strict=True))
    roots = pl.DataFrame(
        {"rid": list(new_root), "new": [index_of[r] for r in new_root.values()]},
        schema={"rid": pl.Int64, "new": pl.Int64},
    )
    joined = comp.select("rid", "comp").join(roots, on="rid", how="left", maintain_order="left")
    return joined.select(pl.coalesce("new", "comp").alias("comp"))["comp"]


def review_pairs(
    pairs: pl.DataFrame, *, lower: float, upper: float, clusters: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Pairs in the review band (lower <= p < upper); with `clusters`, only those not already together."""
    band = pairs.filter((pl.col("match_probability") >= lower) & (pl.col("match_probability") < upper))
    if clusters is None:
        return band
    c = clusters.select("rid", "cluster_id")
    return (
        band.join(c.rename({"rid": "rid_l", "cluster_id": "c_l"}), on="rid_l", how="left")
        .join(c.rename({"rid": "rid_r", "cluster_id": "c_r"}), on="rid_r", how="left")
        .filter(pl.col("c_l").is_null() | (pl.col("c_l") != pl.col("c_r")))
        .drop("c_l", "c_r")
    )
