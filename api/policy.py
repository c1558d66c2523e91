"""The API's access policy (api/policy.yaml): who may call what, and what each role sees of each field.

Masking is applied server-side before a response leaves the process. The maskers are mdm.privacy's (shared
with partner exports); this module adds redaction for C2 fields without a masker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from mdm.compliance.classification import Classification, ClassName, View
from mdm.errors import MdmError
from mdm.privacy import (
    REDACTED,
    mask_address,
    mask_card,
    mask_date,
    mask_email,
    mask_id,
    mask_name,
    mask_phone,
)

POLICY_PATH = Path(__file__).with_name("policy.yaml")
Role = Literal["system", "steward", "analyst", "auditor", "admin"]
ROLES: tuple[str, ...] = ("system", "steward", "analyst", "auditor", "admin")


def redact(value: str | None) -> str:
    """Nothing of the value is shown."""
    return REDACTED if value else ""


MASKERS: dict[str, Callable[[str | None], str]] = {
    "id": mask_id,
    "card": mask_card,
    "mobile": mask_phone,
    "name": mask_name,
    "address": mask_address,
    "email": mask_email,
    "date": mask_date,
    "redact": redact,
}


class Limits(BaseModel):
    """Request limits: body size, per-key token bucket, minimum unmask reason length."""

    max_body_bytes: int = 65536
    rate_per_second: float = 200.0
    burst: int = 400
    reason_min_chars: int = 5


class Policy(Classification):
    """Field classes and role views (the compliance classification) plus endpoints, maskers and limits."""

    endpoints: dict[str, list[str]] = Field(default_factory=dict)
    maskers: dict[str, str] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)

    def allows(self, role: str, endpoint: str) -> bool:
        """Whether ``role`` may call ``endpoint`` (unknown endpoints allow nobody)."""
        return role in self.endpoints.get(endpoint, [])

    def may_unmask(self, role: str) -> bool:
        """Whether ``role`` may ask for plain C2 values (with a reason)."""
        return role in self.unmask_roles

    def view(self, role: str, cls: ClassName, unmask: bool = False) -> View:
        """What ``role`` sees of class ``cls``; C2 becomes plain on a permitted unmask, C3 is never shown."""
        if cls == "C3":
            return "none"
        seen: View = self.roles.get(role, {}).get(cls, "none")
        if cls == "C2" and seen == "masked" and unmask and self.may_unmask(role):
            return "plain"
        return seen


def load_policy(path: Path | None = None) -> Policy:
    """The policy at ``path`` (default: api/policy.yaml); an invalid file raises MdmError."""
    target = path or POLICY_PATH
    try:
        data = yaml.safe_load(target.read_text(encoding="utf-8"))
        policy = Policy.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise MdmError(f"{target}: invalid API policy: {exc}") from None
    unknown = sorted({m for m in policy.maskers.values() if m not in MASKERS})
    if unknown:
        raise MdmError(f"{target}: unknown maskers {unknown}")
    return policy.model_copy(update={"source": str(target)})


def mask_field(policy: Policy, name: str, value: Any) -> Any:
    """One C2 value masked with the field's masker; lists value by value; dicts mask their ``value``."""
    masker = MASKERS[policy.maskers.get(name, "redact")]
    if isinstance(value, list):
        return [mask_field(policy, name, v) for v in value]
    if isinstance(value, dict):
        return {k: (mask_field(policy, name, v) if k == "value" else v) for k, v in value.items()}
    return None if value is None else masker(str(value))


def golden_view(
    policy: Policy, role: str, attributes: Mapping[str, Any], unmask: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The attributes ``role`` may see, each as plain, masked or left out; and the C2 fields shown."""
    out: dict[str, Any] = {}
    shown: list[str] = []
    for name, value in attributes.items():
        cls = policy.golden_class(name)
        seen = policy.view(role, cls, unmask)
        if seen == "none":
            continue
        out[name] = value if seen == "plain" else mask_field(policy, name, value)
        if cls == "C2" and value not in (None, [], ""):
            shown.append(name)
    return out, shown


def raw_view(policy: Policy, role: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Raw canonical fields as ``role`` may see them (masked C2, never unmasked)."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        seen = policy.view(role, policy.raw_class(name))
        if seen != "none":
            out[name] = value if seen == "plain" else mask_field(policy, name, value)
    return out
