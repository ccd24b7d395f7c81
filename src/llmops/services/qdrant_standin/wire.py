"""The REST wire format: request bodies parsed and checked, points written back in Qdrant's shapes.

Anything the stand-in does not implement (filters, named vectors, prefetch) is refused with a 400
rather than ignored, since ignoring it would return wrong results.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi import Request

import qdrant_edge as qe

from .errors import ApiError
from .store import DISTANCES

# Qdrant's own rule for collection names, narrowed to what is safe as a directory name.
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")


async def json_body(request: Request, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object; an empty one is ``{}`` unless ``required``."""
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


def vector_params(body: dict[str, Any]) -> tuple[int, str]:
    """A new collection's vector size and distance, from ``{"vectors": {"size", "distance"}}``."""
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
    if distance not in DISTANCES:
        raise ApiError(
            400, f"Wrong input: unknown distance {distance!r}; expected one of {sorted(DISTANCES)}"
        )
    return size, distance


def check_name(name: str) -> None:
    if not _NAME_RE.match(name) or name in {".", ".."}:
        raise ApiError(400, f"Wrong input: invalid collection name `{name}`")


def parse_point_id(raw: Any) -> int | str:
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


def parse_vector(raw: Any, size: int) -> list[float]:
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


def parse_payload(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ApiError(400, "Wrong input: payload must be a JSON object")
    return raw


def parse_points(body: dict[str, Any], size: int) -> list[Any]:
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
                    parse_point_id(item["id"]),
                    parse_vector(item["vector"], size),
                    parse_payload(item.get("payload")),
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
            qe.Point(parse_point_id(i), parse_vector(v, size), parse_payload(p))
            for i, v, p in zip(ids, vectors, payloads)
        ]
    raise ApiError(400, "Wrong input: body needs `points` or `batch`")


def reject_unsupported(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    # Silently ignoring a filter would return wrong results; refuse instead.
    for key in keys:
        if body.get(key) not in (None, [], {}):
            raise ApiError(400, f"Wrong input: `{key}` is not supported by the qdrant-standin")


def parse_limit(body: dict[str, Any], default: int) -> tuple[int, int]:
    limit = body.get("limit", default)
    offset = body.get("offset") or 0
    if limit is None:
        limit = default
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ApiError(400, "Wrong input: `limit` must be a positive integer")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ApiError(400, "Wrong input: `offset` must be a non-negative integer")
    return limit, offset


def with_flag(raw: Any, what: str) -> bool | list[str]:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return raw
    raise ApiError(400, f"Wrong input: `{what}` must be a boolean or a list of field names")


def point_json(p: Any, with_vector: bool) -> dict[str, Any]:
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


def record_json(r: Any, with_vector: bool) -> dict[str, Any]:
    # Qdrant's Record: a scored point without score and version.
    out = point_json(r, with_vector)
    return {"id": out["id"], "payload": out["payload"], "vector": out["vector"], "shard_key": None,
            "order_value": None}


def query_request(body: dict[str, Any], vector: Any, size: int) -> tuple[Any, bool]:
    """A nearest-vector search as qdrant-edge takes it, and whether the vectors are asked for."""
    reject_unsupported(body, ("filter", "prefetch", "using", "lookup_from"))
    vec = parse_vector(vector, size)
    limit, offset = parse_limit(body, 10)
    with_payload = with_flag(body.get("with_payload"), "with_payload")
    with_vector = with_flag(body.get("with_vector"), "with_vector")
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
    return req, bool(with_vector)
