"""A hostile `llmops.health` label never runs as code: llmops refuses it (exit 2, one line naming the
service and the label) wherever it reads labels.

The label is the one a third-party image could carry (Docker merges image labels into the
container's): a health path that, pasted into a Python program's text, writes a file.  Two ways in:
the compose file (refused by `up`'s pre-flight, before anything starts) and a running container's
own labels (refused by `status`, which reads them through stack.py).  Neither builds an image."""

from __future__ import annotations

import glob
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

PROJECT = "llmops-e2e-hostile"
PRIMARY = "inference-chat"
PORT_VARS = ("GATEWAY_PORT", "CHAT_PORT", "CODE_PORT", "RAG_PORT", "EMBEDDING_PORT", "QDRANT_PORT")


def _plant(project_copy: Path) -> str:
    """Put the hostile health path on the primary in the copy's compose file; return its marker file."""
    marker = f"/tmp/llmops-pwned-{uuid.uuid4().hex[:12]}"
    hostile = f"/health'+str(open('{marker}','w').write('pwn'))+'"
    f = project_copy / "compose" / "docker-compose.yml"
    doc = yaml.safe_load(f.read_text())
    assert doc["services"][PRIMARY]["labels"]["llmops.role"] == "inference-primary"
    doc["services"][PRIMARY]["labels"]["llmops.health"] = hostile
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return marker


def _assert_refused(p: subprocess.CompletedProcess[str], one_line_error: Any) -> None:
    line = one_line_error(p, 2)
    assert f"service {PRIMARY}" in line and "llmops.health" in line, line


def _no_pwned_file() -> None:
    assert not glob.glob("/tmp/llmops-pwned-*"), glob.glob("/tmp/llmops-pwned-*")


def test_up_refuses_a_hostile_compose_label_before_starting_anything(
        docker_engine: Any, compose_binary: list[str], project_copy: Path, free_port: Any, cli_env: Any,
        run_llmops: Any, one_line_error: Any, leftovers: Any) -> None:
    _plant(project_copy)
    env = cli_env(**{v: str(free_port()) for v in PORT_VARS})
    base = ("--project-dir", str(project_copy), "--profile", "cpu", "--project-name", PROJECT)
    try:
        p = run_llmops(*base, "up", "--no-build", "--wait-timeout", "60", env=env, timeout=300)
        _assert_refused(p, one_line_error)
        assert not any(leftovers(PROJECT).values()), leftovers(PROJECT)   # refused in pre-flight
        _no_pwned_file()
    finally:
        run_llmops(*base, "down", "--volumes", env=env, timeout=300)


def test_status_refuses_a_hostile_label_on_a_running_container(
        stack: dict[str, Any], compose_binary: list[str], project_copy: Path, free_port: Any, cli_env: Any,
        run_llmops: Any, one_line_error: Any) -> None:
    """The container carries the label (as one merged from its image would): compose starts it
    directly, past llmops' pre-flight, and every llmops command that reads the stack refuses it."""
    _plant(project_copy)
    compose_dir = project_copy / "compose"
    env = cli_env(LITELLM_MASTER_KEY="sk-e2e-hostile-unused", **{v: str(free_port()) for v in PORT_VARS})
    argv = [*compose_binary, "-p", PROJECT, "--project-directory", str(compose_dir),
            "-f", str(compose_dir / "docker-compose.yml"), "-f", str(compose_dir / "cpu.yml")]
    base = ("--project-dir", str(project_copy), "--profile", "cpu", "--project-name", PROJECT)
    try:
        up = subprocess.run([*argv, "up", "-d", "--no-deps", "--no-build", PRIMARY], env=env,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr[-2000:]
        for cmd in (["status"], ["verify"], ["chaos", "failover", "--mode", "partition", "--no-warm"]):
            _assert_refused(run_llmops(*base, *cmd, env=env, timeout=300), one_line_error)
        _no_pwned_file()
    finally:
        subprocess.run([*argv, "down", "--volumes", "--remove-orphans"], env=env, capture_output=True, timeout=300)
