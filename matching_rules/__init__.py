"""Declarative matching rule sets (YAML) compiled to Splink settings; imports nothing from mdm or api."""

from __future__ import annotations

from pathlib import Path

import yaml

from matching_rules.models import RuleSet

RULESET_DIR = Path(__file__).parent / "rulesets"


def ruleset_path(name: str) -> Path:
    """The YAML file of a shipped rule set."""
    return RULESET_DIR / f"{name}.yaml"


def load_ruleset(name: str = "person", path: Path | None = None) -> RuleSet:
    """Read and validate a rule set by name (shipped) or from an explicit path."""
    source = path or ruleset_path(name)
    if not source.exists():
        shipped = sorted(p.stem for p in RULESET_DIR.glob("*.yaml"))
        raise ValueError(f"no rule set {name!r} at {source}; shipped: {shipped}")
    return RuleSet.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))


__all__ = ["RULESET_DIR", "RuleSet", "load_ruleset", "ruleset_path"]
