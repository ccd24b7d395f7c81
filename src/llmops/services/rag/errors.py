"""What can go wrong with a dependency, as the retry loop and the routes tell it apart."""

from __future__ import annotations

import asyncio

from ..common import ServiceError


class DependencyDown(Exception):
    """A dependency could not be reached in time; retryable."""


class DependencyRejected(Exception):
    """A dependency answered but refused the request; retrying will not help."""

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


class CollectionMissing(Exception):
    pass


class ApiError(ServiceError):
    """An error answered as ``{"error": ..., **extra}`` with its own headers (e.g. Retry-After)."""


def describe(exc: BaseException) -> str:
    """One line for an exception: its type and the first line of its message."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
