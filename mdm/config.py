"""Source configuration: what each source is and how its columns map onto the canonical record.

Sources are data (YAML validated by pydantic), one file per source under ``mdm/config/sources``
or any folder given with ``--config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mdm.errors import MdmError
from mdm.schema import RAW_FIELDS

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
