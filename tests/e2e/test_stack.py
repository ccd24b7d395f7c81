"""The real cpu stack: six healthy containers, each endpoint answering as DESIGN's table says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml


from conftest import STACK_PORTS

ROOT = Path(__file__).resolve().parents[2]
_VAR = {"api-gateway": "GATEWAY_PORT", "inference-chat": "CHAT_PORT", "rag": "RAG_PORT",
        "embedding": "EMBEDDING_PORT", "inference-code": "CODE_PORT", "qdrant": "QDRANT_PORT"}
URL = {svc: f"http://127.0.0.1:{STACK_PORTS[var]}" for svc, var in _VAR.items()}


def test_six_containers_healthy(stack: dict[str, Any]) -> None:
    cs = stack["client"].containers.list(filters={"label": f"com.docker.compose.project={stack['project']}"})
    health = {c.labels["com.docker.compose.service"]: c.attrs["State"].get("Health", {}).get("Status") for c in cs}
    assert health == {name: "healthy" for name in URL}


@pytest.mark.parametrize("service", ["inference-chat", "inference-code"])
def test_llama_health(stack: dict[str, Any], service: str) -> None:
    r = httpx.get(f"{URL[service]}/health", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_gateway_health_counts_both_deployments(stack: dict[str, Any]) -> None:
    assert httpx.get(f"{URL['api-gateway']}/health/liveliness", timeout=5).status_code == 200
    r = httpx.get(f"{URL['api-gateway']}/health", headers={"Authorization": f"Bearer {stack['key']}"}, timeout=30)
    body = r.json()
    assert r.status_code == 200 and body["healthy_count"] == 2 and body["unhealthy_count"] == 0
    assert httpx.get(f"{URL['api-gateway']}/health", timeout=5).status_code >= 400   # refused without the key (LiteLLM says 500)


def test_rag_health_body(stack: dict[str, Any]) -> None:
    r = httpx.get(f"{URL['rag']}/health", timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["qdrant"] is True and body["embedding"] is True
    assert body["retry_policy"]["deadline_s"] > 0


def test_embedding_health_and_dims(stack: dict[str, Any]) -> None:
    """The embedding service is a llama-server: llama's health, its alias and dimension on
    /v1/models, OpenAI-shaped unit vectors in input order."""
    assert httpx.get(f"{URL['embedding']}/health", timeout=5).json() == {"status": "ok"}
    model = httpx.get(f"{URL['embedding']}/v1/models", timeout=5).json()["data"][0]
    assert model["id"] == "all-MiniLM-L6-v2" and model["meta"]["n_embd"] == 384
    r = httpx.post(f"{URL['embedding']}/v1/embeddings", json={"input": ["cat", "kitten", "tax law"]}, timeout=30).json()
    assert [d["index"] for d in r["data"]] == [0, 1, 2]
    a, b, c = (d["embedding"] for d in r["data"])
    dot = lambda x, y: sum(p * q for p, q in zip(x, y))  # noqa: E731
    assert [len(v) for v in (a, b, c)] == [384, 384, 384]
    assert all(abs(dot(v, v) - 1.0) < 1e-3 for v in (a, b, c)), "llama-server L2-normalises by default"
    assert dot(a, b) > dot(a, c), "a real model puts cat nearer kitten than tax law"


def test_qdrant_endpoints(stack: dict[str, Any]) -> None:
    assert httpx.get(f"{URL['qdrant']}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{URL['qdrant']}/readyz", timeout=5).status_code == 200
    cols = httpx.get(f"{URL['qdrant']}/collections", timeout=5).json()["result"]["collections"]
    assert "docs" in [c["name"] for c in cols]


def test_completion_served_by_primary(stack: dict[str, Any]) -> None:
    r = httpx.post(f"{URL['api-gateway']}/v1/chat/completions", timeout=60,
                   headers={"Authorization": f"Bearer {stack['key']}"},
                   json={"model": "chat-7b", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
    assert r.status_code == 200
    assert urlparse(r.headers["x-litellm-model-api-base"]).hostname == "inference-chat"
    assert r.headers["x-litellm-model-id"] == "inference-chat"
    assert r.json()["choices"][0]["message"]["content"]


def test_rag_query_returns_hits(stack: dict[str, Any]) -> None:
    r = httpx.post(f"{URL['rag']}/query", json={"query": "What does LiteLLM do?", "top_k": 3}, timeout=30)
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 3 and all(h["text"] for h in hits)


def test_verify_writes_evidence(llmops: Any, stack: dict[str, Any], tmp_path: Path) -> None:
    p = llmops("--evidence-dir", str(tmp_path), "verify")
    assert p.returncode == 0, p.stdout + p.stderr
    run = (tmp_path / "latest").resolve()
    health = json.loads((run / "03_health_check.json").read_text())
    assert health["metrics"]["endpoints_ok"] == health["metrics"]["endpoints_total"] == 6
    assert health["metrics"]["wall_s"] <= 1.5 * max(p["latency_s"] for p in health["details"]["probes"]) + 0.005
    func = json.loads((run / "02_functional_check.json").read_text())
    assert func["metrics"]["gateway_backend"] == "inference-chat" and func["metrics"]["rag_hits"] >= 1
    status = json.loads((run / "01_services_status.json").read_text())
    assert status["metrics"] == {"services_total": 6, "services_healthy": 6}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["profile"] == "cpu" and len(manifest["images"]) == 6
    assert manifest["router"]["router_settings"]["allowed_fails"] == 0
    kinds = {json.loads(line)["kind"] for line in (run / "events.ndjson").read_text().splitlines()}
    assert {"probe", "request"} <= kinds
    for stem in ("01_services_status", "02_functional_check", "03_health_check"):
        assert "Definition of Done" in (run / f"{stem}.txt").read_text()


def test_up_is_idempotent(llmops: Any, stack: dict[str, Any]) -> None:
    p = llmops("--json", "up", "--wait-timeout", "120")
    assert p.returncode == 0, p.stderr
    assert set(json.loads(p.stdout)["time_to_healthy_s"]) == set(URL)


def test_up_warms_every_slot_of_each_deployment_through_the_gateway(stack: dict[str, Any]) -> None:
    """Addressed by model_info.id, each warm-up request must be served by that deployment alone
    (proven by the gateway's header), once per llama-server slot (cpu.yml's -np)."""
    argv = yaml.safe_load((ROOT / "compose" / "cpu.yml").read_text())["x-llama-cpu"]["command"]
    slots = int(argv[argv.index("-np") + 1])
    warm = json.loads(stack["up"])["warmup"]
    assert [w["deployment"] for w in warm] == ["inference-chat", "inference-code"]
    for w in warm:
        assert w["ok"], w
        assert w["slots"] == slots and w["statuses"] == [200] * slots
        assert w["backends"] == [w["deployment"]] * slots


def test_status_service_filter(llmops: Any, stack: dict[str, Any], tmp_path: Path) -> None:
    p = llmops("--json", "--evidence-dir", str(tmp_path), "status", "--service", "rag")
    assert p.returncode == 0
    assert json.loads(p.stdout.splitlines()[0])["metrics"] == {"services_total": 1, "services_healthy": 1}


def test_up_timeout_names_the_service_and_its_logs(stack: dict[str, Any], project_copy: Path, free_port: Any,
                                                   cli_env: Any, run_llmops: Any) -> None:
    """A service whose health check fails: exit 4, one line naming it with its last log lines.

    Its check fails for good after one try (`retries: 1`), so it is `unhealthy` well inside the
    timeout, and it is the one named even when, on a busy machine, another service is still
    `starting` at 40 s (with `retries: 1000` rag stayed `starting` too, and the gateway was named)."""
    f = project_copy / "compose" / "docker-compose.yml"
    doc = yaml.safe_load(f.read_text())
    doc["services"]["rag"]["healthcheck"] = {"test": ["CMD", "false"], "interval": "1s", "retries": 1}
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    ports = {v: str(free_port()) for v in ("GATEWAY_PORT", "CHAT_PORT", "CODE_PORT", "RAG_PORT",
                                           "EMBEDDING_PORT", "QDRANT_PORT")}
    project = "llmops-e2e-timeout"
    env = cli_env(**ports)
    try:
        p = run_llmops("--project-dir", str(project_copy), "--profile", "cpu", "--project-name", project,
                       "up", "--no-build", "--wait-timeout", "40", env=env, timeout=300)
        lines = [x for x in p.stderr.splitlines() if x.startswith("llmops: error:")]
        assert p.returncode == 4, p.stderr[-2000:]
        assert len(lines) == 1 and "rag not healthy after 40 s" in lines[0] and "last log lines" in lines[0]
        assert "Uvicorn running" in lines[0] or "INFO" in lines[0]   # real log lines of the rag container
    finally:
        run_llmops("--project-dir", str(project_copy), "--profile", "cpu", "--project-name", project,
                   "down", "--volumes", env=env, timeout=300)
