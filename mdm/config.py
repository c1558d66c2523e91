"""Source configuration: what each source is and how its columns map onto the canonical record.

Sources are data (YAML validated by pydantic), one file per source under ``mdm/config/sources``
or any folder given with ``--config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mdm.errors import MdmError
from mdm.schema import RAW_FIELDS

#: Lawful bases of PIPL art. 13 (consent of art. 13(1) includes separate consent where art. 23/29/39 need it).
LegalBasis = Literal[
    "consent",  # 13(1) the individual's consent
    "contract",  # 13(2) necessary to conclude or perform a contract the individual is party to
    "hr_management",  # 13(2) human-resources management under labour rules
    "legal_obligation",  # 13(3) statutory duties or obligations (e.g. AML customer due diligence)
    "vital_interests",  # 13(4) public-health emergency, or protecting life, health and property
    "public_interest",  # 13(5) news reporting and supervision by public opinion in the public interest
    "public_information",  # 13(6) information the individual disclosed or otherwise lawfully disclosed
    "other_law",  # 13(7) other circumstances laws and administrative regulations provide
]
#: Declaration fields a source must carry before it may be ingested.
LEGAL_FIELDS: tuple[str, ...] = ("legal_basis", "proof_ref", "purpose", "retention", "data_owner")

Format = Literal["excel", "mbox", "eml", "vcard", "outlook_csv", "fixed_width", "delimited", "jsonl"]
DEFAULT_CONFIG_DIR = Path(__file__).parent / "config" / "sources"


class FixedWidthField(BaseModel):
    """One field of a fixed-width layout; offsets and widths are in bytes."""

    model_config = ConfigDict(extra="forbid")
    name: str
    start: int = Field(ge=0)
    width: int = Field(gt=0)


class SourceConfig(BaseModel):
    """One source system: its file format, natural key, column mapping and trust."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    format: Format
    pattern: str = Field(description="glob matched against file names in an ingest folder")
    natural_key: str = Field(description="native column holding the record key")
    columns: dict[str, str | list[str]] = Field(
        description="canonical raw field -> native column (or several, for list fields)"
    )
    encoding: str = "utf-8"
    trust_rank: int = Field(default=50, ge=0, le=100, description="higher wins in survivorship")
    extract: Literal["full", "delta"] = "full"
    options: dict[str, object] = Field(default_factory=dict, description="reader-specific settings")
    layout: list[FixedWidthField] | None = None
    legal_basis: LegalBasis | None = Field(default=None, description="PIPL art. 13 basis of collection")
    proof_ref: str | None = Field(default=None, description="where the proof is filed (document ID)")
    purpose: str | None = Field(default=None, description="purpose of processing, as told to the person")
    retention_days: int | None = Field(default=None, gt=0, description="retention period in days")
    retention_years: int | None = Field(default=None, gt=0, le=100, description="or in whole years")
    cross_border: bool = Field(default=False, description="data leaves the mainland (PIPL ch. III)")
    data_owner: str | None = Field(default=None, description="accountable department or role")

    @model_validator(mode="after")
    def _one_retention(self) -> SourceConfig:
        if self.retention_days is not None and self.retention_years is not None:
            raise ValueError("give retention_days or retention_years, not both")
        return self

    @property
    def retention_period_days(self) -> int | None:
        """Retention in days (years count 365 days each); None when not declared."""
        if self.retention_days is not None:
            return self.retention_days
        return None if self.retention_years is None else self.retention_years * 365

    def missing_legal_fields(self) -> list[str]:
        """Names of the legal declaration fields (``LEGAL_FIELDS``) this source leaves empty."""
        present = {
            "legal_basis": self.legal_basis is not None,
            "proof_ref": bool(self.proof_ref and self.proof_ref.strip()),
            "purpose": bool(self.purpose and self.purpose.strip()),
            "retention": self.retention_period_days is not None,
            "data_owner": bool(self.data_owner and self.data_owner.strip()),
        }
        return [name for name in LEGAL_FIELDS if not present[name]]

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        unknown = sorted(set(value) - set(RAW_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical fields {unknown}; known: {list(RAW_FIELDS)}")
        return value


def load_source_config(path: Path) -> SourceConfig:
    """Read one source YAML file; a bad file raises MdmError naming it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return SourceConfig.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise MdmError(f"{path}: invalid source configuration: {exc}") from exc


def load_sources(config_dir: Path | None = None) -> dict[str, SourceConfig]:
    """All configured sources by name, from ``config_dir`` (default: the shipped ones)."""
    folder = config_dir or DEFAULT_CONFIG_DIR
    sources: dict[str, SourceConfig] = {}
    for path in sorted(folder.glob("*.yaml")):
        cfg = load_source_config(path)
        if cfg.name in sources:
            raise MdmError(f"{path}: source {cfg.name!r} is configured twice")
        sources[cfg.name] = cfg
    return sources
