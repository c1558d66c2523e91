"""Pydantic models of a declarative rule set: blocking, comparisons with levels, training and thresholds.

A rule set is plain data (YAML under ``matching_rules/rulesets``). Nothing here names a SQL backend:
custom conditions are written in DuckDB SQL and translated by Splink (sqlglot) for other backends.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LevelKind = Literal[
    "null", "exact", "jaro_winkler", "damerau_levenshtein", "levenshtein", "array_intersect", "custom", "else"
]


class Level(BaseModel):
    """One comparison level, most specific first; `kind` picks a Splink comparison-level creator."""

    model_config = ConfigDict(extra="forbid")

    kind: LevelKind
    label: str
    column: str | None = None
    columns: list[str] = Field(default_factory=list, description="null level: null when any of these is")
    threshold: float | None = Field(default=None, description="jaro_winkler similarity or edit distance")
    min_intersection: int = 1
    sql: str | None = Field(default=None, description="custom level: a DuckDB SQL condition on col_l/col_r")
    also: str | None = Field(default=None, description="extra DuckDB SQL condition ANDed to the level")
    tf_column: str | None = Field(default=None, description="term-frequency adjust this level on a column")
    tf_minimum_u: float | None = None
    neutral: bool = Field(
        default=False,
        description="weigh 0 (like a null level): e.g. not sharing an optional identifier is no evidence",
    )

    @model_validator(mode="after")
    def _needs(self) -> Level:
        if self.kind in {
            "exact",
            "jaro_winkler",
            "damerau_levenshtein",
            "levenshtein",
            "array_intersect",
        } and (not self.column):
            raise ValueError(f"level {self.label!r}: kind {self.kind} needs `column`")
        if self.kind in {"jaro_winkler", "damerau_levenshtein", "levenshtein"} and self.threshold is None:
            raise ValueError(f"level {self.label!r}: kind {self.kind} needs `threshold`")
        if self.kind == "custom" and not self.sql:
            raise ValueError(f"level {self.label!r}: kind custom needs `sql`")
        if self.kind == "null" and not (self.columns or self.sql):
            raise ValueError(f"level {self.label!r}: kind null needs `columns` or `sql`")
        return self


class Comparison(BaseModel):
    """One comparison (a Splink comparison vector entry) and its ordered levels."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    levels: list[Level]

    @model_validator(mode="after")
    def _shape(self) -> Comparison:
        kinds = [lv.kind for lv in self.levels]
        if kinds.count("else") != 1 or kinds[-1] != "else":
            raise ValueError(f"comparison {self.name!r}: exactly one `else` level, last")
        if "null" in kinds[1:]:
            raise ValueError(f"comparison {self.name!r}: the `null` level must come first")
        return self


class BlockingRule(BaseModel):
    """Equality on columns (a Splink ``block_on``), optionally exploding list columns first."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(min_length=1)
    explode: list[str] = Field(default_factory=list)


class Training(BaseModel):
    """How parameters are estimated: prior by deterministic rules, u by sampling, m by EM."""

    model_config = ConfigDict(extra="forbid")

    prior_rules: list[BlockingRule]
    prior_recall: float = Field(gt=0, le=1)
    u_max_pairs: float = Field(gt=0)
    u_rounds: int = Field(
        default=3,
        ge=0,
        le=20,
        description="rounds re-estimating u on the random pairs, each pair weighted by the model's "
        "probability that it is not a match (removes true matches from u on small data)",
    )
    em_blocking: list[BlockingRule] = Field(min_length=1)
    m_floor: float = Field(
        default=0.01,
        ge=0,
        lt=0.5,
        description="least m of any level: EM on a few thousand pairs cannot show a level never happens "
        "among true matches (people move, clerks mistype), and an m of 1e-90 would veto every other field",
    )


class Thresholds(BaseModel):
    """Match-probability thresholds: >= upper links, [lower, upper) goes to review, below is apart."""

    model_config = ConfigDict(extra="forbid")

    upper: float = Field(gt=0, lt=1)
    lower: float = Field(gt=0, lt=1)
    rationale: str

    @model_validator(mode="after")
    def _order(self) -> Thresholds:
        if self.lower > self.upper:
            raise ValueError("thresholds: lower must not exceed upper")
        return self


class Hubs(BaseModel):
    """Shared contact points: a value held by at least `min_names` distinct names is a hub."""

    model_config = ConfigDict(extra="forbid")

    min_names: int = Field(ge=2)
    columns: list[str] = Field(description="standardized columns whose values are checked for hubs")


class Guard(BaseModel):
    """A decision rule over comparison levels: a pair whose levels meet `when` (every comparison named, at
    one of its levels) and none of `unless` (any comparison at one of its levels) is never linked
    automatically, however high the model scores it: its probability is capped at `max_probability`,
    so it goes to a steward. For evidence the model's independence assumption over-counts (a household
    shares a mobile AND an address)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    rationale: str
    when: dict[str, list[str]] = Field(min_length=1, description="comparison -> level labels; all must hold")
    unless: dict[str, list[str]] = Field(default_factory=dict, description="comparison -> level labels; any")
    max_probability: float = Field(gt=0, lt=1)


class RuleSet(BaseModel):
    """A whole declarative rule set (one entity kind)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    unique_id_column: str = "rid"
    hubs: Hubs
    blocking: list[BlockingRule] = Field(min_length=1)
    comparisons: list[Comparison] = Field(min_length=1)
    training: Training
    thresholds: Thresholds
    guards: list[Guard] = Field(default_factory=list, description="pairs sent to review whatever their score")
    conflict_columns: list[str] = Field(
        default_factory=lambda: ["id_type_std", "id_number_std", "id_valid"],
        description="type, number and validity columns: two valid numbers of one type never cluster",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        names = [c.name for c in self.comparisons]
        if len(set(names)) != len(names):
            raise ValueError("comparison names must be unique")
        return self

    @model_validator(mode="after")
    def _guards_name_levels(self) -> RuleSet:
        labels = {c.name: {lv.label for lv in c.levels if lv.kind != "null"} for c in self.comparisons}
        for guard in self.guards:
            if not self.thresholds.lower <= guard.max_probability < self.thresholds.upper:
                raise ValueError(f"guard {guard.label!r}: max_probability must be in [lower, upper)")
            for name, wanted in (guard.when | guard.unless).items():
                if name not in labels:
                    raise ValueError(f"guard {guard.label!r}: no comparison {name!r}")
                unknown = sorted(set(wanted) - labels[name])
                if unknown or not wanted:
                    raise ValueError(f"guard {guard.label!r}: comparison {name!r} has no level {unknown}")
        return self
