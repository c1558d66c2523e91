"""Survivorship: golden attribute values chosen per customer by declarative rules, with lineage.

Everything is vectorized: per attribute one sort of the candidate values and one ``unique`` (scalar) or
``group_by`` (multi-valued) over all customers at once; the loop is over the handful of attributes only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_RULES = Path(__file__).with_name("survivorship.yaml")
RuleName = Literal["trust", "valid", "recent", "frequent"]
NOT_HUB = "not_hub"
STEWARD = "steward"
_UTC = "UTC"
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
#: Record columns survivorship reads besides the attribute columns.
BASE_COLUMNS: tuple[str, ...] = (
    "rid",
    "source",
    "source_key",
    "ingested_at",
    "source_updated_at",
    "trust_rank",
)


class ScalarRule(BaseModel):
    """One single-valued golden attribute: its record column and rule order."""

    model_config = ConfigDict(extra="forbid")
    column: str
    rules: list[RuleName] = Field(min_length=1)
    valid: str | None = None
    companions: dict[str, str] = Field(
        default_factory=dict, description="output name -> column of the winner"
    )

    @model_validator(mode="after")
    def _valid_named(self) -> ScalarRule:
        if "valid" in self.rules and not self.valid:
            raise ValueError(f"{self.column}: rule 'valid' needs a `valid` column")
        if len(set(self.rules)) != len(self.rules):
            raise ValueError(f"{self.column}: a rule is listed twice")
        return self


class MultiRule(BaseModel):
    """One multi-valued golden attribute: every distinct value kept, ordered current first."""

    model_config = ConfigDict(extra="forbid")
    column: str
    order: list[RuleName] = Field(min_length=1)
    valid: str | None = None

    @model_validator(mode="after")
    def _valid_named(self) -> MultiRule:
        if "valid" in self.order and not self.valid:
            raise ValueError(f"{self.column}: rule 'valid' needs a `valid` column or 'not_hub'")
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"{self.column}: a rule is listed twice")
        return self


class SurvivorshipRules(BaseModel):
    """The whole rule set (see survivorship.yaml for the meaning of each rule)."""

    model_config = ConfigDict(extra="forbid")
    hub_min_customers: int = Field(default=3, ge=2)
    scalar: dict[str, ScalarRule]
    multi: dict[str, MultiRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _distinct_outputs(self) -> SurvivorshipRules:
        names = [*self.scalar, *self.multi]
        names += [c for r in self.scalar.values() for c in r.companions]
        names += [f"{n}_lineage" for n in self.scalar]
        if len(set(names)) != len(names) or "customer_id" in names:
            raise ValueError("golden attribute names must be distinct and not 'customer_id'")
        return self

    def record_columns(self) -> list[str]:
        """Every record column the rules read."""
        cols = [r.column for r in self.scalar.values()] + [r.column for r in self.multi.values()]
        cols += [r.valid for r in self.scalar.values() if r.valid]
        cols += [r.valid for r in self.multi.values() if r.valid and r.valid != NOT_HUB]
        cols += [c for r in self.scalar.values() for c in r.companions.values()]
        return list(dict.fromkeys([*BASE_COLUMNS, *cols]))


def load_rules(path: Path | None = None) -> SurvivorshipRules:
    """Read and validate a rule file (default: the shipped survivorship.yaml)."""
    data = yaml.safe_load((path or DEFAULT_RULES).read_text(encoding="utf-8"))
    return SurvivorshipRules.model_validate(data)


def _utc(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A datetime column as UTC, whether it arrives naive (taken as UTC) or zoned."""
    dtype = frame.schema[column]
    col = pl.col(column).cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
    if isinstance(dtype, pl.Datetime) and dtype.time_zone:
        return col.dt.convert_time_zone(_UTC)
    return col.dt.replace_time_zone(_UTC)


def recency_expr(frame: pl.DataFrame) -> pl.Expr:
    """When the record was last updated: its source's timestamp when parseable, else when we ingested it."""
    text = pl.col("source_updated_at").cast(pl.String).str.replace_all("/", "-").str.replace("T", " ")
    parsed = [text.str.to_datetime(f, strict=False, time_zone=_UTC) for f in _DATE_FORMATS[:2]]
    parsed += [text.str.to_datetime(f, strict=False).dt.replace_time_zone(_UTC) for f in _DATE_FORMATS[2:]]
    parsed.append(
        text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone(_UTC)
    )
    return pl.coalesce(*[p.cast(pl.Datetime("us", _UTC)) for p in parsed], _utc(frame, "ingested_at"))


def _sort_keys(rules: list[RuleName], n_col: str) -> tuple[list[str], list[bool]]:
    """Sort columns and directions for a rule list (pins first, lowest rid then value last)."""
    column = {"trust": "trust_rank", "valid": "valid", "recent": "recency", "frequent": n_col}
    keys = ["customer_id", "pinned", *[column[r] for r in rules], "min_rid", "value"]
    return keys, [False, True, *[True] * len(rules), False, False]


def _candidates(records: pl.DataFrame, xref: pl.DataFrame) -> pl.DataFrame:
    """Current records with their customer, trust rank and recency."""
    missing = [c for c in BASE_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"records lack columns {missing}")
    return records.join(
        xref.select(pl.col("rid").cast(pl.Int64), pl.col("customer_id").cast(pl.String)), on="rid"
    ).with_columns(
        pl.col("trust_rank").cast(pl.Int64),
        recency_expr(records).alias("recency"),
        _utc(records, "ingested_at").alias("ingested_at"),
    )


def _parse_text(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A pinned value, stored as text, in the attribute's own type."""
    if dtype == pl.Date:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if dtype == pl.Boolean:
        return text.str.to_lowercase().is_in(["true", "1", "yes"])
    return text.cast(dtype, strict=False)


def _pin_rows(pins: pl.DataFrame, attribute: str, dtype: pl.DataType) -> pl.DataFrame:
    """Pinned values of one attribute as candidates that beat every rule."""
    return pins.filter(pl.col("attribute") == attribute).select(
        pl.col("customer_id").cast(pl.String),
        _parse_text(pl.col("value").cast(pl.String), dtype).alias("value"),
        pl.lit(True).alias("pinned"),
        pl.col("actor").cast(pl.String).alias("pinned_by"),
    )


def _scalar(base: pl.DataFrame, name: str, rule: ScalarRule, pins: pl.DataFrame) -> pl.DataFrame:
    """Winner per customer of one single-valued attribute, with companions and lineage."""
    valid = pl.col(rule.valid).fill_null(False) if rule.valid else pl.lit(False)
    cands = (
        base.select(
            "customer_id",
            "rid",
            "source",
            "source_key",
            "ingested_at",
            "recency",
            "trust_rank",
            pl.col(rule.column).alias("value"),
            valid.cast(pl.Boolean).alias("valid"),
            *[pl.col(c).alias(out) for out, c in rule.companions.items()],
        )
        .filter(pl.col("value").is_not_null())
        .with_columns(
            pl.col("rid").n_unique().over("customer_id", "value").alias("n"),
            pl.col("rid").alias("min_rid"),
            pl.lit(False).alias("pinned"),
            pl.lit(None, pl.String).alias("pinned_by"),
        )
    )
    pinned = _pin_rows(pins, name, base.schema[rule.column]).with_columns(pl.lit(STEWARD).alias("source"))
    keys, desc = _sort_keys(rule.rules, "n")
    win = (
        pl.concat([cands, pinned], how="diagonal_relaxed")
        .sort(keys, descending=desc, nulls_last=True)
        .unique("customer_id", keep="first", maintain_order=True)
    )
    lineage = pl.struct(
        "rid",
        "source",
        "source_key",
        pl.when(pl.col("pinned")).then(None).otherwise(pl.lit(rule.column)).alias("field"),
        "ingested_at",
        "pinned_by",
    ).alias(f"{name}_lineage")
    return win.select("customer_id", pl.col("value").alias(name), *rule.companions, lineage)


def _multi(
    base: pl.DataFrame, name: str, rule: MultiRule, pins: pl.DataFrame, hub_min_customers: int
) -> pl.DataFrame:
    """Every distinct value per customer of one multi-valued attribute, current first."""
    is_list = isinstance(base.schema[rule.column], pl.List)
    if rule.valid and rule.valid != NOT_HUB:
        valid = pl.col(rule.valid).fill_null(False).cast(pl.Boolean)
    else:
        valid = pl.lit(True)
    long = base.select(
        "customer_id", "rid", "source", "ingested_at", "recency", "trust_rank",
        pl.col(rule.column).alias("value"), valid.alias("valid"),
    )  # fmt: skip
    if is_list:
        long = long.explode("value")
    long = long.filter(pl.col("value").is_not_null() & (pl.col("value").cast(pl.String) != ""))
    if rule.valid == NOT_HUB:
        hub = long.group_by("value").agg(pl.col("customer_id").n_unique().alias("holders"))
        long = long.join(hub, on="value").with_columns((pl.col("holders") < hub_min_customers).alias("valid"))
    agg = long.group_by("customer_id", "value").agg(
        pl.col("valid").any(),
        pl.col("source").unique().sort().alias("sources"),
        pl.col("rid").unique().sort().alias("rids"),
        pl.col("ingested_at").min().alias("first_seen"),
        pl.col("recency").max().alias("recency"),
        pl.col("trust_rank").max(),
        pl.col("rid").n_unique().alias("n"),
        pl.col("rid").min().alias("min_rid"),
    )
    value_type = base.schema[rule.column]
    inner = value_type.inner if isinstance(value_type, pl.List) else value_type
    pinned = _pin_rows(pins, name, inner() if isinstance(inner, type) else inner)
    rows = agg.join(pinned, on=["customer_id", "value"], how="full", coalesce=True).with_columns(
        pl.col("pinned").fill_null(False), pl.col("valid").fill_null(True)
    )
    keys, desc = _sort_keys(rule.order, "n")
    entry = pl.struct(
        "value",
        "valid",
        "sources",
        "rids",
        "first_seen",
        pl.col("recency").alias("last_seen"),
        "pinned_by",
    )
    return (
        rows.sort(keys, descending=desc, nulls_last=True)
        .group_by("customer_id", maintain_order=True)
        .agg(entry.alias(name))
    )


def empty_pins() -> pl.DataFrame:
    """An attribute-pin frame with no rows."""
    return pl.DataFrame(
        schema={"customer_id": pl.String, "attribute": pl.String, "value": pl.String, "actor": pl.String}
    )


def build_golden(
    records: pl.DataFrame, xref: pl.DataFrame, rules: SurvivorshipRules, pins: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per customer of ``xref``: every golden attribute, and per scalar attribute its lineage.

    ``records``: current records with ``rules.record_columns()``; ``xref``: rid, customer_id; ``pins``:
    customer_id (live), attribute, value (as text), actor.
    """
    missing = [c for c in rules.record_columns() if c not in records.columns]
    if missing:
        raise ValueError(f"records lack columns {missing}")
    pins = empty_pins() if pins is None else pins
    base = _candidates(records, xref)
    out = xref.select(pl.col("customer_id").cast(pl.String)).unique().sort("customer_id")
    for name, rule in rules.scalar.items():
        out = out.join(_scalar(base, name, rule, pins), on="customer_id", how="left")
    for name, mrule in rules.multi.items():
        out = out.join(_multi(base, name, mrule, pins, rules.hub_min_customers), on="customer_id", how="left")
    return out
