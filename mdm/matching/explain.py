"""Why a pair scored as it did: the prior plus each comparison's level and match weight (a waterfall)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from mdm.matching.features import matching_frame
from mdm.matching.predict import tidy_pairs
from mdm.matching.train import TrainedModel, new_linker


@dataclass(frozen=True)
class Step:
    """One bar of the waterfall: a comparison, the level the pair fell in, and its match weight."""

    comparison: str
    level: str
    match_weight: float


def level_labels(model: TrainedModel) -> dict[str, dict[int, str]]:
    """Per comparison, gamma value -> level label (null level -1, then highest gamma first)."""
    out: dict[str, dict[int, str]] = {}
    for comparison in model.splink_settings["comparisons"]:
        levels = comparison["comparison_levels"]
        labelled: dict[int, str] = {}
        scored = [lv for lv in levels if not lv.get("is_null_level")]
        for lv in levels:
            if lv.get("is_null_level"):
                labelled[-1] = lv.get("label_for_charts", "null")
        for rank, lv in enumerate(scored):
            labelled[len(scored) - 1 - rank] = lv.get("label_for_charts", str(rank))
        out[comparison["output_column_name"]] = labelled
    return out


def explain(pair: dict[str, Any], model: TrainedModel) -> list[Step]:
    """Waterfall of one scored pair (a row of ``predict``'s output as a dict): prior first, then comparisons."""
    labels = level_labels(model)
    lam = model.prior
    steps = [Step("prior", f"λ = {lam:.3g}", math.log2(lam / (1.0 - lam)))]
    for comparison in model.ruleset.comparisons:
        gamma = int(pair[f"gamma_{comparison.name}"])
        label = labels[comparison.name].get(gamma, str(gamma))
        steps.append(Step(comparison.name, label, float(pair[f"mw_{comparison.name}"])))
    held = float(pair.get("mw_guard") or 0.0)
    if held:
        hit = [
            g.label for g in model.ruleset.guards if math.isclose(held, _guard_term(pair, g.max_probability))
        ]
        steps.append(Step("guard", hit[0] if hit else "held for review by a rule-set guard", held))
    return steps


def _guard_term(pair: dict[str, Any], cap: float) -> float:
    """The guard term a guard capping at `cap` gives this pair (to name the guard that bit)."""
    capped = math.log2(cap / (1.0 - cap))
    return capped - (float(pair["match_weight"]) - float(pair["mw_guard"]))


def explain_records(records: pl.DataFrame, rid_a: int, rid_b: int, model: TrainedModel) -> list[Step]:
    """Waterfall for any two records, scored as a full run would (hubs and name frequencies from `records`)."""
    frame = matching_frame(records, model.ruleset)
    linker = new_linker(frame, model.splink_settings)
    rows = {r["rid"]: r for r in frame.filter(pl.col("rid").is_in([rid_a, rid_b])).to_dicts()}
    missing = {rid_a, rid_b} - rows.keys()
    if missing:
        raise KeyError(f"records not found: {sorted(missing)}")
    scored = linker.inference.score_pair(rows[rid_a], rows[rid_b]).as_duckdbpyrelation().pl()
    return explain(tidy_pairs(scored, model).row(0, named=True), model)


def total_weight(steps: list[Step]) -> float:
    """Sum of the waterfall: the pair's match weight."""
    return sum(s.match_weight for s in steps)


def format_waterfall(steps: list[Step]) -> str:
    """Printable waterfall: one line per step, then the total weight and probability."""
    lines = [f"{'comparison':<12} {'level':<58} {'weight':>8}"]
    lines += [f"{s.comparison:<12} {s.level:<58} {s.match_weight:>+8.2f}" for s in steps]
    w = total_weight(steps)
    lines.append(f"{'total':<12} {'match probability ' + format(2**w / (1 + 2**w), '.4f'):<58} {w:>+8.2f}")
    return "\n".join(lines)
