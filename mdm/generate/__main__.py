"""`python -m mdm.generate --out DIR --persons N --seed S [--profile hard] [--kinds a,b]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mdm.generate import KINDS, generate


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate, print a one-line summary."""
    ap = argparse.ArgumentParser(prog="python -m mdm.generate", description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="folder for the source files and truth.csv")
    ap.add_argument("--persons", type=int, default=300, help="number of distinct persons")
    ap.add_argument("--seed", type=int, default=7, help="random seed: same seed, same bytes")
    ap.add_argument("--profile", default="sample", help="noise profile in data/profiles.yaml: sample, hard")
    ap.add_argument("--kinds", default=None, help=f"comma-separated subset or 'all' ({','.join(KINDS)})")
    args = ap.parse_args(argv)
    kinds = list(KINDS) if args.kinds == "all" else (args.kinds.split(",") if args.kinds else None)
    t0 = time.perf_counter()
    result = generate(args.out, persons=args.persons, seed=args.seed, profile=args.profile, kinds=kinds)
    print(f"{result} in {time.perf_counter() - t0:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
