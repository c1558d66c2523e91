"""Request and response models of the HTTP API (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Text = Field(default=None, max_length=500)
Values = Field(default=None, max_length=20)

SOURCE_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
CUSTOMER_PATTERN = r"^C\d{10}[0-9X]$"


class RawFields(BaseModel):
    """Any subset of the canonical raw fields of a person record (raw values allowed)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Text
    name_alt: str | None = Text
    sex: str | None = Text
    birth_date: str | None = Text
    id_type: str | None = Text
    id_number: str | None = Text
    address: str | None = Text
    province: str | None = Text
    city: str | None = Text
    district: str | None = Text
    company: str | None = Text
    job_title: str | None = Text
    advisor: str | None = Text
    note: str | None = Text
    source_updated_at: str | None = Text
    mobile: list[str] | None = Values
    phone: list[str] | None = Values
    email: list[str] | None = Values
    bank_card: list[str] | None = Values


class ErrorDetail(BaseModel):
    """What went wrong (never a stack trace or a submitted value)."""

    code: str
    message: str
    request_id: str


class ErrorOut(BaseModel):
    """The one error shape of every 4xx/5xx answer."""

    error: ErrorDetail


#: Error answers every operation may give, documented once for the whole API.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
}


class XrefOut(BaseModel):
    """Which customer a source record belongs to (now, or at ``as_of`` / after run ``run``)."""

    source: str
    source_key: str
    customer_id: str
    as_of: datetime | None = None
    run: int | None = None
    valid_from_run: int | None = None


class RecordRef(BaseModel):
    """A source record of a customer."""

    rid: int
    source: str
    source_key: str
    valid_from_run: int | None = None


class CustomerOut(BaseModel):
    """A golden record with lineage, as the caller's role may see it.

    A retired (merged) ID answers 200 with its successor's record: ``requested_id`` is the ID asked for,
    ``customer_id`` the live one, and ``merged_into`` repeats the successor when they differ.
    """

    requested_id: str
    customer_id: str
    merged_into: str | None = None
    status: str
    version: int | None = None
    run_id: int | None = None
    view: Literal["masked", "plain"]
    attributes: dict[str, Any]
    lineage: dict[str, Any]
    records: list[RecordRef]


class SearchOut(BaseModel):
    """Live customers holding a record that matches every identifier given."""

    customer_ids: list[str]
    count: int


class EventOut(BaseModel):
    """One change-feed event."""

    event_id: int
    run_id: int | None = None
    kind: str
    customer_id: str | None = None
    related_id: str | None = None
    source: str | None = None
    source_key: str | None = None
    reason: str
    event_at: datetime


class EventsOut(BaseModel):
    """A page of the change feed; pass ``next_cursor`` as ``after`` to continue."""

    events: list[EventOut]
    next_cursor: int


class StatsOut(BaseModel):
    """Aggregates (no personal values)."""

    customers_by_status: dict[str, int]
    records_by_source: dict[str, int]
    last_run: int | None = None


class MatchIn(BaseModel):
    """A candidate record to score against the customers."""

    model_config = ConfigDict(extra="forbid")

    fields: RawFields
    limit: int = Field(default=5, ge=1, le=50)


class Candidate(BaseModel):
    """A ranked candidate customer with its match probability and per-comparison explanation."""

    customer_id: str
    match_probability: float
    match_weight: float | None = None
    explanation: list[dict[str, Any]] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)


class MatchOut(BaseModel):
    """Candidates, best first."""

    candidates: list[Candidate]


class RecordIn(BaseModel):
    """One source record to upsert in real time."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=SOURCE_PATTERN)
    source_key: str = Field(min_length=1, max_length=128)
    fields: RawFields


class RecordOut(BaseModel):
    """Where the record went."""

    customer_id: str
    created: bool = False
    changed: bool = True


class AuditEntryOut(BaseModel):
    """One audit entry (masked values only)."""

    seq: int
    logged_at: datetime
    request_id: str | None = None
    key_id: str | None = None
    actor: str | None = None
    role: str | None = None
    action: str
    target: str | None = None
    fields: str | None = None
    view: str | None = None
    reason: str | None = None
    status: int | None = None
    detail: str | None = None
    prev_hash: str
    hash: str


class AuditPageOut(BaseModel):
    """A page of the audit log."""

    entries: list[AuditEntryOut]
    next_cursor: int


class AuditVerifyOut(BaseModel):
    """Result of verifying the hash chain."""

    entries: int
    verified_to: int
    first_broken: int | None = None


class KeyIn(BaseModel):
    """A key to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["system", "steward", "analyst", "auditor", "admin"]


class KeyOut(BaseModel):
    """A created key: ``token`` is shown this once and never again."""

    key_id: str
    name: str
    role: str
    token: str


class KeyInfo(BaseModel):
    """A key as listed (no secret, no digest)."""

    key_id: str
    name: str
    role: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class RunOut(BaseModel):
    """State of the batch run the server executes (idle | running | succeeded | failed)."""

    state: str
    run_id: int | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class StatusOut(BaseModel):
    """Health answer."""

    status: str
