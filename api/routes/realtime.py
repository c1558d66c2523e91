"""Real-time match and upsert: thin routes over ``mdm.matching.realtime``.

The scoring lives in ``mdm.matching.realtime.match_one(store, fields)`` and
``upsert_one(store, source, source_key, fields)``, so batch and real time use the same rule set and
trained model. These routes only authenticate, validate, audit, serialize writes and mask the answer.
No trained model yet (no batch run) answers 503 ``model_unavailable``; a record the domain refuses
(unknown source, no legal basis, an erased person) answers 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.auth import Principal
from api.deps import ApiContext, audit, audited_read, context, require
from api.errors import ApiError
from api.models import Candidate, MatchIn, MatchOut, RecordIn, RecordOut
from api.policy import golden_view
from mdm.errors import MdmError
from mdm.matching.realtime import match_one, upsert_one
from mdm.matching.train import MatchingError

router = APIRouter(prefix="/v1")
Ctx = Annotated[ApiContext, Depends(context)]
WRITE_WAIT_SECONDS = 5.0


@contextmanager
def domain_errors() -> Iterator[None]:
    """Domain refusals as API errors (their messages carry no personal values)."""
    try:
        yield
    except MatchingError as exc:
        raise ApiError(503, "model_unavailable", str(exc), {"Retry-After": "60"}) from exc
    except MdmError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc


@router.post("/match", response_model=MatchOut, summary="Rank candidate customers for a record")
def match(
    request: Request, body: MatchIn, ctx: Ctx, who: Annotated[Principal, Depends(require("match"))]
) -> MatchOut:
    """Candidates with match probability and per-comparison explanation, best first (C2 masked by role)."""
    fields = body.fields.model_dump(exclude_none=True)
    entry = audited_read(ctx, request, who, "match", fields=sorted(fields), view="masked", status=None)
    with entry, domain_errors():
        found: list[dict[str, Any]] = match_one(ctx.view(), fields, body.limit)
    candidates = [
        Candidate(**{**c, "attributes": golden_view(ctx.policy, who.role, c.get("attributes") or {})[0]})
        for c in found
    ]
    return MatchOut(candidates=candidates)


@router.post("/records", response_model=RecordOut, summary="Upsert one source record in real time")
def upsert(
    request: Request, body: RecordIn, ctx: Ctx, who: Annotated[Principal, Depends(require("upsert"))]
) -> RecordOut:
    """Standardize, match and attach the record to a customer (or create one); idempotent per content."""
    fields = body.fields.model_dump(exclude_none=True)
    target = f"{body.source}:{body.source_key}"
    audit(ctx, request, who, "record.upsert", target=target, fields=sorted(fields), status=None)
    if not ctx.write_lock.acquire(timeout=WRITE_WAIT_SECONDS):
        raise ApiError(503, "busy", "a batch run holds the write path; retry later", {"Retry-After": "30"})
    try:
        view = ctx.view()
        mark = ctx.cache.begin_write(view)
        with domain_errors():
            result: dict[str, Any] = dict(upsert_one(view, body.source, body.source_key, fields))
        ctx.cache.absorb_write(mark, view)
    finally:
        ctx.write_lock.release()
    out = RecordOut(**{k: v for k, v in result.items() if k in RecordOut.model_fields})
    audit(ctx, request, who, "record.upserted", target=target, detail=out.customer_id, status=200)
    return out
