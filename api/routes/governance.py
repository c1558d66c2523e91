"""Audit log (auditor), API keys and batch runs (admin): the server is the database's single writer.

A batch run started here runs in a background thread of the server on its own cursor: reads keep
answering from the last committed snapshot, real-time upserts wait for the write lock (503 after a
few seconds), and the identifier index is refreshed when the run has committed.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import Principal, create_key
from api.deps import ApiContext, audit, context, require
from api.errors import ApiError
from api.models import AuditPageOut, AuditVerifyOut, KeyIn, KeyInfo, KeyOut, RunOut
from api.policy import ROLES
from mdm.privacy import mask

router = APIRouter(prefix="/v1")
Ctx = Annotated[ApiContext, Depends(context)]
_start_lock = threading.Lock()


@router.get("/audit", response_model=AuditPageOut, summary="Audit log page")
def audit_page(
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("audit"))],
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPageOut:
    """Audit entries after the cursor, oldest first (they hold masked values only)."""
    audit(ctx, request, who, "audit.read", detail=f"after {after}", status=200)
    rows = ctx.view().audit_entries(after, limit).to_dicts()
    return AuditPageOut(entries=rows, next_cursor=int(rows[-1]["seq"]) if rows else after)  # type: ignore[arg-type]


@router.get("/audit/verify", response_model=AuditVerifyOut, summary="Verify the audit hash chain")
def audit_verify(
    request: Request, ctx: Ctx, who: Annotated[Principal, Depends(require("audit_verify"))]
) -> AuditVerifyOut:
    """Recompute the keyed hash chain; ``first_broken`` names the first entry that does not verify."""
    audit(ctx, request, who, "audit.verify", status=200)
    return AuditVerifyOut(**ctx.view().verify_audit())


@router.post("/admin/keys", response_model=KeyOut, status_code=201, summary="Create an API key")
def add_key(
    request: Request, body: KeyIn, ctx: Ctx, who: Annotated[Principal, Depends(require("keys"))]
) -> KeyOut:
    """A new key; its token is in this answer only."""
    audit(ctx, request, who, "apikey.create", target=body.name, detail=f"role {body.role}", status=201)
    new = create_key(ctx.view(), body.name, body.role, f"api:{who.name}", ROLES)
    return KeyOut(key_id=new.key_id, name=body.name.strip(), role=body.role, token=new.token)


@router.get("/admin/keys", response_model=list[KeyInfo], summary="List API keys")
def list_keys(ctx: Ctx, who: Annotated[Principal, Depends(require("keys"))]) -> list[KeyInfo]:
    """Every key without its secret."""
    return [KeyInfo(**row) for row in ctx.view().api_keys().to_dicts()]


@router.delete("/admin/keys/{key_id}", status_code=204, summary="Revoke an API key")
def revoke_key(
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("keys"))],
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")],
) -> None:
    """Revoke a key at once."""
    audit(ctx, request, who, "apikey.revoke", target=key_id, status=204)
    if not ctx.view().revoke_api_key(key_id):
        raise ApiError(404, "not_found", "no active key with this id")
    ctx.auth.forget(key_id)


def _run_batch(ctx: ApiContext) -> None:
    """The batch run, under the write lock, on its own cursor; its outcome goes to ``ctx.run_status``."""
    from mdm.pipeline import run_batch

    with ctx.write_lock:
        view = ctx.store.thread_view()
        try:
            summary = run_batch(view)
            ctx.run_status.update(state="succeeded", run_id=summary.run_id, message=None)
        except Exception as exc:
            ctx.run_status.update(state="failed", message=mask(f"{type(exc).__name__}: {exc}")[:500])
        finally:
            ctx.run_status["finished_at"] = datetime.now(UTC)
            view.con.close()


@router.post("/admin/runs", response_model=RunOut, status_code=202, summary="Start a batch run")
def start_run(request: Request, ctx: Ctx, who: Annotated[Principal, Depends(require("runs"))]) -> RunOut:
    """Start ``mdm run`` inside the server (the single writer); 409 while one is running."""
    with _start_lock:
        if ctx.run_status.get("state") == "running":
            raise ApiError(409, "conflict", "a batch run is already running")
        audit(ctx, request, who, "run.start", status=202)
        ctx.run_status.clear()
        ctx.run_status.update(state="running", started_at=datetime.now(UTC))
    threading.Thread(target=_run_batch, args=(ctx,), name="mdm-batch", daemon=True).start()
    return RunOut(**ctx.run_status)


@router.get("/admin/runs", response_model=RunOut, summary="State of the batch run")
def run_state(ctx: Ctx, who: Annotated[Principal, Depends(require("runs"))]) -> RunOut:
    """idle | running | succeeded | failed, with the run id once known."""
    return RunOut(**ctx.run_status)
