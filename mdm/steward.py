"""The steward workbench's service: review tasks, decisions, and direct merge / split / pin of customers.

Functions take the project's ``Store`` first and raise ``MdmError`` subclasses (``NotFound``,
``Conflict``) on bad input; values returned are plain (the API masks them per role). Decisions on tasks
persist as steward links that the next batch run honours; merge, split and pin take effect at once
through a scoped golden-record run over just the customers they touch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from mdm.errors import Conflict, MdmError, NotFound
from mdm.schema import FLAGS, RAW_FIELDS, STANDARD_SCHEMA

if TYPE_CHECKING:
    from mdm.matching.train import TrainedModel
    from mdm.store import Store

Decision = Literal["match", "no-match", "unsure"]

#: Record fields shown side by side in a task, raw first, then standardized, then quality flags.
TASK_FIELDS: tuple[str, ...] = (*RAW_FIELDS, *STANDARD_SCHEMA, FLAGS)
STEWARD_RUN = "steward"


# ----- the queue ------------------------------------------------------------------------------


def list_tasks(
    store: Store,
    *,
    status: str | None = "open",
    source: str | None = None,
    assignee: str | None = None,
    order: Literal["impact", "oldest"] = "impact",
    limit: int = 100,
    offset: int = 0,
) -> pl.DataFrame:
    """Review tasks with both records' source keys, filtered, highest impact (or oldest) first."""
    return store.review_tasks(
        status=status, source=source, assignee=assignee, order=order, limit=limit, offset=offset
    )


def _plain(value: object) -> object:
    """A JSON-friendly value: dates as ISO text, everything else as it is."""
    return value.isoformat() if isinstance(value, date | datetime) else value


def _side(store: Store, rid: int) -> dict[str, Any]:
    """One record of a task: provenance, current customer and every raw and standardized field."""
    row = store.record_version(rid)
    return {
        "rid": rid,
        "source": row["source"],
        "source_key": row["source_key"],
        "customer_id": row["customer_id"],
        "ingested_at": _plain(row["ingested_at"]),
        "batch_id": row["batch_id"],
        "fields": {f: _plain(row.get(f)) for f in TASK_FIELDS},
    }


def _load_model(store: Store, model_path: Path | None) -> TrainedModel | None:
    """The trained model beside the database (or at ``model_path``), None when there is none."""
    from mdm.matching.train import TrainedModel
    from mdm.pipeline import default_model_path

    path = model_path or default_model_path(store, "person")
    return TrainedModel.load(path) if path.exists() else None


def waterfall(pair: dict[str, Any], model: TrainedModel | None) -> tuple[float, list[dict[str, Any]]]:
    """Prior weight and per-comparison bars of a scored pair's ``detail`` (gamma_*/mw_* values).

    Level labels come from :func:`mdm.matching.explain.explain` when the model is at hand; without it
    a bar is labelled by its level number and the prior is what the bars leave of the total weight.
    """
    detail = json.loads(str(pair["detail"]))
    names = [k.removeprefix("gamma_") for k in detail if k.startswith("gamma_")]
    if model is not None and all(c.name in names for c in model.ruleset.comparisons):
        from mdm.matching.explain import explain

        steps = explain(detail, model)
        bars: list[dict[str, Any]] = [
            {
                "comparison": s.comparison,
                "label": s.level,
                "gamma": int(detail[f"gamma_{s.comparison}"]),
                "weight": s.match_weight,
            }
            for s in steps[1:]
        ]
        return steps[0].match_weight, bars
    bars = [
        {
            "comparison": n,
            "label": f"level {detail[f'gamma_{n}']}",
            "gamma": int(detail[f"gamma_{n}"]),
            "weight": float(detail.get(f"mw_{n}") or 0.0),
        }
        for n in names
    ]
    return float(pair["match_weight"]) - sum(b["weight"] for b in bars), bars


def _effect(store: Store, left: str | None, right: str | None) -> dict[str, Any]:
    """What a match or a no-match decision would change for the two records' current customers."""
    if left is None or right is None:
        return {
            "same_customer": False,
            "left_customer": left,
            "right_customer": right,
            "if_match": "the records will share a customer at the next run",
            "if_no_match": "the records will never share a customer unless one of them changes",
        }
    if left == right:
        return {
            "same_customer": True,
            "left_customer": left,
            "right_customer": right,
            "if_match": f"nothing changes: both records already belong to {left}",
            "if_no_match": f"the records are separated at the next run; one part of {left} gets a new ID",
        }
    survivor, other = sorted((left, right), key=lambda c: store.customer_seq(c) or 0)
    return {
        "same_customer": False,
        "left_customer": left,
        "right_customer": right,
        "if_match": f"{survivor} and {other} become one customer ({survivor} survives) at the next run",
        "if_no_match": f"{left} and {right} stay separate; the pair is not proposed again unless a record changes",
    }


def task_detail(store: Store, task_id: int, *, model_path: Path | None = None) -> dict[str, Any]:
    """Everything a steward needs to decide a task: both records aligned, the waterfall, the effect."""
    task = store.review_task(task_id)
    last_run = task.pop("last_run")
    left, right = _side(store, int(task["rid_l"])), _side(store, int(task["rid_r"]))
    fields = [
        {
            "field": f,
            "left": left["fields"][f],
            "right": right["fields"][f],
            "differs": left["fields"][f] != right["fields"][f],
        }
        for f in TASK_FIELDS
        if left["fields"][f] is not None or right["fields"][f] is not None
    ]
    pair = store.pair_detail(int(task["rid_l"]), int(task["rid_r"]), last_run)
    prior, bars = waterfall(pair, _load_model(store, model_path)) if pair else (0.0, [])
    decisions = store.pair_decisions(int(task["rid_l"]), int(task["rid_r"]))
    return {
        "task": task,
        "left": left,
        "right": right,
        "fields": fields,
        "waterfall": bars,
        "prior_weight": prior,
        "match_weight": float(pair["match_weight"]) if pair else float("nan"),
        "probability": float(pair["match_probability"]) if pair else float(task["probability"]),
        "effect": _effect(store, left["customer_id"], right["customer_id"]),
        "decisions": decisions.select(
            "decision_id", "decision", "user", "note", "created_at", "revoked_at"
        ).to_dicts(),
    }


def claim_task(store: Store, task_id: int, user: str) -> dict[str, Any]:
    """Take a task; Conflict when another steward holds it or it is closed."""
    return store.claim_review_task(task_id, user)


def release_task(store: Store, task_id: int, user: str) -> None:
    """Give one's claimed task back to the queue."""
    store.release_review_task(task_id, user)


def decide_task(
    store: Store, task_id: int, decision: Decision, user: str, note: str | None = None
) -> dict[str, Any]:
    """Append a decision: match -> must-link, no-match -> cannot-link (honoured from the next run on)."""
    return store.add_review_decision(task_id, decision, user, note)


def revoke_decision(store: Store, decision_id: int, user: str, note: str | None = None) -> None:
    """Revoke a decision and its link; the revocation is itself recorded."""
    store.revoke_review_decision(decision_id, user, note)


def labels(store: Store) -> pl.DataFrame:
    """Active match / no-match decisions as pairwise labels (unsure and revoked ones excluded)."""
    return store.review_labels()


# ----- direct actions on customers ------------------------------------------------------------


def _live(store: Store, customer_id: str) -> str:
    """The live successor of a customer ID; NotFound for an unknown ID, Conflict for an ended one."""
    resolved = store.resolve_customer_id(customer_id)
    if resolved is None:
        raise NotFound(f"no customer {customer_id}")
    if store.customer_members([resolved]).height == 0:
        raise Conflict(f"customer {resolved} holds no current record")
    return resolved


def _reapply(
    store: Store, rids: list[int], regroup: Callable[[pl.DataFrame], pl.DataFrame], act: Callable[[], None]
) -> dict[str, int]:
    """Run ``act`` (the action's links and audit) and re-assign IDs of the customers touching ``rids``.

    The scope is closed over those customers; ``regroup`` maps their current cross-reference
    (rid, customer_id) to the wanted clusters (rid, cluster_id). One steward run, all or nothing.
    """
    from golden_record.pipeline import closed_scope, run_golden

    run_id = store.start_run(None, kind=STEWARD_RUN)
    try:
        with store.transaction():
            act()
            scope = closed_scope(store, rids)
            xref = store.current_xref(scope).select("rid", "customer_id")
            current = pl.DataFrame({"rid": scope}, schema={"rid": pl.Int64}).join(xref, on="rid", how="left")
            current = current.with_columns(
                pl.coalesce("customer_id", pl.format("rid:{}", "rid")).alias("customer_id")
            )
            clusters = regroup(current).select("rid", pl.col("cluster_id").cast(pl.String))
            counts = run_golden(store, clusters, run_id, scope=scope)
    except Exception as exc:
        store.finish_run(run_id, "failed", {}, type(exc).__name__)
        raise
    store.finish_run(run_id, "succeeded", counts, None)
    return counts


def _apply_merge(
    store: Store, a: str, b: str, user: str, reason: str, request_id: int | None
) -> dict[str, Any]:
    """Merge live customers ``a`` and ``b`` now: a must-link between one record of each, old cannot-links
    between them revoked, IDs re-assigned (the older ID survives)."""
    members = store.customer_members([a, b])
    rids_a = members.filter(pl.col("customer_id") == a)["rid"].to_list()
    rids_b = members.filter(pl.col("customer_id") == b)["rid"].to_list()
    survivor, retired = sorted((a, b), key=lambda c: store.customer_seq(c) or 0)

    def act() -> None:
        for link_id in store.active_links_between(rids_a, rids_b, "cannot"):
            store.revoke_link(link_id, user)
        link_id = store.add_link("must", min(rids_a), min(rids_b), user, reason)
        if request_id is not None:
            store.close_merge_request(request_id, user, reason, "approved", survivor)
        store.log_steward_action(
            "steward_merged",
            a,
            None,
            user,
            reason,
            f"merge of {a} and {b}; link {link_id}" + (f"; request {request_id}" if request_id else ""),
            a,
        )

    def regroup(current: pl.DataFrame) -> pl.DataFrame:
        return current.with_columns(
            pl.when(pl.col("customer_id") == b).then(pl.lit(a)).otherwise("customer_id").alias("cluster_id")
        )

    _reapply(store, rids_a + rids_b, regroup, act)
    return {"status": "merged", "customer_id": survivor, "retired": retired}


def merge_customers(store: Store, customer_a: str, customer_b: str, user: str, reason: str) -> dict[str, Any]:
    """Merge two customers at once, or open a four-eyes request when they hold different valid ID numbers."""
    if not reason.strip():
        raise MdmError("a merge needs a reason")
    a, b = _live(store, customer_a), _live(store, customer_b)
    if a == b:
        raise Conflict(f"{customer_a} and {customer_b} are already one customer ({a})")
    if store.customers_hold_different_ids(a, b):
        return {"status": "pending_approval", "request_id": store.add_merge_request(a, b, user, reason)}
    return _apply_merge(store, a, b, user, reason, None)


def approve_merge(store: Store, request_id: int, user: str, reason: str) -> dict[str, Any]:
    """A second steward approves a pending merge; the requester may not approve their own request."""
    request = store.merge_request(request_id)
    if request["status"] != "pending":
        raise Conflict(f"merge request {request_id} is {request['status']}")
    if request["requested_by"] == user:
        raise Conflict(f"merge request {request_id} needs a steward other than its requester")
    a, b = _live(store, request["customer_a"]), _live(store, request["customer_b"])
    if a == b:
        store.close_merge_request(request_id, user, reason, "void", a)
        return {"status": "merged", "customer_id": a, "retired": None, "request_id": request_id}
    return {**_apply_merge(store, a, b, user, reason, request_id), "request_id": request_id}


def split_record(store: Store, customer_id: str, rid: int, user: str, reason: str) -> dict[str, Any]:
    """Split one record out of a customer at once: cannot-links to every other member, its pin and
    must-links to them revoked, IDs re-assigned (the part holding most records keeps the ID)."""
    if not reason.strip():
        raise MdmError("a split needs a reason")
    source = _live(store, customer_id)
    members = store.customer_members([source])["rid"].to_list()
    if rid not in members:
        raise NotFound(f"record {rid} is not a current record of {source}")
    others = [r for r in members if r != rid]
    if not others:
        raise Conflict(f"record {rid} is the only record of {source}")

    def act() -> None:
        for link_id in store.active_links_between([rid], others, "must"):
            store.revoke_link(link_id, user)
        store.revoke_record_pins(rid, user)
        links = [store.add_link("cannot", rid, other, user, reason) for other in others]
        store.log_steward_action(
            "steward_split",
            source,
            rid,
            user,
            reason,
            f"record {rid} split from {source}; links {links}",
            source,
        )

    def regroup(current: pl.DataFrame) -> pl.DataFrame:
        return current.with_columns(
            pl.when(pl.col("rid") == rid)
            .then(pl.lit(f"split:{rid}"))
            .otherwise("customer_id")
            .alias("cluster_id")
        )

    _reapply(store, members, regroup, act)
    (row,) = store.current_xref([rid]).to_dicts()
    return {"status": "split", "customer_id": row["customer_id"], "from": source}


def pin_attribute(store: Store, customer_id: str, attribute: str, value: str, user: str, reason: str) -> int:
    """Pin a golden attribute value and rebuild that customer's golden record at once."""
    target = _live(store, customer_id)
    pin_id = 0

    def act() -> None:
        nonlocal pin_id
        pin_id = store.pin_attribute(target, attribute, value, user, reason)
        store.log_steward_action(
            "steward_pinned",
            target,
            None,
            user,
            reason,
            f"attribute pin {pin_id}: {attribute}",
            target,
            event=False,
        )

    members = store.customer_members([target])["rid"].to_list()
    _reapply(
        store, members, lambda current: current.with_columns(pl.col("customer_id").alias("cluster_id")), act
    )
    return pin_id
