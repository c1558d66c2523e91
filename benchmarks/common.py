"""Shared benchmark plumbing: timing, peak memory in a child process, result files."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUT = Path("bench_out")
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


@dataclass
class Measure:
    """One stage measured: wall seconds, peak resident memory, and what it produced."""

    stage: str
    seconds: float
    peak_mb: float
    records: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process so its peak memory is its own; return its JSON."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def timed(stage: str, fn: Callable[[], int]) -> Measure:
    """Time ``fn`` (which returns a record count) and note the process's peak memory after it."""
    t0 = time.perf_counter()
    n = fn()
    return Measure(stage=stage, seconds=time.perf_counter() - t0, peak_mb=peak_rss_mb(), records=n)


def git_commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or "unknown"


def environment() -> dict[str, Any]:
    """Machine and versions, written with every result."""
    import os

    import duckdb
    import polars
    import splink

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
        "splink": splink.__version__,
        "commit": git_commit(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_result(suite: str, payload: dict[str, Any]) -> Path:
    """One JSON file per run under bench_out/results."""
    folder = OUT / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"{suite}-{stamp}.json"
    body = {"suite": suite, "environment": environment(), **payload}
    path.write_text(
        json.dumps(
            body, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)
        )
    )
    return path
