"""Bad input and a hostile environment get one clear line and the DESIGN exit code, never a traceback.

The real `llmops` CLI runs in a subprocess.  Every test uses a compose project name other than
`llmops` (see conftest.E2E_PROJECT_PREFIX), so the operator's stack is never touched; the port test
proves that nothing was started.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from llmops.compose import declared_services, load_compose_files

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NEG = "llmops-e2e-neg"
PORT_PROJECT = "llmops-e2e-port"
DEAD_ENGINE = "unix:///nonexistent.sock"
PORT_VARS = ("GATEWAY_PORT", "CHAT_PORT", "CODE_PORT", "RAG_PORT", "EMBEDDING_PORT", "QDRANT_PORT")


def _runs(evidence: Path) -> list[str]:
    return sorted(p.name for p in evidence.iterdir()) if evidence.exists() else []


def test_unknown_service_lists_valid_names(docker_engine, run_llmops, one_line_error, tmp_path) -> None:
    ev = tmp_path / "evidence"
    p = run_llmops("--project-dir", str(ROOT), "--project-name", NEG, "--evidence-dir", str(ev),
                   "status", "--service", "nope")
    line = one_line_error(p, 2)
    assert "nope" in line
    valid = line.split("valid:", 1)[1]
    for name in declared_services(load_compose_files([ROOT / "compose" / "docker-compose.yml", ROOT / "compose" / "cpu.yml"])):
        assert name in valid
    assert _runs(ev) == []  # a usage error writes no evidence


def test_bogus_profile_is_usage_error(run_llmops, one_line_error, tmp_path) -> None:
    p = run_llmops("--project-dir", str(ROOT), "--evidence-dir", str(tmp_path / "ev"), "--profile", "bogus", "status")
    line = one_line_error(p, 2)
    assert "bogus" in line and "auto" in line and "cpu" in line and "gpu" in line


def test_verify_without_stack_is_environment_error(docker_engine, run_llmops, one_line_error, leftovers,
                                                   tmp_path) -> None:
    assert leftovers(NEG)["containers"] == [], f"a stack named {NEG} exists; remove it"
    ev = tmp_path / "evidence"
    p = run_llmops("--project-dir", str(ROOT), "--project-name", NEG, "--evidence-dir", str(ev), "verify")
    line = one_line_error(p, 4)
    assert "not up" in line
    assert NEG in line
    assert "llmops up" in line  # names the fix
    assert _runs(ev) == []


@pytest.mark.parametrize("args", [["status"], ["verify"], ["--json", "up", "--no-build", "--wait-timeout", "5"]],
                         ids=["status", "verify", "up"])
def test_unreachable_engine_names_the_fix(run_llmops, one_line_error, cli_env, project_copy, tmp_path, args) -> None:
    # Needs no engine at all: DOCKER_HOST points at a socket that does not exist.
    p = run_llmops("--project-dir", str(project_copy), "--project-name", NEG, "--profile", "cpu",
                   "--evidence-dir", str(tmp_path / "ev"), *args, env=cli_env(DOCKER_HOST=DEAD_ENGINE))
    line = one_line_error(p, 4)
    assert "Docker engine" in line
    assert "dockerd" in line or "llmops engine --install" in line


def test_malformed_compose_file_is_config_error(docker_engine, run_llmops, one_line_error, project_copy,
                                                tmp_path) -> None:
    f = project_copy / "compose" / "docker-compose.yml"
    lines = f.read_text().splitlines()
    bad_line = next(i for i, text in enumerate(lines) if text.startswith("services:")) + 2
    lines[bad_line - 1] += "  image: [unclosed"
    f.write_text("\n".join(lines) + "\n")
    p = run_llmops("--project-dir", str(project_copy), "--project-name", NEG, "--evidence-dir", str(tmp_path / "ev"),
                   "status")
    line = one_line_error(p, 2)
    assert "docker-compose.yml" in line
    assert "malformed" in line
    assert "line " in line


def test_compose_services_not_a_mapping_is_config_error(docker_engine, run_llmops, one_line_error, project_copy,
                                                        tmp_path) -> None:
    (project_copy / "compose" / "cpu.yml").write_text("services:\n  - inference-chat\n  - inference-code\n")
    p = run_llmops("--project-dir", str(project_copy), "--project-name", NEG, "--profile", "cpu",
                   "--evidence-dir", str(tmp_path / "ev"), "status")
    line = one_line_error(p, 2)
    assert "cpu.yml" in line and "services" in line


def test_no_project_dir_is_config_error(run_llmops, one_line_error, tmp_path) -> None:
    p = run_llmops("--project-dir", str(tmp_path), "--evidence-dir", str(tmp_path / "ev"), "status")
    line = one_line_error(p, 2)
    assert "compose/docker-compose.yml" in line and "--project-dir" in line


# ---- a port already taken -----------------------------------------------------------------------

def _up_with_gateway_port_taken(run_llmops, free_port, cli_env, project_copy, tmp_path, *extra: str):
    ports = {v: str(free_port()) for v in PORT_VARS}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        taken = held.getsockname()[1]
        ports["GATEWAY_PORT"] = str(taken)
        p = run_llmops("--project-dir", str(project_copy), "--project-name", PORT_PROJECT, "--profile", "cpu",
                       "--evidence-dir", str(tmp_path / "ev"), *extra, "up", "--no-build", "--wait-timeout", "5",
                       env=cli_env(**ports), timeout=180)
    return p, taken


@pytest.fixture
def port_project_clean(leftovers, compose_binary):
    before = leftovers(PORT_PROJECT)
    assert before == {"containers": [], "networks": [], "volumes": []}, f"leftovers of {PORT_PROJECT}: {before}"
    yield
    after = leftovers(PORT_PROJECT)
    assert after == {"containers": [], "networks": [], "volumes": []}, f"`up` half-started {PORT_PROJECT}: {after}"


def test_port_taken_names_port_and_holder(port_project_clean, run_llmops, free_port, cli_env, one_line_error, project_copy,
                                          tmp_path) -> None:
    p, taken = _up_with_gateway_port_taken(run_llmops, free_port, cli_env, project_copy, tmp_path, "--json")
    line = one_line_error(p, 4)
    assert f"port {taken} " in line
    assert "api-gateway" in line
    assert f"(pid {os.getpid()})" in line  # the holder is this test process
    assert p.stdout.strip() == ""          # --json: nothing half-written on stdout


def test_port_taken_human_output_names_port_and_holder(port_project_clean, run_llmops, free_port, cli_env,
                                                       project_copy, tmp_path) -> None:
    p, taken = _up_with_gateway_port_taken(run_llmops, free_port, cli_env, project_copy, tmp_path)
    assert "Traceback" not in p.stdout + p.stderr
    assert p.returncode == 4
    assert p.stderr.count("llmops: error: ") == 1
    err = p.stderr[p.stderr.index("llmops: error: "):].splitlines()[0]
    assert f"port {taken} " in err and f"(pid {os.getpid()})" in err


def test_port_taken_human_output_is_one_line(port_project_clean, run_llmops, free_port, cli_env, one_line_error,
                                             project_copy, tmp_path) -> None:
    p, _ = _up_with_gateway_port_taken(run_llmops, free_port, cli_env, project_copy, tmp_path)
    one_line_error(p, 4)


def test_port_taken_hint_names_the_real_variable(port_project_clean, run_llmops, free_port, cli_env, one_line_error,
                                                 project_copy, tmp_path) -> None:
    p, _ = _up_with_gateway_port_taken(run_llmops, free_port, cli_env, project_copy, tmp_path, "--json")
    line = one_line_error(p, 4)
    assert "GATEWAY_PORT" in line


# ---- option parsing errors (click) --------------------------------------------------------------

@pytest.mark.parametrize("args", [["nosuch"], ["status", "--bogus"], ["up", "--wait-timeout", "abc"],
                                  ["status", "--service"]],
                         ids=["no-such-command", "no-such-option", "bad-value", "missing-value"])
def test_click_usage_errors_exit_2(run_llmops, tmp_path, args) -> None:
    p = run_llmops("--project-dir", str(ROOT), "--evidence-dir", str(tmp_path / "ev"), *args)
    out = p.stdout + p.stderr
    assert "Traceback" not in out
    assert "unexpected" not in out, out
    assert p.returncode == 2, out
