"""`llmops watch` scraped by a real Prometheus while the real primary is killed and restored.

Its own compose project (`llmops-e2e-watch`) on its own host ports (PORT_BASE + 200 ...), torn
down at the end, and only that project.  Prometheus is Debian's binary (scripts/test extracts
the .deb to /opt/prometheus-deb), run as a subprocess on a temporary config and storage, with a
copy of compose/prometheus/llmops.rules.yml whose `for:` is 2 s.  The results are asked of
Prometheus's own HTTP API (`/api/v1/query_range`), not of watch:
- `llmops_service_up{service=<primary>}` went 1 -> 0 -> 1;
- `llmops_gateway_on_secondary` went 0 -> 1 -> 0;
- the "gateway on the secondary" and "model server down" alerts reached `firing`;
and `promtool check metrics` passes on watch's /metrics for the real stack.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import E2E_PROJECT_PREFIX, PORT_BASE, ROOT, cli_env

sys.path.insert(0, str(ROOT / "tests"))   # the watch tests' helpers, as the unit tests use them
from watch_prom import Prometheus, assert_down_and_back, fast_rules, find_tool, missing_reason  # noqa: E402

PROJECT = f"{E2E_PROJECT_PREFIX}-watch"
BASE = PORT_BASE + 200
PORTS = {"GATEWAY_PORT": BASE, "CHAT_PORT": BASE + 1, "RAG_PORT": BASE + 2, "EMBEDDING_PORT": BASE + 3,
         "CODE_PORT": BASE + 4, "QDRANT_PORT": BASE + 5}
PROMETHEUS = find_tool("prometheus")
PROMTOOL = find_tool("promtool")

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=missing_reason("prometheus"))


def llmops_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), "--profile", "cpu",
            "--project-name", PROJECT, *args]


@pytest.fixture()
def watch_stack(docker_engine: Any, tmp_path: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    env = cli_env(**{k: str(v) for k, v in PORTS.items()})

    def llmops(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(llmops_argv("--evidence-dir", str(tmp_path / "evidence"), *args), capture_output=True,
                              text=True, env=env, timeout=timeout)

    try:
        up = llmops("up", "--wait-timeout", "600", timeout=3600)
        assert up.returncode == 0, f"up exited {up.returncode}:\n{up.stderr[-3000:]}"
        yield llmops
    finally:
        llmops("down", "--volumes", timeout=300)


def container_of(client: Any, service: str) -> Any:
    found = client.containers.list(all=True, filters={"label": [f"com.docker.compose.project={PROJECT}",
                                                                f"com.docker.compose.service={service}"]})
    assert len(found) == 1, f"{service}: {[c.name for c in found]}"
    return found[0]


@pytest.mark.timeout(1800)
def test_prometheus_sees_the_primary_go_and_come_back(watch_stack: Any, docker_engine: Any, tmp_path: Path,
                                                      free_port: Callable[[], int]) -> None:
    watch_port, prom_port = free_port(), free_port()
    log = open(tmp_path / "watch.log", "w")
    watch = subprocess.Popen(llmops_argv("watch", "--interval", "1", "--listen", f"127.0.0.1:{watch_port}"),
                             stdout=subprocess.DEVNULL, stderr=log, env=cli_env(**{k: str(v) for k, v in PORTS.items()}))
    prom = None
    primary = None
    try:
        prom = Prometheus(PROMETHEUS or "prometheus", tmp_path, prom_port, [f"127.0.0.1:{watch_port}"],
                          fast_rules(tmp_path / "rules.yml"))
        got = prom.wait_for('llmops_service_up{role="inference-primary"} == 1', 60, "the primary up, seen by Prometheus")
        name = got[0]["metric"]["service"]
        up = f'llmops_service_up{{service="{name}"}}'
        prom.wait_for(f"count_over_time({up}[10s]) >= 5 and on() llmops_gateway_probe_up == 1", 60, "a steady baseline")
        assert prom.instant("llmops_gateway_on_secondary")[0]["value"][1] == "0", "the gateway is not on the primary"

        body = urllib.request.urlopen(f"http://127.0.0.1:{watch_port}/metrics", timeout=5).read().decode()
        assert f'llmops_llama_metrics_up{{role="inference-primary",service="{name}"}} 1.0' in body, \
            "llama-server's /metrics does not answer: is --metrics in compose/cpu.yml?"
        assert "llmops_vectordb_points{" in body and "llmops_gpu_available" in body
        if PROMTOOL is not None:
            check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, check.stdout + check.stderr

        t0 = time.time()
        primary = container_of(docker_engine, name)
        primary.kill()
        prom.wait_for("llmops_gateway_on_secondary == 1", 60, "the gateway on the secondary")
        prom.wait_for('ALERTS{alertname="LlmopsGatewayOnSecondary",alertstate="firing"}', 60, "the on-secondary alert")
        prom.wait_for(f'ALERTS{{alertname="LlmopsModelServerDown",alertstate="firing",service="{name}"}}', 60,
                      "the model-server-down alert")
        primary.start()
        prom.wait_for(f"{up} == 1", 240, "the primary healthy again")
        prom.wait_for("llmops_gateway_on_secondary == 0 and on() llmops_failbacks_total >= 1", 120, "the failback")
        time.sleep(3)
        t1 = time.time()

        start = t0 - 8
        assert_down_and_back(prom, up, start, t1)
        for alert in ("LlmopsGatewayOnSecondary", "LlmopsModelServerDown"):
            assert prom.range_any(f'ALERTS{{alertname="{alert}",alertstate="firing"}}', start, t1), alert
        assert prom.range_values("llmops_failovers_total", start, t1)[-1] >= 1
        backends = prom.range_any("llmops_gateway_backend_info", start, t1)
        assert {b["metric"]["role"] for b in backends} == {"inference-primary", "inference-secondary"}
    finally:
        if primary is not None:
            primary.reload()
            if primary.status != "running":
                primary.start()
        if prom is not None:
            prom.stop()
        watch.send_signal(signal.SIGTERM)
        try:
            watch.wait(timeout=15)
        except subprocess.TimeoutExpired:
            watch.kill()
        log.close()
    text = (tmp_path / "watch.log").read_text()
    assert watch.returncode == 0 and "Traceback" not in text, text[-3000:]
    from llmops.compose import read_env_file

    key = read_env_file(ROOT / "compose" / ".env")["LITELLM_MASTER_KEY"]
    for f in (tmp_path / "watch.log", tmp_path / "prometheus.log"):
        assert key not in f.read_text(errors="replace"), f"{f.name} holds the gateway's key"
    assert key not in body
