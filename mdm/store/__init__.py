"""The store: one object owns the DuckDB connection and every SQL statement that writes."""

from mdm.store.store import Store, StoreError

__all__ = ["Store", "StoreError"]
