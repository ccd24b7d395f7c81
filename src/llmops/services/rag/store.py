"""The collection in Qdrant, through qdrant-client: every call bounded by a timeout, writes and
searches retried within their deadline."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from .errors import CollectionMissing, DependencyDown, DependencyRejected, describe
from .retry import call_with_deadline
from .settings import Settings

log = logging.getLogger("rag")

# Fixed namespace so re-ingesting the same text yields the same id (idempotent upserts).
ID_NAMESPACE = uuid.UUID("6f1c2a4e-7d43-5b7e-9a35-1c0de11a0b5e")


def point_ids(documents: list[dict[str, Any]]) -> list[int | str]:
    """Each document's own id, else one derived from its text."""
    ids: list[int | str] = []
    for doc in documents:
        given = doc.get("id")
        ids.append(given if given is not None else str(uuid.uuid5(ID_NAMESPACE, doc["text"])))
    return ids


def classify_qdrant(exc: BaseException) -> Exception:
    """Map what qdrant-client raises onto retryable / not retryable / missing."""
    if isinstance(exc, UnexpectedResponse):
        if exc.status_code == 404:
            return CollectionMissing(str(exc))
        if exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429):
            return DependencyDown(f"qdrant answered HTTP {exc.status_code}")
        content = exc.content.decode("utf-8", "replace")[:300] if exc.content else ""
        return DependencyRejected(f"qdrant rejected the request (HTTP {exc.status_code}): {content}")
    # Timeouts, transport errors and anything unforeseen alike: Qdrant may answer on a retry.
    return DependencyDown(describe(exc))


class VectorStore:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.qdrant = AsyncQdrantClient(
            url=settings.qdrant_url,
            prefer_grpc=False,
            check_compatibility=False,
            # Generous on purpose: every call is also cancelled by asyncio.wait_for at the
            # attempt's own (deadline-clipped) timeout, which is the bound that matters.
            timeout=30,
        )

    async def close(self) -> None:
        await self.qdrant.close()

    async def ensure_collection(self, size: int, timeout: float = 5.0) -> None:
        exists = await asyncio.wait_for(self.qdrant.collection_exists(self.s.collection), timeout)
        if exists:
            return
        try:
            await asyncio.wait_for(
                self.qdrant.create_collection(
                    self.s.collection, vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE)
                ),
                timeout,
            )
        except UnexpectedResponse as exc:
            # Another replica (or a retried request) may have created it meanwhile.
            if not await asyncio.wait_for(self.qdrant.collection_exists(self.s.collection), timeout):
                raise DependencyRejected(f"could not create collection {self.s.collection!r}: {exc}") from exc
        log.info("created collection %s (size=%d)", self.s.collection, size)

    async def upsert(
        self, ids: list[int | str], vectors: list[list[float]], documents: list[dict[str, Any]], deadline_at: float
    ) -> None:
        """Write the points and wait for Qdrant's ack, creating the collection if it is missing."""
        size = len(vectors[0])
        points = [
            models.PointStruct(id=pid, vector=vec, payload={"text": d["text"], "metadata": d.get("metadata") or {}})
            for pid, vec, d in zip(ids, vectors, documents)
        ]

        async def upsert(timeout: float) -> None:
            try:
                await self.qdrant.upsert(self.s.collection, points=points, wait=True)
            except UnexpectedResponse as exc:
                if exc.status_code != 404:
                    raise
                await self.ensure_collection(size, timeout)
                await self.qdrant.upsert(self.s.collection, points=points, wait=True)

        await call_with_deadline(
            upsert,
            self.s.retry(max(self.s.qdrant_timeout_s, 5.0), max_attempts=max(self.s.max_attempts, 3)),
            deadline_at=deadline_at,
            classify=classify_qdrant,
            attempts_out=[0],
        )

    async def count(self, timeout: float) -> int:
        try:
            res = await asyncio.wait_for(self.qdrant.count(self.s.collection, exact=True), timeout)
        except UnexpectedResponse as exc:
            if exc.status_code == 404:
                return 0
            raise
        return res.count

    async def search(
        self, vector: list[float], top_k: int, deadline_at: float, attempts_out: list[int], max_attempts: int
    ) -> list[Any]:
        async def once(timeout: float) -> list[Any]:
            res = await self.qdrant.query_points(self.s.collection, query=vector, limit=top_k, with_payload=True)
            return list(res.points)

        return await call_with_deadline(
            once,
            self.s.retry(self.s.qdrant_timeout_s, max_attempts=max_attempts),
            deadline_at=deadline_at,
            classify=classify_qdrant,
            attempts_out=attempts_out,
        )
