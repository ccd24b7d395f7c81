"""rag: retrieval over Qdrant with bounded retries, a circuit breaker and a fast /health.

Guarantees the llmops checks rely on:

* ``GET /health`` answers at once whatever Qdrant does (stopped, paused, hung): it
  reads the state a background watcher keeps per dependency, and never waits on a
  dependency itself. It always returns HTTP 200 (the body says ``degraded``; the
  container itself is alive). A dependency reads as down when its latest probe failed,
  or when the probe in flight has gone unanswered for ``health_probe_timeout_s``; so
  the reading lags the truth by at most ``health_interval_s + health_probe_timeout_s``
  (the body's ``health_policy.max_lag_s``), and a slow but alive dependency whose
  answer arrives later reads as up again.
* ``POST /query`` retries the vector search with tenacity (exponential backoff with
  jitter), bounded by both an attempt count and a total deadline; each attempt's
  timeout is clipped to what is left of the deadline, so a hung Qdrant cannot hold a
  request past it. Failure is a 503 with ``Retry-After``, never a 500.
* A missing or empty collection is an empty result, not an error.

Run: ``python -m llmops.services.rag``; configuration is read from the environment
(see ``Settings.from_env``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .common import ServiceError, background_tasks, install_error_handlers, json_object

log = logging.getLogger("rag")

T = TypeVar("T")

# Fixed namespace so re-ingesting the same text yields the same id (idempotent upserts).
ID_NAMESPACE = uuid.UUID("6f1c2a4e-7d43-5b7e-9a35-1c0de11a0b5e")


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class Settings:
    qdrant_url: str = "http://qdrant:6333"
    embedding_url: str = "http://embedding:8003"
    embedding_model: str = ""          # sent as `model` when set; llama-server serves one model
    gateway_url: str = "http://api-gateway:4000"
    gateway_key: str = ""
    gateway_model: str = ""             # the alias to generate with (GATEWAY_MODEL); none: no generation
    gateway_timeout_s: float = 10.0
    collection: str = "docs"
    query_deadline_s: float = 3.0
    max_attempts: int = 6
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 1.0
    qdrant_timeout_s: float = 1.0
    embedding_timeout_s: float = 2.0
    health_probe_timeout_s: float = 1.0
    health_interval_s: float = 0.2
    breaker_threshold: int = 2
    breaker_reset_s: float = 5.0
    ingest_deadline_s: float = 30.0
    demo_corpus: bool = True

    @classmethod
    def from_env(cls) -> Settings:
        e = os.environ
        return cls(
            qdrant_url=e.get("QDRANT_URL", cls.qdrant_url).rstrip("/"),
            embedding_url=e.get("EMBEDDING_URL", cls.embedding_url).rstrip("/"),
            embedding_model=e.get("EMBEDDING_MODEL", cls.embedding_model),
            gateway_url=e.get("GATEWAY_URL", cls.gateway_url).rstrip("/"),
            gateway_key=e.get("LITELLM_MASTER_KEY", ""),
            gateway_model=e.get("GATEWAY_MODEL", cls.gateway_model),
            gateway_timeout_s=_env_float("RAG_GATEWAY_TIMEOUT_S", cls.gateway_timeout_s),
            collection=e.get("RAG_COLLECTION", cls.collection),
            query_deadline_s=_env_float("RAG_QUERY_DEADLINE_S", cls.query_deadline_s),
            max_attempts=_env_int("RAG_MAX_ATTEMPTS", cls.max_attempts),
            backoff_initial_s=_env_float("RAG_BACKOFF_INITIAL_S", cls.backoff_initial_s),
            backoff_max_s=_env_float("RAG_BACKOFF_MAX_S", cls.backoff_max_s),
            qdrant_timeout_s=_env_float("RAG_QDRANT_TIMEOUT_S", cls.qdrant_timeout_s),
            embedding_timeout_s=_env_float("RAG_EMBEDDING_TIMEOUT_S", cls.embedding_timeout_s),
            health_probe_timeout_s=_env_float("RAG_HEALTH_PROBE_TIMEOUT_S", cls.health_probe_timeout_s),
            health_interval_s=_env_float("RAG_HEALTH_INTERVAL_S", cls.health_interval_s),
            breaker_threshold=_env_int("RAG_BREAKER_THRESHOLD", cls.breaker_threshold),
            breaker_reset_s=_env_float("RAG_BREAKER_RESET_S", cls.breaker_reset_s),
            ingest_deadline_s=_env_float("RAG_INGEST_DEADLINE_S", cls.ingest_deadline_s),
            demo_corpus=e.get("RAG_DEMO_CORPUS", "1").lower() not in {"0", "false", "no"},
        )


DEMO_CORPUS: list[dict[str, Any]] = [
    {"text": "llmops runs two llama.cpp llama-server instances: inference-chat on port 8001 is the primary and inference-code on port 8004 is the secondary.", "metadata": {"topic": "llama.cpp"}},
    {"text": "llama-server answers GET /health with HTTP 503 while the model is loading and with {\"status\":\"ok\"} once it is ready to serve completions.", "metadata": {"topic": "llama.cpp"}},
    {"text": "The api-gateway is a LiteLLM proxy on port 8000. The alias chat-7b routes to the chat server first (order 1) and to the code server second (order 2).", "metadata": {"topic": "litellm"}},
    {"text": "LiteLLM failover: when the primary deployment refuses connections or returns a 500, the router retries on the secondary and puts the primary in cooldown.", "metadata": {"topic": "litellm"}},
    {"text": "The response header x-litellm-model-api-base names the backend that served a request, which proves whether failover to the secondary happened.", "metadata": {"topic": "litellm"}},
    {"text": "Failback is governed by LiteLLM's cooldown_time: after the primary recovers, traffic stays on the secondary until the cooldown ends.", "metadata": {"topic": "litellm"}},
    {"text": "Qdrant is the vector database on port 6333. It exposes /healthz, /livez and /readyz, and stores collections of points with vectors and payloads.", "metadata": {"topic": "qdrant"}},
    {"text": "Qdrant writes every update to a write-ahead log before acknowledging it, so acknowledged points survive a crash or a kill of the process.", "metadata": {"topic": "qdrant"}},
    {"text": "The rag service retries Qdrant searches with exponential backoff and jitter, bounded by an attempt limit and a total deadline, and answers 503 with Retry-After when Qdrant stays down.", "metadata": {"topic": "rag"}},
    {"text": "The embedding service is a third llama-server: it turns text into 384-dimensional unit vectors with all-MiniLM-L6-v2 on its OpenAI-shaped /v1/embeddings endpoint.", "metadata": {"topic": "embeddings"}},
    {"text": "GPU memory for a GGUF model is roughly its weights plus the KV cache, which grows with context length, layers and the number of parallel slots.", "metadata": {"topic": "gpu"}},
    {"text": "llmops measures GPU memory with NVML and attributes each process to its container and service, comparing used MiB against the expected budget.", "metadata": {"topic": "gpu"}},
]


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- errors


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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _classify_qdrant(exc: BaseException) -> Exception:
    """Map what qdrant-client raises onto retryable / not retryable / missing."""
    if isinstance(exc, UnexpectedResponse):
        if exc.status_code == 404:
            return CollectionMissing(str(exc))
        if exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429):
            return DependencyDown(f"qdrant answered HTTP {exc.status_code}")
        content = exc.content.decode("utf-8", "replace")[:300] if exc.content else ""
        return DependencyRejected(f"qdrant rejected the request (HTTP {exc.status_code}): {content}")
    if isinstance(exc, (asyncio.TimeoutError, httpx.TransportError, ResponseHandlingException, OSError)):
        return DependencyDown(_describe(exc))
    return DependencyDown(_describe(exc))


# ---------------------------------------------------------------- breaker


class CircuitBreaker:
    """Tracks query outcomes against Qdrant.

    closed: full retry policy. After ``threshold`` consecutive failed queries it opens.
    open: each query makes a single attempt (no retries), so an outage costs callers
    one attempt's timeout instead of the whole deadline; a success closes it.
    half_open: after ``reset_s`` in open, the next query gets the full policy again.
    """

    def __init__(self, threshold: int, reset_s: float) -> None:
        self.threshold = max(1, threshold)
        self.reset_s = reset_s
        self.state = "closed"
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_ok_at: str | None = None
        self.last_failure_at: str | None = None
        self.opened_at_mono: float | None = None
        self.transitions: list[dict[str, Any]] = []

    def _move(self, new: str, reason: str) -> None:
        if new != self.state:
            self.transitions = (self.transitions + [{"at": _now_iso(), "from": self.state, "to": new, "reason": reason}])[-20:]
            log.info("breaker %s -> %s (%s)", self.state, new, reason)
            self.state = new

    def current(self) -> str:
        if self.state == "open" and self.opened_at_mono is not None:
            if time.monotonic() - self.opened_at_mono >= self.reset_s:
                self._move("half_open", f"{self.reset_s}s elapsed since opening")
        return self.state

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.last_ok_at = _now_iso()
        self.opened_at_mono = None
        self._move("closed", "query succeeded")

    def record_failure(self, error: str) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        self.last_failure_at = _now_iso()
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            self.opened_at_mono = time.monotonic()
            self._move("open", f"{self.consecutive_failures} consecutive failed queries: {error}")

    def retry_after_s(self) -> int:
        if self.state == "open" and self.opened_at_mono is not None:
            return max(1, math.ceil(self.reset_s - (time.monotonic() - self.opened_at_mono)))
        return 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.current(),
            "consecutive_failures": self.consecutive_failures,
            "threshold": self.threshold,
            "reset_s": self.reset_s,
            "last_error": self.last_error,
            "last_failure_at": self.last_failure_at,
            "last_ok_at": self.last_ok_at,
            "transitions": self.transitions[-5:],
        }


# ---------------------------------------------------------------- health


@dataclass
class DependencyWatch:
    """What the background watcher last learnt about one dependency.

    ``reading`` is what /health reports: down while the probe in flight has gone
    unanswered longer than ``answer_within_s``, else the latest finished probe's result,
    unless that result is older than ``max_age_s`` (the watcher itself stalled).
    """

    url: str
    ok: bool | None = None
    error: str | None = None
    checked_at: float | None = None     # monotonic time the latest probe finished
    latency_s: float | None = None
    inflight_since: float | None = None

    def started(self, now: float) -> None:
        self.inflight_since = now

    def finished(self, ok: bool, error: str | None, now: float) -> None:
        self.latency_s = now - self.inflight_since if self.inflight_since is not None else None
        self.ok, self.error, self.checked_at, self.inflight_since = ok, error, now, None

    def reading(self, now: float, answer_within_s: float, max_age_s: float) -> tuple[bool, str | None]:
        if self.inflight_since is not None and now - self.inflight_since > answer_within_s:
            return False, f"no answer for {now - self.inflight_since:.2f} s"
        if self.checked_at is None:
            return False, "not probed yet"
        if now - self.checked_at > max_age_s:
            return False, f"last probe finished {now - self.checked_at:.1f} s ago (health watcher stalled)"
        return bool(self.ok), self.error

    def snapshot(self, now: float, answer_within_s: float, max_age_s: float) -> dict[str, Any]:
        ok, error = self.reading(now, answer_within_s, max_age_s)
        return {
            "ok": ok,
            "error": error,
            "age_s": None if self.checked_at is None else round(now - self.checked_at, 4),
            "probe_latency_s": None if self.latency_s is None else round(self.latency_s, 4),
            "in_flight_s": None if self.inflight_since is None else round(now - self.inflight_since, 4),
        }


# ---------------------------------------------------------------- retries


async def call_with_deadline(
    op: Callable[[float], Awaitable[T]],
    *,
    deadline_at: float,
    max_attempts: int,
    per_attempt_timeout_s: float,
    backoff_initial_s: float,
    backoff_max_s: float,
    classify: Callable[[BaseException], Exception],
    attempts_out: list[int],
    min_attempt_s: float = 0.05,
) -> T:
    """Run ``op(timeout)`` with tenacity until it succeeds, attempts run out or the deadline nears.

    ``op`` receives its own timeout, already clipped to the time left, and is also
    cancelled at that timeout, so a peer that accepts and never answers cannot stall us.
    ``attempts_out[0]`` holds the attempts made, even when this raises.
    """

    def out_of_time(rs: RetryCallState) -> bool:
        # Checked after the wait is chosen: stop if sleeping would leave no useful attempt.
        return deadline_at - time.monotonic() - rs.upcoming_sleep < min_attempt_s

    try:
        wait = wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s)
    except TypeError:  # tenacity < 9.2 names the first wait `initial`
        wait = wait_exponential_jitter(initial=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s)
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts) | out_of_time,
        wait=wait,
        retry=retry_if_exception_type(DependencyDown),
        reraise=True,
    )
    attempts_out[:] = [0]
    async for attempt in retrying:
        with attempt:
            attempts_out[0] += 1
            remaining = deadline_at - time.monotonic()
            if remaining < min_attempt_s:
                raise DependencyDown("deadline reached before the attempt could start")
            timeout = min(per_attempt_timeout_s, remaining)
            try:
                return await asyncio.wait_for(op(timeout), timeout)
            except (DependencyDown, DependencyRejected, CollectionMissing):
                raise
            except Exception as exc:
                raise classify(exc) from exc
    raise DependencyDown("no attempt was made")  # unreachable: tenacity reraises


# ---------------------------------------------------------------- the service


class RagService:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_reset_s)
        self.qdrant = AsyncQdrantClient(
            url=settings.qdrant_url,
            prefer_grpc=False,
            check_compatibility=False,
            # Generous on purpose: every call is also cancelled by asyncio.wait_for at the
            # attempt's own (deadline-clipped) timeout, which is the bound that matters.
            timeout=30,
        )
        self.http = httpx.AsyncClient(timeout=settings.embedding_timeout_s)
        # A probe may outlive the time after which its dependency reads as down: a slow but
        # alive dependency's late answer then turns the reading back to up.
        self.probe_give_up_s = max(1.0, 4 * settings.health_probe_timeout_s)
        # A separate pool for probes, so a probe never queues behind a stalled request.
        self.probe_http = httpx.AsyncClient(timeout=self.probe_give_up_s)
        self.deps = {
            "qdrant": DependencyWatch(f"{settings.qdrant_url}/readyz"),
            "embedding": DependencyWatch(f"{settings.embedding_url}/health"),
        }
        self.first_probes = asyncio.Event()
        self.started_at = time.monotonic()
        self.corpus_ready = False
        self.startup_error: str | None = None
        self.startup_attempts = 0
        self.last_query: dict[str, Any] | None = None
        self.vector_size: int | None = None

    async def close(self) -> None:
        await self.qdrant.close()
        await self.http.aclose()
        await self.probe_http.aclose()

    def retry_policy(self) -> dict[str, Any]:
        return {
            "deadline_s": self.s.query_deadline_s,
            "max_attempts": self.s.max_attempts,
            "backoff_initial_s": self.s.backoff_initial_s,
            "backoff_max_s": self.s.backoff_max_s,
            "per_attempt_timeout_s": self.s.qdrant_timeout_s,
        }

    # ---- dependencies

    async def _embed_once(self, texts: list[str], timeout: float) -> list[list[float]]:
        """One OpenAI-shaped `/v1/embeddings` call (llama-server's): vectors in input order."""
        body: dict[str, Any] = {"input": texts}
        if self.s.embedding_model:
            body["model"] = self.s.embedding_model
        try:
            resp = await self.http.post(f"{self.s.embedding_url}/v1/embeddings", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise DependencyDown(f"embedding unreachable: {_describe(exc)}") from exc
        if resp.status_code >= 500:
            raise DependencyDown(f"embedding answered HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code != 200:
            raise DependencyRejected(f"embedding rejected the request (HTTP {resp.status_code}): {resp.text[:300]}")
        try:
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise DependencyRejected(f"embedding returned an unexpected body: {_describe(exc)}") from exc
        if len(vectors) != len(texts) or not all(isinstance(v, list) and v for v in vectors):
            raise DependencyRejected("embedding returned the wrong number of vectors")
        return vectors

    async def embed(self, texts: list[str], deadline_at: float, attempts_out: list[int]) -> list[list[float]]:
        return await call_with_deadline(
            lambda timeout: self._embed_once(texts, timeout),
            deadline_at=deadline_at,
            max_attempts=self.s.max_attempts,
            per_attempt_timeout_s=self.s.embedding_timeout_s,
            backoff_initial_s=self.s.backoff_initial_s,
            backoff_max_s=self.s.backoff_max_s,
            classify=lambda exc: DependencyDown(f"embedding unreachable: {_describe(exc)}"),
            attempts_out=attempts_out,
        )

    async def probe(self, url: str) -> tuple[bool, str | None]:
        try:
            resp = await self.probe_http.get(url)
        except httpx.HTTPError as exc:
            return False, _describe(exc)
        if resp.status_code != 200:
            return False, f"HTTP {resp.status_code}"
        return True, None

    def health_policy(self) -> dict[str, Any]:
        return {
            "interval_s": self.s.health_interval_s,
            "probe_timeout_s": self.s.health_probe_timeout_s,
            "max_lag_s": round(self.s.health_interval_s + self.s.health_probe_timeout_s, 4),
        }

    def _max_age_s(self) -> float:
        return self.s.health_interval_s + self.probe_give_up_s + 1.0

    async def watch(self, dep: DependencyWatch) -> None:
        """Probe one dependency for ever, one probe at a time, ``health_interval_s`` apart."""
        while True:
            dep.started(time.monotonic())
            try:
                ok, error = await asyncio.wait_for(self.probe(dep.url), self.probe_give_up_s)
            except asyncio.TimeoutError:
                ok, error = False, f"no answer in {self.probe_give_up_s:g} s"
            dep.finished(ok, error, time.monotonic())
            if all(d.checked_at is not None for d in self.deps.values()):
                self.first_probes.set()
            await asyncio.sleep(self.s.health_interval_s)

    def watchers(self) -> dict[str, Any]:
        """The background tasks that keep /health's readings fresh, by task name."""
        return {f"rag-watch-{name}": self.watch(dep) for name, dep in self.deps.items()}

    async def health(self) -> dict[str, Any]:
        # Only right after start: wait for the first probes rather than report "not probed yet"
        # as down, but never past the moment a probe still in flight would read as down anyway.
        wait_s = self.started_at + self.s.health_probe_timeout_s + 0.05 - time.monotonic()
        if not self.first_probes.is_set() and wait_s > 0:
            try:
                await asyncio.wait_for(self.first_probes.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        now, within, max_age = time.monotonic(), self.s.health_probe_timeout_s, self._max_age_s()
        checks = {name: dep.snapshot(now, within, max_age) for name, dep in self.deps.items()}
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
            "health_policy": self.health_policy(),
            "checks": checks,
            "last_query": self.last_query,
            "errors": errors,
        }

    # ---- collection and ingest

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

    async def ingest(self, documents: list[dict[str, Any]], deadline_s: float | None = None) -> list[int | str]:
        deadline_at = time.monotonic() + (deadline_s or self.s.ingest_deadline_s)
        ids: list[int | str] = []
        for doc in documents:
            given = doc.get("id")
            ids.append(given if given is not None else str(uuid.uuid5(ID_NAMESPACE, doc["text"])))
        attempts = [0]
        vectors: list[list[float]] = []
        for i in range(0, len(documents), 64):
            chunk = [d["text"] for d in documents[i : i + 64]]
            vectors.extend(await self.embed(chunk, deadline_at, attempts))
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
            deadline_at=deadline_at,
            max_attempts=max(self.s.max_attempts, 3),
            per_attempt_timeout_s=max(self.s.qdrant_timeout_s, 5.0),
            backoff_initial_s=self.s.backoff_initial_s,
            backoff_max_s=self.s.backoff_max_s,
            classify=_classify_qdrant,
            attempts_out=[0],
        )
        return ids

    async def count(self, timeout: float) -> int:
        try:
            res = await asyncio.wait_for(self.qdrant.count(self.s.collection, exact=True), timeout)
        except UnexpectedResponse as exc:
            if exc.status_code == 404:
                return 0
            raise
        return res.count

    async def prepare(self) -> None:
        """Ensure the collection and the demo corpus, retrying until the dependencies answer."""
        delay = 0.5
        while True:
            self.startup_attempts += 1
            try:
                probe = await self.embed(["dimension probe"], time.monotonic() + 10.0, [0])
                self.vector_size = len(probe[0])
                await self.ensure_collection(self.vector_size)
                if self.s.demo_corpus and await self.count(5.0) == 0:
                    await self.ingest(DEMO_CORPUS)
                    log.info("demo corpus ingested (%d documents)", len(DEMO_CORPUS))
                self.corpus_ready = True
                self.startup_error = None
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep trying; the error is visible on /health
                self.startup_error = f"startup attempt {self.startup_attempts}: {_describe(exc)}"
                log.warning("%s; retrying in %.1fs", self.startup_error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ---- query

    async def search(self, vector: list[float], top_k: int, deadline_at: float, attempts_out: list[int]) -> list[Any]:
        state = self.breaker.current()
        # While open, one attempt only: an outage must not cost every caller the full deadline.
        max_attempts = 1 if state == "open" else self.s.max_attempts

        async def once(timeout: float) -> list[Any]:
            res = await self.qdrant.query_points(self.s.collection, query=vector, limit=top_k, with_payload=True)
            return list(res.points)

        return await call_with_deadline(
            once,
            deadline_at=deadline_at,
            max_attempts=max_attempts,
            per_attempt_timeout_s=self.s.qdrant_timeout_s,
            backoff_initial_s=self.s.backoff_initial_s,
            backoff_max_s=self.s.backoff_max_s,
            classify=_classify_qdrant,
            attempts_out=attempts_out,
        )

    async def generate(self, question: str, hits: list[dict[str, Any]]) -> tuple[str | None, str | None]:
        if not self.s.gateway_model:   # no alias assumed: a user's gateway has its own names
            return None, "no GATEWAY_MODEL set: rag does not know which gateway model to ask"
        context = "\n".join(f"[{i + 1}] {h['text']}" for i, h in enumerate(hits)) or "(no context found)"
        payload = {
            "model": self.s.gateway_model,
            "messages": [
                {"role": "system", "content": "Answer briefly, using only the numbered context."},
                {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
            ],
            "max_tokens": 128,
            "temperature": 0.2,
        }
        headers = {"Authorization": f"Bearer {self.s.gateway_key}"} if self.s.gateway_key else {}
        try:
            resp = await self.http.post(
                f"{self.s.gateway_url}/v1/chat/completions",
                json=payload,
                headers=headers,
                timeout=self.s.gateway_timeout_s,
            )
        except httpx.HTTPError as exc:
            return None, f"gateway unreachable: {_describe(exc)}"
        if resp.status_code != 200:
            return None, f"gateway answered HTTP {resp.status_code}: {resp.text[:200]}"
        try:
            return str(resp.json()["choices"][0]["message"]["content"]), None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return None, f"gateway returned an unexpected body: {_describe(exc)}"

    async def query(self, question: str, top_k: int, generate: bool) -> JSONResponse:
        started = time.monotonic()
        deadline_at = started + self.s.query_deadline_s
        embed_attempts, attempts = [0], [0]

        def record(status: int, error: str | None, hits: int | None) -> None:
            self.last_query = {
                "at": _now_iso(),
                "status": status,
                "attempts": attempts[0],
                "embed_attempts": embed_attempts[0],
                "latency_s": round(time.monotonic() - started, 4),
                "hits": hits,
                "error": error,
            }

        def unavailable(what: str, exc: Exception) -> ApiError:
            retry_after = self.breaker.retry_after_s()
            error = f"{what} unavailable: {exc}"
            record(503, error, None)
            return ApiError(
                503,
                error,
                headers={"Retry-After": str(retry_after)},
                attempts=attempts[0],
                embed_attempts=embed_attempts[0],
                deadline_s=self.s.query_deadline_s,
                latency_s=round(time.monotonic() - started, 4),
            )

        try:
            vector = (await self.embed([question], deadline_at, embed_attempts))[0]
        except DependencyDown as exc:
            raise unavailable("embedding service", exc) from exc
        except DependencyRejected as exc:
            record(502, str(exc), None)
            raise ApiError(502, str(exc), embed_attempts=embed_attempts[0]) from exc

        try:
            points = await self.search(vector, top_k, deadline_at, attempts)
        except CollectionMissing:
            points = []
            self.breaker.record_success()
        except DependencyDown as exc:
            self.breaker.record_failure(str(exc))
            raise unavailable("vector store", exc) from exc
        except DependencyRejected as exc:
            # Qdrant is up and answering, so the breaker's view of its health is "ok".
            self.breaker.record_success()
            record(502, str(exc), None)
            raise ApiError(502, str(exc), attempts=attempts[0]) from exc
        else:
            self.breaker.record_success()

        hits = []
        for p in points:
            payload = p.payload or {}
            hits.append(
                {"id": p.id, "score": p.score, "text": payload.get("text", ""), "metadata": payload.get("metadata", {})}
            )
        body: dict[str, Any] = {
            "hits": hits,
            "attempts": attempts[0],
            "embed_attempts": embed_attempts[0],
            "latency_s": 0.0,
            "answer": None,
        }
        if generate:
            answer, answer_error = await self.generate(question, hits)
            body["answer"] = answer
            if answer_error:
                body["answer_error"] = answer_error
        body["latency_s"] = round(time.monotonic() - started, 4)
        record(200, None, len(hits))
        return JSONResponse(body)


# ---------------------------------------------------------------- app


def _validate_documents(body: dict[str, Any]) -> list[dict[str, Any]]:
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
        pid = d.get("id")
        if pid is not None:
            if isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0:
                pass
            elif isinstance(pid, str):
                try:
                    pid = str(uuid.UUID(pid))
                except ValueError:
                    raise ApiError(422, f"`documents[{i}].id` must be an unsigned integer or a UUID") from None
            else:
                raise ApiError(422, f"`documents[{i}].id` must be an unsigned integer or a UUID")
        out.append({"text": text, "metadata": meta, "id": pid})
    return out


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
        body = await json_object(request)
        question = body.get("query")
        if not isinstance(question, str) or not question.strip():
            raise ApiError(422, "`query` must be a non-empty string")
        top_k = body.get("top_k", 3)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 100:
            raise ApiError(422, "`top_k` must be an integer in 1..100")
        generate = body.get("generate", False)
        if not isinstance(generate, bool):
            raise ApiError(422, "`generate` must be a boolean")
        return await holder["svc"].query(question, top_k, generate)

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        docs = _validate_documents(await json_object(request))
        svc = holder["svc"]
        try:
            ids = await svc.ingest(docs)
        except DependencyDown as exc:
            raise ApiError(503, f"ingest failed, a dependency is unavailable: {exc}", headers={"Retry-After": "2"}) from exc
        except DependencyRejected as exc:
            raise ApiError(502, f"ingest failed: {exc}") from exc
        return JSONResponse({"ingested": len(ids), "ids": ids})

    @app.get("/stats")
    async def stats() -> JSONResponse:
        svc = holder["svc"]
        try:
            points: int | None = await svc.count(cfg.qdrant_timeout_s)
            error = None
        except Exception as exc:  # stats must answer even while Qdrant is down
            points, error = None, f"vector store unavailable: {_describe(exc)}"
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


if __name__ == "__main__":
    main()
