"""The stand-in's HTTP app: Qdrant's REST routes for collections and points, and ``main``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import qdrant_edge as qe

from ..common import install_error_handlers
from .errors import ApiError, qdrant_error_body
from .store import Collection, Store
from .wire import (
    check_name,
    json_body,
    parse_point_id,
    parse_points,
    point_json,
    query_request,
    record_json,
    reject_unsupported,
    vector_params,
    with_flag,
)

log = logging.getLogger("qdrant-standin")

TITLE = "qdrant-standin (llmops) - not Qdrant"
VERSION = "1.12.0-standin"


def ok(result: Any, started: float) -> JSONResponse:
    """Qdrant's success envelope, timed from ``started`` (a perf_counter reading)."""
    return JSONResponse({"result": result, "status": "ok", "time": time.perf_counter() - started})


async def on_shard(col: Collection, fn: Callable[[Any], Any]) -> Any:
    """``fn(shard)`` in a worker thread under the collection's lock, its errors as Qdrant words them."""

    def run() -> Any:
        with col.lock:
            try:
                return fn(col.shard)
            except ApiError:
                raise
            except (ValueError, TypeError) as exc:
                raise ApiError(400, f"Wrong input: {exc}") from None
            except Exception as exc:
                # Edge reports bad input (e.g. dimension errors) as plain Exception.
                msg = str(exc)
                if "dimension" in msg.lower():
                    raise ApiError(400, f"Wrong input: {msg}") from None
                raise ApiError(500, f"Service internal error: {msg}") from None

    return await anyio.to_thread.run_sync(run)


def collection_info(col: Collection, info: Any) -> dict[str, Any]:
    """Qdrant's CollectionInfo; all but the counts and vector params are Qdrant's defaults."""
    return {
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": info.indexed_vectors_count,
        "points_count": info.points_count,
        "segments_count": info.segments_count,
        "config": {
            "params": {
                "vectors": {"size": col.size, "distance": col.distance},
                "shard_number": 1,
                "replication_factor": 1,
                "write_consistency_factor": 1,
                "on_disk_payload": True,
            },
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
            "optimizer_config": {
                "deleted_threshold": 0.2,
                "vacuum_min_vector_number": 1000,
                "default_segment_number": 0,
                "flush_interval_sec": 5,
            },
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
        },
        "payload_schema": {},
    }


def _probe_routes(app: FastAPI, store: Store) -> None:
    @app.get("/")
    async def root_info() -> dict[str, str]:
        return {"title": TITLE, "version": VERSION}

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "healthz check passed"

    @app.get("/livez", response_class=PlainTextResponse)
    async def livez() -> str:
        return "livez check passed"

    @app.get("/readyz", response_class=PlainTextResponse)
    async def readyz() -> PlainTextResponse:
        if not store.ready:
            return PlainTextResponse("some shards are not ready", status_code=503)
        return PlainTextResponse("all shards are ready")


def _collection_routes(app: FastAPI, store: Store) -> None:
    @app.get("/collections")
    async def list_collections() -> JSONResponse:
        t = time.perf_counter()
        return ok({"collections": [{"name": n} for n in sorted(store.collections)]}, t)

    @app.put("/collections/{name}")
    async def create_collection(name: str, request: Request) -> JSONResponse:
        t = time.perf_counter()
        check_name(name)
        size, distance = vector_params(await json_body(request))
        await anyio.to_thread.run_sync(store.create, name, size, distance)
        return ok(True, t)

    @app.get("/collections/{name}")
    async def get_collection(name: str) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        info = await on_shard(col, lambda s: s.info())
        return ok(collection_info(col, info), t)

    @app.get("/collections/{name}/exists")
    async def collection_exists(name: str) -> JSONResponse:
        t = time.perf_counter()
        return ok({"exists": name in store.collections}, t)

    @app.delete("/collections/{name}")
    async def delete_collection(name: str) -> JSONResponse:
        t = time.perf_counter()
        check_name(name)
        return ok(await anyio.to_thread.run_sync(store.delete, name), t)


def _point_routes(app: FastAPI, store: Store) -> None:
    @app.put("/collections/{name}/points")
    async def upsert_points(name: str, request: Request, wait: bool = False) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        points = parse_points(await json_body(request), col.size)

        def apply(shard: Any) -> int:
            # update() returns once the operation is in the WAL, so the ack is durable
            # against a process kill whether or not the caller asked to wait.
            shard.update(qe.UpdateOperation.upsert_points(points))
            col.operation_id += 1
            return col.operation_id

        op_id = await on_shard(col, apply)
        return ok({"operation_id": op_id, "status": "completed" if wait else "acknowledged"}, t)

    @app.post("/collections/{name}/points")
    async def retrieve_points(name: str, request: Request) -> JSONResponse:
        """Points by ID, as Qdrant's `get_points`: unknown IDs are left out, not an error."""
        t = time.perf_counter()
        col = store.get(name)
        body = await json_body(request)
        reject_unsupported(body, ("shard_key",))
        raw_ids = body.get("ids")
        if not isinstance(raw_ids, list):
            raise ApiError(400, "Wrong input: `ids` must be a list of point ids")
        ids = [parse_point_id(i) for i in raw_ids]
        # Qdrant's defaults for this endpoint: payload yes, vector no.
        with_payload = with_flag(body.get("with_payload", True), "with_payload")
        with_vector = bool(with_flag(body.get("with_vector"), "with_vector"))
        found = await on_shard(col, lambda s: s.retrieve(ids, with_payload, with_vector))
        return ok([record_json(r, with_vector) for r in found], t)

    @app.post("/collections/{name}/points/count")
    async def count_points(name: str, request: Request) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        body = await json_body(request, required=False)
        reject_unsupported(body, ("filter",))
        n = await on_shard(col, lambda s: s.count(qe.CountRequest(exact=True)))
        return ok({"count": n}, t)


async def _nearest(col: Collection, body: dict[str, Any], vector: Any) -> list[dict[str, Any]]:
    req, with_vector = query_request(body, vector, col.size)
    found = await on_shard(col, lambda s: s.query(req))
    return [point_json(p, with_vector) for p in found]


def _search_routes(app: FastAPI, store: Store) -> None:
    @app.post("/collections/{name}/points/search")
    async def search_points(name: str, request: Request) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        body = await json_body(request)
        if "vector" not in body:
            raise ApiError(400, "Wrong input: `vector` is required")
        vector = body["vector"]
        if isinstance(vector, dict) and "vector" in vector:
            if vector.get("name") not in (None, ""):
                raise ApiError(400, "Wrong input: named vectors are not supported by the qdrant-standin")
            vector = vector["vector"]
        return ok(await _nearest(col, body, vector), t)

    @app.post("/collections/{name}/points/query")
    async def query_points(name: str, request: Request) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        body = await json_body(request)
        query = body.get("query")
        if query is None:
            raise ApiError(400, "Wrong input: `query` (a vector or {\"nearest\": vector}) is required")
        if isinstance(query, dict) and "nearest" in query:
            query = query["nearest"]
        elif isinstance(query, dict):
            raise ApiError(
                400, "Wrong input: only nearest-vector queries are supported by the qdrant-standin"
            )
        return ok({"points": await _nearest(col, body, query)}, t)


def create_app(storage: str | Path | None = None) -> FastAPI:
    """Build the stand-in's ASGI app; storage defaults to ``$QDRANT_STORAGE``."""
    root = Path(storage or os.environ.get("QDRANT_STORAGE", "/qdrant/storage"))
    store = Store(root)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.open()
        log.info("%s %s serving storage %s", TITLE, VERSION, root)
        try:
            yield
        finally:
            store.ready = False
            store.close()

    app = FastAPI(title=TITLE, version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store = store
    install_error_handlers(app, log, body=qdrant_error_body, validation_status=400,
                           validation_prefix="Wrong input", internal_prefix="Service internal error")
    for routes in (_probe_routes, _collection_routes, _point_routes, _search_routes):
        routes(app, store)
    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = os.environ.get("QDRANT_HOST", "0.0.0.0")
    port = int(os.environ.get("QDRANT_PORT", "6333"))
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
