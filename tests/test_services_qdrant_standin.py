"""The Qdrant stand-in: REST subset, Qdrant envelopes, persistence, and real qdrant-client use."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("qdrant_edge")
from qdrant_client import QdrantClient, models  # noqa: E402

from llmops.services.qdrant_standin import TITLE, create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_standin(storage: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QDRANT_STORAGE": str(storage), "QDRANT_PORT": str(port), "QDRANT_HOST": "127.0.0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops.services.qdrant_standin"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stand-in exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("stand-in did not become ready in 20 s")


def angle(i: int) -> list[float]:
    return [math.cos(i * 0.01), math.sin(i * 0.01), 0.0, 0.0]


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path)) as c:
        yield c


def test_root_and_probes_identify_the_standin(client: TestClient) -> None:
    root = client.get("/").json()
    assert root == {"title": TITLE, "version": "1.12.0-standin"}
    assert "not Qdrant" in root["title"]
    for path, text in (("/healthz", "healthz check passed"), ("/livez", "livez check passed"), ("/readyz", "all shards are ready")):
        r = client.get(path)
        assert r.status_code == 200 and r.text == text
        assert r.headers["content-type"].startswith("text/plain")


def test_collection_lifecycle_and_envelope(client: TestClient) -> None:
    assert client.get("/collections/c/exists").json()["result"] == {"exists": False}
    r = client.put("/collections/c", json={"vectors": {"size": 3, "distance": "Dot"}})
    assert r.status_code == 200
    body = r.json()
    assert body["result"] is True and body["status"] == "ok" and isinstance(body["time"], float)
    assert client.get("/collections").json()["result"] == {"collections": [{"name": "c"}]}
    info = client.get("/collections/c").json()["result"]
    assert info["status"] == "green"
    assert info["points_count"] == 0
    assert info["config"]["params"]["vectors"] == {"size": 3, "distance": "Dot"}
    again = client.put("/collections/c", json={"vectors": {"size": 3, "distance": "Dot"}})
    assert again.status_code == 400 and "already exists" in again.json()["status"]["error"]
    assert client.delete("/collections/c").json()["result"] is True
    assert client.get("/collections/c/exists").json()["result"] == {"exists": False}


def test_upsert_search_query_count(client: TestClient) -> None:
    client.put("/collections/c", json={"vectors": {"size": 2, "distance": "Cosine"}})
    uid = str(uuid.uuid4())
    r = client.put(
        "/collections/c/points?wait=true",
        json={"points": [{"id": 7, "vector": [1.0, 0.0], "payload": {"t": "x"}}, {"id": uid, "vector": [0.0, 1.0]}]},
    )
    assert r.status_code == 200
    assert r.json()["result"] == {"operation_id": 1, "status": "completed"}
    # Qdrant's batch form is accepted too.
    r = client.put("/collections/c/points", json={"batch": {"ids": [8], "vectors": [[1.0, 1.0]], "payloads": [{"t": "y"}]}})
    assert r.json()["result"]["operation_id"] == 2
    assert client.post("/collections/c/points/count", json={"exact": True}).json()["result"] == {"count": 3}

    legacy = client.post("/collections/c/points/search", json={"vector": [1.0, 0.0], "limit": 2, "with_payload": True}).json()
    assert [p["id"] for p in legacy["result"]] == [7, 8]
    assert legacy["result"][0]["payload"] == {"t": "x"}
    assert legacy["result"][0]["score"] == pytest.approx(1.0, abs=1e-5)

    q = client.post("/collections/c/points/query", json={"query": {"nearest": [0.0, 1.0]}, "limit": 1, "with_payload": True})
    assert q.json()["result"]["points"][0]["id"] == uid


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("post", "/collections/missing/points/count", {}, 404, "doesn't exist"),
        ("post", "/collections/missing/points/query", {"query": [1, 0]}, 404, "doesn't exist"),
        ("get", "/collections/missing", None, 404, "doesn't exist"),
        ("put", "/collections/c/points", {"points": [{"id": -1, "vector": [1, 0]}]}, 400, "unsigned integer or UUID"),
        ("put", "/collections/c/points", {"points": [{"id": "nope", "vector": [1, 0]}]}, 400, "unsigned integer or UUID"),
        ("put", "/collections/c/points", {"points": [{"id": 1, "vector": [1, 0, 0]}]}, 400, "expected dim: 2, got 3"),
        ("put", "/collections/c/points", {"nothing": 1}, 400, "`points` or `batch`"),
        ("post", "/collections/c/points/query", {"query": [1, 0], "limit": 0}, 400, "limit"),
        ("post", "/collections/c/points/query", {"query": [1, 0], "filter": {"must": [{"key": "a"}]}}, 400, "not supported"),
        ("post", "/collections/c/points/query", {"query": [1, 0, 0]}, 400, "expected dim"),
        ("put", "/collections/d", {"vectors": {"size": 2, "distance": "Hamming"}}, 400, "unknown distance"),
        ("put", "/collections/d", {"vectors": {"a": {"size": 2, "distance": "Cosine"}}}, 400, "named vectors"),
        ("put", "/collections/bad%20name", {"vectors": {"size": 2}}, 400, "invalid collection name"),
    ],
)
def test_errors_use_qdrant_error_envelope(
    client: TestClient, method: str, path: str, body: object, status: int, needle: str
) -> None:
    client.put("/collections/c", json={"vectors": {"size": 2, "distance": "Cosine"}})
    r = client.request(method, path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["status"]["error"]
    assert needle in err


def test_malformed_json_is_400_not_500(client: TestClient) -> None:
    client.put("/collections/c", json={"vectors": {"size": 2, "distance": "Cosine"}})
    r = client.put("/collections/c/points", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["status"]["error"]


def test_data_survives_clean_restart(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path)) as c:
        c.put("/collections/keep", json={"vectors": {"size": 2, "distance": "Euclid"}})
        c.put("/collections/keep/points?wait=true", json={"points": [{"id": i, "vector": [i, 1.0]} for i in range(5)]})
    with TestClient(create_app(tmp_path)) as c:
        assert c.post("/collections/keep/points/count").json()["result"]["count"] == 5
        assert c.get("/collections/keep").json()["result"]["config"]["params"]["vectors"]["distance"] == "Euclid"


def test_incomplete_directories_are_cleaned_at_start(tmp_path: Path) -> None:
    # A create that crashed before writing config.json, and a delete that crashed mid-way.
    (tmp_path / "collections" / "half").mkdir(parents=True)
    (tmp_path / "collections" / ".deleted-old-1").mkdir()
    with TestClient(create_app(tmp_path)) as c:
        assert c.get("/collections").json()["result"]["collections"] == []
        assert c.put("/collections/half", json={"vectors": {"size": 2}}).status_code == 200
    assert not (tmp_path / "collections" / ".deleted-old-1").exists()


def test_real_qdrant_client_and_sigkill_durability(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_standin(tmp_path, port)
    try:
        qc = QdrantClient(url=url, prefer_grpc=False, check_compatibility=False, timeout=5)
        assert qc.collection_exists("docs") is False
        assert qc.create_collection("docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
        assert qc.collection_exists("docs") is True
        # Points spread on a circle, so each one is its own nearest neighbour.
        points = [
            models.PointStruct(id=i, vector=angle(i), payload={"text": f"doc {i}"}) for i in range(200)
        ]
        points.append(models.PointStruct(id=str(uuid.uuid4()), vector=[0.0, 0.0, 1.0, 0.0], payload={"text": "uuid doc"}))
        res = qc.upsert("docs", points=points, wait=True)
        assert res.status == models.UpdateStatus.COMPLETED
        hits = qc.query_points("docs", query=[0.0, 0.0, 1.0, 0.0], limit=3, with_payload=True).points
        assert isinstance(hits[0], models.ScoredPoint)
        assert hits[0].payload == {"text": "uuid doc"}
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert qc.count("docs", exact=True).count == 201
        qc.close()
    finally:
        # No graceful shutdown, no flush: only the WAL can save the acknowledged points.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    proc = start_standin(tmp_path, port)
    try:
        qc = QdrantClient(url=url, prefer_grpc=False, check_compatibility=False, timeout=5)
        assert qc.count("docs", exact=True).count == 201
        again = qc.query_points("docs", query=angle(150), limit=1, with_payload=True).points
        assert again[0].id == 150 and again[0].payload == {"text": "doc 150"}
        qc.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_retrieve_points_by_id_as_qdrant_does(client: TestClient) -> None:
    client.put("/collections/r", json={"vectors": {"size": 4, "distance": "Cosine"}})
    u = str(uuid.uuid4())
    pts = [{"id": 7, "vector": angle(7), "payload": {"i": 7}}, {"id": u, "vector": angle(8), "payload": {"i": 8}}]
    assert client.put("/collections/r/points", params={"wait": "true"}, json={"points": pts}).status_code == 200
    missing = str(uuid.uuid4())
    r = client.post("/collections/r/points", json={"ids": [u, 7, missing, 99]})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and isinstance(body["time"], float)
    # Unknown ids are left out; payload comes by default, the vector only when asked for.
    got = {p["id"]: p for p in body["result"]}
    assert set(got) == {7, u}
    assert got[7]["payload"] == {"i": 7} and got[u]["payload"] == {"i": 8} and got[7]["vector"] is None
    r = client.post("/collections/r/points", json={"ids": [7], "with_payload": False, "with_vector": True})
    [rec] = r.json()["result"]
    assert rec["payload"] in ({}, None) and rec["vector"] == pytest.approx(angle(7), abs=1e-6)
    for bad in ({}, {"ids": 7}, {"ids": [-1]}, {"ids": ["not-a-uuid"]}, {"ids": [7], "with_vector": 3}):
        r = client.post("/collections/r/points", json=bad)
        assert r.status_code == 400 and r.json()["status"]["error"].startswith("Wrong input"), bad
    r = client.post("/collections/nope/points", json={"ids": [1]})
    assert r.status_code == 404 and "doesn't exist" in r.json()["status"]["error"]


def test_qdrant_client_retrieve(tmp_path: Path) -> None:
    port = free_port()
    proc = start_standin(tmp_path, port)
    try:
        qc = QdrantClient(url=f"http://127.0.0.1:{port}", check_compatibility=False)
        qc.create_collection("k", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
        ids = [str(uuid.uuid4()) for _ in range(3)]
        qc.upsert("k", points=[models.PointStruct(id=i, vector=angle(n), payload={"n": n}) for n, i in enumerate(ids)],
                  wait=True)
        recs = qc.retrieve("k", ids=[ids[0], ids[2], str(uuid.uuid4())], with_payload=True)
        assert sorted((str(r.id), r.payload["n"]) for r in recs) == sorted([(ids[0], 0), (ids[2], 2)])
    finally:
        proc.kill()
        proc.wait(5)


# ------------------------------------------------------------------ chaos qdrant's data-safety lines, on a real stand-in


def test_data_safety_lines_pass_after_sigkill_and_fail_when_they_should(tmp_path: Path) -> None:
    from llmops.chaos.qdrant import QdrantOptions
    from llmops.chaos.qdrant_safety import (
        MIN_SAFETY_POINTS,
        compare_writes,
        read_back,
        safety_criteria,
        write_points,
    )
    from llmops.errors import UsageError

    with pytest.raises(UsageError, match="--points 99 out of range"):
        QdrantOptions(safety_points=MIN_SAFETY_POINTS - 1).validate()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_standin(tmp_path, port)
    try:
        for name in ("a", "b", "small"):
            httpx.put(f"{url}/collections/{name}", json={"vectors": {"size": 4, "distance": "Cosine"}}).raise_for_status()
        acked, errors = write_points(f"{url}/collections/a", 120)
        assert len(acked) == 120 and errors == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc = start_standin(tmp_path, port)
        found, err = read_back(f"{url}/collections/a", list(acked))
        good = compare_writes(120, acked, found, err, errors)
        assert good.lost_writes == 0 and good.found_after_kill == 120
        assert [c.passed for c in safety_criteria(good)] == [True, True]

        # Same count, other IDs: a count comparison passes, the ID read-back must not.
        other, _ = write_points(f"{url}/collections/b", 120)
        assert httpx.post(f"{url}/collections/b/points/count", json={}).json()["result"]["count"] == 120
        swapped = compare_writes(120, acked, *read_back(f"{url}/collections/b", list(acked)))
        assert swapped.lost_writes == 120 and swapped.found_after_kill == 0
        assert [c.passed for c in safety_criteria(swapped)] == [True, False]

        # An acknowledged point that comes back with another payload is not safe either.
        some_id = next(iter(acked))
        httpx.put(f"{url}/collections/a/points", params={"wait": "true"},
                  json={"points": [{"id": some_id, "vector": [1.0, 0.0, 0.0, 0.5], "payload": {"i": -1}}]}).raise_for_status()
        changed = compare_writes(120, acked, *read_back(f"{url}/collections/a", list(acked)))
        assert changed.changed_writes == 1 and changed.changed_ids == [some_id]
        assert safety_criteria(changed)[1].passed is False

        # Writes that are never acknowledged (no such collection): both lines fail.
        none_acked, errs = write_points(f"{url}/collections/missing", 120)
        assert none_acked == {} and len(errs) == 6 and "HTTP 404" in errs[0]
        nothing = compare_writes(120, none_acked, {}, None, errs)
        assert [c.passed for c in safety_criteria(nothing)] == [False, False]

        # Fewer than 100 writes, all acknowledged and all found, still fail the first line.
        few, _ = write_points(f"{url}/collections/small", 50)
        few_r = compare_writes(50, few, *read_back(f"{url}/collections/small", list(few)))
        assert few_r.lost_writes == 0 and [c.passed for c in safety_criteria(few_r)] == [False, True]
    finally:
        proc.kill()
        proc.wait(5)

    # A read-back that cannot reach Qdrant is a failure, not "nothing lost".
    found, err = read_back(f"{url}/collections/a", list(acked))
    assert found is None and err is not None and err.startswith("ConnectError")
    unread = compare_writes(120, acked, found, err)
    assert unread.lost_writes == 120 and safety_criteria(unread)[1].passed is False
