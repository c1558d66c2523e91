"""Health, readiness, Prometheus metrics and the OpenAPI page (Swagger UI served from local files)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.auth import Principal
from api.deps import ApiContext, context, require
from api.errors import ApiError
from api.models import StatusOut

log = logging.getLogger("mdm.api")
router = APIRouter()
Ctx = Annotated[ApiContext, Depends(context)]
STATIC = "/static/swagger-ui"


@router.get("/livez", response_model=StatusOut, summary="Liveness")
def livez(who: Annotated[Principal, Depends(require("health"))]) -> StatusOut:
    """The process answers."""
    return StatusOut(status="ok")


@router.get("/readyz", response_model=StatusOut, summary="Readiness (checks the database)")
def readyz(ctx: Ctx, who: Annotated[Principal, Depends(require("health"))]) -> StatusOut:
    """The database answers a query."""
    try:
        ctx.view().ping()
    except Exception as exc:
        log.error("readiness check failed: %s", type(exc).__name__)
        raise ApiError(503, "not_ready", "the database does not answer") from None
    return StatusOut(status="ready")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(ctx: Ctx, who: Annotated[Principal, Depends(require("metrics"))]) -> Response:
    """Request counts and latencies per route, audit and rate-limit counters (Prometheus text)."""
    return Response(ctx.metrics.render(), media_type=ctx.metrics.content_type)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI from the swagger-ui-bundle files this server serves itself (no CDN)."""
    return get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url),
        title="mdm API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
    )
