"""Compile a RuleSet to Splink 5 settings, backend-neutral (Splink renders SQL per backend)."""

from __future__ import annotations

import re
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator
from splink.internals.comparison_creator import ComparisonCreator
from splink.internals.comparison_level_creator import ComparisonLevelCreator

from matching_rules.models import BlockingRule, Comparison, Guard, Level, RuleSet

#: Dialect the rule set's own SQL snippets are written in; Splink translates them for other backends.
BASE_DIALECT = "duckdb"
_SQL_COLUMN = re.compile(r"\b([a-z][a-z0-9_]*)_[lr]\b")


def _base_level(level: Level) -> ComparisonLevelCreator:
    """The Splink level creator for one level, before `also` and configuration."""
    col = level.column or ""
    match level.kind:
        case "null":
            sql = level.sql or " OR ".join(f"{c}_l IS NULL OR {c}_r IS NULL" for c in level.columns)
            return cll.CustomLevel(sql, base_dialect_str=BASE_DIALECT).configure(is_null_level=True)
        case "exact":
            return cll.ExactMatchLevel(col)
        case "jaro_winkler":
            return cll.JaroWinklerLevel(col, float(level.threshold or 0))
        case "damerau_levenshtein":
            return cll.DamerauLevenshteinLevel(col, int(level.threshold or 0))
        case "levenshtein":
            return cll.LevenshteinLevel(col, int(level.threshold or 0))
        case "array_intersect":
            return cll.ArrayIntersectLevel(col, level.min_intersection)
        case "custom":
            return cll.CustomLevel(level.sql or "", base_dialect_str=BASE_DIALECT)
        case _:
            return cll.ElseLevel()


def to_level(level: Level) -> ComparisonLevelCreator:
    """One rule-set level as a configured Splink comparison-level creator."""
    creator = _base_level(level)
    if level.also:
        creator = cll.And(creator, cll.CustomLevel(level.also, base_dialect_str=BASE_DIALECT))
    options: dict[str, Any] = {"label_for_charts": level.label}
    if level.tf_column:
        options["tf_adjustment_column"] = level.tf_column
        options["tf_adjustment_weight"] = 1.0
        if level.kind != "exact":
            options["disable_tf_exact_match_detection"] = True
    if level.tf_minimum_u is not None:
        options["tf_minimum_u_value"] = level.tf_minimum_u
    if level.kind == "null":
        options["is_null_level"] = True
    if level.neutral:
        options.update(m_probability=1.0, u_probability=1.0, fix_m_probability=True, fix_u_probability=True)
    return creator.configure(**options)


def to_comparison(comparison: Comparison) -> ComparisonCreator:
    """A rule-set comparison as a Splink CustomComparison named after it."""
    return cl.CustomComparison(
        comparison_levels=[to_level(lv) for lv in comparison.levels],
        output_column_name=comparison.name,
        comparison_description=comparison.description or comparison.name,
    )


def to_blocking_rule(rule: BlockingRule) -> BlockingRuleCreator:
    """A rule-set blocking rule as a Splink ``block_on``."""
    return block_on(*rule.columns, arrays_to_explode=rule.explode or None)


def to_splink_settings(
    ruleset: RuleSet, probability_two_random_records_match: float = 1e-4
) -> SettingsCreator:
    """Splink settings for deduplicating one table of records with this rule set."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=ruleset.unique_id_column,
        comparisons=[to_comparison(c) for c in ruleset.comparisons],
        blocking_rules_to_generate_predictions=[to_blocking_rule(b) for b in ruleset.blocking],
        probability_two_random_records_match=probability_two_random_records_match,
        retain_matching_columns=True,  # Splink keeps gamma_<cmp> only with the matching columns
        retain_intermediate_calculation_columns=True,
    )


def input_columns(ruleset: RuleSet) -> list[str]:
    """Every input column the compiled settings read (so callers pass exactly those to Splink)."""
    cols: set[str] = {ruleset.unique_id_column}
    for rule in [*ruleset.blocking, *ruleset.training.em_blocking, *ruleset.training.prior_rules]:
        cols.update(rule.columns)
        cols.update(rule.explode)
    for comparison in ruleset.comparisons:
        for level in comparison.levels:
            cols.update(filter(None, [level.column, level.tf_column]))
            cols.update(level.columns)
            cols.update(_SQL_COLUMN.findall(f"{level.sql or ''} {level.also or ''}"))
    return sorted(cols)


def gamma_values(comparison: Comparison) -> dict[str, int]:
    """Level label -> Splink's comparison vector value (non-null levels numbered from the top down)."""
    scored = [lv for lv in comparison.levels if lv.kind != "null"]
    return {lv.label: len(scored) - 1 - rank for rank, lv in enumerate(scored)}


def guard_sql(ruleset: RuleSet, guard: Guard) -> str:
    """A SQL condition on a scored pair's ``gamma_<comparison>`` columns: true when the guard holds."""
    values = {c.name: gamma_values(c) for c in ruleset.comparisons}

    def among(name: str, labels: list[str]) -> str:
        codes = ", ".join(str(values[name][label]) for label in labels)
        return f"gamma_{name} IN ({codes})"

    when = " AND ".join(among(name, labels) for name, labels in guard.when.items())
    if not guard.unless:
        return f"({when})"
    unless = " OR ".join(among(name, labels) for name, labels in guard.unless.items())
    return f"({when}) AND NOT ({unless})"
