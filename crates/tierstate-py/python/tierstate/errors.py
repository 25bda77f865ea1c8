"""tierstate's exceptions: one hierarchy, each with the attributes that say what happened."""

from __future__ import annotations

from typing import Any


class TierstateError(Exception):
    """Base of every tierstate error."""

    def __init__(self, message: str = "", **attrs: Any) -> None:
        super().__init__(message)
        for name, value in attrs.items():
            setattr(self, name, value)


class InvalidInputError(TierstateError, ValueError):
    """Bad input, refused before anything changed. `field` names it."""

    field: str | None = None


class NotFoundError(TierstateError, LookupError):
    """Nothing stored under that id."""

    deployment_id: str | None = None


class AlreadyExistsError(TierstateError):
    """A create over a record that exists; `actual` is its version."""

    deployment_id: str | None = None
    actual: int | None = None


class ConflictError(TierstateError):
    """A compare-and-swap lost: `expected` was not the stored version `actual` (None: absent)."""

    deployment_id: str | None = None
    expected: int | None = None
    actual: int | None = None


class IntegrityError(TierstateError):
    """Stored bytes do not match their checksum (or the engine found damage); never returned."""

    deployment_id: str | None = None
    version: int | None = None


class LockedError(TierstateError):
    """Another process holds the file or the deployment's writer lease."""

    deployment_id: str | None = None
    holder: str | None = None


class SchemaError(TierstateError):
    """The database or a payload is at a schema this build cannot read, or a migration failed."""


class RollbackError(SchemaError):
    """This build is older than what the data was written by allows (rollback_safe_until)."""


class BackendError(TierstateError):
    """The storage engine failed; `retryable` says whether trying again may succeed."""

    retryable: bool = False


__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "ConflictError",
    "IntegrityError",
    "InvalidInputError",
    "LockedError",
    "NotFoundError",
    "RollbackError",
    "SchemaError",
    "TierstateError",
]
