"""Readers, one per source file format, looked up by the format a source configuration names."""

from __future__ import annotations

from importlib import import_module

from mdm.sources.base import Reader, ReadResult

#: format -> (module, function); imported on first use so one broken reader cannot break the others.
READERS: dict[str, tuple[str, str]] = {
    "excel": ("mdm.sources.excel", "read_excel"),
    "fixed_width": ("mdm.sources.fixed_width", "read_fixed_width"),
    "delimited": ("mdm.sources.delimited", "read_delimited"),
    "jsonl": ("mdm.sources.jsonl", "read_jsonl"),
    "mbox": ("mdm.sources.mail", "read_mbox"),
    "eml": ("mdm.sources.mail", "read_eml"),
    "vcard": ("mdm.sources.vcard", "read_vcard"),
    "outlook_csv": ("mdm.sources.outlook", "read_outlook_csv"),
}


def reader_for(fmt: str) -> Reader:
    """The reader function for a configured format."""
    module, func = READERS[fmt]
    reader: Reader = getattr(import_module(module), func)
    return reader


__all__ = ["READERS", "ReadResult", "reader_for"]
