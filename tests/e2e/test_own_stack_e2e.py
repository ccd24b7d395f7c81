"""A stack llmops did not write, certified with `llmops adopt` (the own-stack issue's e2e test).

tests/e2e/own_stack/ is a compose project in another shape: one `compose.yaml`, services
llm-main, llm-backup, litellm, embedder, retriever, vectors; alias `assistant` on other ports; the
LiteLLM config at /app/config.yaml with model ids unlike the service names, the primary reached
through a network alias and the master key under PROXY_KEY; no llmops labels.  The test copies
it to a folder named like the compose project (compose's rule then names the project, no
--project-name given), adopts it, brings it up, and runs verify, a stop failover and chaos qdrant
on it, then takes down only that project.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import E2E_PROJECT_PREFIX, PORT_BASE, cli_env

HERE = Path(__file__).resolve().parent
PROJECT = f"{E2E_PROJECT_PREFIX}-own"
BASE = PORT_BASE + 100
PORTS = {"OWN_GATEWAY_PORT": BASE, "OWN_MAIN_PORT": BASE + 1, "OWN_BACKUP_PORT": BASE + 2,
         "OWN_EMBEDDER_PORT": BASE + 3, "OWN_RETRIEVER_PORT": BASE + 4, "OWN_VECTORS_PORT": BASE + 5}


@pytest.fixture()
def own_stack(docker_engine: Any, tmp_path: Path) -> Any:
    d = tmp_path / PROJECT
    shutil.copytree(HERE / "own_stack", d)
    key = "sk-e2e-own-" + secrets.token_urlsafe(16)
    env = cli_env(OWN_PROXY_KEY=key, COLUMNS="250", **{k: str(v) for k, v in PORTS.items()})

    def llmops(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(d), "--evidence-dir",
                               str(tmp_path / "evidence"), *args], capture_output=True, text=True, env=env,
                              timeout=timeout)

    try:
        yield d, llmops, key, tmp_path / "evidence"
    finally:
        llmops("down", "--volumes", timeout=180)


def ok(p: subprocess.CompletedProcess[str], what: str) -> str:
    assert p.returncode == 0, f"{what} exited {p.returncode}:\n{p.stdout[-4000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


def test_adopt_up_verify_failover_qdrant_on_a_stack_of_another_shape(own_stack: Any) -> None:
    d, llmops, key, evidence = own_stack
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}

    # Without labels: up brings the stack up and says the warm-up needs adopt's labels; a role that
    # is needed names the unlabelled services and adopt (never the command just run).
    out = ok(llmops("up"), "up without labels")
    assert "warm-up skipped" in out and "llmops adopt --write" in out
    out = llmops("chaos", "failover", "--mode", "stop")
    assert out.returncode == 4 and "`llmops adopt --write` labels them" in out.stderr and "llmops up" not in out.stderr

    # adopt reads the compose files and the running containers: rag and embedding are proven by
    # what the retriever and the embedder answer, not guessed from an image.
    out = ok(llmops("adopt", "--write"), "adopt")
    assert (d / "llmops.adopt.yml").is_file() and "llmops.adopt.yml" in out
    assert "GET /health reports qdrant and embedding" in out and "POST /v1/embeddings answered" in out
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file() and p.name != "llmops.adopt.yml"} == before

    ok(llmops("up"), "up")
    out = ok(llmops("verify"), "verify")
    assert "alias assistant" in out and "served by llm-main (model id main-llm)" in out
    assert "model minilm, dim 384" in out

    out = ok(llmops("chaos", "failover", "--mode", "stop"), "chaos failover")
    assert "llm-backup" in out and "gateway config not found" not in out

    out = ok(llmops("chaos", "qdrant"), "chaos qdrant")
    assert "data safety not run" in out          # a user's vector DB is not SIGKILLed unasked

    # The evidence names this stack, and holds no copy of its key.
    for f in evidence.rglob("*"):
        if f.is_file():
            assert key not in f.read_text(errors="replace"), f"{f} holds the gateway's key"


def test_ambiguity_is_one_line_and_exit_2(own_stack: Any) -> None:
    d, llmops, _key, _ev = own_stack
    cfg = d / "litellm.yaml"
    cfg.write_text(cfg.read_text().replace("      order: 1\n", "").replace("      order: 2\n", ""))
    p = llmops("adopt")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "order" in p.stderr and "--role" in p.stderr
    p = llmops("adopt", "--role", "llm-main=primary")
    assert p.returncode == 2 and "primary" in p.stderr and p.stderr.startswith("llmops: error:")
    assert not (d / "llmops.adopt.yml").exists()


def test_a_bad_label_value_is_named_with_its_service(own_stack: Any) -> None:
    d, llmops, _key, _ev = own_stack
    compose = d / "compose.yaml"
    compose.write_text(compose.read_text().replace(
        "  vectors:\n    image: llmops/qdrant-standin:latest\n",
        "  vectors:\n    image: llmops/qdrant-standin:latest\n    labels:\n      llmops.port: \"63 33\"\n"))
    p = llmops("up")
    assert p.returncode == 2 and "service vectors: label llmops.port" in p.stderr and p.stderr.count("\n") == 1


def test_a_stack_with_fewer_roles_is_certified_for_what_it_has(own_stack: Any) -> None:
    """No rag and no embedding service: failover and the vector DB are certified; the report
    lists the missing roles as not in this stack, and the exit is what the rest earned."""
    import json

    import yaml

    d, llmops, key, evidence = own_stack
    doc = yaml.safe_load((d / "compose.yaml").read_text())
    for name in ("retriever", "embedder"):
        del doc["services"][name]
    doc = {k: v for k, v in doc.items() if not k.startswith("x-")}
    (d / "compose.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    ok(llmops("adopt", "--write"), "adopt")
    ok(llmops("up"), "up")
    p = llmops("certify", "--data-safety", timeout=900)
    summary = json.loads((evidence / "latest" / "summary.json").read_text())
    assert p.returncode == 3 and summary["headline"].startswith("PASS (GPU check skipped"), p.stdout[-3000:]
    assert summary["not_in_stack"] == ["rag", "embedding"]
    qdrant = json.loads((evidence / "latest" / "05_qdrant_retry_test.json").read_text())
    assert qdrant["status"] == "pass" and qdrant["details"]["not_in_stack"] == ["rag"]
    assert any("lost" in d["criterion"] or "acknowledged" in d["criterion"] for d in qdrant["dod"])
    functional = json.loads((evidence / "latest" / "02_functional_check.json").read_text())
    assert functional["details"]["not_in_stack"] == ["rag", "embedding"]
    assert not any("embedding" in d["criterion"] or "RAG" in d["criterion"] for d in functional["dod"])
    assert "Not in this stack: rag, embedding" in (evidence / "latest" / "summary.md").read_text()
