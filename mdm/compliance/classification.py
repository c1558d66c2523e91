"""Field classification (C1/C2/C3) and the per-role view of each class, loaded as data."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mdm.errors import MdmError

ClassName = Literal["C1", "C2", "C3"]
View = Literal["plain", "masked", "none"]

DEFAULT_CLASSIFICATION = Path(__file__).resolve().parents[1] / "config" / "classification.yaml"
#: The API's policy file, preferred when it exists (issue 5).
API_POLICY = Path(__file__).resolve().parents[2] / "api" / "policy.yaml"


class Classification(BaseModel):
    """Which class each raw and golden field belongs to, and what each role sees of each class."""

    model_config = ConfigDict(extra="ignore")

    classes: dict[str, str] = Field(default_factory=dict)
    raw_fields: dict[str, ClassName]
    golden_fields: dict[str, ClassName]
    never_stored: list[str] = Field(default_factory=list)
    roles: dict[str, dict[ClassName, View]]
    unmask_roles: list[str] = Field(default_factory=list)
    source: str = ""

    def raw_class(self, field: str) -> ClassName:
        """Class of a raw field; an unclassified field counts as C2 (the cautious default)."""
        return self.raw_fields.get(field, "C2")

    def golden_class(self, field: str) -> ClassName:
        """Class of a golden attribute; an unclassified attribute counts as C2."""
        return self.golden_fields.get(field, "C2")


def load_classification(path: Path | None = None) -> Classification:
    """The classification at ``path``; default: the API's policy when it has this shape, else the shipped one."""
    candidates = [path] if path else [API_POLICY, DEFAULT_CLASSIFICATION]
    errors: list[str] = []
    for candidate in candidates:
        if candidate is None or not candidate.exists():
            continue
        try:
            data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
            found = Classification.model_validate(data)
        except (OSError, yaml.YAMLError, ValueError) as exc:
            errors.append(f"{candidate}: {exc}")
            continue
        return found.model_copy(update={"source": str(candidate)})
    if path is not None or not errors:
        raise MdmError(f"no usable field classification ({'; '.join(errors) or 'file missing'})")
    raise MdmError(f"invalid field classification: {'; '.join(errors)}")


def permission_matrix(classification: Classification) -> pl.DataFrame:
    """role, field, class, view (plain|masked|none), unmask: every golden field as every role sees it."""
    rows = [
        {
            "role": role,
            "field": field,
            "class": cls,
            "view": views.get(cls, "none"),
            "unmask": role in classification.unmask_roles and views.get(cls, "none") == "masked",
        }
        for role, views in classification.roles.items()
        for field, cls in classification.golden_fields.items()
    ]
    schema = {
        "role": pl.String,
        "field": pl.String,
        "class": pl.String,
        "view": pl.String,
        "unmask": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema)
