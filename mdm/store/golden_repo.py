"""Persistence of customer IDs, cross-reference, events and golden records (mixin of Store)."""

from __future__ import annotations

GOLDEN_DDL: list[str] = []


class GoldenRepo:
    """Store methods for the golden-record tables."""
