"""The rag HTTP API: /health, /query, /ingest, /stats and /config, and the server's entry point."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..common import background_tasks, install_error_handlers, json_object
from .errors import ApiError, DependencyDown, DependencyRejected, describe
from .service import RagService
from .settings import Settings

log = logging.getLogger("rag")


def _document_id(pid: Any, i: int) -> int | str | None:
    """A document's id as Qdrant takes it: an unsigned integer, a canonical UUID, or none."""
    if pid is None or (isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0):
        return pid
    if isinstance(pid, str):
        try:
            return str(uuid.UUID(pid))
        except ValueError:
            pass
    raise ApiError(422, f"`documents[{i}].id` must be an unsigned integer or a UUID")


def validate_documents(body: dict[str, Any]) -> list[dict[str, Any]]:
    """/ingest's documents, each as ``{"text", "metadata", "id"}``; else a 422."""
    docs = body.get("documents")
    if not isinstance(docs, list) or not docs:
        raise ApiError(422, "`documents` must be a non-empty list")
    if len(docs) > 1000:
        raise ApiError(422, f"`documents` has {len(docs)} items; the limit is 1000")
    out = []
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise ApiError(422, f"`documents[{i}]` must be an object")
        text = d.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(422, f"`documents[{i}].text` must be a non-empty string")
        meta = d.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ApiError(422, f"`documents[{i}].metadata` must be an object")
        out.append({"text": text, "metadata": meta, "id": _document_id(d.get("id"), i)})
    return out


def validate_query(body: dict[str, Any]) -> tuple[str, int, bool]:
    """/query's question, top_k and generate flag; else a 422."""
    question = body.get("query")
    if not isinstance(question, str) or not question.strip():
        raise ApiError(422, "`query` must be a non-empty string")
    top_k = body.get("top_k", 3)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 100:
        raise ApiError(422, "`top_k` must be an integer in 1..100")
    generate = body.get("generate", False)
    if not isinstance(generate, bool):
        raise ApiError(422, "`generate` must be a boolean")
    return question, top_k, generate


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the rag app; settings default to the environment."""
    cfg = settings or Settings.from_env()
    holder: dict[str, RagService] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = RagService(cfg)
        holder["svc"] = svc
        app.state.rag = svc
        try:
            async with background_tasks(**{"rag-prepare": svc.prepare(), **svc.watchers()}):
                yield
        finally:
            await svc.close()

    app = FastAPI(title="llmops rag", lifespan=lifespan, docs_url=None, redoc_url=None)

    install_error_handlers(app, log)

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(await holder["svc"].health())

    @app.post("/query")
    async def query(request: Request) -> JSONResponse:
        question, top_k, generate = validate_query(await json_object(request))
        return await holder["svc"].query(question, top_k, generate)

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        docs = validate_documents(await json_object(request))
        try:
            ids = await holder["svc"].ingest(docs)
        except DependencyDown as exc:
            raise ApiError(503, f"ingest failed, a dependency is unavailable: {exc}", headers={"Retry-After": "2"}) from exc
        except DependencyRejected as exc:
            raise ApiError(502, f"ingest failed: {exc}") from exc
        return JSONResponse({"ingested": len(ids), "ids": ids})

    @app.get("/stats")
    async def stats() -> JSONResponse:
        try:
            points: int | None = await holder["svc"].count(cfg.qdrant_timeout_s)
            error = None
        except Exception as exc:  # stats must answer even while Qdrant is down
            points, error = None, f"vector store unavailable: {describe(exc)}"
        body: dict[str, Any] = {"collection": cfg.collection, "points": points}
        if error:
            body["error"] = error
        return JSONResponse(body)

    @app.get("/config")
    async def config() -> JSONResponse:
        data = asdict(cfg)
        data["gateway_key"] = "***" if cfg.gateway_key else ""
        return JSONResponse(data)

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    # httpx logs every request at INFO, which would drown the log during an outage.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    host = os.environ.get("RAG_HOST", "0.0.0.0")
    port = int(os.environ.get("RAG_PORT", "8002"))
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")
