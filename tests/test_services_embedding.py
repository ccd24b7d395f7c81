"""The embedding service's HTTP, validation and micro-batching logic, with a tiny fake encoder.

The real MiniLM model is exercised by the e2e suite; here the encoder is a test double
so that what is under test (coalescing, loading state, error paths) runs in milliseconds.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from llmops.services.embedding import LoadedEncoder, create_app

DIM = 8


class FakeEncoder:
    """Deterministic vectors; records every batch it was called with."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.delay_s = delay_s
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            self.calls.append(list(texts))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("fake encoder exploded")
        return [[float(len(t))] + [float(i)] * (DIM - 1) for i, t in enumerate(texts)]

    def loader(self) -> LoadedEncoder:
        return LoadedEncoder(encode=self, dim=DIM)


def wait_ready(client: TestClient, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError("embedding app never became ready")


def test_health_is_503_while_loading_then_200() -> None:
    release = threading.Event()
    enc = FakeEncoder()

    def slow_loader() -> LoadedEncoder:
        release.wait(5)
        return enc.loader()

    with TestClient(create_app(loader=slow_loader, model_name="fake-mini")) as c:
        r = c.get("/health")
        assert r.status_code == 503
        assert r.json()["ok"] is False and r.json()["loading"] is True
        busy = c.post("/embed", json={"texts": ["a"]})
        assert busy.status_code == 503 and "loading" in busy.json()["error"]
        release.set()
        wait_ready(c)
        body = c.get("/health").json()
        assert body["ok"] is True and body["model"] == "fake-mini" and body["dim"] == DIM


def test_load_failure_is_reported_not_hidden() -> None:
    def broken() -> LoadedEncoder:
        raise FileNotFoundError("no model at /nowhere")

    with TestClient(create_app(loader=broken)) as c:
        deadline = time.monotonic() + 5
        while c.get("/health").json().get("loading") and time.monotonic() < deadline:
            time.sleep(0.01)
        r = c.get("/health")
        assert r.status_code == 503
        assert "no model at /nowhere" in r.json()["error"]
        e = c.post("/embed", json={"texts": ["x"]})
        assert e.status_code == 503 and "model load failed" in e.json()["error"]


def test_embed_and_openai_shapes() -> None:
    enc = FakeEncoder()
    with TestClient(create_app(loader=enc.loader, model_name="m")) as c:
        wait_ready(c)
        r = c.post("/embed", json={"texts": ["ab", "abcd"]})
        assert r.status_code == 200
        body = r.json()
        assert body["model"] == "m" and body["dim"] == DIM
        assert [v[0] for v in body["embeddings"]] == [2.0, 4.0]

        o = c.post("/v1/embeddings", json={"input": "three word text", "model": "ignored"}).json()
        assert o["object"] == "list" and o["model"] == "m"
        assert o["data"] == [{"object": "embedding", "index": 0, "embedding": o["data"][0]["embedding"]}]
        assert len(o["data"][0]["embedding"]) == DIM
        assert o["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
        many = c.post("/v1/embeddings", json={"input": ["a", "bb", "ccc"]}).json()
        assert [d["index"] for d in many["data"]] == [0, 1, 2]
        assert [d["embedding"][0] for d in many["data"]] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/embed", {"texts": []}, 422, "must not be empty"),
        ("/embed", {"texts": "not a list"}, 422, "must be a list"),
        ("/embed", {"texts": ["ok", 3]}, 422, "texts[1]` must be a string"),
        ("/embed", {"texts": ["x"] * 11}, 422, "the limit is 10"),
        ("/embed", {"texts": ["x" * 101]}, 422, "the limit is 100"),
        ("/embed", {}, 422, "must be a list"),
        ("/v1/embeddings", {"input": [None]}, 422, "must be a string"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "base64"}, 422, "encoding_format"),
        ("/embed", [1, 2], 400, "JSON object"),
    ],
)
def test_bad_input_gets_clear_error(path: str, body: object, status: int, needle: str) -> None:
    enc = FakeEncoder()
    with TestClient(create_app(loader=enc.loader, max_texts=10, max_chars=100)) as c:
        wait_ready(c)
        r = c.post(path, json=body)
        assert r.status_code == status
        assert needle in r.json()["error"]
        assert enc.calls == []  # nothing invalid ever reaches the encoder


def test_malformed_json_is_400() -> None:
    enc = FakeEncoder()
    with TestClient(create_app(loader=enc.loader)) as c:
        wait_ready(c)
        r = c.post("/embed", content=b"{oops", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "valid JSON" in r.json()["error"]
        assert c.get("/nope").json()["error"]  # even a 404 has a JSON error


def test_concurrent_requests_are_coalesced_into_one_batch() -> None:
    # The first batch is held in the encoder briefly, so the others queue up meanwhile;
    # a generous max_wait makes coalescing deterministic on a loaded 2-core machine.
    enc = FakeEncoder(delay_s=0.05)
    with TestClient(create_app(loader=enc.loader, max_batch=64, max_wait_ms=100)) as c:
        wait_ready(c)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: c.post("/embed", json={"texts": [f"t{i}", "x" * i]}), range(8)))
        assert all(r.status_code == 200 for r in results)
        # Each caller got its own vectors back, in order, despite sharing batches.
        for i, r in enumerate(results):
            assert [v[0] for v in r.json()["embeddings"]] == [float(len(f"t{i}")), float(i)]
        assert sum(len(b) for b in enc.calls) == 16
        assert len(enc.calls) < 8, f"no coalescing happened: {[len(b) for b in enc.calls]}"
        stats = c.get("/health").json()["batching"]
        assert stats["requests"] == 8 and stats["texts"] == 16 and stats["largest_batch"] > 2


def test_batches_never_exceed_max_batch() -> None:
    enc = FakeEncoder(delay_s=0.02)
    with TestClient(create_app(loader=enc.loader, max_batch=4, max_wait_ms=50)) as c:
        wait_ready(c)
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda i: c.post("/embed", json={"texts": ["a", "b", "c"]}), range(6)))
        assert all(r.status_code == 200 for r in results)
        assert max(len(b) for b in enc.calls) <= 4
        assert sum(len(b) for b in enc.calls) == 18


def test_encoder_failure_is_json_error_and_service_survives() -> None:
    enc = FakeEncoder(fail=True)
    with TestClient(create_app(loader=enc.loader)) as c:
        wait_ready(c)
        r = c.post("/embed", json={"texts": ["a"]})
        assert r.status_code == 500
        assert "fake encoder exploded" in r.json()["error"]
        enc.fail = False
        assert c.post("/embed", json={"texts": ["a"]}).status_code == 200
