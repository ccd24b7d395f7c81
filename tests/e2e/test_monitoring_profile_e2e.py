"""`llmops up --monitoring`: the Prometheus image built offline from Debian's package, started with
the stack, loading llmops' rules and scraping `llmops watch` and the llama-servers; `llmops down
--volumes` removes it, its data included.

Its own compose project (`llmops-e2e-mon`) on its own ports, from a copy of compose/ whose
prometheus.yml names this test's ports: the shipped one names llmops' default ports, where an
operator's own stack may be listening, and no test reads a stack it did not start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import E2E_PROJECT_PREFIX, PORT_BASE, ROOT, cli_env

PROJECT = f"{E2E_PROJECT_PREFIX}-mon"
BASE = PORT_BASE + 300
PORTS = {"GATEWAY_PORT": BASE, "CHAT_PORT": BASE + 1, "RAG_PORT": BASE + 2, "EMBEDDING_PORT": BASE + 3,
         "CODE_PORT": BASE + 4, "QDRANT_PORT": BASE + 5}


def api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]


def wait_targets_up(port: int, jobs: dict[str, int], timeout: float) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout
    active: list[dict[str, Any]] = []
    while time.monotonic() < end:
        try:
            active = api(port, "targets")["activeTargets"]
        except OSError:
            active = []
        healthy = {j: sum(1 for t in active if t["labels"]["job"] == j and t["health"] == "up") for j in jobs}
        if healthy == jobs:
            return active
        time.sleep(1)
    raise AssertionError(f"targets not all up after {timeout} s: {[(t['scrapeUrl'], t['health'], t.get('lastError')) for t in active]}")


@pytest.mark.timeout(1800)
def test_up_monitoring_runs_prometheus_with_the_rules_and_down_removes_it(
        docker_engine: Any, project_copy: Path, free_port: Callable[[], int],
        leftovers: Callable[[str], dict[str, list[str]]]) -> None:
    built = subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), "build", "--only", "prometheus"],
                           capture_output=True, text=True, env=cli_env(), timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    watch_port, prom_port = free_port(), free_port()
    cfg = project_copy / "compose" / "prometheus" / "prometheus.yml"
    text = cfg.read_text()
    for old, new in (("127.0.0.1:9464", watch_port), ("127.0.0.1:8001", BASE + 1), ("127.0.0.1:8004", BASE + 4),
                     ("127.0.0.1:8003", BASE + 3)):
        assert old in text
        text = text.replace(f'"{old}"', f'"127.0.0.1:{new}"')
    cfg.write_text(text)
    env = cli_env(PROMETHEUS_PORT=str(prom_port), **{k: str(v) for k, v in PORTS.items()})

    def llmops(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(project_copy), "--profile", "cpu",
                               "--project-name", PROJECT, "--evidence-dir", str(project_copy / "evidence"), *args],
                              capture_output=True, text=True, env=env, timeout=timeout)

    watch = None
    try:
        up = llmops("up", "--monitoring", "--wait-timeout", "600", timeout=1800)
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"monitoring: Prometheus on 127.0.0.1:{prom_port}" in up.stderr
        assert "prometheus" in {c.labels.get("com.docker.compose.service") for c in docker_engine.containers.list(
            filters={"label": f"com.docker.compose.project={PROJECT}"})}
        watch = subprocess.Popen([sys.executable, "-m", "llmops.cli", "--project-dir", str(project_copy), "--profile", "cpu",
                                  "--project-name", PROJECT, "watch", "--interval", "2", "--listen", f"127.0.0.1:{watch_port}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        wait_targets_up(prom_port, {"llmops-watch": 1, "llama-server": 3}, 120)
        groups = api(prom_port, "rules")["groups"]
        assert [g["name"] for g in groups] == ["llmops"] and len(groups[0]["rules"]) == 6
        end = time.monotonic() + 60
        while time.monotonic() < end and len(api(prom_port, "query?query=llmops_service_up")["result"]) < 6:
            time.sleep(1)
        assert len(api(prom_port, "query?query=llmops_service_up")["result"]) == 6
        assert api(prom_port, "query?query=llamacpp:requests_processing")["result"], "the llama-servers' own series"
    finally:
        if watch is not None:
            watch.terminate()
            watch.communicate(timeout=15)
        down = llmops("down", "--volumes", timeout=300)
    assert down.returncode == 0, down.stderr[-2000:]
    assert leftovers(PROJECT) == {"containers": [], "networks": [], "volumes": []}
