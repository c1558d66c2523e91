"""Legal basis per source (PIPL art. 13): the ingest gate and the declaration stored with each batch."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping

from mdm.config import SourceConfig
from mdm.errors import MdmError

#: Setting that turns the refusal of an undeclared source into a warning (test data only).
ALLOW_ENV = "MDM_ALLOW_NO_LEGAL_BASIS"

#: Basis -> the PIPL art. 13 clause it rests on, for reports.
PIPL_ARTICLE: dict[str, str] = {
    "consent": "PIPL 13(1) consent",
    "contract": "PIPL 13(2) contract",
    "hr_management": "PIPL 13(2) human-resources management",
    "legal_obligation": "PIPL 13(3) statutory duty or obligation",
    "vital_interests": "PIPL 13(4) life, health and property",
    "public_interest": "PIPL 13(5) news reporting in the public interest",
    "public_information": "PIPL 13(6) lawfully disclosed information",
    "other_law": "PIPL 13(7) other laws and regulations",
}


class LegalBasisError(MdmError):
    """A source without a complete legal declaration was given to ingest; nothing was stored."""

    exit_code = 3


class LegalBasisWarning(UserWarning):
    """A source without a complete legal declaration was ingested because ``ALLOW_ENV`` is set."""


def allow_missing_basis(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``MDM_ALLOW_NO_LEGAL_BASIS`` is set to a true value."""
    value = (env if env is not None else os.environ).get(ALLOW_ENV, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def undeclared(cfgs: Iterable[SourceConfig]) -> dict[str, list[str]]:
    """Source name -> missing declaration fields, for every source whose declaration is incomplete."""
    return {c.name: missing for c in cfgs if (missing := c.missing_legal_fields())}


def refusal_message(missing: Mapping[str, list[str]]) -> str:
    """The message of a refused ingest: which source lacks which field, and how to fix it."""
    parts = "; ".join(f"{name} lacks {', '.join(fields)}" for name, fields in sorted(missing.items()))
    return (
        f"refused: no legal basis declared ({parts}). Declare legal_basis, proof_ref, purpose, "
        f"retention_days or retention_years and data_owner in the source YAML; nothing was stored "
        f"(for test data only, {ALLOW_ENV}=1 turns this into a warning)"
    )


def check_legal_basis(cfgs: Iterable[SourceConfig], allow: bool | None = None) -> list[str]:
    """Refuse sources without a complete declaration (LegalBasisError), or warn when allowed.

    Returns the warnings issued (empty when every source is declared).
    """
    missing = undeclared(cfgs)
    if not missing:
        return []
    message = refusal_message(missing)
    if not (allow_missing_basis() if allow is None else allow):
        raise LegalBasisError(message)
    text = message.replace("refused:", "warning: ingested although", 1)
    warnings.warn(text, LegalBasisWarning, stacklevel=2)
    return [text]


def declaration(cfg: SourceConfig) -> str | None:
    """The legal declaration in force for a source, as the JSON stored in ``batches.legal_basis``."""
    if cfg.legal_basis is None:
        return None
    return json.dumps(
        {
            "basis": cfg.legal_basis,
            "proof_ref": cfg.proof_ref,
            "purpose": cfg.purpose,
            "retention_days": cfg.retention_period_days,
            "cross_border": cfg.cross_border,
            "data_owner": cfg.data_owner,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
