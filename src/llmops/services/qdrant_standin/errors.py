"""Qdrant's error envelope, so qdrant-client reads the stand-in's errors as it reads Qdrant's."""

from __future__ import annotations

from typing import Any

from ..common import ServiceError


class ApiError(ServiceError):
    """An error answered with Qdrant's envelope ``{"status": {"error": ...}}``."""


def qdrant_error_body(message: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"error": message}, "time": 0.0, **extra}


def not_found(name: str) -> ApiError:
    return ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
