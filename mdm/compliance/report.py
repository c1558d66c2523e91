"""The compliance self-check: every figure computed from the store's live state and the configuration.

Sections: inventory (source x field x class, records holding it, encryption, keyed-hash index), legal
declarations, retention, cross-border sources, access review (the API's audit log), permission simulation,
audit chain, erasure requests, partner exports. Findings carry a severity; a ``blocking`` one (no legal
basis, a C3 field stored, a broken audit chain) makes the command exit non-zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from mdm.compliance.classification import Classification, permission_matrix
from mdm.compliance.legal import PIPL_ARTICLE
from mdm.compliance.retention import past_retention, retention_input
from mdm.compliance.sharing import PartnerProfile
from mdm.config import SourceConfig
from mdm.schema import RAW_FIELDS, RAW_LIST_FIELDS
from mdm.store.compliance_repo import compliance_repo
from mdm.store.connection import DB_ALIAS

BLOCKING = "blocking"
WARNING = "warning"
INFO = "info"
#: API keys without use for this long are listed for revocation.
UNUSED_KEY_DAYS = 90


@dataclass(frozen=True)
class Finding:
    """One observation of the check; ``blocking`` ones fail the release gate."""

    severity: str
    code: str
    message: str


def _has_table(store: Any, name: str) -> bool:
    """Whether the store's database has a table (or view) of that name."""
    found = store.query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_catalog = ? AND table_name = ?",
        [DB_ALIAS, name],
    )
    return bool(found.item())


def _columns(store: Any, name: str) -> list[str]:
    """Column names of a table."""
    cols = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_name = ?",
        [DB_ALIAS, name],
    )
    return [str(c) for c in cols["column_name"].to_list()]


def _nonempty(field: str) -> str:
    """SQL condition: the record holds a value of ``field``."""
    if field in RAW_LIST_FIELDS:
        return f"coalesce(len(list_filter(\"{field}\", x -> trim(x) <> '')), 0) > 0"
    return f"trim(coalesce(\"{field}\", '')) <> ''"


def field_counts(store: Any) -> pl.DataFrame:
    """source, field, records: current records of each source holding a value of each raw field."""
    cols = ", ".join(f'count(*) FILTER (WHERE {_nonempty(f)}) AS "{f}"' for f in RAW_FIELDS)
    wide: pl.DataFrame = store.query(f"SELECT source, {cols} FROM current_records GROUP BY source")
    if wide.height == 0:
        return pl.DataFrame(schema={"source": pl.String, "field": pl.String, "records": pl.Int64})
    return wide.unpivot(index="source", variable_name="field", value_name="records").with_columns(
        pl.col("records").cast(pl.Int64)
    )


def store_encrypted(store: Any) -> bool:
    """Whether the database file is encrypted at rest (opened with MDM_DB_KEY)."""
    frame = store.query("SELECT encrypted FROM duckdb_databases() WHERE database_name = ?", [DB_ALIAS])
    return bool(frame.height and frame.item())


def hmac_indexed_fields(store: Any) -> set[str]:
    """Raw fields the API's keyed-hash index covers (from its kind/field column), empty without the index."""
    if not _has_table(store, "hmac_index"):
        return set()
    cols = _columns(store, "hmac_index")
    kind = next((c for c in ("kind", "field", "attribute") if c in cols), None)
    if kind is None:
        return set()
    kinds = {str(k) for k in store.query(f'SELECT DISTINCT "{kind}" AS k FROM hmac_index')["k"].to_list()}
    aliases = {f: {f, f + "s", f.removesuffix("s"), f + "_std"} for f in RAW_FIELDS}
    return {f for f, names in aliases.items() if names & kinds}


def inventory(store: Any, cfgs: Mapping[str, SourceConfig], classification: Classification) -> pl.DataFrame:
    """source, field, class, records, encrypted, hmac_indexed: every field a source maps (or holds)."""
    counts = field_counts(store)
    mapped = pl.DataFrame(
        [(c.name, f) for c in cfgs.values() for f in c.columns],
        schema={"source": pl.String, "field": pl.String},
        orient="row",
    )
    held = counts.filter((pl.col("records") > 0) & ~pl.col("source").is_in(list(cfgs))).select(
        "source", "field"
    )
    fields = pl.concat([mapped, held]).unique()
    classes = pl.DataFrame(
        {"field": list(RAW_FIELDS), "class": [classification.raw_class(f) for f in RAW_FIELDS]}
    )
    indexed = hmac_indexed_fields(store)
    return (
        fields.join(classes, on="field", how="left")
        .join(counts, on=["source", "field"], how="left")
        .with_columns(
            pl.col("class").fill_null("C2"),
            pl.col("records").fill_null(0),
            pl.lit(store_encrypted(store)).alias("encrypted"),
            pl.col("field").is_in(sorted(indexed)).alias("hmac_indexed"),
        )
        .sort("source", "field")
    )


def by_class(inv: pl.DataFrame) -> pl.DataFrame:
    """source, class, fields, values: per source and class, fields mapped and values held."""
    return (
        inv.group_by("source", "class")
        .agg(pl.len().alias("fields"), pl.col("records").sum().alias("values"))
        .sort("source", "class")
    )


def declarations(store: Any, cfgs: Mapping[str, SourceConfig]) -> pl.DataFrame:
    """One row per configured or stored source: its declaration, records held, batches without a basis."""
    held = store.query(
        """SELECT b.source, count(DISTINCT b.batch_id) FILTER (WHERE b.legal_basis IS NULL) AS batches_without_basis,
            (SELECT count(*) FROM current_records c WHERE c.source = b.source) AS records
        FROM batches b GROUP BY b.source"""
    )
    decl = pl.DataFrame(
        [
            {
                "source": c.name,
                "legal_basis": c.legal_basis,
                "article": PIPL_ARTICLE.get(c.legal_basis or "", None),
                "proof_ref": c.proof_ref,
                "purpose": c.purpose,
                "retention_days": c.retention_period_days,
                "cross_border": c.cross_border,
                "data_owner": c.data_owner,
                "missing": c.missing_legal_fields(),
                "configured": True,
            }
            for c in cfgs.values()
        ],
        schema={
            "source": pl.String,
            "legal_basis": pl.String,
            "article": pl.String,
            "proof_ref": pl.String,
            "purpose": pl.String,
            "retention_days": pl.Int64,
            "cross_border": pl.Boolean,
            "data_owner": pl.String,
            "missing": pl.List(pl.String),
            "configured": pl.Boolean,
        },
    )
    return (
        decl.join(held, on="source", how="full", coalesce=True)
        .with_columns(
            pl.col("configured").fill_null(False),
            pl.col("records").fill_null(0),
            pl.col("batches_without_basis").fill_null(0),
            pl.col("missing").fill_null(pl.lit(["legal_basis"], pl.List(pl.String))),
        )
        .sort("source")
    )


def access_review(store: Any, today: date, period_days: int = UNUSED_KEY_DAYS) -> dict[str, Any]:
    """From the API's audit log and key table, over the last ``period_days``: C2 values read masked and
    unmasked per API key and role, every unmask with its reason, decisions per user, keys unused 90 days."""
    if not _has_table(store, "audit_log"):
        return {"status": "absent", "note": "no audit_log table: the HTTP API has not written to this store"}
    since = datetime.combine(today - timedelta(days=period_days), datetime.min.time(), UTC)
    n_fields = "coalesce(len(string_split(nullif(fields, ''), ',')), 0)"
    per_key = store.query(
        f"""SELECT key_id, role, sum({n_fields}) FILTER (WHERE view = 'masked') AS c2_masked,
            sum({n_fields}) FILTER (WHERE view = 'plain') AS c2_unmasked, count(*) AS requests
        FROM audit_log WHERE logged_at >= ? AND key_id IS NOT NULL GROUP BY ALL ORDER BY key_id""",
        [since],
    ).with_columns(pl.col("c2_masked", "c2_unmasked").fill_null(0).cast(pl.Int64))
    unmasks = store.query(
        """SELECT seq, logged_at, key_id, actor, role, target, fields, reason FROM audit_log
        WHERE logged_at >= ? AND view = 'plain' ORDER BY seq""",
        [since],
    )
    decisions = store.query(
        """SELECT coalesce(actor, key_id) AS user, action, count(*) AS n FROM audit_log
        WHERE logged_at >= ? AND regexp_matches(action, 'merge|split|decision|pin|link|erasure|review')
        GROUP BY ALL ORDER BY ALL""",
        [since],
    )
    unused: list[dict[str, Any]] = []
    if _has_table(store, "api_keys"):
        cutoff = datetime.combine(today - timedelta(days=UNUSED_KEY_DAYS), datetime.min.time(), UTC)
        unused = store.query(
            """SELECT key_id, name, role, created_at, last_used_at FROM api_keys
            WHERE revoked_at IS NULL AND coalesce(last_used_at, created_at) < ? ORDER BY key_id""",
            [cutoff],
        ).to_dicts()
    return {
        "status": "ok",
        "period_days": period_days,
        "per_key": per_key.to_dicts(),
        "unmasks": unmasks.to_dicts(),
        "decisions": decisions.to_dicts(),
        "unused_keys": unused,
    }


def audit_chain(store: Any) -> dict[str, Any]:
    """Status of the API's hash-chained audit log: verified up to which entry, first broken entry."""
    if not _has_table(store, "audit_log"):
        return {"status": "absent", "verified_to": None}
    verifier = getattr(store, "verify_audit", None)
    if not callable(verifier):
        from mdm.store.api_repo import ApiRepo

        bound = ApiRepo()
        bound.con, bound.path = store.con, store.path
        result = bound.verify_audit()
    else:
        result = verifier()
    broken = result.get("first_broken")
    return {
        "status": "broken" if broken else "ok",
        "entries": result.get("entries"),
        "verified_to": result.get("verified_to"),
        "first_broken": broken,
    }


def erasure_section(store: Any) -> dict[str, Any]:
    """Erasure requests and their completion (from the tombstones; no personal values)."""
    if not _has_table(store, "tombstones"):
        return {"requests": 0, "items": []}
    tomb = store.tombstones()
    summary = {
        "requests": tomb.height,
        "erased_completed": tomb.filter(
            (pl.col("action") == "erased") & pl.col("completed_at").is_not_null()
        ).height,
        "erased_pending": tomb.filter(
            (pl.col("action") == "erased") & pl.col("completed_at").is_null()
        ).height,
        "restricted": tomb.filter(pl.col("action") == "restricted").height,
    }
    items = tomb.select(
        "tombstone_id",
        "scope",
        "customer_id",
        "n_records",
        "action",
        "requested_at",
        "hold_until",
        "completed_at",
    ).to_dicts()
    return {**summary, "items": items}


def profile_findings(profiles: Mapping[str, PartnerProfile], classification: Classification) -> list[Finding]:
    """Warnings for partner profiles that send C2 fields in plain."""
    return [
        Finding(WARNING, "partner_plain_c2", f"profile {p.name} sends C2 field {f} in plain")
        for p in profiles.values()
        for f, action in p.fields.items()
        if action == "plain" and classification.golden_class(f) == "C2"
    ]


def build_report(
    store: Any,
    cfgs: Mapping[str, SourceConfig],
    classification: Classification,
    profiles: Mapping[str, PartnerProfile] | None = None,
    today: date | None = None,
    live_permissions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole self-check as a JSON-ready document, with findings and the ``blocking`` verdict."""
    day = today or datetime.now(UTC).date()
    inv = inventory(store, cfgs, classification)
    decl = declarations(store, cfgs)
    due = past_retention(retention_input(store), cfgs, day)
    due_by_source = due.group_by("source").len().sort("source")
    chain = audit_chain(store)
    findings: list[Finding] = []
    for row in decl.filter(pl.col("missing").list.len() > 0).iter_rows(named=True):
        findings.append(
            Finding(
                BLOCKING,
                "no_legal_basis",
                f"source {row['source']} lacks {', '.join(row['missing'])} ({row['records']} records held)",
            )
        )
    for row in decl.filter(pl.col("batches_without_basis") > 0).iter_rows(named=True):
        findings.append(
            Finding(
                WARNING,
                "batch_without_basis",
                f"source {row['source']}: {row['batches_without_basis']} batches stored without a recorded basis",
            )
        )
    for row in inv.filter((pl.col("class") == "C3") & (pl.col("records") > 0)).iter_rows(named=True):
        findings.append(
            Finding(BLOCKING, "c3_stored", f"source {row['source']} stores C3 field {row['field']}")
        )
    for source, n in due_by_source.iter_rows():
        findings.append(
            Finding(
                WARNING,
                "past_retention",
                f"source {source}: {n} records past retention (mdm retention apply)",
            )
        )
    for row in decl.filter(pl.col("cross_border").fill_null(False)).iter_rows(named=True):
        findings.append(
            Finding(
                WARNING,
                "cross_border",
                f"source {row['source']} is cross-border: needs a PIPL art. 38 mechanism and separate consent "
                f"({row['records']} records)",
            )
        )
    if not store_encrypted(store):
        findings.append(
            Finding(WARNING, "not_encrypted", "the database file is not encrypted (set MDM_DB_KEY)")
        )
    if chain["status"] == "broken":
        findings.append(
            Finding(BLOCKING, "audit_chain_broken", f"audit chain broken at {chain['first_broken']}")
        )
    findings += profile_findings(profiles or {}, classification)
    repo = compliance_repo(store)
    perms = permission_matrix(classification)
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "as_of": day.isoformat(),
        "database": {"path": str(getattr(store, "path", "")), "encrypted": store_encrypted(store)},
        "classification": classification.source,
        "sources": decl.to_dicts(),
        "inventory": inv.to_dicts(),
        "by_class": by_class(inv).to_dicts(),
        "retention": {
            "past_retention": dict(zip(due_by_source["source"], due_by_source["len"], strict=True)),
            "total": due.height,
        },
        "cross_border": decl.filter(pl.col("cross_border").fill_null(False))["source"].to_list(),
        "access_review": access_review(store, day),
        "permissions": {
            "matrix": perms.to_dicts(),
            "live_check": dict(live_permissions)
            if live_permissions
            else {"status": "pending", "note": "no running API to confirm against"},
        },
        "audit_chain": chain,
        "erasure": erasure_section(store),
        "exports": repo.exports().to_dicts(),
        "webhooks": repo.webhooks().drop("url").to_dicts(),
        "findings": [f.__dict__ for f in findings],
        "blocking": any(f.severity == BLOCKING for f in findings),
    }


def write_report(report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``compliance.json`` and ``compliance.html`` (charts as inline SVG) into folder ``out``."""
    from mdm.compliance.html import render_html

    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "compliance.json", out / "compliance.html"
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
