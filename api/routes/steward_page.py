"""The steward page at ``/steward/``: login, queue, task and customer views (server-rendered Jinja2).

Actions (decide, skip, merge, split, approve) go from a few lines of plain JavaScript to the JSON routes
of ``api.routes.steward`` with the session cookie and the CSRF token; login, logout and unmask are plain
form posts checked here. Values are masked by default; unmasking a customer needs a reason and is
audited. Assets are served from ``api/static/steward`` (no CDN: the page works offline).
"""

from __future__ import annotations

import re
import time
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import polars as pl
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.auth import Principal
from api.deps import ApiContext, audit, context
from api.errors import ApiError
from api.models import CUSTOMER_PATTERN, SOURCE_PATTERN
from api.policy import golden_view, mask_field
from api.routes.steward import check_reason, domain_errors, task_view, written
from api.steward_session import COOKIE, SESSION_SECONDS, csrf_ok, csrf_token, current_session, issue, read
from api.steward_session import session_secret as secret_of
from mdm import steward
from mdm.privacy import mask

HERE = FsPath(__file__).resolve().parents[1]
STATIC_DIR = HERE / "static" / "steward"
STATIC_URL = "/steward/static"
PAGE_ENDPOINT = "steward_page"
router = APIRouter(prefix="/steward", include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
Ctx = Annotated[ApiContext, Depends(context)]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_SKIPS = 50


async def form_fields(request: Request) -> dict[str, str]:
    """The urlencoded form of a page post (last value of each field)."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


Form = Annotated[dict[str, str], Depends(form_fields)]


def page_user(request: Request) -> Principal | None:
    """The steward behind the session cookie, None when not logged in."""
    found = current_session(request)
    if found is None or not context(request).policy.allows(found.role, PAGE_ENDPOINT):
        return None
    return Principal(key_id=found.key_id, name=found.name, role=found.role)


User = Annotated[Principal | None, Depends(page_user)]


def render(request: Request, name: str, values: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A page with the session's CSRF token and the security headers."""
    ctx = context(request)
    secret = secret_of(ctx)
    found = read(secret, request.cookies.get(COOKIE), time.time())
    csrf = csrf_token(secret, found) if found else ""
    page = templates.TemplateResponse(
        request, name, {**values, "csrf": csrf, "static": STATIC_URL}, status_code=status
    )
    page.headers.update(SECURITY_HEADERS)
    return page


def to_login() -> RedirectResponse:
    """Back to the login page."""
    return RedirectResponse("/steward/", status_code=303, headers=SECURITY_HEADERS)


def check_origin(request: Request) -> None:
    """Refuse a page post whose Origin header names another site (login CSRF, defence in depth)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise ApiError(403, "csrf_failed", "cross-site form post refused")


def check_form_csrf(request: Request, who: Principal, form: dict[str, str]) -> None:
    """Refuse (403, audited) a session form post without the session's CSRF token."""
    ctx = context(request)
    secret = secret_of(ctx)
    found = read(secret, request.cookies.get(COOKIE), time.time())
    if found is None or not csrf_ok(secret, found, form.get("csrf")):
        audit(ctx, request, who, "denied", target=request.url.path, detail="csrf", status=403)
        raise ApiError(403, "csrf_failed", "missing or wrong CSRF token")


@router.get("/", response_class=HTMLResponse)
def queue(
    request: Request,
    ctx: Ctx,
    who: User,
    status: Annotated[Literal["open", "claimed", "decided", "expired", "all"], Query()] = "open",
    source: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    order: Annotated[Literal["impact", "oldest"], Query()] = "impact",
) -> Response:
    """The login form, or (logged in) the queue with its filters."""
    if who is None:
        return render(request, "steward/login.html", {"error": None})
    chosen_source = source if source and re.fullmatch(SOURCE_PATTERN, source) else None
    with domain_errors():
        tasks = steward.list_tasks(
            ctx.view(),
            status=None if status == "all" else status,
            source=chosen_source,
            assignee=assignee or None,
            order=order,
            limit=200,
        )
    audit(ctx, request, who, "review.list", detail=f"page; status {status}; {tasks.height} tasks", status=200)
    filters = {"status": status, "source": chosen_source or "", "assignee": assignee or "", "order": order}
    top = max([1.0, *tasks["impact"].to_list()])
    return render(
        request,
        "steward/queue.html",
        {
            "who": who,
            "tasks": tasks.to_dicts(),
            "filters": filters,
            "sources": sorted(ctx.view().api_stats()["records_by_source"]),
            "top_impact": top,
            "query": urlencode({k: v for k, v in filters.items() if v}),
        },
    )


@router.post("/login")
def login(request: Request, ctx: Ctx, form: Form) -> Response:
    """Check a pasted API key (role steward only) and start a session in an HttpOnly, Strict cookie."""
    check_origin(request)
    who = ctx.auth.verify(f"Bearer {form.get('api_key', '').strip()}")
    if who is None or not ctx.policy.allows(who.role, PAGE_ENDPOINT):
        audit(ctx, request, who, "denied", target="steward.login", status=401 if who is None else 403)
        error = "That key is not valid." if who is None else "Only stewards may use this page."
        return render(request, "steward/login.html", {"error": error}, 401 if who is None else 403)
    audit(ctx, request, who, "steward.login", status=303)
    answer = RedirectResponse("/steward/", status_code=303, headers=SECURITY_HEADERS)
    answer.set_cookie(
        COOKIE,
        issue(secret_of(ctx), who, time.time()),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/logout")
def logout(request: Request, ctx: Ctx, who: User, form: Form) -> Response:
    """End the session (the cookie is dropped)."""
    if who is not None:
        check_form_csrf(request, who, form)
        audit(ctx, request, who, "steward.logout", status=303)
    answer = to_login()
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer


def skip_list(skip: str | None) -> list[int]:
    """Task IDs skipped in this sitting (a comma list in the URL), newest last, at most ``MAX_SKIPS``."""
    parts = [p for p in (skip or "").split(",") if p.isdigit()]
    return [int(p) for p in parts][-MAX_SKIPS:]


def bars(prior: float, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Waterfall rows (prior first, then each comparison) with CSS offsets: each bar starts where the
    running total stood and spans its weight, on a scale from the lowest to the highest total."""
    weights = [prior, *[float(s["weight"]) for s in steps]]
    labels = [("prior", "prior odds"), *[(s["comparison"], s["label"]) for s in steps]]
    ends = pl.Series(weights).cum_sum().to_list()
    starts = [0.0, *ends[:-1]]
    low, high = min(0.0, *ends), max(0.0, *ends)
    span = (high - low) or 1.0
    return [
        {
            "comparison": name,
            "label": label,
            "weight": w,
            "left": (min(s, e) - low) / span * 100,
            "width": max(abs(w) / span * 100, 0.5),
            "sign": "pos" if w >= 0 else "neg",
        }
        for (name, label), w, s, e in zip(labels, weights, starts, ends, strict=True)
    ]


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(
    request: Request,
    ctx: Ctx,
    who: User,
    task_id: Annotated[int, Path(ge=1, le=2**62)],
    skip: Annotated[str | None, Query(max_length=1000)] = None,
    order: Annotated[Literal["impact", "oldest"], Query()] = "impact",
) -> Response:
    """One task, claimed on open (read-only with a notice when another steward holds it)."""
    if who is None:
        return to_login()
    notice = None
    try:
        written(ctx, lambda: steward.claim_task(ctx.view(), task_id, who.name))
        claimed = True
        audit(ctx, request, who, "review.claim", target=f"task:{task_id}", status=200)
    except ApiError as exc:
        if exc.status == 404:
            return render(request, "steward/error.html", {"who": who, "message": exc.message}, 404)
        claimed, notice = False, exc.message
    detail, shown = task_view(ctx, who, task_id)
    audit(ctx, request, who, "review.read", target=f"task:{task_id}", fields=shown, view="masked", status=200)
    skipped = skip_list(skip)
    return render(
        request,
        "steward/task.html",
        {
            "who": who,
            "d": detail,
            "t": detail["task"],
            "bars": bars(detail["prior_weight"], detail["waterfall"]),
            "claimed": claimed,
            "notice": notice,
            "next_url": "/steward/next?" + urlencode({"skip": ",".join(map(str, skipped)), "order": order}),
            "skip_url": "/steward/next?"
            + urlencode({"skip": ",".join(map(str, [*skipped, task_id])), "order": order}),
        },
    )


@router.get("/next")
def next_task(
    ctx: Ctx,
    who: User,
    skip: Annotated[str | None, Query(max_length=1000)] = None,
    order: Annotated[Literal["impact", "oldest"], Query()] = "impact",
) -> Response:
    """The next open task not skipped in this sitting (the queue when there is none)."""
    if who is None:
        return to_login()
    skipped = skip_list(skip)
    with domain_errors():
        tasks = steward.list_tasks(ctx.view(), status="open", order=order, limit=len(skipped) + 1)
    left = tasks.filter(~pl.col("task_id").is_in(skipped))["task_id"].to_list()
    if not left:
        return RedirectResponse("/steward/?status=open", status_code=303, headers=SECURITY_HEADERS)
    query = urlencode({"skip": ",".join(map(str, skipped)), "order": order})
    return RedirectResponse(f"/steward/tasks/{left[0]}?{query}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/customers")
def open_customer(who: User, customer_id: Annotated[str, Query(max_length=20)] = "") -> Response:
    """The customer view of an ID typed in the header box."""
    wanted = customer_id.strip().upper()
    ok = who is not None and re.fullmatch(CUSTOMER_PATTERN, wanted) is not None
    target = f"/steward/customers/{wanted}" if ok else "/steward/"
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def customer_events(ctx: ApiContext, customer_id: str) -> list[dict[str, Any]]:
    """The ID events naming a customer (as subject or as related ID), newest first."""
    return (
        ctx.view()
        .query(
            """SELECT event_id, run_id, kind, customer_id, related_id, source, source_key, reason, actor, detail,
            event_at FROM id_events WHERE customer_id = ? OR related_id = ? ORDER BY event_id DESC LIMIT 200""",
            [customer_id, customer_id],
        )
        .to_dicts()
    )


def customer_values(
    request: Request, ctx: ApiContext, who: Principal, customer_id: str, reason: str | None
) -> Response:
    """The customer view, masked, or plain for ``reason`` (audited as a read or an unmask)."""
    doc = ctx.view().customer(customer_id)
    if doc is None:
        return render(request, "steward/error.html", {"who": who, "message": "no such customer"}, 404)
    unmask = reason is not None
    attributes, shown = golden_view(ctx.policy, who.role, doc["attributes"], unmask)
    visible = {f"{name}_lineage" for name in attributes}
    lineage = {k.removesuffix("_lineage"): v for k, v in (doc["lineage"] or {}).items() if k in visible}
    resolved = str(doc["customer_id"])
    audit(
        ctx,
        request,
        who,
        "customer.unmask" if unmask else "customer.read",
        target=resolved,
        fields=shown,
        view="plain" if unmask else "masked",
        reason=mask(reason) if reason else None,
        status=200,
    )
    rids = [int(r["rid"]) for r in doc["records"]]
    names = ctx.view().golden_inputs(["name", "ingested_at"], rids)
    members = pl.DataFrame(doc["records"]).join(names, on="rid", how="left").to_dicts() if rids else []
    for row in members:
        row["name"] = row["name"] if unmask else mask_field(ctx.policy, "name", row["name"])
    requests = (
        ctx.view()
        .merge_requests("pending")
        .filter((pl.col("customer_a") == resolved) | (pl.col("customer_b") == resolved))
        .to_dicts()
    )
    return render(
        request,
        "steward/customer.html",
        {
            "who": who,
            "doc": doc,
            "customer_id": resolved,
            "attributes": attributes,
            "lineage": lineage,
            "members": members,
            "events": customer_events(ctx, resolved),
            "requests": requests,
            "unmasked": unmask,
        },
    )


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer_page(
    request: Request, ctx: Ctx, who: User, customer_id: Annotated[str, Path(pattern=CUSTOMER_PATTERN)]
) -> Response:
    """Golden record (masked), lineage, member records, event history, merge / split / approve forms."""
    if who is None:
        return to_login()
    return customer_values(request, ctx, who, customer_id, None)


@router.post("/customers/{customer_id}/unmask", response_class=HTMLResponse)
def unmask_page(
    request: Request,
    ctx: Ctx,
    who: User,
    form: Form,
    customer_id: Annotated[str, Path(pattern=CUSTOMER_PATTERN)],
) -> Response:
    """The customer view with plain values, for a stated reason (CSRF-checked, audited)."""
    if who is None:
        return to_login()
    check_origin(request)
    check_form_csrf(request, who, form)
    if not ctx.policy.may_unmask(who.role):
        raise ApiError(403, "forbidden", f"role {who.role} may not unmask")
    return customer_values(request, ctx, who, customer_id, check_reason(ctx, form.get("reason")))
