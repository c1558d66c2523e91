"""Ingest: find each source's files, read, map, guard, standardize and store them as one batch."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mdm.compliance.legal import check_legal_basis, declaration
from mdm.config import SourceConfig
from mdm.errors import MdmError, RowReject, SourceError
from mdm.schema import RAW_SCALAR_FIELDS, RAW_SCHEMA
from mdm.sources import reader_for
from mdm.sources.mapping import map_columns
from mdm.store.store import BatchResult, Store

#: Longest value accepted per raw field; longer rows are quarantined (a 10,000-character name is not a name).
MAX_LENGTH: dict[str, int] = {"name": 100, "name_alt": 100, "address": 300, "note": 4000}
DEFAULT_MAX_LENGTH = 200


@dataclass
class SourceRead:
    """One source's files read and mapped, before standardization."""

    cfg: SourceConfig
    files: list[Path]
    raw: pl.DataFrame
    rejects: list[RowReject] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


def _matches(rel: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern)


def discover(
    paths: Sequence[Path], sources: dict[str, SourceConfig], source: str | None = None
) -> tuple[dict[str, list[Path]], list[Path]]:
    """Files per configured source, and the files no source claims.

    A folder is searched recursively; each file goes to the source whose ``pattern`` matches its path
    relative to the folder (``mail_files/*.eml``) or its name. ``source`` forces every file to one source.
    """
    if source is not None and source not in sources:
        raise MdmError(f"unknown source {source!r}; configured: {', '.join(sorted(sources))}")
    found: dict[str, list[Path]] = {}
    unclaimed: list[Path] = []
    for root in paths:
        if not root.exists():
            raise MdmError(f"{root}: no such file or folder")
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.name.startswith(".") or path.name.lower() in {"readme.md", "truth.csv"}:
                continue
            rel = path.relative_to(root).as_posix() if root.is_dir() else path.name
            names = [source] if source else [n for n, c in sources.items() if _matches(rel, c.pattern)]
            if not names:
                unclaimed.append(path)
                continue
            found.setdefault(names[0], []).append(path)
    return found, unclaimed


def guard_rows(raw: pl.DataFrame, file_of: str) -> tuple[pl.DataFrame, list[RowReject]]:
    """Quarantine rows without a key or with absurdly long values; name file, row and field."""
    problems = [
        pl.when(pl.col("source_key").is_null() | (pl.col("source_key") == "")).then(
            pl.lit("source_key\tthe record has no key")
        )
    ]
    for name in RAW_SCALAR_FIELDS:
        limit = MAX_LENGTH.get(name, DEFAULT_MAX_LENGTH)
        problems.append(
            pl.when(pl.col(name).str.len_chars() > limit).then(
                pl.lit(f"{name}\tvalue longer than {limit} characters (")
                + pl.col(name).str.len_chars().cast(pl.String)
                + pl.lit(")")
            )
        )
    checked = raw.with_columns(pl.coalesce(problems).alias("_problem"))
    bad = checked.filter(pl.col("_problem").is_not_null())
    rejects = [
        RowReject(
            file=row["file"] or file_of,
            locator=row["locator"] or "",
            field=row["_problem"].split("\t")[0],
            reason=row["_problem"].split("\t")[1],
            source_key=row["source_key"],
        )
        for row in bad.select("file", "locator", "_problem", "source_key").iter_rows(named=True)
    ]
    return checked.filter(pl.col("_problem").is_null()).drop("_problem"), rejects


def check_unique_keys(raw: pl.DataFrame, source: str) -> None:
    """Refuse a delivery whose natural key repeats: the extract is broken, and guessing would lose data."""
    dup = (
        raw.group_by("source_key")
        .agg(pl.col("file").first(), pl.col("locator").alias("where"), pl.len())
        .filter(pl.col("len") > 1)
    )
    if dup.height:
        first = dup.sort("source_key").row(0, named=True)
        raise SourceError(
            first["file"],
            f"natural key repeats in {dup.height} key(s) of source {source!r}; "
            f"first at {', '.join(first['where'][:3])}",
            field="source_key",
        )


def read_source(cfg: SourceConfig, files: Sequence[Path]) -> SourceRead:
    """Read and map every file of one source; a file that cannot be read raises SourceError."""
    reader = reader_for(cfg.format)
    frames: list[pl.DataFrame] = []
    rejects: list[RowReject] = []
    meta: dict[str, str] = {}
    for path in files:
        try:
            result = reader(path, cfg)
        except SourceError:
            raise
        except MdmError:
            raise
        except Exception as exc:
            raise SourceError(str(path), f"unreadable as {cfg.format}: {type(exc).__name__}") from exc
        mapped = map_columns(result.frame, cfg, str(path))
        kept, bad = guard_rows(mapped, str(path))
        frames.append(kept)
        rejects.extend(result.rejects)
        rejects.extend(bad)
        meta.update(result.meta)
    raw = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=RAW_SCHEMA)
    check_unique_keys(raw, cfg.name)
    return SourceRead(cfg=cfg, files=list(files), raw=raw, rejects=rejects, meta=meta)


def standardize(raw: pl.DataFrame) -> pl.DataFrame:
    """Standardized frame for a raw canonical frame (see mdm.standardize.pipeline)."""
    from mdm.standardize.pipeline import standardize as run

    return run(raw)


def ingest_paths(
    store: Store,
    paths: Sequence[Path],
    sources: dict[str, SourceConfig],
    source: str | None = None,
) -> tuple[list[BatchResult], list[Path]]:
    """Ingest every file found under ``paths``: one batch per source, each in its own transaction.

    A source without a legal declaration (PIPL art. 13) refuses the whole ingest before anything is read.
    """
    found, unclaimed = discover(paths, sources, source)
    if not found:
        raise MdmError(f"no file under {', '.join(map(str, paths))} matches a configured source")
    check_legal_basis(sources[name] for name in found)
    reads = [read_source(sources[name], files) for name, files in sorted(found.items())]
    results = []
    for read in reads:
        std = standardize(read.raw)
        results.append(
            store.ingest_batch(
                read.cfg.name,
                read.files,
                std,
                read.rejects,
                extract_kind=read.cfg.extract,
                extract_date=read.meta.get("extract_date"),
                trust_rank=read.cfg.trust_rank,
                legal_basis=declaration(read.cfg),
            )
        )
    return results, unclaimed


def load_folder(path: Path, sources: dict[str, SourceConfig] | None = None) -> pl.DataFrame:
    """Standardized records of every source under ``path``, without a store; ``rid`` is the row number.

    For experiments and benchmarks that need the matching input without persisting anything.
    """
    from mdm.config import load_sources

    cfgs = sources or load_sources()
    found, _ = discover([path], cfgs)
    frames = [standardize(read_source(cfgs[n], f).raw) for n, f in sorted(found.items())]
    out = pl.concat(frames, how="vertical")
    return out.with_row_index("rid", offset=1).with_columns(pl.col("rid").cast(pl.Int64))


__all__ = ["RAW_SCHEMA", "discover", "ingest_paths", "load_folder", "read_source"]
