"""Partner profiles (third-party sharing, PIPL art. 23): which golden fields go out, masked or tokenized,
for which customers; and the export that applies a profile and is audited.

A token is a keyed HMAC with a key derived per partner from the store's partner secret: stable for one
partner across exports, unlinkable between partners (each has its own key), irreversible without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mdm.config import LegalBasis
from mdm.errors import MdmError
from mdm.privacy import mask_address, mask_card, mask_date, mask_email, mask_id, mask_name, mask_phone
from mdm.store.compliance_repo import compliance_repo

Action = Literal["plain", "masked", "token"]
DEFAULT_PARTNER_DIR = Path(__file__).resolve().parents[1] / "config" / "partners"
#: Columns of a change event a partner may receive (no source keys, record ids or steward notes).
FEED_COLUMNS: tuple[str, ...] = ("event_id", "kind", "event_at", "customer_id", "related_id")


#: Golden field -> masker of one value (multi-valued fields value by value).
MASKERS: dict[str, Callable[[str | None], str]] = {
    "name": mask_name,
    "name_alt": mask_name,
    "name_pinyin": mask_name,
    "id_number": mask_id,
    "bank_cards": mask_card,
    "mobiles": mask_phone,
    "phones": mask_phone,
    "emails": mask_email,
    "addresses": mask_address,
    "birth_date": mask_date,
}


class CustomerFilter(BaseModel):
    """Which customers a partner may receive."""

    model_config = ConfigDict(extra="forbid")

    require_bases: list[LegalBasis] | None = Field(
        default=None, description="every record of the customer was collected on one of these bases"
    )
    exclude_cross_border: bool = Field(
        default=False, description="leave out customers of cross-border sources"
    )


class PartnerProfile(BaseModel):
    """One partner's export and feed profile: fields out (plain, masked or token) and customer filter."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    partner: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,62}$", description="partner ID: the token key's namespace"
    )
    description: str = ""
    purpose: str
    agreement_ref: str | None = Field(default=None, description="data-sharing agreement (document ID)")
    fields: dict[str, Action] = Field(min_length=1, description="golden field -> action; others are dropped")
    customers: CustomerFilter = Field(default_factory=CustomerFilter)

    @model_validator(mode="after")
    def _maskable(self) -> PartnerProfile:
        cannot = sorted(f for f, a in self.fields.items() if a == "masked" and f not in MASKERS)
        if cannot:
            raise ValueError(f"no masker for {cannot}: drop or tokenize them")
        return self


def load_profile(name_or_path: str | Path, folder: Path | None = None) -> PartnerProfile:
    """A profile by file path or by name (``<folder>/<name>.yaml``, default the shipped partners)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = (folder or DEFAULT_PARTNER_DIR) / f"{name_or_path}.yaml"
    try:
        return PartnerProfile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise MdmError(f"{path}: invalid partner profile: {exc}") from exc


def load_profiles(folder: Path | None = None) -> dict[str, PartnerProfile]:
    """Every profile of a folder by name."""
    return {p.stem: load_profile(p) for p in sorted((folder or DEFAULT_PARTNER_DIR).glob("*.yaml"))}


def partner_key(master: bytes, partner: str) -> bytes:
    """The token key of one partner, derived from the master key (HKDF-like single HMAC step)."""
    return hmac.new(master, f"mdm-partner-token\x1f{partner}".encode(), hashlib.sha256).digest()


def token(key: bytes, field: str, value: str) -> str:
    """Keyed token of one value: base32 of HMAC-SHA256, lower case, without digits 0, 1, 8, 9."""
    digest = hmac.new(key, f"{field}\x1f{value}".encode(), hashlib.sha256).digest()
    return "t" + base64.b32encode(digest).decode("ascii").lower().rstrip("=")[:26]


def _mapped(values: pl.Series, fn: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """``fn`` applied once per distinct non-null value: (old, new) lists for replace_strict."""
    old = values.drop_nulls().unique().to_list()
    return old, [fn(v) for v in old]


def apply_actions(frame: pl.DataFrame, profile: PartnerProfile, key: bytes) -> pl.DataFrame:
    """Keep the profile's fields in its order, masking or tokenizing each (lists value by value)."""
    missing = sorted(set(profile.fields) - set(frame.columns))
    if missing:
        raise MdmError(f"profile {profile.name}: unknown golden fields {missing}")
    exprs: list[pl.Expr] = []
    for field, action in profile.fields.items():
        is_list = isinstance(frame.schema[field], pl.List)
        col = pl.col(field)
        if action == "plain":
            exprs.append(col)
            continue
        fn: Callable[[str], str] = (
            MASKERS[field] if action == "masked" else (lambda v, f=field: token(key, f, v))  # type: ignore[misc]
        )
        values = frame[field].explode() if is_list else frame[field]
        old, new = _mapped(values.cast(pl.String), fn)
        swap = pl.element() if is_list else col.cast(pl.String)
        replaced = swap.cast(pl.String).replace_strict(old, new, default=None, return_dtype=pl.String)
        exprs.append(col.list.eval(replaced).alias(field) if is_list else replaced.alias(field))
    return frame.select(exprs)


def eligible_customers(store: Any, profile: PartnerProfile) -> pl.DataFrame:
    """customer_id of every customer the profile's filter admits (from the basis stored with each batch)."""
    bases = profile.customers.require_bases
    basis_ok = (
        "bool_and(list_contains(?::VARCHAR[], coalesce(json_extract_string(b.legal_basis, '$.basis'), '')))"
        if bases
        else "true"
    )
    frame: pl.DataFrame = store.query(
        f"""SELECT x.customer_id, {basis_ok} AS basis_ok,
            bool_or(coalesce(TRY_CAST(json_extract_string(b.legal_basis, '$.cross_border') AS BOOLEAN), false))
                AS cross_border
        FROM xref x JOIN records r ON r.rid = x.rid JOIN batches b ON b.batch_id = r.batch_id
        GROUP BY x.customer_id""",
        [list(bases)] if bases else None,
    )
    keep = pl.col("basis_ok")
    if profile.customers.exclude_cross_border:
        keep = keep & ~pl.col("cross_border")
    return frame.filter(keep).select("customer_id")


def golden_frame(store: Any) -> pl.DataFrame:
    """customer_id and every golden attribute (multi-valued ones as lists of values) of live customers."""
    from golden_record.survivorship import load_rules

    rules = load_rules()
    scalars = [*rules.scalar, *(c for r in rules.scalar.values() for c in r.companions)]
    cols = [f"json_extract_string(g.attributes, '$.{n}') AS \"{n}\"" for n in scalars]
    cols += [
        f"CAST(json_extract_string(g.attributes, '$.{n}[*].value') AS VARCHAR[]) AS \"{n}\""
        for n in rules.multi
    ]
    frame: pl.DataFrame = store.query(
        f"""SELECT g.customer_id, {", ".join(cols)}
        FROM golden_latest g JOIN customers c ON c.customer_id = g.customer_id AND c.status = 'live'
        ORDER BY g.customer_id"""
    )
    return frame


def share_frame(store: Any, profile: PartnerProfile) -> pl.DataFrame:
    """The golden records the profile lets out, as the partner receives them."""
    key = partner_key(compliance_repo(store).partner_master_key(), profile.partner)
    golden = golden_frame(store).join(eligible_customers(store, profile), on="customer_id", how="semi")
    return apply_actions(golden, profile, key)


def share_events(store: Any, events: pl.DataFrame, profile: PartnerProfile) -> pl.DataFrame:
    """Change events as the partner receives them: feed columns only, customers filtered and tokenized."""
    allowed = eligible_customers(store, profile)["customer_id"].implode()
    kept = events.filter(pl.col("customer_id").is_in(allowed)).select(FEED_COLUMNS)
    action = profile.fields.get("customer_id")
    if action is None:
        return kept.drop("customer_id", "related_id")
    if action == "plain":
        return kept
    key = partner_key(compliance_repo(store).partner_master_key(), profile.partner)
    ids = pl.concat([kept["customer_id"], kept["related_id"]])
    old, new = _mapped(ids, lambda v: token(key, "customer_id", v))
    swap = {
        c: pl.col(c).replace_strict(old, new, default=None, return_dtype=pl.String)
        for c in ("customer_id", "related_id")
    }
    return kept.with_columns(**swap)


@dataclass(frozen=True)
class ExportResult:
    """What one partner export wrote, and its audit entry."""

    export_id: int
    profile: str
    partner: str
    rows: int
    file: Path
    sha256: str


def write_frame(frame: pl.DataFrame, out: Path) -> None:
    """CSV (lists joined with ``;``) or JSON Lines, by the file's suffix."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        frame.write_ndjson(out)
        return
    if out.suffix != ".csv":
        raise MdmError(f"{out}: partner exports are .csv or .jsonl")
    lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    frame.with_columns(pl.col(c).list.join(";") for c in lists).write_csv(out)


def export_profile(store: Any, profile: PartnerProfile, out: Path, actor: str) -> ExportResult:
    """Write the profile's golden records to ``out`` and audit the export (profile, partner, rows, hash)."""
    frame = share_frame(store, profile)
    write_frame(frame, out)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    export_id = compliance_repo(store).record_export(
        "golden", profile.name, profile.partner, frame.height, str(out), sha, actor
    )
    return ExportResult(export_id, profile.name, profile.partner, frame.height, out, sha)
