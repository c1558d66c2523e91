"""Errors that name file, row and field, and never carry a full identifier."""

from __future__ import annotations

from dataclasses import dataclass


class MdmError(Exception):
    """Base class for every error mdm raises on purpose."""

    exit_code = 1


@dataclass
class SourceError(MdmError):
    """A whole file cannot be read: nothing of it is stored."""

    file: str
    message: str
    locator: str | None = None
    field: str | None = None

    exit_code = 2

    def __str__(self) -> str:
        where = self.file
        if self.locator:
            where += f", {self.locator}"
        if self.field:
            where += f", field {self.field}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class RowReject:
    """One quarantined row: stored apart with its reason, never matched."""

    file: str
    locator: str
    field: str | None
    reason: str
    source_key: str | None = None


class NotFound(MdmError):
    """The task, decision, request, customer or record named does not exist."""

    exit_code = 5


class Conflict(MdmError):
    """The operation clashes with the current state (e.g. a task claimed by another steward): HTTP 409."""

    exit_code = 6
