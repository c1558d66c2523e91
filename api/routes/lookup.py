"""Read endpoints: cross-reference, golden records, identifier search, change feed, aggregates.

The two hot reads (current xref, customer) are ``async``: they answer from the in-memory read model
(``api.cache``) on the event loop, fall back to DuckDB in the threadpool while the model is stale after
a write, and await their audit entry without holding a thread. A model's answers are memoized in it (a
masked golden view per customer and role, an xref body per record), so a repeat read neither masks nor
serializes; ``read_xref_current`` and ``read_customer`` are shared with the fast path (``api.fast``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import Principal
from api.deps import ApiContext, audit, audit_async, context, context_async, require
from api.errors import ApiError
from api.models import (
    CUSTOMER_PATTERN,
    SOURCE_PATTERN,
    CustomerOut,
    EventsOut,
    SearchOut,
    StatsOut,
    XrefOut,
)
from api.policy import Policy, golden_view, mask_field
from mdm.privacy import mask
from mdm.store.api_repo import INDEX_KINDS, index_digest

log = logging.getLogger("mdm.api")
router = APIRouter(prefix="/v1")

Ctx = Annotated[ApiContext, Depends(context)]
AsyncCtx = Annotated[ApiContext, Depends(context_async)]
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _json(model: BaseModel) -> Response:
    """A model as its JSON answer, serialized once (FastAPI would validate the response model again);
    the route still declares the model, so the OpenAPI document is unchanged."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


def _aware(value: datetime) -> datetime:
    """A timestamp in UTC (naive ones are taken as UTC), clamped to 1900..2200 (no record is older)."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return min(max(aware, _EARLIEST), _LATEST).astimezone(UTC)


@dataclass(frozen=True)
class CustomerAnswer:
    """A customer read ready to send: the serialized body, the live ID and the C2 fields it shows."""

    body: bytes
    customer_id: str
    shown: tuple[str, ...]


def customer_answer(
    policy: Policy, role: str, requested_id: str, doc: dict[str, Any] | None, unmask: bool = False
) -> CustomerAnswer | None:
    """The golden document ``doc`` as ``role`` may see it, serialized (None when there is no document)."""
    if doc is None:
        return None
    attributes, shown = golden_view(policy, role, doc["attributes"], unmask)
    visible = {f"{name}_lineage" for name in attributes}
    lineage = {k: v for k, v in (doc["lineage"] or {}).items() if k in visible}
    resolved = str(doc["customer_id"])
    out = CustomerOut(
        requested_id=requested_id,
        customer_id=resolved,
        merged_into=resolved if resolved != requested_id else None,
        status=str(doc["status"]),
        version=doc.get("version"),
        run_id=doc.get("run_id"),
        view="plain" if unmask else "masked",
        attributes=attributes,
        lineage=lineage,
        records=doc["records"],
    )
    return CustomerAnswer(out.model_dump_json(by_alias=True).encode(), resolved, tuple(shown))


def xref_current_body(source: str, source_key: str, found: dict[str, Any] | None) -> bytes | None:
    """The serialized current cross-reference of a record (None when it has no current owner)."""
    if found is None:
        return None
    out = XrefOut(
        source=source,
        source_key=source_key,
        customer_id=found["customer_id"],
        valid_from_run=found["valid_from_run"],
    )
    return out.model_dump_json(by_alias=True).encode()


async def read_xref_current(ctx: ApiContext, source: str, source_key: str) -> Response:
    """The answer to a current xref read: from the read model (each body serialized once per model),
    else from DuckDB in the threadpool; 404 when the record has no current owner."""
    model = ctx.cache.current()
    if model is not None and model.knows_xref(source, source_key):
        body = model.memoized(
            ("xref", source, source_key),
            lambda: xref_current_body(source, source_key, model.xref(source, source_key)),
        )
    else:
        found = await run_in_threadpool(lambda: ctx.view().xref_current(source, source_key))
        body = xref_current_body(source, source_key, found)
    if body is None:
        raise ApiError(404, "not_found", "no current cross-reference for this record")
    return Response(body, media_type="application/json")


async def read_customer(
    ctx: ApiContext,
    request: Request,
    who: Principal,
    customer_id: str,
    unmask: bool = False,
    reason: str | None = None,
) -> Response:
    """The answer to a customer read, audited: a masked view comes from the read model's memo (masked
    once per customer and role), anything else is built per request; 404 for an unknown ID."""
    if unmask:
        if not ctx.policy.may_unmask(who.role):
            await audit_async(ctx, request, who, "denied", target=customer_id, detail="unmask", status=403)
            raise ApiError(403, "forbidden", f"role {who.role} may not unmask")
        if len((reason or "").strip()) < ctx.policy.limits.reason_min_chars:
            raise ApiError(422, "invalid_request", "reason: unmasking needs a reason")
    model = ctx.cache.current()
    if model is not None and not model.knows_customer(customer_id):
        model = None
    if model is not None and not unmask:
        answer = model.memoized(
            ("customer", who.role, customer_id),
            lambda: customer_answer(ctx.policy, who.role, customer_id, model.customer(customer_id)),
        )
    else:
        doc = (
            model.customer(customer_id)
            if model is not None
            else await run_in_threadpool(lambda: ctx.view().customer(customer_id))
        )
        answer = customer_answer(ctx.policy, who.role, customer_id, doc, unmask)
    if answer is None:
        raise ApiError(404, "not_found", "no such customer")
    await audit_async(
        ctx,
        request,
        who,
        "customer.unmask" if unmask else "customer.read",
        target=answer.customer_id,
        fields=list(answer.shown),
        view="plain" if unmask else "masked",
        reason=mask(reason.strip()) if unmask and reason else None,
        status=200,
    )
    return Response(answer.body, media_type="application/json")


@router.get("/xref/{source}/{source_key}", response_model=XrefOut, summary="Customer ID of a source record")
async def get_xref(
    ctx: AsyncCtx,
    who: Annotated[Principal, Depends(require("xref"))],
    source: Annotated[str, Path(pattern=SOURCE_PATTERN)],
    source_key: Annotated[str, Path(min_length=1, max_length=128)],
    as_of: Annotated[datetime | None, Query(description="Owner at this time (history).")] = None,
    run: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Owner after this run.")] = None,
) -> Response:
    """The record's current customer ID, or the one it had at ``as_of`` or after run ``run``."""
    if as_of is not None and run is not None:
        raise ApiError(422, "invalid_request", "give at most one of as_of and run")
    if as_of is None and run is None:
        return await read_xref_current(ctx, source, source_key)
    at = _aware(as_of) if as_of is not None else None
    owner = await run_in_threadpool(lambda: ctx.view().xref_as_of(source, source_key, run_id=run, at=at))
    if owner is None:
        raise ApiError(404, "not_found", "the record had no customer then")
    return _json(XrefOut(source=source, source_key=source_key, customer_id=owner, as_of=at, run=run))


@router.get("/customers/{customer_id}", response_model=CustomerOut, summary="Golden record with lineage")
async def get_customer(
    request: Request,
    ctx: AsyncCtx,
    who: Annotated[Principal, Depends(require("customer"))],
    customer_id: Annotated[str, Path(pattern=CUSTOMER_PATTERN)],
    unmask: Annotated[bool, Query(description="Plain C2 values (steward only; needs a reason).")] = False,
    reason: Annotated[str | None, Query(max_length=500, description="Why the values are unmasked.")] = None,
) -> Response:
    """The golden record as the caller's role may see it; a retired ID answers with its successor."""
    return await read_customer(ctx, request, who, customer_id, unmask, reason)


def _normalized(kind: str, value: str) -> str | None:
    """An identifier normalized as the batch standardizes it (the form the index was built from)."""
    from mdm.standardize.pipeline import standardize_one

    inputs: dict[str, dict[str, Any]] = {
        "mobile": {"mobile": [value]},
        "id_number": {"id_number": value},
        "name": {"name": value},
    }
    raw = inputs[kind]
    try:
        std = standardize_one(raw)
    except Exception as exc:
        log.warning("search value of %s not standardized: %s", kind, type(exc).__name__)
        return None
    found: Any = std.get(INDEX_KINDS[kind])
    if kind == "mobile":
        found = found[0] if found else None
    if kind == "name":
        found = found or value.strip()
    return str(found) if found else None


@router.get("/customers", response_model=SearchOut, summary="Exact identifier search (keyed HMAC index)")
def search_customers(
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("search"))],
    name: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    mobile: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    id_number: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchOut:
    """Live customers with a record matching every identifier given, looked up by keyed HMAC."""
    given = {k: v for k, v in {"name": name, "mobile": mobile, "id_number": id_number}.items() if v}
    if not given:
        raise ApiError(422, "invalid_request", "give at least one of name, mobile, id_number")
    key = ctx.view().api_secret("index")
    digests: dict[str, str] = {}
    for kind, value in given.items():
        norm = _normalized(kind, value)
        if norm is None:
            raise ApiError(422, "invalid_request", f"{kind}: not a recognizable value")
        digests[kind] = index_digest(key, kind, norm)
    found = ctx.view().customers_by_digests(digests, limit)
    masked = ", ".join(f"{k}={mask_field(ctx.policy, k, v)}" for k, v in given.items())
    audit(
        ctx, request, who, "customer.search", target=masked, fields=sorted(given), view="masked", status=200
    )
    return SearchOut(customer_ids=found, count=len(found))


@router.get("/events", response_model=EventsOut, summary="Change feed")
def get_events(
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("events"))],
    after: Annotated[int, Query(ge=0, le=2**62, description="Cursor: the last event_id seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsOut:
    """Events (created, merged_into, split_from, record_moved, ...) after the cursor, oldest first."""
    page = ctx.view().events_page(after, limit)
    events = page.to_dicts()
    return EventsOut(events=events, next_cursor=int(events[-1]["event_id"]) if events else after)  # type: ignore[arg-type]


@router.get("/stats", response_model=StatsOut, summary="Aggregates")
def get_stats(ctx: Ctx, who: Annotated[Principal, Depends(require("stats"))]) -> StatsOut:
    """Counts of customers and records (no personal values)."""
    return StatsOut(**ctx.view().api_stats())
