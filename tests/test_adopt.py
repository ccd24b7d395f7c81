"""`llmops adopt`'s pure core (adopt.py): roles inferred from what `docker compose config` really
prints for a stack llmops did not write, and the override file checked by the real compose binary.

The compose binaries only *parse* here (`config` starts nothing); a test that needs one is skipped,
with the reason, where neither `docker compose` nor `docker-compose` is installed.  Everything else
runs on compose-config-shaped dicts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.adopt import (
    HEADER_FIRST,
    OVERRIDE_NAME,
    Adoption,
    Proposal,
    check_value,
    override_yaml,
    propose,
    write_override,
)
from llmops.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _works(argv: list[str]) -> bool:
    if not shutil.which(argv[0]):
        return False
    try:
        return subprocess.run([*argv, "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


COMPOSE_BINARIES = [b for b in (["docker", "compose"], ["docker-compose"]) if _works(b)]


@pytest.fixture(params=COMPOSE_BINARIES or [None], ids=lambda b: " ".join(b) if b else "no-compose")
def compose_bin(request: pytest.FixtureRequest) -> list[str]:
    if request.param is None:
        pytest.skip("neither `docker compose version` nor `docker-compose version` works here")
    return list(request.param)


def compose_config(binary: list[str], files: list[Path], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The real `compose config` of `files` (it parses and resolves; it starts nothing)."""
    env_file = cwd / ".adopt-test.env"
    env_file.write_text("")
    argv = [*binary, "-p", "adopttest", "--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    # a clean environment: nothing of the caller's (a LLMOPS_QDRANT_IMAGE, a key) may leak in
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run([*argv, "config"], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def llmops_labels(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    out = {}
    for name, svc in config["services"].items():
        raw = svc.get("labels") or {}
        if isinstance(raw, list):
            raw = dict(str(x).partition("=")[::2] for x in raw)
        labels = {k: str(v) for k, v in raw.items() if k.startswith("llmops.")}
        if labels:
            out[name] = labels
    return out


# ---- the user's stack, in a shape llmops never writes ------------------------------------------------

USER_COMPOSE = """\
services:
  llm-main:
    image: ghcr.io/ggml-org/llama.cpp:server
    command: -m /models/x.gguf --port 9000
    volumes: ["./models:/models:ro"]
    networks:
      backend:
        aliases: [brain]
  llm-backup:
    image: ghcr.io/ggml-org/llama.cpp:server
    command: ["-m", "/models/x.gguf", "--port", "9000", "-c", "4096"]
    volumes: ["./models:/models:ro"]
    networks: [backend]
  litellm:
    image: ghcr.io/berriai/litellm:main-stable
    command: --config /app/config.yaml --port 4100
    volumes:
      - ./litellm.yaml:/app/config.yaml:ro
    ports: ["127.0.0.1:4100:4100"]
    networks: [backend]
  retriever:
    image: example/retriever:1
    ports: ["127.0.0.1:7000:7000"]
    networks: [backend]
  embedder:
    image: example/embedder:2
    command: ["/usr/local/bin/llama-server", "--embeddings", "--alias", "e5", "--port", "8090",
              "-m", "/models/e5.gguf"]
    networks: [backend]
  vectors:
    image: qdrant/qdrant
    networks: [backend]
networks:
  backend: {}
"""

USER_LITELLM = """\
model_list:
  - model_name: assistant
    litellm_params:
      model: openai/x
      api_base: http://brain:9000/v1
      api_key: none
      order: 1
      timeout: 2
    model_info: {id: main-llm}
  - model_name: assistant
    litellm_params:
      model: openai/x
      api_base: http://llm-backup:9000/v1
      api_key: none
      order: 2
    model_info: {id: backup-llm}
  - model_name: embeddings
    litellm_params: {model: openai/e5, api_base: "http://embedder:8090/v1"}
router_settings: {num_retries: 1}
"""

ROLES = {"retriever": "rag", "embedder": "embedding"}

EXPECTED = {
    "litellm": {"llmops.role": "gateway", "llmops.port": "4100", "llmops.health": "/health/liveliness",
                "llmops.expect": "litellm", "llmops.model-alias": "assistant"},
    "llm-main": {"llmops.role": "inference-primary", "llmops.port": "9000", "llmops.health": "/health",
                 "llmops.expect": "llama", "llmops.model": "/models/x.gguf"},
    "llm-backup": {"llmops.role": "inference-secondary", "llmops.port": "9000", "llmops.health": "/health",
                   "llmops.expect": "llama", "llmops.model": "/models/x.gguf"},
    "retriever": {"llmops.role": "rag", "llmops.port": "7000", "llmops.health": "/health", "llmops.expect": "rag"},
    "embedder": {"llmops.role": "embedding", "llmops.port": "8090", "llmops.health": "/health",
                 "llmops.expect": "llama", "llmops.model": "/models/e5.gguf", "llmops.model-alias": "e5"},
    "vectors": {"llmops.role": "vectordb", "llmops.port": "6333", "llmops.health": "/readyz", "llmops.expect": "qdrant"},
}


@pytest.fixture
def user_stack(tmp_path: Path) -> Path:
    d = tmp_path / "their-stack"
    (d / "models").mkdir(parents=True)
    (d / "compose.yaml").write_text(USER_COMPOSE)
    (d / "litellm.yaml").write_text(USER_LITELLM)
    return d


def test_user_stack_through_real_compose_config(compose_bin: list[str], user_stack: Path) -> None:
    cfg = compose_config(compose_bin, [user_stack / "compose.yaml"], user_stack)
    assert llmops_labels(cfg) == {}                      # nothing of llmops' in their stack
    a = propose(cfg, project_dir=user_stack, roles=ROLES)
    assert a.problems == []
    assert a.alias == "assistant"
    assert a.gateway_config == user_stack / "litellm.yaml"
    assert a.unassigned == []
    assert [(p.service, p.role) for p in a.proposals] == [
        ("litellm", "gateway"), ("llm-main", "inference-primary"), ("llm-backup", "inference-secondary"),
        ("retriever", "rag"), ("embedder", "embedding"), ("vectors", "vectordb")]
    assert {p.service: p.labels for p in a.proposals} == EXPECTED
    assert all(p.kept == {} for p in a.proposals)
    ev = {p.service: p.evidence for p in a.proposals}
    assert ev["llm-main"] == ("image ghcr.io/ggml-org/llama.cpp:server; api_base http://brain:9000/v1 "
                              "(network alias of llm-main) of deployment order 1 in /app/config.yaml")
    assert ev["llm-backup"] == ("image ghcr.io/ggml-org/llama.cpp:server; api_base http://llm-backup:9000/v1 "
                                "of deployment order 2 in /app/config.yaml")
    assert ev["litellm"] == (f"image ghcr.io/berriai/litellm:main-stable; --config /app/config.yaml = "
                             f"{user_stack / 'litellm.yaml'} on this host; alias assistant has 2 deployments")
    assert ev["vectors"] == "image qdrant/qdrant"
    assert ev["retriever"] == "--role retriever=rag; container port 7000 from its one ports: entry"
    assert ev["embedder"] == "--role embedder=embedding; command llama-server, run with --embeddings"
    # each evidence is one line, and every row is plain text for a table
    assert all("\n" not in e for e in ev.values())
    rows = a.rows()
    assert rows[0] == ("litellm", "gateway", "llmops.role=gateway, llmops.port=4100, llmops.health=/health/liveliness, "
                       "llmops.expect=litellm, llmops.model-alias=assistant", ev["litellm"])
    assert all(isinstance(x, str) for r in rows for x in r)
    # what it could not know or cannot probe is said, and blocks nothing
    assert any("llm-main: container port 9000 is not published" in n for n in a.notes)
    assert any("embedder: no llmops.embedding-dim label" in n for n in a.notes)

    # the override, with their file untouched, gives through compose exactly these labels
    before = (user_stack / "compose.yaml").read_bytes()
    path = write_override(a, user_stack)
    assert path == user_stack / OVERRIDE_NAME
    assert (user_stack / "compose.yaml").read_bytes() == before
    text = path.read_text()
    assert text.startswith(HEADER_FIRST) and "version" not in yaml.safe_load(text)
    merged = compose_config(compose_bin, [user_stack / "compose.yaml", path], user_stack)
    assert llmops_labels(merged) == EXPECTED == a.labels_by_service()
    # and the override holds labels only: every other setting is as their file has it (v1.29 prints
    # a network joined with no settings as null alone and {} once merged: the same thing)
    def same(svc: dict[str, Any]) -> dict[str, Any]:
        nets = svc.get("networks")
        out = {k: v for k, v in svc.items() if k != "labels"}
        if isinstance(nets, dict):
            out["networks"] = {n: v or {} for n, v in nets.items()}
        return out
    for name, svc in merged["services"].items():
        assert same(svc) == same(cfg["services"][name])


def test_demo_stack_adopted_keeps_its_own_labels(compose_bin: list[str], tmp_path: Path) -> None:
    files = [REPO / "compose" / "docker-compose.yml", REPO / "compose" / "cpu.yml"]
    cfg = compose_config(compose_bin, files, tmp_path, env={"LITELLM_MASTER_KEY": "x"})
    have = llmops_labels(cfg)
    assert set(have) == {"api-gateway", "inference-chat", "inference-code", "embedding", "rag", "qdrant"}
    a = propose(cfg, project_dir=REPO / "compose")
    assert a.problems == [] and a.unassigned == []
    assert a.alias == "chat-7b"
    assert a.gateway_config == REPO / "compose" / "litellm" / "config.yaml"
    roles = {p.service: p.role for p in a.proposals}
    assert roles == {"api-gateway": "gateway", "inference-chat": "inference-primary",
                     "inference-code": "inference-secondary", "rag": "rag", "embedding": "embedding",
                     "qdrant": "vectordb"}
    assert {p.service: p.kept for p in a.proposals} == have     # every label it has, kept
    assert all(p.labels == {} for p in a.proposals)             # nothing added, nothing overwritten
    assert a.notes == []                                        # and nothing adopt would have said otherwise
    chat = next(p for p in a.proposals if p.service == "inference-chat")
    assert chat.evidence == ("label llmops.role=inference-primary already set; image llmops/llama-cpu:latest; "
                             "api_base http://inference-chat:8080/v1 of deployment order 1 in /etc/litellm/config.yaml")
    # the override with nothing to add is still a file both compose versions merge
    path = write_override(a, tmp_path)
    assert llmops_labels(compose_config(compose_bin, [*files, path], tmp_path,
                                        env={"LITELLM_MASTER_KEY": "x"})) == have


@pytest.mark.parametrize("version", [None, "2.4", "3.8"])
def test_override_merges_under_any_user_file_version(compose_bin: list[str], tmp_path: Path,
                                                     version: str | None) -> None:
    """docker-compose 1.29 reads a file without `version:` and with empty sections as a legacy v1
    file; the override must merge whatever version line (or none) the user's file has."""
    head = f"version: '{version}'\n" if version else ""
    (tmp_path / "compose.yaml").write_text(head + USER_COMPOSE)
    (tmp_path / "models").mkdir()
    (tmp_path / "litellm.yaml").write_text(USER_LITELLM)
    cfg = compose_config(compose_bin, [tmp_path / "compose.yaml"], tmp_path)
    a = propose(cfg, project_dir=tmp_path, roles=ROLES)
    full = write_override(a, tmp_path / "full.yml")
    assert llmops_labels(compose_config(compose_bin, [tmp_path / "compose.yaml", full], tmp_path)) == EXPECTED
    empty = write_override(Adoption([], [], None, None, []), tmp_path / "empty.yml")
    assert llmops_labels(compose_config(compose_bin, [tmp_path / "compose.yaml", empty], tmp_path)) == {}


def test_hostile_port_from_real_compose_never_reaches_yaml(compose_bin: list[str], user_stack: Path) -> None:
    text = USER_COMPOSE.replace('command: ["-m", "/models/x.gguf", "--port", "9000", "-c", "4096"]',
                                'command: ["-m", "/models/x.gguf", "--port", "1;rm -rf /"]')
    (user_stack / "compose.yaml").write_text(text)
    cfg = compose_config(compose_bin, [user_stack / "compose.yaml"], user_stack)
    a = propose(cfg, project_dir=user_stack, roles=ROLES)
    backup = next(p for p in a.proposals if p.service == "llm-backup")
    assert "llmops.port" not in backup.labels
    assert [p for p in a.problems if "llm-backup" in p] == [
        "service llm-backup: label llmops.port='1;rm -rf /' is not a TCP port 1-65535 (from its --port argument): not written"]
    with pytest.raises(ConfigError, match="problem"):
        override_yaml(a)
    assert not (user_stack / OVERRIDE_NAME).exists()


# ---- compose-config-shaped dicts: the ambiguities --------------------------------------------------

def llama(port: int = 8080, model: str = "/models/m.gguf", **extra: Any) -> dict[str, Any]:
    return {"image": "ghcr.io/ggml-org/llama.cpp:server", "command": ["-m", model, "--port", str(port)], **extra}


def litellm(cfg_host: str = "/x/litellm.yaml", **extra: Any) -> dict[str, Any]:
    return {"image": "ghcr.io/berriai/litellm:main-stable", "command": ["--config", "/app/config.yaml"],
            "volumes": [{"type": "bind", "source": cfg_host, "target": "/app/config.yaml", "read_only": True}], **extra}


def write_litellm(path: Path, deployments: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"model_list": deployments}))
    return path


def dep(api_base: str, order: int | None = None, alias: str = "assistant", id: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"model": "openai/x", "api_base": api_base}
    if order is not None:
        params["order"] = order
    d: dict[str, Any] = {"model_name": alias, "litellm_params": params}
    if id:
        d["model_info"] = {"id": id}
    return d


@pytest.fixture
def two_llamas(tmp_path: Path) -> dict[str, Any]:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2)])
    return {"services": {"a": llama(), "b": llama(), "gw": litellm(str(cfg))}}


def test_v2_long_forms(tmp_path: Path) -> None:
    """compose v2 prints long-form volumes and ports, a list command, `networks: {net: null}`."""
    write_litellm(tmp_path / "litellm.yaml", [dep("http://llm-main:9000/v1", 2), dep("http://spare:9000/v1", 1)])
    cfg = {"name": "user", "services": {
        "llm-main": {**llama(9000), "networks": {"default": None}},
        "llm-backup": {**llama(9000), "hostname": "spare", "networks": {"default": None}},
        "litellm": {"image": "ghcr.io/berriai/litellm:main-stable",
                    "command": ["--config=/app/config.yaml", "--port=4100"],
                    "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 4100, "published": "4100",
                               "protocol": "tcp"}],
                    "volumes": [{"type": "bind", "source": str(tmp_path / "litellm.yaml"), "target": "/app/config.yaml",
                                 "read_only": True, "bind": {"create_host_path": True}}]}},
        "networks": {"default": {"name": "user_default"}}}
    a = propose(cfg, project_dir=tmp_path)
    assert a.problems == []
    roles = {p.service: p.role for p in a.proposals}
    assert roles == {"litellm": "gateway", "llm-backup": "inference-primary", "llm-main": "inference-secondary"}
    backup = next(p for p in a.proposals if p.service == "llm-backup")
    assert "api_base http://spare:9000/v1 (hostname of llm-backup) of deployment order 1" in backup.evidence
    assert next(p for p in a.proposals if p.service == "litellm").labels["llmops.port"] == "4100"


def test_two_litellm_services_is_ambiguous_until_role_says(two_llamas: dict[str, Any], tmp_path: Path) -> None:
    two_llamas["services"]["gw2"] = litellm(str(tmp_path / "litellm.yaml"))
    a = propose(two_llamas, project_dir=tmp_path)
    assert a.problems == ["2 LiteLLM services (gw, gw2): say which is the gateway with --role SERVICE=gateway"]
    with pytest.raises(ConfigError, match="2 LiteLLM services"):
        a.check()
    a = propose(two_llamas, project_dir=tmp_path, roles={"gw2": "gateway"})
    assert a.problems == [] and "gw" in a.unassigned
    assert next(p for p in a.proposals if p.role == "gateway").service == "gw2"


def test_two_qdrants_is_ambiguous(two_llamas: dict[str, Any], tmp_path: Path) -> None:
    two_llamas["services"].update({"q1": {"image": "qdrant/qdrant"}, "q2": {"image": "qdrant/qdrant:v1.12"}})
    a = propose(two_llamas, project_dir=tmp_path)
    assert a.problems == ["2 Qdrant services (q1, q2): say which is the vector database with --role SERVICE=vectordb"]
    assert propose(two_llamas, project_dir=tmp_path, roles={"q2": "vectordb"}).problems == []


def test_no_order_is_ambiguous_until_role_says(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", id="first"), dep("http://b:8080/v1", id="second")])
    config = {"services": {"a": llama(), "b": llama(), "gw": litellm(str(cfg))}}
    a = propose(config, project_dir=tmp_path)
    assert a.problems == [
        "alias assistant: deployments first (-> a) and second (-> b) have no litellm_params.order in /app/config.yaml, "
        "so which is primary is not defined: say which with --role a=inference-primary "
        "(or set order: 1 and 2 in the LiteLLM config)"]
    a = propose(config, project_dir=tmp_path, roles={"b": "inference-primary"})
    assert a.problems == []
    assert {p.service: p.role for p in a.proposals if p.role.startswith("inference")} == \
        {"b": "inference-primary", "a": "inference-secondary"}
    assert "the other deployment of alias assistant" in next(p for p in a.proposals if p.service == "a").evidence


def test_same_order_is_ambiguous(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 1)])
    a = propose({"services": {"a": llama(), "b": llama(), "gw": litellm(str(cfg))}}, project_dir=tmp_path)
    assert len(a.problems) == 1 and "have the same order 1" in a.problems[0] and "--role a=inference-primary" in a.problems[0]


def test_api_base_naming_no_service(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://user:pw@elsewhere:8080/v1", 2)])
    a = propose({"services": {"a": llama(), "b": llama(), "gw": litellm(str(cfg))}}, project_dir=tmp_path)
    assert a.problems == [
        "deployment http://elsewhere:8080/v1 in /app/config.yaml: api_base http://elsewhere:8080/v1 names no "
        "service of this project (host elsewhere; services, hostnames, container names, network aliases and links: a, b, gw)"]
    assert "pw" not in a.problems[0]          # the credential in the api_base is never shown


def test_model_info_id_names_the_service_when_the_host_does_not(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://10.0.0.5:8080/v1", 1, id="a"), dep("http://b:8080/v1", 2)])
    a = propose({"services": {"a": llama(), "b": llama(), "gw": litellm(str(cfg))}}, project_dir=tmp_path)
    assert a.problems == []
    assert next(p for p in a.proposals if p.service == "a").evidence == \
        "image ghcr.io/ggml-org/llama.cpp:server; model_info.id a of deployment order 1 in /app/config.yaml"


def test_role_with_unknown_role_or_service(two_llamas: dict[str, Any], tmp_path: Path) -> None:
    a = propose(two_llamas, project_dir=tmp_path, roles={"a": "primary"})
    assert a.problems == ["--role a=primary: unknown role primary; valid roles: gateway, inference-primary, "
                          "inference-secondary, rag, embedding, vectordb"]
    a = propose(two_llamas, project_dir=tmp_path, roles={"retriever": "rag"})
    assert a.problems == ["--role retriever=rag: no service retriever in this project; services: a, b, gw"]
    a = propose(two_llamas, project_dir=tmp_path, roles={"a": "rag", "b": "rag"})
    assert "--role gives rag to a, b: one service per role" in a.problems


def test_two_aliases_with_failover_is_ambiguous(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [
        dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2),
        dep("http://c:8080/v1", 1, alias="coder"), dep("http://d:8080/v1", 2, alias="coder")])
    config = {"services": {"a": llama(), "b": llama(), "c": llama(), "d": llama(), "gw": litellm(str(cfg))}}
    a = propose(config, project_dir=tmp_path)
    assert a.problems == ["2 model names in /app/config.yaml have 2+ deployments (assistant, coder): "
                          "say which alias to certify with --alias NAME"]
    a = propose(config, project_dir=tmp_path, alias="coder")
    assert a.problems == [] and a.alias == "coder"
    assert {p.service: p.role for p in a.proposals} == {"gw": "gateway", "c": "inference-primary", "d": "inference-secondary"}
    assert sorted(a.unassigned) == ["a", "b"]
    assert "a runs llama-server but no deployment of alias coder sends to it: left unlabelled" in a.notes
    a = propose(config, project_dir=tmp_path, alias="nope")
    assert a.problems == ["--alias nope: no model_name nope in /app/config.yaml; model names (deployments): "
                          "assistant (2), coder (2)"]


def test_embedding_server_is_never_an_inference_backend(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://e:8080/v1", 2)])
    emb = {"image": "local/llama", "command": ["llama-server", "--embedding", "-m", "/m/e.gguf"]}
    a = propose({"services": {"a": llama(), "e": emb, "gw": litellm(str(cfg))}}, project_dir=tmp_path)
    assert any("sends to e, which runs llama-server --embeddings: an embedding server, not an inference one" in p
               and "--role e=inference-secondary" in p for p in a.problems)


def test_existing_labels_kept_explicit_role_wins(two_llamas: dict[str, Any], tmp_path: Path) -> None:
    two_llamas["services"]["svc"] = {"image": "example/api", "ports": ["8000:8000/tcp", "9000:9000/tcp"],
                                     "labels": {"llmops.role": "rag", "llmops.port": "8000", "llmops.health": "/ready"}}
    two_llamas["services"]["other"] = {"image": "example/rag", "ports": ["127.0.0.1:8100:8100/tcp"]}
    a = propose(two_llamas, project_dir=tmp_path)
    assert a.problems == []
    svc = next(p for p in a.proposals if p.service == "svc")
    # labels there stay theirs: only the missing one is added, and the two ports do not matter
    assert svc.kept == {"llmops.role": "rag", "llmops.port": "8000", "llmops.health": "/ready"}
    assert svc.labels == {"llmops.expect": "rag"}
    assert "svc: keeps its llmops.health=/ready (adopt would write /health, from role)" in a.notes
    # an explicit --role for another service takes the role, and clears the stale label
    a = propose(two_llamas, project_dir=tmp_path, roles={"other": "rag"})
    assert a.problems == []
    by = {p.service: p for p in a.proposals}
    assert by["other"].labels["llmops.role"] == "rag"
    assert by["svc"].role == "" and by["svc"].labels == {"llmops.role": ""}
    assert "cleared: --role other=rag names another service" in by["svc"].evidence
    # an explicit --role on the labelled service itself overwrites, and says so
    a = propose(two_llamas, project_dir=tmp_path, roles={"svc": "embedding"})
    assert next(p for p in a.proposals if p.service == "svc").labels["llmops.role"] == "embedding"
    assert "replaces llmops.role=rag" in next(p for p in a.proposals if p.service == "svc").evidence


def test_label_against_the_order_is_a_problem(two_llamas: dict[str, Any], tmp_path: Path) -> None:
    two_llamas["services"]["b"]["labels"] = {"llmops.role": "inference-primary"}
    a = propose(two_llamas, project_dir=tmp_path)
    assert "b is labelled inference-primary but the order in /app/config.yaml makes a inference-primary: " \
           "settle it with --role SERVICE=inference-primary" in a.problems
    a = propose(two_llamas, project_dir=tmp_path, roles={"a": "inference-primary"})
    assert a.problems == []
    assert {p.service: p.role for p in a.proposals if p.role.startswith("inference")} == \
        {"a": "inference-primary", "b": "inference-secondary"}
    # b's stale label is replaced, not kept: two primaries would leave the Stack to pick the first
    assert a.labels_by_service()["b"]["llmops.role"] == "inference-secondary"
    assert next(p for p in a.proposals if p.service == "b").evidence.endswith(
        "replaces llmops.role=inference-primary (--role a=inference-primary names another service)")


# ---- the gateway's config file -------------------------------------------------------------------------

def test_config_relative_source_directory_mount_and_override(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    write_litellm(tmp_path / "conf" / "config.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2)])
    gw = {"image": "ghcr.io/berriai/litellm:main-stable", "command": "--config /app/conf/config.yaml",
          "volumes": ["./conf:/app/conf:ro"]}
    config = {"services": {"a": llama(), "b": llama(), "gw": gw}}
    a = propose(config, project_dir=tmp_path)
    assert a.problems == [] and a.gateway_config == tmp_path / "conf" / "config.yaml"
    gw["volumes"] = ["litellm-conf:/app/conf"]                  # a named volume: not a file here
    a = propose(config, project_dir=tmp_path)
    assert a.problems == ["gateway gw: its LiteLLM config /app/conf/config.yaml: it lives in the volume litellm-conf, "
                          "not in a file on this host; pass --gateway-config PATH"]
    a = propose(config, project_dir=tmp_path, gateway_config=tmp_path / "conf" / "config.yaml")
    assert a.problems == [] and a.gateway_config == tmp_path / "conf" / "config.yaml"


def test_no_config_flag_one_or_two_yaml_mounts(tmp_path: Path) -> None:
    write_litellm(tmp_path / "c.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2)])
    gw = {"image": "ghcr.io/berriai/litellm:main-stable", "volumes": [f"{tmp_path}/c.yaml:/app/proxy.yaml"]}
    config = {"services": {"a": llama(), "b": llama(), "gw": gw}}
    a = propose(config, project_dir=tmp_path)
    assert a.problems == []
    assert "no --config; the one YAML mounted, /app/proxy.yaml" in a.proposals[0].evidence
    gw["volumes"].append(f"{tmp_path}/d.yml:/app/other.yml")
    a = propose(config, project_dir=tmp_path)
    assert a.problems == ["gateway gw: no --config argument, and 2 YAML files are mounted (/app/proxy.yaml, "
                          "/app/other.yml): say which is its LiteLLM config with --gateway-config PATH"]


def test_no_gateway_at_all(tmp_path: Path) -> None:
    a = propose({"services": {"a": llama(), "b": llama()}}, project_dir=tmp_path)
    assert a.problems == ["no LiteLLM gateway: no service's image or command is litellm (a, b): "
                          "name it with --role SERVICE=gateway"]


# ---- hostile values -------------------------------------------------------------------------------------

def test_hostile_values_are_problems_not_yaml(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2)])
    emb = {"image": "local/llama", "command": ["llama-server", "--embeddings", "--alias", "e5\nllmops.role: gateway",
                                               "-m", "/models/$HOME/../x.gguf"]}
    config = {"services": {"a": llama(), "b": llama(port="1;rm -rf /"), "gw": litellm(str(cfg)), "e": emb}}  # type: ignore[arg-type]
    a = propose(config, project_dir=tmp_path, roles={"e": "embedding"})
    assert "service b: label llmops.port='1;rm -rf /' is not a TCP port 1-65535 (from its --port argument): not written" in a.problems
    assert any(p.startswith("service e: label llmops.model-alias='e5\\nllmops.role: gateway' is not a plain model name")
               for p in a.problems)
    assert any(p.startswith("service e: label llmops.model='/models/$HOME/../x.gguf' is not") for p in a.problems)
    e = next(p for p in a.proposals if p.service == "e")
    assert "llmops.model-alias" not in e.labels and "llmops.model" not in e.labels
    with pytest.raises(ConfigError):
        override_yaml(a)


@pytest.mark.parametrize("label,value", [
    ("llmops.port", "1;rm -rf /"), ("llmops.port", "0"), ("llmops.port", " 80"), ("llmops.port", ""),
    ("llmops.health", "/health\nllmops.role: gateway"), ("llmops.health", "/h?x=1"),
    ("llmops.role", "admin"), ("llmops.expect", "anything"),
    ("llmops.model-alias", "e5\nx: y"), ("llmops.model-alias", "-rf"), ("llmops.model-alias", "${SECRET}"),
    ("llmops.model", "/models/../../etc/shadow"), ("llmops.model", "a b"),
    ("llmops.embedding-dim", "384; x"), ("com.example.other", "x"),
])
def test_override_refuses_any_unvalidated_value(tmp_path: Path, label: str, value: str) -> None:
    """An Adoption built by hand (not through propose) is checked again before any byte is written."""
    bad = Adoption([Proposal("svc", "rag", {"llmops.role": "rag", label: value}, "by hand")], [], None, None, [])
    with pytest.raises(ConfigError):
        override_yaml(bad)
    with pytest.raises(ConfigError):
        write_override(bad, tmp_path)
    assert not (tmp_path / OVERRIDE_NAME).exists()


@pytest.mark.parametrize("service", ["svc\nx", "-svc", "svc: {}", ""])
def test_override_refuses_odd_service_names(service: str) -> None:
    with pytest.raises(ConfigError):
        override_yaml(Adoption([Proposal(service, "rag", {"llmops.role": "rag"}, "")], [], None, None, []))


def test_values_yaml_would_misread_are_quoted() -> None:
    """safe_dump, not concatenation: a port stays a string, an alias `yes` or `1e3` stays text."""
    a = Adoption([Proposal("gw", "gateway", {"llmops.role": "gateway", "llmops.port": "4000",
                                            "llmops.model-alias": "yes", "llmops.expect": "litellm"}, ""),
                  Proposal("m", "inference-primary", {"llmops.role": "inference-primary", "llmops.model": "1e3"}, "")],
                 [], None, None, [])
    doc = yaml.safe_load(override_yaml(a))
    assert doc == {"services": {"gw": {"labels": {"llmops.role": "gateway", "llmops.port": "4000",
                                                  "llmops.model-alias": "yes", "llmops.expect": "litellm"}},
                                "m": {"labels": {"llmops.role": "inference-primary", "llmops.model": "1e3"}}}}


def test_check_value_accepts_what_llmops_writes() -> None:
    for label, value in [("llmops.port", "9000"), ("llmops.health", "/health/liveliness"), ("llmops.role", "embedding"),
                         ("llmops.expect", "qdrant"), ("llmops.model", "/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
                         ("llmops.model-alias", "org/model:tag"), ("llmops.embedding-dim", "384")]:
        check_value("svc", label, value)


def test_write_override_replaces_only_its_own(tmp_path: Path) -> None:
    theirs = tmp_path / OVERRIDE_NAME
    theirs.write_text("services:\n  x:\n    labels: {mine: 'yes'}\n")
    a = Adoption([Proposal("x", "rag", {"llmops.role": "rag"}, "")], [], None, None, [])
    with pytest.raises(ConfigError, match="llmops did not write it"):
        write_override(a, tmp_path)
    assert theirs.read_text().startswith("services:")
    theirs.unlink()
    assert write_override(a, tmp_path) == theirs
    b = Adoption([Proposal("x", "vectordb", {"llmops.role": "vectordb"}, "")], [], None, None, [])
    write_override(b, theirs)                                 # its own: replaced
    assert yaml.safe_load(theirs.read_text()) == {"services": {"x": {"labels": {"llmops.role": "vectordb"}}}}
    assert [p.name for p in tmp_path.iterdir()] == [OVERRIDE_NAME]   # no temporary file left


def test_no_services() -> None:
    assert propose({"services": {}}, project_dir=Path(".")).problems == ["the compose config has no services"]


def test_shell_wrapped_and_env_configured_llama(tmp_path: Path) -> None:
    write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2)])
    config = {"services": {
        "a": {"image": "example/box", "entrypoint": ["/bin/sh", "-c"],
              "command": ["exec llama-server -m /m/a.gguf --port 8181"]},
        "b": {"image": "ghcr.io/ggml-org/llama.cpp:server",
              "environment": {"LLAMA_ARG_PORT": "8282", "LLAMA_ARG_MODEL": "/m/b.gguf"}},
        "gw": litellm(str(tmp_path / "litellm.yaml"))}}
    a = propose(config, project_dir=tmp_path)
    assert a.problems == []
    by = {p.service: p.labels for p in a.proposals}
    assert (by["a"]["llmops.port"], by["a"]["llmops.model"]) == ("8181", "/m/a.gguf")
    assert (by["b"]["llmops.port"], by["b"]["llmops.model"]) == ("8282", "/m/b.gguf")
    assert by["gw"]["llmops.port"] == "4000"                  # litellm's own default


def test_relative_source_in_short_form_is_resolved_against_project_dir(tmp_path: Path) -> None:
    write_litellm(tmp_path / "litellm.yaml", [dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2)])
    gw = {"image": "ghcr.io/berriai/litellm:main-stable", "command": ["--config", "/app/config.yaml"],
          "volumes": ["./litellm.yaml:/app/config.yaml:ro"]}
    a = propose({"services": {"a": llama(), "b": llama(), "gw": gw}}, project_dir=tmp_path)
    assert a.problems == [] and a.gateway_config == tmp_path / "litellm.yaml"


def test_header_and_sample(tmp_path: Path) -> None:
    text = override_yaml(Adoption([Proposal("x", "rag", {"llmops.role": "rag"}, "")], [], None, None, []))
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert head[0] == HEADER_FIRST and any("untouched" in ln for ln in head)
    assert textwrap.dedent(text.split("\n", len(head))[-1]) == "services:\n  x:\n    labels:\n      llmops.role: rag\n"


def test_one_host_name_for_two_services_until_role_says(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [dep("http://llm:8080/v1", 1), dep("http://b-box:8080/v1", 2)])
    shared = {"backend": {"aliases": ["llm"]}}
    config = {"services": {"a": llama(networks=shared), "c": llama(networks=shared),
                           "b": llama(container_name="b-box"), "gw": litellm(str(cfg))}}
    a = propose(config, project_dir=tmp_path)
    assert a.problems[0] == ("deployment http://llm:8080/v1 in /app/config.yaml: api_base host llm names several "
                             "services (a: network alias of a, c: network alias of c): say which with "
                             "--role SERVICE=inference-primary / inference-secondary")
    a = propose(config, project_dir=tmp_path, roles={"a": "inference-primary"})
    assert a.problems == []
    assert {p.service: p.role for p in a.proposals if p.role.startswith("inference")} == \
        {"a": "inference-primary", "b": "inference-secondary"}
    assert "(container_name of b)" in next(p for p in a.proposals if p.service == "b").evidence
    assert a.unassigned == ["c"]


def test_bad_label_already_in_their_files_is_a_problem(two_llamas: dict[str, Any], tmp_path: Path) -> None:
    two_llamas["services"]["a"]["labels"] = ["llmops.health=/health\nllmops.role: gateway"]   # list form
    a = propose(two_llamas, project_dir=tmp_path)
    assert a.problems == ["service a: label llmops.health='/health\\nllmops.role: gateway' is not a URL path like "
                          "/health (letters, digits, . _ ~ / - only) (in your compose files; fix it there)"]
    with pytest.raises(ConfigError):
        override_yaml(a)


def test_explicit_alias_replaces_the_gateway_label(tmp_path: Path) -> None:
    cfg = write_litellm(tmp_path / "litellm.yaml", [
        dep("http://a:8080/v1", 1), dep("http://b:8080/v1", 2), dep("http://a:8080/v1", 1, alias="old"),
        dep("http://b:8080/v1", 2, alias="old")])
    gw = litellm(str(cfg), labels={"llmops.model-alias": "old"})
    config = {"services": {"a": llama(), "b": llama(), "gw": gw}}
    a = propose(config, project_dir=tmp_path)                  # the label there picks among two aliases
    assert a.problems == [] and a.alias == "old"
    assert next(p for p in a.proposals if p.service == "gw").kept == {"llmops.model-alias": "old"}
    a = propose(config, project_dir=tmp_path, alias="assistant")
    g = next(p for p in a.proposals if p.service == "gw")
    assert a.alias == "assistant" and g.labels["llmops.model-alias"] == "assistant" and g.kept == {}
    assert g.evidence.endswith("alias assistant (--alias assistant) has 2 deployments; replaces llmops.model-alias=old")


def test_check_is_one_line() -> None:
    a = Adoption([], [], None, None, ["first problem", "second problem"])
    with pytest.raises(ConfigError) as e:
        a.check()
    assert str(e.value) == "first problem (and 1 more)"
    Adoption([], [], None, None, []).check()


# ---- roles proven by a running service's answers -------------------------------------------------

def test_contract_role_rules() -> None:
    from llmops.adopt import contract_role

    assert contract_role({"qdrant": True, "embedding": False, "status": "degraded"}, None) == "rag"
    assert contract_role({"status": "ok"}, {"data": [{"embedding": [0.1, -0.2]}]}) == "embedding"
    assert contract_role({"status": "ok"}, {"data": [{"embedding": []}]}) is None
    assert contract_role({"qdrant": "yes", "embedding": True}, None) is None
    assert contract_role(None, None) is None
