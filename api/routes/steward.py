"""Steward JSON endpoints: the review queue, decisions, and direct merge / split / pin of customers.

Thin routes over ``mdm.steward``: they authenticate (bearer key, or the page's session cookie with a
CSRF token), audit every call (masked values only), serialize domain writes under ``ctx.write_lock``
and mask C2 values per role. Domain errors map to the one error shape: NotFound 404, Conflict 409,
any other refusal 422.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import duckdb
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.deps import ApiContext, audit, context
from api.errors import ApiError
from api.models import CUSTOMER_PATTERN, SOURCE_PATTERN
from api.policy import Policy, mask_field, raw_view
from api.steward_session import caller
from mdm import steward
from mdm.errors import Conflict, MdmError, NotFound
from mdm.privacy import mask

router = APIRouter(prefix="/v1", tags=["steward"])
Ctx = Annotated[ApiContext, Depends(context)]
TaskId = Annotated[int, Path(ge=1, le=2**62)]
CustomerId = Annotated[str, Path(pattern=CUSTOMER_PATTERN)]
WRITE_WAIT_SECONDS = 5.0
T = TypeVar("T")

Reason = Field(min_length=1, max_length=500)


class TaskOut(BaseModel):
    """One review task: a pair of records in the review band of a run."""

    task_id: int
    run_id: int
    rid_l: int
    rid_r: int
    left_source: str
    left_key: str
    right_source: str
    right_key: str
    probability: float
    impact: float
    reasons: str
    status: str
    assignee: str | None = None
    created_at: datetime
    decided_at: datetime | None = None


class TaskListOut(BaseModel):
    """A page of the queue."""

    tasks: list[TaskOut]
    count: int


class TaskDetailOut(BaseModel):
    """Both records aligned (C2 masked), the waterfall of weights and what a decision would change."""

    task: TaskOut
    left: dict[str, Any]
    right: dict[str, Any]
    fields: list[dict[str, Any]]
    waterfall: list[dict[str, Any]]
    prior_weight: float
    match_weight: float | None = None
    probability: float
    effect: dict[str, Any]
    decisions: list[dict[str, Any]]


class DecisionIn(BaseModel):
    """A steward's answer on a task; ``unsure`` needs a note."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["match", "no-match", "unsure"]
    note: str | None = Field(default=None, max_length=500)


class DecisionOut(BaseModel):
    """The appended decision and the steward link it created (none for unsure)."""

    decision_id: int
    task_id: int
    decision: str
    link_id: int | None = None


class RevokeIn(BaseModel):
    """Why a decision is revoked."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


class DoneOut(BaseModel):
    """An action that returns nothing else."""

    status: str


class MergeIn(BaseModel):
    """Two customers to merge and why."""

    model_config = ConfigDict(extra="forbid")

    customer_a: str = Field(pattern=CUSTOMER_PATTERN)
    customer_b: str = Field(pattern=CUSTOMER_PATTERN)
    reason: str = Reason


class ApproveIn(BaseModel):
    """The second steward's reason for approving a four-eyes merge."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Reason


class MergeOut(BaseModel):
    """``merged`` (survivor and retired ID) or ``pending_approval`` (a four-eyes request)."""

    status: Literal["merged", "pending_approval"]
    customer_id: str | None = None
    retired: str | None = None
    request_id: int | None = None


class SplitIn(BaseModel):
    """The record to split out: ``rid``, or ``source`` and ``source_key``."""

    model_config = ConfigDict(extra="forbid")

    rid: int | None = Field(default=None, ge=1, le=2**62)
    source: str | None = Field(default=None, pattern=SOURCE_PATTERN)
    source_key: str | None = Field(default=None, min_length=1, max_length=128)
    reason: str = Reason


class SplitOut(BaseModel):
    """The record's new customer and the customer it left."""

    status: Literal["split"]
    customer_id: str
    from_customer: str = Field(alias="from")


class PinIn(BaseModel):
    """A golden attribute value to pin and why."""

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    value: str = Field(min_length=1, max_length=500)
    reason: str = Reason


class PinOut(BaseModel):
    """The pin created."""

    pin_id: int
    customer_id: str


@contextmanager
def domain_errors() -> Iterator[None]:
    """mdm refusals as API errors (their messages carry no personal values)."""
    try:
        yield
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    except MdmError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    except duckdb.TransactionException as exc:
        raise ApiError(409, "conflict", "a concurrent write got there first; retry") from exc


def written(ctx: ApiContext, action: Callable[[], T]) -> T:
    """Run a domain write under the write lock (503 while a batch run holds it), errors mapped."""
    if not ctx.write_lock.acquire(timeout=WRITE_WAIT_SECONDS):
        raise ApiError(503, "busy", "a batch run holds the write path; retry later", {"Retry-After": "30"})
    try:
        with domain_errors():
            return action()
    finally:
        ctx.write_lock.release()


def check_reason(ctx: ApiContext, reason: str | None) -> str:
    """The stripped reason, 422 when shorter than the policy's minimum."""
    text = (reason or "").strip()
    if len(text) < ctx.policy.limits.reason_min_chars:
        raise ApiError(422, "invalid_request", "reason: a reason of a few words is required")
    return text


def masked_detail(policy: Policy, role: str, detail: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A task's detail as ``role`` sees it (C2 masked, notes masked) and the C2 fields it shows."""
    sides = {
        side: {**detail[side], "fields": raw_view(policy, role, detail[side]["fields"])}
        for side in ("left", "right")
    }
    fields = [
        {**f, "left": sides["left"]["fields"][f["field"]], "right": sides["right"]["fields"][f["field"]]}
        for f in detail["fields"]
        if f["field"] in sides["left"]["fields"]
    ]
    decisions = [{**d, "note": mask(d["note"]) if d.get("note") else None} for d in detail["decisions"]]
    shown = sorted({f["field"] for f in fields if policy.raw_class(f["field"]) == "C2"})
    return {**detail, **sides, "fields": fields, "decisions": decisions}, shown


def task_view(ctx: ApiContext, who: Principal, task_id: int) -> tuple[dict[str, Any], list[str]]:
    """The masked detail of a task for ``who`` (NotFound as 404; no scored pair: match_weight None)."""
    with domain_errors():
        detail = steward.task_detail(ctx.view(), task_id)
    weight = float(detail["match_weight"])
    return masked_detail(
        ctx.policy, who.role, {**detail, "match_weight": None if math.isnan(weight) else weight}
    )


@router.get("/review/tasks", response_model=TaskListOut, summary="The review queue")
def list_tasks(
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(caller("review_read"))],
    status: Annotated[Literal["open", "claimed", "decided", "expired", "all"], Query()] = "open",
    source: Annotated[str | None, Query(pattern=SOURCE_PATTERN)] = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    order: Annotated[Literal["impact", "oldest"], Query()] = "impact",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> TaskListOut:
    """Tasks filtered by status (``all``: any), source and assignee; highest impact or oldest first."""
    with domain_errors():
        frame = steward.list_tasks(
            ctx.view(),
            status=None if status == "all" else status,
            source=source,
            assignee=assignee,
            order=order,
            limit=limit,
            offset=offset,
        )
    audit(ctx, request, who, "review.list", detail=f"status {status}; {frame.height} tasks", status=200)
    return TaskListOut(tasks=[TaskOut(**row) for row in frame.to_dicts()], count=frame.height)


@router.get("/review/tasks/{task_id}", response_model=TaskDetailOut, summary="One task, explained")
def get_task(
    request: Request, ctx: Ctx, task_id: TaskId, who: Annotated[Principal, Depends(caller("review_read"))]
) -> TaskDetailOut:
    """Both records side by side (C2 masked), the waterfall and the effect of each decision."""
    detail, shown = task_view(ctx, who, task_id)
    audit(ctx, request, who, "review.read", target=f"task:{task_id}", fields=shown, view="masked", status=200)
    return TaskDetailOut(**detail)


@router.post("/review/tasks/{task_id}/claim", response_model=TaskOut, summary="Claim a task")
def claim(
    request: Request, ctx: Ctx, task_id: TaskId, who: Annotated[Principal, Depends(caller("review_decide"))]
) -> TaskOut:
    """Take a task; 409 when another steward holds it or it is closed."""
    audit(ctx, request, who, "review.claim", target=f"task:{task_id}", status=None)
    row = written(ctx, lambda: steward.claim_task(ctx.view(), task_id, who.name))
    return TaskOut(**row)


@router.post("/review/tasks/{task_id}/release", response_model=DoneOut, summary="Give a task back")
def release(
    request: Request, ctx: Ctx, task_id: TaskId, who: Annotated[Principal, Depends(caller("review_decide"))]
) -> DoneOut:
    """Return one's claimed task to the queue (skip)."""
    audit(ctx, request, who, "review.release", target=f"task:{task_id}", status=None)
    written(ctx, lambda: steward.release_task(ctx.view(), task_id, who.name))
    return DoneOut(status="open")


@router.post("/review/tasks/{task_id}/decision", response_model=DecisionOut, summary="Decide a task")
def decide(
    request: Request,
    body: DecisionIn,
    ctx: Ctx,
    task_id: TaskId,
    who: Annotated[Principal, Depends(caller("review_decide"))],
) -> DecisionOut:
    """Append match (must-link), no-match (cannot-link) or unsure (note only); 409 when held by another."""
    note = body.note.strip() if body.note else None
    audit(
        ctx,
        request,
        who,
        "review.decide",
        target=f"task:{task_id}",
        reason=mask(note) if note else None,
        detail=body.decision,
        status=None,
    )
    result = written(ctx, lambda: steward.decide_task(ctx.view(), task_id, body.decision, who.name, note))
    return DecisionOut(**result)


@router.post("/review/decisions/{decision_id}/revoke", response_model=DoneOut, summary="Revoke a decision")
def revoke(
    request: Request,
    body: RevokeIn,
    ctx: Ctx,
    decision_id: TaskId,
    who: Annotated[Principal, Depends(caller("review_decide"))],
) -> DoneOut:
    """Revoke a decision and its link (the revocation is recorded; nothing is deleted)."""
    note = body.note.strip() if body.note else None
    target = f"decision:{decision_id}"
    audit(ctx, request, who, "review.revoke", target=target, reason=mask(note) if note else None, status=None)
    written(ctx, lambda: steward.revoke_decision(ctx.view(), decision_id, who.name, note))
    return DoneOut(status="revoked")


@router.post(
    "/customers/merge",
    response_model=MergeOut,
    summary="Merge two customers",
    responses={202: {"model": MergeOut, "description": "Waiting for a second steward (four eyes)."}},
)
def merge(
    request: Request,
    response: Response,
    body: MergeIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(caller("customer_merge"))],
) -> MergeOut:
    """Merge at once (200), or 202 ``pending_approval`` when the two hold different valid ID numbers."""
    reason = check_reason(ctx, body.reason)
    target = f"{body.customer_a}+{body.customer_b}"
    audit(ctx, request, who, "customer.merge", target=target, reason=mask(reason), status=None)
    result = written(
        ctx, lambda: steward.merge_customers(ctx.view(), body.customer_a, body.customer_b, who.name, reason)
    )
    if result["status"] == "pending_approval":
        response.status_code = 202
    return MergeOut(**result)


@router.post("/merge-requests/{request_id}/approve", response_model=MergeOut, summary="Approve a merge")
def approve(
    request: Request,
    body: ApproveIn,
    ctx: Ctx,
    request_id: TaskId,
    who: Annotated[Principal, Depends(caller("customer_merge"))],
) -> MergeOut:
    """A second steward approves a pending four-eyes merge (409 for the requester or a closed request)."""
    reason = check_reason(ctx, body.reason)
    target = f"merge_request:{request_id}"
    audit(ctx, request, who, "customer.merge_approve", target=target, reason=mask(reason), status=None)
    result = written(ctx, lambda: steward.approve_merge(ctx.view(), request_id, who.name, reason))
    return MergeOut(**{k: v for k, v in result.items() if k in MergeOut.model_fields})


@router.post("/customers/{customer_id}/split", response_model=SplitOut, summary="Split a record out")
def split(
    request: Request,
    body: SplitIn,
    ctx: Ctx,
    customer_id: CustomerId,
    who: Annotated[Principal, Depends(caller("customer_split"))],
) -> SplitOut:
    """Move one record (by ``rid`` or ``source`` + ``source_key``) out of a customer into a new one."""
    reason = check_reason(ctx, body.reason)
    rid = body.rid
    if rid is None:
        if body.source is None or body.source_key is None:
            raise ApiError(422, "invalid_request", "give rid, or source and source_key")
        rid = ctx.view().rid_of(body.source, body.source_key)
        if rid is None:
            raise ApiError(404, "not_found", "no such source record")
    audit(ctx, request, who, "customer.split", target=customer_id, detail=f"rid {rid}", reason=mask(reason))
    chosen = rid
    result = written(ctx, lambda: steward.split_record(ctx.view(), customer_id, chosen, who.name, reason))
    return SplitOut.model_validate(result)


@router.post("/customers/{customer_id}/pins", response_model=PinOut, status_code=201, summary="Pin a value")
def pin(
    request: Request,
    body: PinIn,
    ctx: Ctx,
    customer_id: CustomerId,
    who: Annotated[Principal, Depends(caller("customer_pin"))],
) -> PinOut:
    """Pin a golden attribute value; the golden record is rebuilt at once (the value is not audited)."""
    reason = check_reason(ctx, body.reason)
    audit(
        ctx,
        request,
        who,
        "customer.pin",
        target=customer_id,
        fields=[body.attribute],
        detail=f"value {mask_field(ctx.policy, body.attribute, body.value)}",
        reason=mask(reason),
    )
    pin_id = written(
        ctx,
        lambda: steward.pin_attribute(ctx.view(), customer_id, body.attribute, body.value, who.name, reason),
    )
    return PinOut(pin_id=pin_id, customer_id=customer_id)
