"""Seeded synthetic source files of every kind, with truth: the project's own test and demo data.

`generate(out_dir, persons, seed)` draws a population (mdm.generate.persons), places each person in
one or more sources with duplicates, corrupts every record (mdm.generate.noise) and writes each source
in its native format (mdm.generate.writers) plus `truth.csv` (`source,source_key,person_id`).
Rates live in `data/profiles.yaml`; the same seed gives byte-identical files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mdm.generate import writers
from mdm.generate.noise import render
from mdm.generate.persons import build_advisors, build_population
from mdm.generate.tables import Tables, load_profile, load_tables

Writer = Callable[[Path, pl.DataFrame, np.random.Generator, Tables, dict[str, Any]], pl.DataFrame]

#: kind -> (file or folder name, writer). The first five are the shared sample's kinds.
KINDS: dict[str, tuple[str, Writer]] = {
    "branch_crm": ("branch_crm.xlsx", writers.write_branch_crm),
    "advisor_mail": ("advisor_mail.mbox", writers.write_mbox),
    "advisor_contacts": ("advisor_contacts.vcf", writers.write_vcf),
    "core_banking": ("core_banking.dat", writers.write_core_banking),
    "wealth_app": ("wealth_app.jsonl", writers.write_wealth_app),
    "outlook_contacts": ("outlook_contacts.csv", writers.write_outlook),
    "mail_files": ("mail_files", writers.write_eml),
    "card_system": ("card_system.txt", writers.write_card_system),
}
SAMPLE_KINDS: tuple[str, ...] = (
    "branch_crm",
    "advisor_mail",
    "advisor_contacts",
    "core_banking",
    "wealth_app",
)


@dataclass(frozen=True)
class GenerateResult:
    """What was written: record counts per source, the number of persons, the files."""

    out_dir: Path
    persons: int
    counts: dict[str, int]
    files: list[Path] = field(default_factory=list)

    @property
    def records(self) -> int:
        """All records written, over all sources."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        per = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"{self.records} records of {self.persons} persons ({per})"


def assign_records(
    n: int, rates: dict[str, float], dup: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Person indices per source: every person gets one home source, then sources fill to their rate.

    A share `dup` of each source repeats persons already in it (duplicates within a source).
    """
    kinds = list(rates)
    p = np.array([rates[k] for k in kinds], dtype=float)
    home = rng.choice(len(kinds), n, p=p / p.sum())
    out: dict[str, np.ndarray] = {}
    for i, kind in enumerate(kinds):
        target = max(1, round(rates[kind] * n))
        base = np.flatnonzero(home == i)
        others = np.flatnonzero(home != i)
        n_dup = round(target * dup)
        n_extra = min(max(target - len(base) - n_dup, 0), len(others))
        members = np.concatenate([base, rng.choice(others, n_extra, replace=False)])
        if len(members) == 0:
            members = rng.integers(0, n, 1)
        idx = np.concatenate([members, rng.choice(members, n_dup)])
        out[kind] = rng.permutation(idx)
    return out


def generate(
    out_dir: Path,
    persons: int,
    seed: int,
    profile: str = "sample",
    kinds: Sequence[str] | None = None,
) -> GenerateResult:
    """Write the requested source files (default: the sample's five kinds) and `truth.csv` into `out_dir`."""
    chosen = list(kinds) if kinds else list(SAMPLE_KINDS)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    if persons < 1:
        raise ValueError("persons must be at least 1")
    prof = load_profile(profile)
    tables = load_tables()
    root = np.random.SeedSequence(seed)
    pop_seq, adv_seq, assign_seq, *kind_seqs = root.spawn(3 + len(KINDS))
    pop = build_population(persons, np.random.default_rng(pop_seq), tables, prof["population"])
    adv_rng = np.random.default_rng(adv_seq)
    advisors = build_advisors(adv_rng, persons, tables, prof["population"])
    pop = pop.with_columns(pl.Series("adv_idx", adv_rng.integers(0, advisors.height, persons)))
    rates = {k: float(prof["sources"][k]) for k in chosen}
    members = assign_records(
        persons, rates, float(prof["duplicate_within_source"]), np.random.default_rng(assign_seq)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    truths: list[pl.DataFrame] = []
    counts: dict[str, int] = {}
    files: list[Path] = []
    for kind, seq in zip(KINDS, kind_seqs, strict=True):
        if kind not in chosen:
            continue
        rng = np.random.default_rng(seq)
        rec = pop[members[kind]]
        rec = pl.concat([rec, advisors.drop("sex", "surname", "given")[rec["adv_idx"]]], how="horizontal")
        rec = render(rec, rng, tables, prof["noise"])
        name, writer = KINDS[kind]
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        truths.append(writer(target, rec, rng, tables, prof["noise"]))
        counts[kind] = rec.height
        files.append(target)
    pl.concat(truths).write_csv(out_dir / "truth.csv")
    files.append(out_dir / "truth.csv")
    return GenerateResult(out_dir=out_dir, persons=persons, counts=counts, files=files)


__all__ = ["KINDS", "SAMPLE_KINDS", "GenerateResult", "assign_records", "generate"]
