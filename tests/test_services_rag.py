"""rag against the real Qdrant stand-in (a subprocess) and a fake embedding server.

The fake embedder returns deterministic hash-based 384-d vectors: it is a test double
for a service tested for real in the e2e suite. The stand-in is stopped, SIGSTOPped and
restarted here to check that /health stays fast and queries stay within their deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

pytest.importorskip("qdrant_edge")

from llmops.services.rag import (  # noqa: E402
    DEMO_CORPUS,
    ID_NAMESPACE,
    DependencyDown,
    DependencyRejected,
    DependencyWatch,
    RetryPolicy,
    Settings,
    call_with_deadline,
    create_app,
)

if TYPE_CHECKING:
    from llmops.chaos.qdrant import HealthSample

DIM = 384
HEALTH_BOUND_S = 0.5
# /health reads cached state, so even with Qdrant hung it must answer far below the 0.25 s probe
# timeout that bounded it when it probed inline (measured at 0.26 s under SIGSTOP then).
HUNG_HEALTH_BOUND_S = 0.2
DEADLINE_S = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hash_vector(text: str) -> list[float]:
    raw = hashlib.sha256(text.encode()).digest() * (DIM // 32)
    vec = [b - 127.5 for b in raw[:DIM]]
    norm = math.sqrt(sum(v * v for v in vec))
    return [v / norm for v in vec]


def fake_deps_app() -> FastAPI:
    """Fake embedding service plus a fake LiteLLM chat endpoint."""
    app = FastAPI()
    app.state.gateway_fail = False
    app.state.gateway_auth: list[str] = []

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    # llama-server's shape: OpenAI's, in input order (listed here in reverse, so rag must sort).
    @app.post("/v1/embeddings")
    async def embed(request: Request) -> dict[str, Any]:
        texts = (await request.json())["input"]
        data = [{"object": "embedding", "index": i, "embedding": hash_vector(t)} for i, t in enumerate(texts)]
        return {"object": "list", "model": "fake-hash", "data": data[::-1]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        app.state.gateway_auth.append(request.headers.get("authorization", ""))
        if app.state.gateway_fail:
            return JSONResponse(status_code=500, content={"error": "backend down"})
        body = await request.json()
        n_ctx = body["messages"][-1]["content"].count("\n[")
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": f"answer from {n_ctx} hits"}}]})

    return app


class ThreadServer:
    """A uvicorn server in a daemon thread (in-process, so coverage and asserts see it)."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Standin:
    """The Qdrant stand-in as a real process, so it can be killed, stopped and resumed."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "QDRANT_STORAGE": str(self.storage), "QDRANT_PORT": str(self.port), "QDRANT_HOST": "127.0.0.1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmops.services.qdrant_standin"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "stand-in exited during start"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("stand-in not ready in 20 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def settings_for(qdrant_url: str, deps_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        qdrant_url=qdrant_url,
        embedding_url=deps_url,
        gateway_url=deps_url,
        gateway_key="sk-test",
        gateway_model="chat-7b",
        collection="docs",
        query_deadline_s=DEADLINE_S,
        max_attempts=6,
        backoff_initial_s=0.05,
        backoff_max_s=0.3,
        qdrant_timeout_s=0.5,
        embedding_timeout_s=0.5,
        health_probe_timeout_s=0.25,
        breaker_threshold=2,
        breaker_reset_s=30.0,
        ingest_deadline_s=10.0,
    )
    base.update(overrides)
    return Settings(**base)


def wait_for(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def timed_get(url: str) -> tuple[httpx.Response, float]:
    t = time.monotonic()
    r = httpx.get(url, timeout=5)
    return r, time.monotonic() - t


def health_until(url: str, want_qdrant: bool, within_s: float) -> tuple[float, float, int]:
    """Poll /health until it reports qdrant == want_qdrant: (seconds taken, slowest call, calls).
    Fails if that takes longer than `within_s`."""
    t0, slowest, calls = time.monotonic(), 0.0, 0
    while True:
        r, elapsed = timed_get(url)
        slowest, calls = max(slowest, elapsed), calls + 1
        assert r.status_code == 200
        if r.json()["qdrant"] is want_qdrant:
            return time.monotonic() - t0, slowest, calls
        assert time.monotonic() - t0 < within_s, f"/health did not report qdrant={want_qdrant} in {within_s} s"
        time.sleep(0.01)


def timed_post(url: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    t = time.monotonic()
    r = httpx.post(url, json=body, timeout=10)
    return r, time.monotonic() - t


@pytest.fixture(scope="module")
def deps() -> Iterator[ThreadServer]:
    with ThreadServer(fake_deps_app()) as srv:
        yield srv


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    s = Standin(tmp_path_factory.mktemp("qdrant"))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rag(standin: Standin, deps: ThreadServer) -> Iterator[ThreadServer]:
    with ThreadServer(create_app(settings_for(standin.url, deps.url))) as srv:
        wait_for(lambda: httpx.get(f"{srv.url}/health", timeout=2).json()["corpus_ready"], 20, "demo corpus")
        yield srv


@pytest.fixture()
def healthy_standin(standin: Standin, rag: ThreadServer) -> Standin:
    """Each outage test starts from a running stand-in that rag sees as up."""
    if standin.proc is None or standin.proc.poll() is not None:
        standin.start()
    wait_for(lambda: httpx.get(f"{rag.url}/health", timeout=2).json()["qdrant"], 10, "qdrant up")
    return standin


# ------------------------------------------------------------------ retry helper


def test_retry_stops_at_max_attempts() -> None:
    calls = []

    async def failing(timeout: float) -> None:
        calls.append(timeout)
        raise DependencyDown("down")

    attempts = [0]
    with pytest.raises(DependencyDown):
        asyncio.run(
            call_with_deadline(
                failing, RetryPolicy(max_attempts=4, per_attempt_timeout_s=1.0, backoff_initial_s=0.01, backoff_max_s=0.02),
                deadline_at=time.monotonic() + 30, classify=lambda e: DependencyDown(str(e)), attempts_out=attempts,
            )
        )
    assert attempts[0] == 4 and len(calls) == 4


def test_retry_clips_hung_attempts_to_the_deadline() -> None:
    seen: list[float] = []

    async def hangs(timeout: float) -> None:
        seen.append(timeout)
        await asyncio.sleep(60)

    attempts = [0]
    t = time.monotonic()
    with pytest.raises(DependencyDown):
        asyncio.run(
            call_with_deadline(
                hangs, RetryPolicy(max_attempts=10, per_attempt_timeout_s=0.7, backoff_initial_s=0.05, backoff_max_s=0.1),
                deadline_at=time.monotonic() + 1.0, classify=lambda e: DependencyDown(str(e)), attempts_out=attempts,
            )
        )
    elapsed = time.monotonic() - t
    assert elapsed < 1.2, elapsed
    assert attempts[0] >= 2
    assert seen[0] == pytest.approx(0.7) and seen[-1] < 0.35  # the last attempt got only what was left


def test_rejections_are_not_retried() -> None:
    attempts = [0]

    async def rejected(timeout: float) -> None:
        raise DependencyRejected("bad request")

    with pytest.raises(DependencyRejected):
        asyncio.run(
            call_with_deadline(
                rejected, RetryPolicy(max_attempts=5, per_attempt_timeout_s=1, backoff_initial_s=0.01, backoff_max_s=0.02),
                deadline_at=time.monotonic() + 5, classify=lambda e: DependencyDown(str(e)), attempts_out=attempts,
            )
        )
    assert attempts[0] == 1


# ------------------------------------------------------------------ happy path


def test_health_fast_and_all_up(rag: ThreadServer) -> None:
    r, elapsed = timed_get(f"{rag.url}/health")
    assert r.status_code == 200
    assert elapsed < HEALTH_BOUND_S
    body = r.json()
    assert body["qdrant"] is True and body["embedding"] is True and body["status"] == "ok"
    assert body["collection"] == "docs" and body["corpus_ready"] is True
    assert body["breaker"]["state"] == "closed"
    assert body["retry_policy"] == {
        "deadline_s": DEADLINE_S, "max_attempts": 6, "backoff_initial_s": 0.05, "backoff_max_s": 0.3, "per_attempt_timeout_s": 0.5,
    }
    assert httpx.get(f"{rag.url}/stats").json() == {"collection": "docs", "points": len(DEMO_CORPUS)}


def test_ingest_then_query_hits(rag: ThreadServer) -> None:
    docs = [
        {"text": "Zebras graze on the savanna at dawn.", "metadata": {"src": "t1"}},
        {"text": "Kubernetes pods restart on failure.", "metadata": {"src": "t2"}, "id": 424242},
    ]
    r = httpx.post(f"{rag.url}/ingest", json={"documents": docs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ingested"] == 2
    assert body["ids"] == [str(uuid.uuid5(ID_NAMESPACE, docs[0]["text"])), 424242]
    # Same text, same id: re-ingesting does not duplicate.
    httpx.post(f"{rag.url}/ingest", json={"documents": docs[:1]})
    assert httpx.get(f"{rag.url}/stats").json()["points"] == len(DEMO_CORPUS) + 2

    q = httpx.post(f"{rag.url}/query", json={"query": docs[0]["text"], "top_k": 3}).json()
    assert len(q["hits"]) == 3
    top = q["hits"][0]
    assert top["text"] == docs[0]["text"] and top["metadata"] == {"src": "t1"}
    assert top["score"] == pytest.approx(1.0, abs=1e-4)
    assert q["attempts"] == 1 and q["answer"] is None and q["latency_s"] < DEADLINE_S
    last = httpx.get(f"{rag.url}/health").json()["last_query"]
    assert last["status"] == 200 and last["attempts"] == 1 and last["hits"] == 3


def test_generate_calls_gateway_and_survives_its_failure(rag: ThreadServer, deps: ThreadServer) -> None:
    app = deps.server.config.app
    q = httpx.post(f"{rag.url}/query", json={"query": "what is failover?", "top_k": 2, "generate": True}).json()
    assert q["answer"] == "answer from 2 hits"
    assert app.state.gateway_auth[-1] == "Bearer sk-test"
    app.state.gateway_fail = True
    try:
        r = httpx.post(f"{rag.url}/query", json={"query": "what is failover?", "generate": True})
    finally:
        app.state.gateway_fail = False
    assert r.status_code == 200
    assert r.json()["answer"] is None and "HTTP 500" in r.json()["answer_error"]
    assert len(r.json()["hits"]) == 3


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"top_k": 3}, 422, "`query`"),
        ({"query": "x", "top_k": 0}, 422, "`top_k`"),
        ({"query": "x", "generate": "yes"}, 422, "`generate`"),
    ],
)
def test_query_validation(rag: ThreadServer, body: dict[str, Any], status: int, needle: str) -> None:
    r = httpx.post(f"{rag.url}/query", json=body)
    assert r.status_code == status and needle in r.json()["error"]


def test_ingest_validation_and_bad_json(rag: ThreadServer) -> None:
    r = httpx.post(f"{rag.url}/ingest", json={"documents": [{"text": ""}]})
    assert r.status_code == 422 and "text" in r.json()["error"]
    r = httpx.post(f"{rag.url}/ingest", json={"documents": [{"text": "a", "id": "not-a-uuid"}]})
    assert r.status_code == 422 and "UUID" in r.json()["error"]
    r = httpx.post(f"{rag.url}/query", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_empty_and_missing_collection_give_empty_hits(standin: Standin, deps: ThreadServer) -> None:
    settings = settings_for(standin.url, deps.url, collection="scratch", demo_corpus=False)
    with ThreadServer(create_app(settings)) as srv:
        wait_for(lambda: httpx.get(f"{srv.url}/health").json()["corpus_ready"], 10, "collection")
        r = httpx.post(f"{srv.url}/query", json={"query": "anything"})
        assert r.status_code == 200 and r.json()["hits"] == []
        assert httpx.delete(f"{standin.url}/collections/scratch").json()["result"] is True
        r = httpx.post(f"{srv.url}/query", json={"query": "anything"})
        assert r.status_code == 200 and r.json()["hits"] == []
        assert httpx.get(f"{srv.url}/stats").json()["points"] == 0


# ------------------------------------------------------------------ outages


def test_qdrant_stopped_then_restarted(rag: ThreadServer, healthy_standin: Standin) -> None:
    before = httpx.get(f"{rag.url}/stats").json()["points"]
    assert before >= len(DEMO_CORPUS)
    healthy_standin.stop()

    max_lag = httpx.get(f"{rag.url}/health").json()["health_policy"]["max_lag_s"]
    _, slowest, _ = health_until(f"{rag.url}/health", False, max_lag + 0.2)
    assert slowest < HEALTH_BOUND_S, slowest
    body = httpx.get(f"{rag.url}/health").json()
    assert body["qdrant"] is False and body["embedding"] is True and body["status"] == "degraded"
    assert body["errors"]["qdrant"] and body["checks"]["qdrant"]["ok"] is False

    r, elapsed = timed_post(f"{rag.url}/query", {"query": "llama.cpp"})
    assert r.status_code == 503
    assert elapsed < DEADLINE_S + 0.5, elapsed
    assert int(r.headers["Retry-After"]) >= 1
    err = r.json()
    assert err["error"].startswith("vector store unavailable:")
    assert err["attempts"] >= 2 and err["deadline_s"] == DEADLINE_S
    assert httpx.get(f"{rag.url}/stats").json()["points"] is None

    # A second failed query opens the breaker: from then on a single attempt per query.
    r2, _ = timed_post(f"{rag.url}/query", {"query": "llama.cpp"})
    assert r2.status_code == 503
    assert httpx.get(f"{rag.url}/health").json()["breaker"]["state"] == "open"
    r3, elapsed3 = timed_post(f"{rag.url}/query", {"query": "llama.cpp"})
    assert r3.status_code == 503 and r3.json()["attempts"] == 1 and elapsed3 < 1.0

    healthy_standin.start()
    wait_for(lambda: httpx.get(f"{rag.url}/health").json()["qdrant"], 5, "rag to see qdrant again")
    r = httpx.post(f"{rag.url}/query", json={"query": "llama.cpp"})
    assert r.status_code == 200 and len(r.json()["hits"]) == 3
    health = httpx.get(f"{rag.url}/health").json()
    assert health["breaker"]["state"] == "closed" and health["status"] == "ok"
    assert httpx.get(f"{rag.url}/stats").json()["points"] == before


def test_qdrant_hung_sigstop(rag: ThreadServer, healthy_standin: Standin) -> None:
    before = httpx.get(f"{rag.url}/stats").json()["points"]
    assert healthy_standin.proc is not None
    max_lag = httpx.get(f"{rag.url}/health").json()["health_policy"]["max_lag_s"]
    healthy_standin.proc.send_signal(signal.SIGSTOP)
    try:
        health_until(f"{rag.url}/health", False, max_lag + 0.2)
        # Once down, it stays down while the stand-in is hung, and no answer waits on the hung
        # probe. The median, not the max: the max measures this shared machine's load.
        latencies = []
        for _ in range(20):
            r, elapsed = timed_get(f"{rag.url}/health")
            latencies.append(elapsed)
            assert r.json()["qdrant"] is False and r.json()["status"] == "degraded"
            assert r.json()["errors"]["qdrant"].startswith(("no answer", "timed out")), r.json()["errors"]
            time.sleep(0.05)
        assert statistics.median(latencies) < HUNG_HEALTH_BOUND_S, latencies

        r, elapsed = timed_post(f"{rag.url}/query", {"query": "gpu memory"})
        assert r.status_code == 503
        assert elapsed < DEADLINE_S + 0.5, elapsed
        assert "Retry-After" in r.headers
    finally:
        healthy_standin.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: httpx.get(f"{rag.url}/health").json()["qdrant"], 5, "qdrant resumed")
    r = httpx.post(f"{rag.url}/query", json={"query": "gpu memory"})
    assert r.status_code == 200 and r.json()["hits"]
    assert httpx.get(f"{rag.url}/stats").json()["points"] == before


@pytest.fixture()
def black_hole() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


def test_black_hole_qdrant_bounded(black_hole: str, deps: ThreadServer) -> None:
    with ThreadServer(create_app(settings_for(black_hole, deps.url))) as srv:
        # The first call may wait (bounded) for the first probes; later ones never wait.
        r, elapsed = timed_get(f"{srv.url}/health")
        assert elapsed < HEALTH_BOUND_S, elapsed
        assert r.status_code == 200 and r.json()["qdrant"] is False and r.json()["corpus_ready"] is False
        latencies = []
        for _ in range(5):
            r, elapsed = timed_get(f"{srv.url}/health")
            latencies.append(elapsed)
            assert r.json()["qdrant"] is False
        assert statistics.median(latencies) < HUNG_HEALTH_BOUND_S, latencies
        r, elapsed = timed_post(f"{srv.url}/query", {"query": "x"})
        assert r.status_code == 503 and elapsed < DEADLINE_S + 0.5, elapsed
        assert r.json()["attempts"] >= 2


def test_embedding_down_is_503(standin: Standin) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with ThreadServer(create_app(settings_for(standin.url, dead, demo_corpus=False, ingest_deadline_s=1.0))) as srv:
        r, elapsed = timed_get(f"{srv.url}/health")
        assert elapsed < HEALTH_BOUND_S
        assert r.json()["embedding"] is False and r.json()["status"] == "degraded"
        r, elapsed = timed_post(f"{srv.url}/query", {"query": "x"})
        assert r.status_code == 503 and elapsed < DEADLINE_S + 0.5
        assert r.json()["error"].startswith("embedding service unavailable:")
        assert int(r.headers["Retry-After"]) >= 1
        r = httpx.post(f"{srv.url}/ingest", json={"documents": [{"text": "a"}]})
        assert r.status_code == 503 and "unavailable" in r.json()["error"]


# ------------------------------------------------------------------ health readings


def test_dependency_watch_reading() -> None:
    within, max_age = 0.25, 3.0
    w = DependencyWatch("http://x/readyz")
    assert w.reading(100.0, within, max_age) == (False, "not probed yet")
    w.started(100.0)
    assert w.reading(100.2, within, max_age) == (False, "not probed yet")
    w.finished(True, None, 100.01)
    assert w.reading(100.02, within, max_age) == (True, None)
    assert w.latency_s is not None and abs(w.latency_s - 0.01) < 1e-9
    # A probe in flight reads as down only once it has gone unanswered past `within`.
    w.started(101.0)
    assert w.reading(101.2, within, max_age) == (True, None)
    ok, err = w.reading(101.3, within, max_age)
    assert ok is False and err is not None and err.startswith("no answer for 0.30 s")
    # Its late answer (a slow but alive dependency) turns the reading back to up.
    w.finished(True, None, 101.6)
    assert w.reading(101.7, within, max_age) == (True, None)
    # A watcher that stopped probing cannot keep reporting its last "up".
    ok, err = w.reading(101.6 + max_age + 0.1, within, max_age)
    assert ok is False and err is not None and "stalled" in err
    w.finished(False, "ConnectError: refused", 110.0)
    assert w.reading(110.1, within, max_age) == (False, "ConnectError: refused")


def test_healthy_stack_never_reads_down(rag: ThreadServer, healthy_standin: Standin) -> None:
    """No false "down" on a healthy stack: 3 s of tight polling, all qdrant:true, all fast."""
    readings, latencies, t_end = [], [], time.monotonic() + 3.0
    while time.monotonic() < t_end:
        r, elapsed = timed_get(f"{rag.url}/health")
        latencies.append(elapsed)
        readings.append((r.json()["qdrant"], r.json()["embedding"]))
        time.sleep(0.01)
    assert len(readings) >= 10 and all(q and e for q, e in readings), [x for x in readings if not all(x)][:5]
    assert statistics.median(latencies) < HUNG_HEALTH_BOUND_S, latencies
    body = httpx.get(f"{rag.url}/health").json()
    policy = body["health_policy"]
    assert policy == {"interval_s": 0.2, "probe_timeout_s": 0.25, "max_lag_s": 0.45}
    # The watcher keeps the readings fresh: the latest probe finished recently.
    assert body["checks"]["qdrant"]["age_s"] < 1.0


# ------------------------------------------------------------------ chaos qdrant's truth line, on real samples


def _sample_health(url: str, seconds: float, every: float = 0.1) -> list[HealthSample]:
    """rag /health samples taken by the chaos experiment's own sampler."""
    from types import SimpleNamespace

    from llmops.chaos.qdrant import _health

    async def run() -> list[HealthSample]:
        out: list[HealthSample] = []
        async with httpx.AsyncClient() as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                out.append(await _health(c, SimpleNamespace(url=url)))  # type: ignore[arg-type]
                await asyncio.sleep(every)
        return out

    return asyncio.run(run())


def test_truth_line_passes_on_an_outage_and_fails_without_one(rag: ThreadServer, healthy_standin: Standin) -> None:
    from llmops.chaos.qdrant import MIN_HEALTH_SAMPLES, RagHealth, health_lag_s, health_truth, truth_criterion

    lag = health_lag_s(RagHealth(httpx.get(f"{rag.url}/health").json()))
    assert lag == 0.45
    # No outage at all: every judged sample says qdrant:true, so the line must fail.
    t0 = time.monotonic()
    healthy = health_truth(_sample_health(rag.url, lag + 0.6), t0, lag)
    assert healthy.judged >= MIN_HEALTH_SAMPLES and healthy.wrong == healthy.judged and not healthy.ok
    assert truth_criterion(healthy, lag).passed is False

    healthy_standin.stop()
    t_in_effect = time.monotonic()
    samples = _sample_health(rag.url, lag + 0.8)
    truth = health_truth(samples, t_in_effect, lag)
    assert truth.ok and truth.wrong == 0 and truth.judged >= MIN_HEALTH_SAMPLES, truth
    assert truth.detect_s is not None and truth.detect_s <= lag + 0.2
    assert truth_criterion(truth, lag).passed is True
    # The same outage sampled too briefly: fewer than 3 samples after the lag fail the line.
    early = [h for h in samples if h.t < t_in_effect + lag]
    short = health_truth(early + samples[len(early):len(early) + MIN_HEALTH_SAMPLES - 1], t_in_effect, lag)
    assert short.judged == MIN_HEALTH_SAMPLES - 1 and short.wrong == 0 and not short.ok
    # A missing fault time (the fault never took effect) judges nothing, so it fails too.
    assert health_truth(samples, None, lag).ok is False
