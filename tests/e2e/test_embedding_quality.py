"""The stack's embedding server against the real producer: sentence-transformers' own vectors.

tests/data/embedding_reference.json was made once by sentence-transformers on the CPU
(tests/data/make_embedding_reference.py, which names its versions).  Here the llama-server in the
suite's stack, serving the GGUF that `llmops build` converted without torch, must give each of its
texts at cosine >= 0.999, and rag over that server must rank a small retrieval set as
sentence-transformers does.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import STACK_PORTS

REFERENCE = json.loads((Path(__file__).resolve().parents[1] / "data" / "embedding_reference.json").read_text())
MIN_COSINE = 0.999
EMBEDDING = f"http://127.0.0.1:{STACK_PORTS['EMBEDDING_PORT']}"
# A rag of the suite's own, on the stack's network: its own collection, no demo corpus.
RAG_PORT = STACK_PORTS["QDRANT_PORT"] + 10


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def embed(texts: list[str], url: str = EMBEDDING) -> list[list[float]]:
    r = httpx.post(f"{url}/v1/embeddings", json={"input": texts}, timeout=60)
    r.raise_for_status()
    return [d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])]


def cosines(got: list[list[float]]) -> list[float]:
    return [cosine(g, t["embedding"]) for g, t in zip(got, REFERENCE["texts"])]


def test_reference_set_is_big_enough() -> None:
    assert len(REFERENCE["texts"]) >= 32 and len(REFERENCE["retrieval"]["queries"]) >= 6


def test_each_text_matches_sentence_transformers(stack: dict[str, Any]) -> None:
    texts = [t["text"] for t in REFERENCE["texts"]]
    got = embed(texts)
    assert len(got) == len(texts) and all(len(v) == REFERENCE["dim"] for v in got)
    scores = cosines(got)
    worst = min(range(len(scores)), key=scores.__getitem__)
    print(f"cosine to sentence-transformers over {len(scores)} texts: min {scores[worst]:.7f}, "
          f"mean {sum(scores) / len(scores):.7f}")
    assert all(not math.isnan(s) for s in scores)
    assert scores[worst] >= MIN_COSINE, f"text {worst} ({texts[worst][:60]!r}) at cosine {scores[worst]:.6f}"


def test_the_guard_fails_a_server_that_pools_wrongly(stack: dict[str, Any]) -> None:
    """The same GGUF served with --pooling cls (MiniLM was trained with mean): the guard must see it."""
    client, project = stack["client"], stack["project"]
    emb = client.containers.list(filters={"label": [f"com.docker.compose.project={project}",
                                                    "com.docker.compose.service=embedding"]})[0]
    argv = list(emb.attrs["Config"]["Cmd"])
    model = argv[argv.index("-m") + 1]
    port = STACK_PORTS["QDRANT_PORT"] + 11
    c = client.containers.run(emb.attrs["Config"]["Image"], ["llama-server", "-m", model, "--embeddings",
                              "--pooling", "cls", "--host", "0.0.0.0", "--port", "8003", "-t", "1"],
                              detach=True, name=f"{project}-wrong-pooling-{os.getpid()}",
                              ports={"8003/tcp": ("127.0.0.1", port)}, labels={"llmops-e2e": "wrong-pooling"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        scores = cosines(embed([t["text"] for t in REFERENCE["texts"]], url))
        print(f"wrong pooling: cosine min {min(scores):.4f}, max {max(scores):.4f}")
        assert max(scores) < MIN_COSINE
    finally:
        c.remove(force=True)


@pytest.fixture()
def own_rag(stack: dict[str, Any]) -> Any:
    """A rag container of the suite's own (the stack's image and network, a fresh collection)."""
    client, project = stack["client"], stack["project"]
    nets = [n.name for n in client.networks.list(filters={"label": f"com.docker.compose.project={project}"})]
    assert nets, f"no compose network for {project}"
    collection = f"retrieval_{uuid.uuid4().hex[:8]}"
    c = client.containers.run(
        "llmops/pysvc:latest", ["python", "-m", "llmops.services.rag"], detach=True,
        name=f"{project}-retrieval-rag-{os.getpid()}", network=nets[0],
        ports={"8002/tcp": ("127.0.0.1", RAG_PORT)}, labels={"llmops-e2e": "retrieval"},
        environment={"RAG_PORT": "8002", "QDRANT_URL": "http://qdrant:6333", "EMBEDDING_URL": "http://embedding:8003",
                     "GATEWAY_URL": "http://api-gateway:4000", "RAG_COLLECTION": collection, "RAG_DEMO_CORPUS": "0"})
    url = f"http://127.0.0.1:{RAG_PORT}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).json().get("corpus_ready"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        else:
            raise AssertionError(f"the suite's rag never became ready: {c.logs()[-1500:]!r}")
        yield url
    finally:
        c.remove(force=True)
        httpx.delete(f"http://127.0.0.1:{STACK_PORTS['QDRANT_PORT']}/collections/{collection}", timeout=10)


def test_retrieval_top3_through_rag(own_rag: str) -> None:
    ret = REFERENCE["retrieval"]
    docs = [{"text": d, "metadata": {"i": i}} for i, d in enumerate(ret["documents"])]
    r = httpx.post(f"{own_rag}/ingest", json={"documents": docs}, timeout=60)
    assert r.status_code == 200, r.text
    differ = []
    for q in ret["queries"]:
        r = httpx.post(f"{own_rag}/query", json={"query": q["query"], "top_k": 3}, timeout=30)
        assert r.status_code == 200, r.text
        order = [h["metadata"]["i"] for h in r.json()["hits"]]
        if order != q["top3"]:
            differ.append(f"{q['query']!r}: rag {order}, sentence-transformers {q['top3']}")
    assert not differ, "; ".join(differ)
