"""RagService: one app's dependencies, its startup, and the query and ingest flows over them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.responses import JSONResponse

from .breaker import CircuitBreaker, now_iso
from .corpus import DEMO_CORPUS
from .embedding import EmbeddingClient
from .errors import ApiError, CollectionMissing, DependencyDown, DependencyRejected, describe
from .generation import generate_answer
from .health import HealthWatcher
from .settings import Settings
from .store import VectorStore, point_ids

log = logging.getLogger("rag")


@dataclass
class QueryRun:
    """One query's clock and attempt counters, shared by its answer, its errors and /health."""

    deadline_s: float
    started: float = field(default_factory=time.monotonic)
    embed_attempts: list[int] = field(default_factory=lambda: [0])
    attempts: list[int] = field(default_factory=lambda: [0])

    @property
    def deadline_at(self) -> float:
        return self.started + self.deadline_s

    def latency_s(self) -> float:
        return round(time.monotonic() - self.started, 4)

    def summary(self, status: int, error: str | None, hits: int | None) -> dict[str, Any]:
        """What /health shows as ``last_query``."""
        return {
            "at": now_iso(),
            "status": status,
            "attempts": self.attempts[0],
            "embed_attempts": self.embed_attempts[0],
            "latency_s": self.latency_s(),
            "hits": hits,
            "error": error,
        }


def _hit(point: Any) -> dict[str, Any]:
    payload = point.payload or {}
    return {"id": point.id, "score": point.score, "text": payload.get("text", ""), "metadata": payload.get("metadata", {})}


class RagService:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset_s)
        self.store = VectorStore(settings)
        # Shared by embedding and generation calls; /health's probes have a pool of their own.
        self.http = httpx.AsyncClient(timeout=settings.embedding_timeout_s)
        self.embedding = EmbeddingClient(settings, self.http)
        self.monitor = HealthWatcher(settings)
        self.corpus_ready = False
        self.startup_error: str | None = None
        self.startup_attempts = 0
        self.last_query: dict[str, Any] | None = None
        self.vector_size: int | None = None

    async def close(self) -> None:
        await self.store.close()
        await self.http.aclose()
        await self.monitor.close()

    def watchers(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The background tasks that keep /health's readings fresh, by task name."""
        return self.monitor.watchers()

    def retry_policy(self) -> dict[str, Any]:
        return {
            "deadline_s": self.s.query_deadline_s,
            "max_attempts": self.s.max_attempts,
            "backoff_initial_s": self.s.backoff_initial_s,
            "backoff_max_s": self.s.backoff_max_s,
            "per_attempt_timeout_s": self.s.qdrant_timeout_s,
        }

    async def health(self) -> dict[str, Any]:
        checks = await self.monitor.checks()
        q_ok, e_ok = checks["qdrant"]["ok"], checks["embedding"]["ok"]
        errors = {name: c["error"] for name, c in checks.items() if c["error"] and not c["ok"]}
        if self.startup_error:
            errors["startup"] = self.startup_error
        return {
            "qdrant": q_ok,
            "embedding": e_ok,
            "status": "ok" if q_ok and e_ok else "degraded",
            "collection": self.s.collection,
            "corpus_ready": self.corpus_ready,
            "breaker": self.breaker.snapshot(),
            "retry_policy": self.retry_policy(),
            "health_policy": self.monitor.policy(),
            "checks": checks,
            "last_query": self.last_query,
            "errors": errors,
        }

    # ---- collection and ingest

    async def ingest(self, documents: list[dict[str, Any]], deadline_s: float | None = None) -> list[int | str]:
        deadline_at = time.monotonic() + (deadline_s or self.s.ingest_deadline_s)
        ids = point_ids(documents)
        attempts = [0]
        vectors: list[list[float]] = []
        for i in range(0, len(documents), 64):
            chunk = [d["text"] for d in documents[i : i + 64]]
            vectors.extend(await self.embedding.embed(chunk, deadline_at, attempts))
        await self.store.upsert(ids, vectors, documents, deadline_at)
        return ids

    async def count(self, timeout: float) -> int:
        return await self.store.count(timeout)

    async def prepare(self) -> None:
        """Ensure the collection and the demo corpus, retrying until the dependencies answer."""
        delay = 0.5
        while True:
            self.startup_attempts += 1
            try:
                probe = await self.embedding.embed(["dimension probe"], time.monotonic() + 10.0, [0])
                self.vector_size = len(probe[0])
                await self.store.ensure_collection(self.vector_size)
                if self.s.demo_corpus and await self.store.count(5.0) == 0:
                    await self.ingest(DEMO_CORPUS)
                    log.info("demo corpus ingested (%d documents)", len(DEMO_CORPUS))
                self.corpus_ready = True
                self.startup_error = None
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep trying; the error is visible on /health
                self.startup_error = f"startup attempt {self.startup_attempts}: {describe(exc)}"
                log.warning("%s; retrying in %.1fs", self.startup_error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ---- query

    def _unavailable(self, run: QueryRun, what: str, exc: Exception) -> ApiError:
        retry_after = self.breaker.retry_after_s()
        error = f"{what} unavailable: {exc}"
        self.last_query = run.summary(503, error, None)
        return ApiError(
            503,
            error,
            headers={"Retry-After": str(retry_after)},
            attempts=run.attempts[0],
            embed_attempts=run.embed_attempts[0],
            deadline_s=self.s.query_deadline_s,
            latency_s=run.latency_s(),
        )

    async def _embed_question(self, run: QueryRun, question: str) -> list[float]:
        try:
            return (await self.embedding.embed([question], run.deadline_at, run.embed_attempts))[0]
        except DependencyDown as exc:
            raise self._unavailable(run, "embedding service", exc) from exc
        except DependencyRejected as exc:
            self.last_query = run.summary(502, str(exc), None)
            raise ApiError(502, str(exc), embed_attempts=run.embed_attempts[0]) from exc

    async def _search(self, run: QueryRun, vector: list[float], top_k: int) -> list[Any]:
        """The nearest points, telling the breaker how Qdrant did."""
        # While open, one attempt only: an outage must not cost every caller the full deadline.
        max_attempts = 1 if self.breaker.current() == "open" else self.s.max_attempts
        try:
            points = await self.store.search(vector, top_k, run.deadline_at, run.attempts, max_attempts)
        except CollectionMissing:
            points = []
            self.breaker.record_success()
        except DependencyDown as exc:
            self.breaker.record_failure(str(exc))
            raise self._unavailable(run, "vector store", exc) from exc
        except DependencyRejected as exc:
            # Qdrant is up and answering, so the breaker's view of its health is "ok".
            self.breaker.record_success()
            self.last_query = run.summary(502, str(exc), None)
            raise ApiError(502, str(exc), attempts=run.attempts[0]) from exc
        else:
            self.breaker.record_success()
        return points

    async def query(self, question: str, top_k: int, generate: bool) -> JSONResponse:
        run = QueryRun(self.s.query_deadline_s)
        vector = await self._embed_question(run, question)
        hits = [_hit(p) for p in await self._search(run, vector, top_k)]
        body: dict[str, Any] = {
            "hits": hits,
            "attempts": run.attempts[0],
            "embed_attempts": run.embed_attempts[0],
            "latency_s": 0.0,
            "answer": None,
        }
        if generate:
            answer, answer_error = await generate_answer(self.http, self.s, question, hits)
            body["answer"] = answer
            if answer_error:
                body["answer_error"] = answer_error
        body["latency_s"] = run.latency_s()
        self.last_query = run.summary(200, None, len(hits))
        return JSONResponse(body)
