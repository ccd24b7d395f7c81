"""What the stack's FastAPI services share: one error envelope per service, and background tasks
that live exactly as long as the app.

Only FastAPI/Starlette are imported here, because every service image installs them and no more
is common to all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ServiceError(Exception):
    """An error the service answers on purpose: its status, message, extra headers and body fields."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


ErrorBody = Callable[[str, dict[str, Any]], dict[str, Any]]


def plain_error_body(message: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"error": message, **extra}


def install_error_handlers(
    app: FastAPI,
    log: logging.Logger,
    *,
    body: ErrorBody = plain_error_body,
    validation_status: int = 422,
    validation_prefix: str = "invalid request",
    internal_prefix: str = "internal error",
) -> None:
    """Every error leaves the service in its own envelope (`body`), never as a traceback or as
    FastAPI's default shape, so clients parse one format whatever went wrong."""

    def answer(status_code: int, message: str, headers: dict[str, str] | None = None,
               extra: dict[str, Any] | None = None) -> JSONResponse:
        return JSONResponse(status_code=status_code, headers=headers, content=body(message, extra or {}))

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return answer(exc.status_code, exc.message, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(validation_status, f"{validation_prefix}: {exc.errors()}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return answer(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return answer(500, f"{internal_prefix}: {type(exc).__name__}: {exc}")


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, else a 400 in the service's own envelope."""
    try:
        body = await request.json()
    except ValueError:
        raise ServiceError(400, "request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise ServiceError(400, "request body must be a JSON object")
    return body


@contextlib.asynccontextmanager
async def background_tasks(**coros: Coroutine[Any, Any, Any]) -> AsyncIterator[dict[str, asyncio.Task[Any]]]:
    """Run each coroutine as a named task for the block's lifetime; on exit cancel and reap them
    all, so shutdown never leaves a task running nor logs its cancellation as an error."""
    tasks = {name: asyncio.create_task(coro, name=name) for name, coro in coros.items()}
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
