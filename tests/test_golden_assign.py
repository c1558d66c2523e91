"""Customer ID assignment: merges, splits, moves, pins, determinism, and invariants over random runs."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from golden_record.assign import ENDED, LIVE, RETIRED, AssignResult, assign_ids, resolve, root_map
from golden_record.ids import customer_id, seq_of

XREF = {"rid": pl.Int64, "customer_id": pl.String}
CUSTOMERS = {"customer_id": pl.String, "seq": pl.Int64, "status": pl.String, "merged_into": pl.String}


def state(
    held: dict[int, list[int]], retired: dict[int, int] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """prev_xref and customers from {seq: rids} (and {retired seq: successor seq})."""
    xref = pl.DataFrame(
        [(r, customer_id(s)) for s, rids in held.items() for r in rids], schema=XREF, orient="row"
    )
    rows: list[tuple[str, int, str, str | None]] = [(customer_id(s), s, LIVE, None) for s in held]
    rows += [(customer_id(s), s, RETIRED, customer_id(t)) for s, t in (retired or {}).items()]
    return xref, pl.DataFrame(rows, schema=CUSTOMERS, orient="row")


def clusters(groups: list[list[int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(r, f"k{i}") for i, g in enumerate(groups) for r in g],
        schema={"rid": pl.Int64, "cluster_id": pl.String},
        orient="row",
    )


def pins(mapping: dict[int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [(r, customer_id(s), "steward1") for r, s in mapping.items()],
        schema={"rid": pl.Int64, "customer_id": pl.String, "actor": pl.String},
        orient="row",
    )


def seq_by_rid(result: AssignResult) -> dict[int, int]:
    return {r: seq_of(c) for r, c in result.xref.rows()}


def kinds(result: AssignResult) -> dict[str, int]:
    return {k: v for k, v in result.counts().items() if k not in ("records", "customers") and v}


CASES = [
    # name, held, clusters, pins, expected seq per rid, expected retired {seq: seq}, expected event counts
    ("stable", {1: [1, 2], 2: [3]}, [[1, 2], [3]], {}, {1: 1, 2: 1, 3: 2}, {}, {}),
    ("merge", {1: [1, 2], 2: [3]}, [[1, 2, 3]], {}, {1: 1, 2: 1, 3: 1}, {2: 1}, {"merged_into": 1}),
    (
        "merge keeps oldest even when smaller",
        {1: [1], 2: [2, 3, 4]},
        [[1, 2, 3, 4]],
        {},
        {1: 1, 2: 1, 3: 1, 4: 1},
        {2: 1},
        {"merged_into": 1},
    ),
    (
        "split: majority keeps the ID",
        {1: [1, 2, 3]},
        [[1], [2, 3]],
        {},
        {1: 2, 2: 1, 3: 1},
        {},
        {"split_from": 1, "record_moved": 1},
    ),
    (
        "split tie: part with the lowest rid keeps it",
        {1: [1, 2, 3, 4]},
        [[3, 4], [1, 2]],
        {},
        {1: 1, 2: 1, 3: 2, 4: 2},
        {},
        {"split_from": 1, "record_moved": 2},
    ),
    ("new record joins", {1: [1]}, [[1, 5]], {}, {1: 1, 5: 1}, {}, {"record_added": 1}),
    (
        "all new: sequence by lowest rid",
        {},
        [[3], [2, 1]],
        {},
        {1: 1, 2: 1, 3: 2},
        {},
        {"created": 2, "record_added": 3},
    ),
    (
        "record moves between kept IDs",
        {1: [1, 2, 3], 2: [4, 5]},
        [[1, 2], [3, 4, 5]],
        {},
        {1: 1, 2: 1, 3: 2, 4: 2, 5: 2},
        {},
        {"record_moved": 1},
    ),
    (
        "records end, customer ends",
        {1: [1, 2], 2: [3]},
        [[1]],
        {},
        {1: 1},
        {},
        {"record_ended": 2, "customer_ended": 1},
    ),
    (
        "pin beats the cluster",
        {1: [1, 2], 2: [3, 4]},
        [[1, 2], [3, 4]],
        {3: 1},
        {1: 1, 2: 1, 3: 1, 4: 2},
        {},
        {"record_moved": 1},
    ),
    (
        "pin keeps a customer live that clustering would merge",
        {1: [1, 2], 2: [3]},
        [[1, 2, 3]],
        {3: 2},
        {1: 1, 2: 1, 3: 2},
        {},
        {},
    ),
    (
        "customer whose records are all pinned away retires into their new home",
        {1: [1], 2: [2]},
        [[1], [2]],
        {2: 1},
        {1: 1, 2: 1},
        {2: 1},
        {"merged_into": 1, "record_moved": 1},
    ),
]


@pytest.mark.parametrize(
    ("held", "groups", "pinned", "expected", "retired", "events"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_assignment_rules(
    held: dict[int, list[int]],
    groups: list[list[int]],
    pinned: dict[int, int],
    expected: dict[int, int],
    retired: dict[int, int],
    events: dict[str, int],
) -> None:
    prev, customers = state(held)
    next_seq = max(held, default=0) + 1
    result = assign_ids(prev, clusters(groups), customers, pins(pinned), next_seq)
    assert seq_by_rid(result) == expected
    assert {seq_of(a): seq_of(b) for a, b in result.retired.rows()} == retired
    assert kinds(result) == events
    again = assign_ids(prev, clusters(groups), customers, pins(pinned), next_seq)
    assert again.xref.equals(result.xref) and again.events.equals(result.events)


def test_split_events_name_the_origin() -> None:
    prev, customers = state({1: [1, 2, 3]})
    result = assign_ids(prev, clusters([[1], [2, 3]]), customers, pins({}), 7)
    assert result.new_customers.rows() == [(customer_id(7), 7, customer_id(1))]
    moved = result.events.filter(pl.col("kind") == "record_moved")
    assert moved.select("rid", "customer_id", "related_id").rows() == [(1, customer_id(7), customer_id(1))]


def test_pin_to_retired_customer_follows_successor() -> None:
    prev, customers = state({1: [1, 2], 2: [3, 4]}, retired={3: 1})
    result = assign_ids(prev, clusters([[1, 2], [3, 4]]), customers, pins({4: 3}), 4)
    assert seq_by_rid(result) == {1: 1, 2: 1, 3: 2, 4: 1}
    steward = result.events.filter(pl.col("actor").is_not_null())
    assert steward.select("kind", "rid").rows() == [("record_moved", 4)]


def test_unknown_pin_refused() -> None:
    prev, customers = state({1: [1]})
    with pytest.raises(ValueError, match="unknown customers"):
        assign_ids(prev, clusters([[1]]), customers, pins({1: 9}), 2)


def test_duplicate_rid_refused() -> None:
    prev, customers = state({1: [1]})
    with pytest.raises(ValueError, match="twice"):
        assign_ids(prev, clusters([[1], [1]]), customers, pins({}), 2)


@pytest.mark.parametrize(
    ("links", "start", "expected"),
    [({3: 2, 2: 1}, 3, 1), ({2: 1}, 1, 1), ({5: 4, 4: 3, 3: 2, 2: 1}, 5, 1), ({}, 4, 4)],
)
def test_resolve_follows_chains(links: dict[int, int], start: int, expected: int) -> None:
    _, customers = state({1: []}, retired=links)
    assert resolve(customer_id(start), customers) == customer_id(expected)


def test_cyclic_chain_refused() -> None:
    _, customers = state({}, retired={1: 2, 2: 1})
    with pytest.raises(ValueError, match="cyclic"):
        root_map(customers)


class IdLifecycle(RuleBasedStateMachine):
    """Random sequences of new records, ended records, merges, splits, pins and re-runs."""

    @initialize(n=st.integers(min_value=1, max_value=8))
    def start(self, n: int) -> None:
        self.next_rid = 1
        self.groups: list[list[int]] = []
        self.xref = pl.DataFrame(schema=XREF)
        self.customers = pl.DataFrame(schema=CUSTOMERS)
        self.pins: dict[int, str] = {}
        self.issued: set[str] = set()
        self.add(n, 0)

    def run(self) -> None:
        """One run: assign, check determinism and stability, apply to the simulated store."""
        cl = clusters([g for g in self.groups if g])
        pin_frame = pl.DataFrame(
            [(r, c, "s") for r, c in self.pins.items()],
            schema={"rid": pl.Int64, "customer_id": pl.String, "actor": pl.String},
            orient="row",
        )
        next_seq = int(self.customers.select(pl.col("seq").max().fill_null(0)).item()) + 1
        result = assign_ids(self.xref, cl, self.customers, pin_frame, next_seq)
        again = assign_ids(self.xref, cl, self.customers, pin_frame, next_seq)
        assert result.xref.equals(again.xref) and result.new_customers.equals(again.new_customers)
        fresh = set(result.new_customers["customer_id"].to_list())
        assert not fresh & self.issued, "an ID was reused"
        self.check_stability(result)
        self.issued |= fresh
        new = result.new_customers.select(
            "customer_id", "seq", pl.lit(LIVE).alias("status"), pl.lit(None, pl.String).alias("merged_into")
        )
        changes = pl.concat(
            [
                result.retired.with_columns(pl.lit(RETIRED).alias("status")),
                result.ended.with_columns(
                    pl.lit(ENDED).alias("status"), pl.lit(None, pl.String).alias("merged_into")
                ),
                result.revived.with_columns(
                    pl.lit(LIVE).alias("status"), pl.lit(None, pl.String).alias("merged_into")
                ),
            ],
            how="diagonal_relaxed",
        )
        self.customers = (
            pl.concat([self.customers, new])
            .join(changes, on="customer_id", how="left", suffix="_new")
            .select(
                "customer_id",
                "seq",
                pl.coalesce("status_new", "status").alias("status"),
                pl.when(pl.col("status_new").is_not_null())
                .then(pl.col("merged_into_new"))
                .otherwise(pl.col("merged_into"))
                .alias("merged_into"),
            )
        )
        self.xref = result.xref
        rerun = assign_ids(self.xref, cl, self.customers, pin_frame, next_seq + len(fresh))
        assert rerun.xref.equals(self.xref), "a re-run on the same clusters changed IDs"
        assert rerun.events.height == 0 and rerun.new_customers.height == 0

    def check_stability(self, result: AssignResult) -> None:
        """A cluster identical to a previous customer's record set keeps that customer's ID (pins aside)."""
        pinned = pl.DataFrame({"rid": list(self.pins)}, schema={"rid": pl.Int64})
        touched = pl.concat([self.xref, result.xref]).join(pinned, on="rid", how="semi")["customer_id"]
        touched = pl.concat([touched, pl.Series(list(self.pins.values()), dtype=pl.String)])
        before = (
            self.xref.filter(~pl.col("customer_id").is_in(touched.implode()))
            .group_by("customer_id")
            .agg(pl.col("rid").sort().alias("rids"))
        )
        now = result.xref.group_by("customer_id").agg(pl.col("rid").sort().alias("rids"))
        same = before.join(now, on="rids", suffix="_now")
        assert (same["customer_id"] == same["customer_id_now"]).all()

    def add(self, n: int, join: int) -> None:
        rids = list(range(self.next_rid, self.next_rid + n))
        self.next_rid += n
        if join and self.groups:
            self.groups[join % len(self.groups)].extend(rids)
        else:
            self.groups.extend([[r] for r in rids])
        self.run()

    @rule(n=st.integers(min_value=1, max_value=4), join=st.integers(min_value=0, max_value=20))
    def add_records(self, n: int, join: int) -> None:
        self.add(n, join)

    @rule(pick=st.integers(min_value=0, max_value=50))
    def end_record(self, pick: int) -> None:
        live = [r for g in self.groups for r in g]
        if len(live) > 1:
            gone = live[pick % len(live)]
            self.groups = [[r for r in g if r != gone] for g in self.groups]
            self.pins.pop(gone, None)
        self.run()

    @rule(a=st.integers(min_value=0, max_value=50), b=st.integers(min_value=0, max_value=50))
    def merge(self, a: int, b: int) -> None:
        groups = [g for g in self.groups if g]
        i, j = a % len(groups), b % len(groups)
        if i != j:
            groups[i] = groups[i] + groups[j]
            groups.pop(j)
        self.groups = groups
        self.run()

    @rule(a=st.integers(min_value=0, max_value=50), mask=st.lists(st.booleans(), min_size=1, max_size=12))
    def split(self, a: int, mask: list[bool]) -> None:
        groups = [g for g in self.groups if g]
        g = groups.pop(a % len(groups))
        flags = (mask * (len(g) // len(mask) + 1))[: len(g)]
        groups += [
            [r for r, f in zip(g, flags, strict=True) if f],
            [r for r, f in zip(g, flags, strict=True) if not f],
        ]
        self.groups = [x for x in groups if x]
        self.run()

    @rule(labels=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=40))
    def recluster(self, labels: list[int]) -> None:
        live = sorted(r for g in self.groups for r in g)
        by_label: dict[int, list[int]] = {}
        for r, lab in zip(live, (labels * (len(live) // len(labels) + 1))[: len(live)], strict=True):
            by_label.setdefault(lab, []).append(r)
        self.groups = list(by_label.values())
        self.run()

    @rule(r=st.integers(min_value=0, max_value=50), c=st.integers(min_value=0, max_value=50))
    def pin(self, r: int, c: int) -> None:
        live = sorted(x for g in self.groups for x in g)
        ids = sorted(self.issued)
        self.pins[live[r % len(live)]] = ids[c % len(ids)]
        self.run()

    @rule(r=st.integers(min_value=0, max_value=50))
    def unpin(self, r: int) -> None:
        if self.pins:
            self.pins.pop(sorted(self.pins)[r % len(self.pins)])
        self.run()

    @invariant()
    def every_record_in_exactly_one_live_customer(self) -> None:
        live = sorted(r for g in self.groups for r in g)
        assert self.xref["rid"].to_list() == live
        status = dict(self.customers.select("customer_id", "status").rows())
        assert all(status[c] == LIVE for c in self.xref["customer_id"].unique().to_list())
        live_ids = {c for c, s in status.items() if s == LIVE}
        assert live_ids == set(self.xref["customer_id"].to_list()), "a live customer has no record"

    @invariant()
    def retired_resolve_to_current(self) -> None:
        status = dict(self.customers.select("customer_id", "status").rows())
        roots = root_map(self.customers)
        assert set(roots["customer_id"].to_list()) == set(
            self.customers.filter(pl.col("status") == RETIRED)["customer_id"].to_list()
        )
        assert all(status[root] in (LIVE, ENDED) for root in roots["root"].to_list())
        assert self.customers["seq"].n_unique() == self.customers.height

    @invariant()
    def pins_are_honoured(self) -> None:
        where = dict(self.xref.rows())
        roots = dict(root_map(self.customers).rows())
        assert all(where[rid] == roots.get(cid, cid) for rid, cid in self.pins.items())


IdLifecycle.TestCase.settings = settings(max_examples=30, stateful_step_count=10, deadline=None)
TestIdLifecycle = IdLifecycle.TestCase
