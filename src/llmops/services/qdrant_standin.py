"""qdrant-standin: a stand-in for Qdrant, used only where no real Qdrant image exists.

This is NOT Qdrant. It speaks the small subset of Qdrant's REST API that the llmops
stack uses, with Qdrant's response and error envelopes, and stores data with Qdrant's
own storage engine (``qdrant_edge``: segments plus a write-ahead log), so an upsert
acknowledged with ``wait=true`` survives SIGKILL exactly as it would in Qdrant.

Layout under ``QDRANT_STORAGE``::

    collections/<name>/config.json   the collection's vector params (written atomically)
    collections/<name>/shard/        one EdgeShard

Run: ``python -m llmops.services.qdrant_standin`` (env QDRANT_STORAGE, QDRANT_PORT,
QDRANT_HOST).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import qdrant_edge as qe

from .common import ServiceError, install_error_handlers

log = logging.getLogger("qdrant-standin")

TITLE = "qdrant-standin (llmops) - not Qdrant"
VERSION = "1.12.0-standin"

_DISTANCES: dict[str, Any] = {
    "Cosine": qe.Distance.Cosine,
    "Dot": qe.Distance.Dot,
    "Euclid": qe.Distance.Euclid,
    "Manhattan": qe.Distance.Manhattan,
}
# Qdrant's own rule for collection names, narrowed to what is safe as a directory name.
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
_TOMBSTONE_PREFIX = ".deleted-"


class ApiError(ServiceError):
    """An error answered with Qdrant's envelope ``{"status": {"error": ...}}``."""


def _qdrant_error_body(message: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"error": message}, "time": 0.0, **extra}


def _not_found(name: str) -> ApiError:
    return ApiError(404, f"Not found: Collection `{name}` doesn't exist!")


class Collection:
    """One collection: its persisted params and its open shard.

    Edge shards are driven from worker threads; the lock serialises access to one
    shard because the bindings make no promise about concurrent use.
    """

    def __init__(self, name: str, size: int, distance: str, shard: Any) -> None:
        self.name = name
        self.size = size
        self.distance = distance
        self.shard = shard
        self.lock = threading.Lock()
        self.operation_id = 0

    def edge_config(self) -> Any:
        return _edge_config(self.size, self.distance)


def _edge_config(size: int, distance: str) -> Any:
    return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=size, distance=_DISTANCES[distance]))


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    # A crash mid-write must never leave a half config that blocks the next start.
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Store:
    """All collections under one storage root; create/delete are serialised."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "collections"
        self.collections: dict[str, Collection] = {}
        self.lock = threading.Lock()
        self.ready = False

    def open(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.base.iterdir()):
            if entry.name.startswith(_TOMBSTONE_PREFIX):
                # A delete that crashed after its rename: finish it.
                shutil.rmtree(entry, ignore_errors=True)
                continue
            cfg_path = entry / "config.json"
            if not entry.is_dir() or not cfg_path.exists():
                # A create that crashed before its config was written: never acknowledged.
                log.warning("removing incomplete collection directory %s", entry)
                shutil.rmtree(entry, ignore_errors=True)
                continue
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            size, distance = int(cfg["size"]), str(cfg["distance"])
            shard = qe.EdgeShard.load(str(entry / "shard"), _edge_config(size, distance))
            self.collections[entry.name] = Collection(entry.name, size, distance, shard)
            log.info("loaded collection %s (size=%d, %s)", entry.name, size, distance)
        self.ready = True

    def close(self) -> None:
        with self.lock:
            for col in self.collections.values():
                with col.lock:
                    try:
                        col.shard.flush()
                        col.shard.close()
                    except Exception:  # closing must reach every shard
                        log.exception("closing collection %s failed", col.name)
            self.collections.clear()

    def get(self, name: str) -> Collection:
        col = self.collections.get(name)
        if col is None:
            raise _not_found(name)
        return col

    def create(self, name: str, size: int, distance: str) -> None:
        with self.lock:
            if name in self.collections:
                raise ApiError(400, f"Wrong input: Collection `{name}` already exists!")
            path = self.base / name
            if path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True)
            shard = qe.EdgeShard.create(str(path / "shard"), _edge_config(size, distance))
            # The config is the commit point: without it the directory is discarded at start.
            _write_json_atomic(path / "config.json", {"size": size, "distance": distance})
            self.collections[name] = Collection(name, size, distance, shard)

    def delete(self, name: str) -> bool:
        with self.lock:
            col = self.collections.pop(name, None)
            if col is None:
                return False
            with col.lock:
                col.shard.close()
            tomb = self.base / f"{_TOMBSTONE_PREFIX}{name}-{uuid.uuid4().hex}"
            os.replace(self.base / name, tomb)
            shutil.rmtree(tomb, ignore_errors=True)
            return True


# ---------------------------------------------------------------- input parsing


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name in {".", ".."}:
        raise ApiError(400, f"Wrong input: invalid collection name `{name}`")


def _parse_point_id(raw: Any) -> int | str:
    if isinstance(raw, bool):
        raise ApiError(400, f"Wrong input: point id must be an unsigned integer or UUID, got {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise ApiError(400, f"Wrong input: point id must be an unsigned integer or UUID, got {raw}")
        return raw
    if isinstance(raw, str):
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            raise ApiError(
                400, f"Wrong input: point id must be an unsigned integer or UUID, got {raw!r}"
            ) from None
    raise ApiError(400, f"Wrong input: point id must be an unsigned integer or UUID, got {raw!r}")


def _parse_vector(raw: Any, size: int) -> list[float]:
    # Only the unnamed default vector is supported; Qdrant sends it as a list or as {"": [...]}.
    if isinstance(raw, dict):
        if set(raw) != {""}:
            raise ApiError(400, "Wrong input: named vectors are not supported by the qdrant-standin")
        raw = raw[""]
    if not isinstance(raw, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw
    ):
        raise ApiError(400, "Wrong input: vector must be a list of numbers")
    if len(raw) != size:
        raise ApiError(400, f"Wrong input: Vector dimension error: expected dim: {size}, got {len(raw)}")
    return [float(x) for x in raw]


def _parse_payload(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ApiError(400, "Wrong input: payload must be a JSON object")
    return raw


def _parse_points(body: dict[str, Any], size: int) -> list[Any]:
    if "points" in body:
        items = body["points"]
        if not isinstance(items, list):
            raise ApiError(400, "Wrong input: `points` must be a list")
        points = []
        for item in items:
            if not isinstance(item, dict) or "id" not in item or "vector" not in item:
                raise ApiError(400, "Wrong input: each point needs `id` and `vector`")
            points.append(
                qe.Point(
                    _parse_point_id(item["id"]),
                    _parse_vector(item["vector"], size),
                    _parse_payload(item.get("payload")),
                )
            )
        return points
    if "batch" in body:
        batch = body["batch"]
        if not isinstance(batch, dict):
            raise ApiError(400, "Wrong input: `batch` must be an object")
        ids, vectors = batch.get("ids"), batch.get("vectors")
        if isinstance(vectors, dict):
            raise ApiError(400, "Wrong input: named vectors are not supported by the qdrant-standin")
        payloads = batch.get("payloads") or [None] * len(ids or [])
        if not isinstance(ids, list) or not isinstance(vectors, list) or not isinstance(payloads, list):
            raise ApiError(400, "Wrong input: `batch` needs lists `ids` and `vectors`")
        if not (len(ids) == len(vectors) == len(payloads)):
            raise ApiError(400, "Wrong input: `batch` ids, vectors and payloads differ in length")
        return [
            qe.Point(_parse_point_id(i), _parse_vector(v, size), _parse_payload(p))
            for i, v, p in zip(ids, vectors, payloads)
        ]
    raise ApiError(400, "Wrong input: body needs `points` or `batch`")


def _reject_unsupported(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    # Silently ignoring a filter would return wrong results; refuse instead.
    for key in keys:
        if body.get(key) not in (None, [], {}):
            raise ApiError(400, f"Wrong input: `{key}` is not supported by the qdrant-standin")


def _parse_limit(body: dict[str, Any], default: int) -> tuple[int, int]:
    limit = body.get("limit", default)
    offset = body.get("offset") or 0
    if limit is None:
        limit = default
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ApiError(400, "Wrong input: `limit` must be a positive integer")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ApiError(400, "Wrong input: `offset` must be a non-negative integer")
    return limit, offset


def _with_flag(raw: Any, what: str) -> bool | list[str]:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return raw
    raise ApiError(400, f"Wrong input: `{what}` must be a boolean or a list of field names")


def _point_json(p: Any, with_vector: bool) -> dict[str, Any]:
    pid = p.id
    out: dict[str, Any] = {
        "id": str(pid) if isinstance(pid, uuid.UUID) else pid,
        "version": getattr(p, "version", None),
        "score": getattr(p, "score", None),
        "payload": p.payload,
    }
    if with_vector:
        vec = p.vector
        if isinstance(vec, dict) and set(vec) == {""}:
            vec = vec[""]
        out["vector"] = vec
    else:
        out["vector"] = None
    return out


def _record_json(r: Any, with_vector: bool) -> dict[str, Any]:
    # Qdrant's Record: a scored point without score and version.
    out = _point_json(r, with_vector)
    return {"id": out["id"], "payload": out["payload"], "vector": out["vector"], "shard_key": None,
            "order_value": None}


# ------------------------------------------------------------------------- app


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

    def ok(result: Any, started: float) -> JSONResponse:
        return JSONResponse({"result": result, "status": "ok", "time": time.perf_counter() - started})

    install_error_handlers(app, log, body=_qdrant_error_body, validation_status=400,
                           validation_prefix="Wrong input", internal_prefix="Service internal error")

    async def json_body(request: Request, required: bool = True) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            if required:
                raise ApiError(400, "Wrong input: request body is empty")
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"Wrong input: body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Wrong input: body must be a JSON object")
        return body

    async def on_shard(col: Collection, fn: Callable[[Any], Any]) -> Any:
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

    @app.get("/collections")
    async def list_collections() -> JSONResponse:
        t = time.perf_counter()
        return ok({"collections": [{"name": n} for n in sorted(store.collections)]}, t)

    @app.put("/collections/{name}")
    async def create_collection(name: str, request: Request) -> JSONResponse:
        t = time.perf_counter()
        _check_name(name)
        body = await json_body(request)
        vectors = body.get("vectors")
        if not isinstance(vectors, dict) or "size" not in vectors:
            raise ApiError(
                400,
                "Wrong input: `vectors` must be {\"size\": N, \"distance\": ...}; "
                "named vectors are not supported by the qdrant-standin",
            )
        size, distance = vectors.get("size"), vectors.get("distance", "Cosine")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 65536:
            raise ApiError(400, "Wrong input: `vectors.size` must be an integer in 1..65536")
        if distance not in _DISTANCES:
            raise ApiError(
                400, f"Wrong input: unknown distance {distance!r}; expected one of {sorted(_DISTANCES)}"
            )
        await anyio.to_thread.run_sync(store.create, name, size, distance)
        return ok(True, t)

    @app.get("/collections/{name}")
    async def get_collection(name: str) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        info = await on_shard(col, lambda s: s.info())
        result = {
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
        return ok(result, t)

    @app.get("/collections/{name}/exists")
    async def collection_exists(name: str) -> JSONResponse:
        t = time.perf_counter()
        return ok({"exists": name in store.collections}, t)

    @app.delete("/collections/{name}")
    async def delete_collection(name: str) -> JSONResponse:
        t = time.perf_counter()
        _check_name(name)
        return ok(await anyio.to_thread.run_sync(store.delete, name), t)

    @app.put("/collections/{name}/points")
    async def upsert_points(name: str, request: Request, wait: bool = False) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        body = await json_body(request)
        points = _parse_points(body, col.size)

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
        _reject_unsupported(body, ("shard_key",))
        raw_ids = body.get("ids")
        if not isinstance(raw_ids, list):
            raise ApiError(400, "Wrong input: `ids` must be a list of point ids")
        ids = [_parse_point_id(i) for i in raw_ids]
        # Qdrant's defaults for this endpoint: payload yes, vector no.
        with_payload = _with_flag(body.get("with_payload", True), "with_payload")
        with_vector = bool(_with_flag(body.get("with_vector"), "with_vector"))
        found = await on_shard(col, lambda s: s.retrieve(ids, with_payload, with_vector))
        return ok([_record_json(r, with_vector) for r in found], t)

    async def run_query(col: Collection, body: dict[str, Any], vector: Any) -> list[dict[str, Any]]:
        _reject_unsupported(body, ("filter", "prefetch", "using", "lookup_from"))
        vec = _parse_vector(vector, col.size)
        limit, offset = _parse_limit(body, 10)
        with_payload = _with_flag(body.get("with_payload"), "with_payload")
        with_vector = _with_flag(body.get("with_vector"), "with_vector")
        threshold = body.get("score_threshold")
        if threshold is not None and (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)):
            raise ApiError(400, "Wrong input: `score_threshold` must be a number")
        req = qe.QueryRequest(
            limit=limit,
            offset=offset or None,
            query=qe.Query.Nearest(vec),
            with_payload=with_payload,
            with_vector=bool(with_vector),
            score_threshold=float(threshold) if threshold is not None else None,
        )
        found = await on_shard(col, lambda s: s.query(req))
        return [_point_json(p, bool(with_vector)) for p in found]

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
        return ok(await run_query(col, body, vector), t)

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
        return ok({"points": await run_query(col, body, query)}, t)

    @app.post("/collections/{name}/points/count")
    async def count_points(name: str, request: Request) -> JSONResponse:
        t = time.perf_counter()
        col = store.get(name)
        body = await json_body(request, required=False)
        _reject_unsupported(body, ("filter",))
        n = await on_shard(col, lambda s: s.count(qe.CountRequest(exact=True)))
        return ok({"count": n}, t)

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = os.environ.get("QDRANT_HOST", "0.0.0.0")
    port = int(os.environ.get("QDRANT_PORT", "6333"))
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
