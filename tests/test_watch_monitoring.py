"""`llmops up --monitoring`: the monitoring file and profile join llmops' own layout (and only it),
Prometheus's port is checked since compose cannot (host network), and `down` reads the file too."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmops.context import Context
from llmops.errors import ConfigError, EnvironmentProblem, UsageError
from llmops.watch.monitoring import check_port, include, prometheus_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "compose", tmp_path / "compose", ignore=shutil.ignore_patterns(".env", "images"))
    return tmp_path


def test_include_adds_the_file_and_the_profile(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSE_PROFILES", "debug")
    c = Context(project_dir=demo, profile_opt="cpu")
    assert "prometheus" not in c.declared()
    assert include(c, required=True)
    assert [f.name for f in c.compose.files] == ["docker-compose.yml", "cpu.yml", "monitoring.yml"]
    assert "prometheus" in c.declared()
    assert "-f" in c.compose.base_argv() and str(demo / "compose" / "monitoring.yml") in c.compose.base_argv()
    import os

    assert os.environ["COMPOSE_PROFILES"] == "debug,monitoring"
    include(c, required=False)                       # twice: nothing doubles
    assert [f.name for f in c.compose.files].count("monitoring.yml") == 1
    assert os.environ["COMPOSE_PROFILES"] == "debug,monitoring"


def test_a_stack_of_yours_has_no_monitoring_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    c = Context(project_dir=ROOT / "tests" / "e2e" / "own_stack")
    with pytest.raises(UsageError, match="part of llmops' own layout"):
        include(c, required=True)
    assert include(c, required=False) is False
    import os

    assert "COMPOSE_PROFILES" not in os.environ


def test_up_monitoring_on_a_stack_of_yours_is_one_line_before_docker() -> None:
    p = subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT / "tests" / "e2e" / "own_stack"),
                        "up", "--monitoring"], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"),
                            "DOCKER_HOST": "unix:///nonexistent-llmops.sock"})
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "--monitoring is part of llmops' own layout" in p.stderr


def test_the_port_comes_from_the_environment_then_env_file(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_PORT", raising=False)
    c = Context(project_dir=demo, profile_opt="cpu")
    assert prometheus_port(c) == 9090
    (demo / "compose" / ".env").write_text("PROMETHEUS_PORT=29090\n")
    assert prometheus_port(c) == 29090
    monkeypatch.setenv("PROMETHEUS_PORT", "19090")
    assert prometheus_port(c) == 19090
    monkeypatch.setenv("PROMETHEUS_PORT", "9o90")
    with pytest.raises(ConfigError, match="PROMETHEUS_PORT"):
        prometheus_port(c)


def test_a_taken_prometheus_port_names_its_holder(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        monkeypatch.setenv("PROMETHEUS_PORT", str(port))
        # the engine's part (our own running prometheus?) stands in as a plain list: none runs
        c = SimpleNamespace(services=lambda: [], client=None,
                            compose=Context(project_dir=demo, profile_opt="cpu").compose)
        with pytest.raises(EnvironmentProblem, match=rf"port {port} \(for prometheus\) is already taken by \S+ \(pid \d+\)"):
            check_port(c)  # type: ignore[arg-type]
        ours = SimpleNamespace(**{**vars(c), "services": lambda: [SimpleNamespace(name="prometheus", state="running")]})
        assert check_port(ours) == port  # type: ignore[arg-type]
