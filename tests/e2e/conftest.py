"""Shared fixtures for the end-to-end tests: the real `llmops` CLI in a subprocess, against the real
Docker engine.

Everything under tests/e2e is marked `e2e`.  A test that needs the engine asks for `docker_engine`
and is skipped, with the reason, when none answers; tests that only need the CLI (bad options,
an unreachable engine) run everywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Compose project names e2e tests may create.  Never the operator's `llmops` project.
E2E_PROJECT_PREFIX = "llmops-e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """A Docker SDK client for the engine the CLI would use, or a skip saying why there is none."""
    try:
        import docker

        client = docker.from_env(timeout=15)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no engine here"
        pytest.skip(f"no Docker engine answers ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
    return client


@pytest.fixture(scope="session")
def compose_binary(docker_engine: Any) -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def cli_env(**overrides: str) -> dict[str, str]:
    """The caller's environment without debug switches (so errors stay one line), plus overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DEBUG",)}
    env.update(overrides)
    return env


@pytest.fixture
def run_llmops(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `llmops ARGS` as a user would (the console script's `main`), from a scratch folder."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True,
                              env=env or cli_env(), cwd=str(cwd or tmp_path), timeout=timeout)

    return run


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A throw-away project folder holding a copy of compose/ (no .env, no image build contexts)."""
    dst = tmp_path / "project"
    shutil.copytree(ROOT / "compose", dst / "compose", ignore=shutil.ignore_patterns(".env", "images"))
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """DESIGN: bad input gets one clear line and a non-zero exit, never a traceback."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\n{out}"
    lines = stderr_lines(proc)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    assert lines[0].startswith("llmops: error: "), lines[0]
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


def project_leftovers(client: Any, project: str) -> dict[str, list[str]]:
    """Containers, networks and volumes carrying the compose project label."""
    f = {"label": f"com.docker.compose.project={project}"}
    return {"containers": [c.name for c in client.containers.list(all=True, filters=f)],
            "networks": [n.name for n in client.networks.list(filters=f)],
            "volumes": [v.name for v in client.volumes.list(filters=f)]}


# The helpers as fixtures, so test modules need no import of this conftest.
@pytest.fixture(name="free_port")
def _free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture(name="one_line_error")
def _one_line_error_fixture() -> Callable[[subprocess.CompletedProcess[str], int], str]:
    return assert_one_line_error


@pytest.fixture(name="leftovers")
def _leftovers_fixture(docker_engine: Any) -> Callable[[str], dict[str, list[str]]]:
    return lambda project: project_leftovers(docker_engine, project)


@pytest.fixture(name="cli_env")
def _cli_env_fixture() -> Callable[..., dict[str, str]]:
    return cli_env


# ---- the real cpu stack ---------------------------------------------------------------------------

# The suite's own stack: its own compose project and its own block of host ports, so it never
# touches (or collides with) an operator's `llmops` stack on the same engine.  Several checkouts
# can each run their suite at once with their own LLMOPS_E2E_PROJECT and LLMOPS_E2E_PORT_BASE.
STACK_PROJECT = os.environ.get("LLMOPS_E2E_PROJECT", f"{E2E_PROJECT_PREFIX}-stack")
if not STACK_PROJECT.startswith(E2E_PROJECT_PREFIX):
    raise pytest.UsageError(f"LLMOPS_E2E_PROJECT must start with {E2E_PROJECT_PREFIX!r}: the suite never "
                            f"runs against another project (got {STACK_PROJECT!r})")
PORT_BASE = int(os.environ.get("LLMOPS_E2E_PORT_BASE", "28000"))
# The compose files' host-port variables; compose reads them from the environment of every
# `llmops` the suite starts.
STACK_PORTS = {"GATEWAY_PORT": PORT_BASE, "CHAT_PORT": PORT_BASE + 1, "RAG_PORT": PORT_BASE + 2,
               "EMBEDDING_PORT": PORT_BASE + 3, "CODE_PORT": PORT_BASE + 4, "QDRANT_PORT": PORT_BASE + 5}
for _var, _port in STACK_PORTS.items():
    os.environ[_var] = str(_port)


# Where the suite's own runs write when a test names no --evidence-dir: never the checkout's
# ./evidence, whose `latest` is the operator's certified run (a verify from the suite once moved it).
SUITE_EVIDENCE = Path(tempfile.mkdtemp(prefix="llmops-e2e-evidence-"))


def llmops(*args: str, timeout: float = 600.0, env: dict[str, str] | None = None,
           check: bool = False) -> subprocess.CompletedProcess[str]:
    """`llmops --project-dir ROOT ARGS` against the e2e stack."""
    evidence = [] if "--evidence-dir" in args else ["--evidence-dir", str(SUITE_EVIDENCE)]
    p = subprocess.run([sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), "--profile", "cpu",
                        "--project-name", STACK_PROJECT, *evidence, *args], capture_output=True, text=True,
                       env=env or cli_env(), timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"llmops {' '.join(args)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="session")
def stack(docker_engine: Any) -> dict[str, Any]:
    """The cpu stack, up and healthy (built offline if images are missing).  Torn down at the end
    only if this session brought it up, unless LLMOPS_E2E_KEEP=1."""
    from llmops.compose import read_env_file

    was_up = bool(docker_engine.containers.list(filters={"label": f"com.docker.compose.project={STACK_PROJECT}"}))
    p = llmops("--json", "up", "--wait-timeout", "600", timeout=3600)
    if p.returncode != 0:
        raise AssertionError(f"llmops up failed ({p.returncode}): {p.stderr[-3000:]}")
    info: dict[str, Any] = {"up": p.stdout, "key": read_env_file(ROOT / "compose" / ".env")["LITELLM_MASTER_KEY"],
                            "project": STACK_PROJECT, "client": docker_engine}
    yield info
    if not was_up and os.environ.get("LLMOPS_E2E_KEEP") != "1":
        llmops("down", timeout=300)


@pytest.fixture
def healthy_stack(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack, checked healthy before a test (a previous test may have broken it)."""
    p = llmops("chaos", "restore", "--timeout", "180", timeout=300)
    assert p.returncode == 0, p.stderr
    return stack


@pytest.fixture(name="llmops")
def _llmops_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    return llmops
