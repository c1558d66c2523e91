"""Erasure decisions (PIPL): erase now or restrict under an anti-money-laundering hold, and what to remove.

Pure functions and the retention policy (YAML validated by pydantic); the store applies them
(``mdm.store.erasure_repo``). A customer is held when any of its records from an AML-relevant source has a
relationship still open (record current) or ended less than ``retention_years`` ago; then the data is
restricted to storage (PIPL art. 47) and erased when the hold ends.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

from golden_record.assign import root_map
from mdm.errors import MdmError

DEFAULT_RETENTION = Path(__file__).parent / "config" / "retention.yaml"

Action = Literal["erased", "restricted"]
RE_ARRIVAL_FLAG = "erased:re_arrival"


class RetentionPolicy(BaseModel):
    """How long AML rules keep identity data, which sources they cover, what a re-arrival does."""

    model_config = ConfigDict(extra="forbid")

    retention_years: int = Field(default=5, ge=0, le=100)
    aml_sources: list[str] = Field(default_factory=list)
    re_arrival: Literal["quarantine", "flag"] = "quarantine"


def load_retention(path: Path | None = None) -> RetentionPolicy:
    """The retention policy from ``path`` (default: the shipped one); a bad file raises MdmError."""
    target = path or DEFAULT_RETENTION
    try:
        return RetentionPolicy.model_validate(yaml.safe_load(target.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise MdmError(f"{target}: invalid retention policy: {exc}") from exc


def add_years(day: date, years: int) -> date:
    """``day`` plus whole years; 29 February falls back to 28 February in common years."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class Decision:
    """Erase now or restrict until ``hold_until`` (None with an open relationship: until it ends)."""

    action: Action
    relationship_open: bool
    relationship_end: date | None
    hold_until: date | None
    aml_records: int


#: Columns ``decide`` reads: one row per source record of the person.
DECISION_INPUT: dict[str, pl.DataType] = {
    "rid": pl.Int64(),
    "source": pl.String(),
    "ended": pl.Boolean(),
    "ended_on": pl.Date(),
}


def decide(records: pl.DataFrame, policy: RetentionPolicy, today: date) -> Decision:
    """Hold or erase, from the person's records (``DECISION_INPUT``) and the policy."""
    aml = records.filter(pl.col("source").is_in(policy.aml_sources))
    if aml.height == 0:
        return Decision("erased", False, None, None, 0)
    is_open = bool((~aml["ended"].fill_null(False)).any())
    if is_open:
        return Decision("restricted", True, None, None, aml.height)
    end = aml["ended_on"].max()
    if not isinstance(end, date):
        raise MdmError("an ended record has no end date: cannot compute the retention hold")
    until = add_years(end, policy.retention_years)
    action: Action = "restricted" if until > today else "erased"
    return Decision(action, False, end, until, aml.height)


def customer_family(customers: pl.DataFrame, customer_id: str) -> list[str]:
    """``customer_id`` and every retired ID whose ``merged_into`` chain ends at it (they share history)."""
    roots = root_map(customers)
    merged = roots.filter(pl.col("root") == customer_id)["customer_id"].to_list()
    return sorted({customer_id, *merged})


def normalized_id(expr: pl.Expr) -> pl.Expr:
    """ID number as matched for re-arrival: NFKC, only letters and digits, upper case; null when empty."""
    text = expr.str.normalize("NFKC").str.replace_all(r"[^0-9A-Za-z]", "").str.to_uppercase()
    return pl.when(text.str.len_chars() > 0).then(text)


def national_mobile(value: str | None) -> str | None:
    """A mobile number without the +86 prefix (the form sources write it in)."""
    if not value:
        return None
    text = value.strip()
    return text[3:] if text.startswith("+86") else text


def keyed_hash(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of one value of a kind (``key``, ``id``, ``mobile``): recognizable, not reversible."""
    return hmac.new(key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()


def record_token(source: str, source_key: str) -> str:
    """The text hashed for a record's identity: its source and key."""
    return f"{source}\x1f{source_key}"


def hash_series(key: bytes, kind: str, values: pl.Series) -> pl.Series:
    """Keyed hashes of a column, computed once per unique value; nulls stay null."""
    uniq = values.drop_nulls().unique()
    table = pl.DataFrame(
        {
            "value": uniq,
            "hash": pl.Series([keyed_hash(key, kind, v) for v in uniq.to_list()], dtype=pl.String),
        },
        schema={"value": pl.String, "hash": pl.String},
    )
    out = pl.DataFrame({"value": values.cast(pl.String)}).join(
        table, on="value", how="left", maintain_order="left"
    )
    return out["hash"].alias(values.name)


def match_tombstones(incoming: pl.DataFrame, hashes: pl.DataFrame) -> pl.DataFrame:
    """Rows of an ingest that are re-arrivals of an erased or restricted person.

    ``incoming``: ``_row``, ``known`` (key live in the store), ``key_hash``, ``id_hash``; ``hashes``: kind
    (``key``|``id``), hash, tombstone_id, action, requested_at. A row whose key is live is never a
    re-arrival (a restricted record keeps arriving in its source's extracts). Returns ``_row``,
    tombstone_id, action, requested_at: the earliest tombstone each re-arrival matches.
    """
    fresh = incoming.filter(~pl.col("known"))
    by_key = fresh.join(
        hashes.filter(pl.col("kind") == "key"), left_on="key_hash", right_on="hash", how="inner"
    )
    by_id = fresh.join(hashes.filter(pl.col("kind") == "id"), left_on="id_hash", right_on="hash", how="inner")
    cols = ["_row", "tombstone_id", "action", "requested_at"]
    return (
        pl.concat([by_key.select(cols), by_id.select(cols)])
        .sort(["_row", "tombstone_id"])
        .unique("_row", keep="first", maintain_order=True)
    )


def re_arrival_reason(action: str, requested_on: date) -> str:
    """The reject reason of a re-arrival (no personal data: only the action and its date)."""
    return f"{action} on {requested_on.isoformat()}: re-arrival"


def residual_secrets(records: pl.DataFrame) -> list[str]:
    """The values that must not survive an erasure: names, ID numbers and mobiles of ``records``.

    ``records``: name, name_alt, id_number, id_number_std, mobile, mobiles (any may be missing). Mobiles are
    given in national form, which every stored form contains.
    """
    found: set[str] = set()
    for col in ("name", "name_alt", "id_number", "id_number_std"):
        if col in records.columns:
            found.update(v for v in records[col].drop_nulls().unique().to_list() if v.strip())
    for col in ("mobile", "mobiles"):
        if col in records.columns:
            phones = records[col].explode().drop_nulls().unique().to_list()
            found.update(m for m in (national_mobile(p) for p in phones) if m)
    return sorted(found)


def bytes_containing(blob_paths: list[Path], secrets: list[str]) -> dict[str, list[int]]:
    """For each file, which secrets (by index) its raw bytes contain, read in overlapping chunks."""
    needles = [s.encode() for s in secrets]
    overlap = max((len(n) for n in needles), default=1)
    hits: dict[str, list[int]] = {}
    for path in blob_paths:
        seen: set[int] = set()
        tail = b""
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                window = tail + chunk
                seen.update(i for i, n in enumerate(needles) if n in window)
                tail = window[-overlap:]
        if seen:
            hits[path.name] = sorted(seen)
    return hits


@dataclass
class ErasureResult:
    """What one erasure request did, for the command's message and the audit."""

    tombstone_id: int
    action: Action
    customer_id: str | None
    records: int
    relationship_open: bool = False
    relationship_end: date | None = None
    hold_until: date | None = None
    removed: dict[str, int] = field(default_factory=dict)
    file_rewritten: bool = False
    verified: bool = False
    secrets: list[str] = field(default_factory=list, repr=False)  # in memory only, for the file check

    def message(self) -> str:
        """One sentence saying which happened (no personal data)."""
        who = f"customer {self.customer_id}" if self.customer_id else "the record"
        if self.action == "erased":
            rows = sum(self.removed.values())
            check = "verified absent from the database file" if self.verified else "not verified"
            return (
                f"erased {who}: {self.records} source records, {rows} rows removed, "
                f"tombstone {self.tombstone_id}; {check}"
            )
        if self.relationship_open:
            until = "the relationship is still open; held until it ends plus the retention period"
        else:
            until = f"relationship ended {self.relationship_end}; held until {self.hold_until}"
        return (
            f"restricted {who} (anti-money-laundering hold, PIPL art. 47: storage only): "
            f"{self.records} source records excluded from processing; {until}; tombstone {self.tombstone_id}"
        )
