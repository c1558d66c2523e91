"""DDL of the record store, derived from the canonical schema so the two cannot drift."""

from __future__ import annotations

import polars as pl

from mdm.schema import FLAGS, RAW_FIELDS, RAW_SCHEMA, STANDARD_SCHEMA


def duck_type(dtype: object) -> str:
    """DuckDB column type for a polars dtype of the canonical schema."""
    if isinstance(dtype, pl.List):
        return duck_type(dtype.inner) + "[]"
    mapping = {pl.String: "VARCHAR", pl.Boolean: "BOOLEAN", pl.Date: "DATE", pl.Int64: "BIGINT"}
    for kind, name in mapping.items():
        if dtype == kind:
            return name
    raise TypeError(f"no DuckDB type for {dtype}")


#: Record columns stored per version (provenance + raw + standardized + flags).
RECORD_COLUMNS: dict[str, pl.DataType] = {
    "file": pl.String(),
    "locator": pl.String(),
    **{f: RAW_SCHEMA[f] for f in RAW_FIELDS},
    **STANDARD_SCHEMA,
    FLAGS: pl.List(pl.String()),
}

_record_cols = ",\n    ".join(f'"{c}" {duck_type(t)}' for c, t in RECORD_COLUMNS.items())

DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS batch_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS rid_seq START 1",
    """CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY,
    source VARCHAR NOT NULL,
    files VARCHAR[] NOT NULL,
    file_sha256 VARCHAR[] NOT NULL,
    extract_kind VARCHAR NOT NULL,
    extract_date VARCHAR,
    trust_rank INTEGER,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    n_read BIGINT, n_new BIGINT, n_changed BIGINT, n_unchanged BIGINT,
    n_ended BIGINT, n_rejected BIGINT
)""",
    "ALTER TABLE batches ADD COLUMN IF NOT EXISTS legal_basis VARCHAR",
    """CREATE TABLE IF NOT EXISTS record_keys (
    rid BIGINT PRIMARY KEY,
    source VARCHAR NOT NULL,
    source_key VARCHAR NOT NULL,
    first_batch INTEGER NOT NULL,
    UNIQUE (source, source_key)
)""",
    f"""CREATE TABLE IF NOT EXISTS records (
    rid BIGINT NOT NULL,
    version INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    source_key VARCHAR NOT NULL,
    batch_id INTEGER NOT NULL,
    content_hash VARCHAR NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    ended BOOLEAN NOT NULL DEFAULT false,
    {_record_cols},
    PRIMARY KEY (rid, version)
)""",
    """CREATE TABLE IF NOT EXISTS rejects (
    batch_id INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    locator VARCHAR NOT NULL,
    field VARCHAR,
    reason VARCHAR NOT NULL,
    source_key VARCHAR
)""",
    """CREATE OR REPLACE VIEW current_records AS
    SELECT * FROM records
    QUALIFY row_number() OVER (PARTITION BY rid ORDER BY version DESC) = 1 AND NOT ended""",
]
