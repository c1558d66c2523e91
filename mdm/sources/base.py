"""The reader contract: every reader turns one file into a frame of native columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from mdm.config import SourceConfig
from mdm.errors import RowReject

LOCATOR = "_locator"  # e.g. "sheet 朝阳支行 row 12", "line 5", "message 17"
ROW_FLAGS = "_flags"  # List[String] of "field:flag", e.g. "id_number:excel_precision_loss"


@dataclass
class ReadResult:
    """What a reader returns: native columns (String or List[String]) plus LOCATOR and ROW_FLAGS.

    Rows that cannot be taken are not in ``frame`` but in ``rejects`` with their reason.
    """

    frame: pl.DataFrame
    rejects: list[RowReject] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


class Reader(Protocol):
    def __call__(self, path: Path, cfg: SourceConfig) -> ReadResult: ...
