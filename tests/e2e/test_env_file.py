"""A broken compose/.env is a usage error (exit 2) with one line naming the file, never a traceback,
and nothing is started (issue 14, item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PROJECT = "llmops-e2e-envfile"  # never brought up: `up` must stop at the .env


@pytest.mark.parametrize("content, says", [
    (b"GATEWAY_PORT=18000\nLITELLM_MASTER_KEY=sk-llmops-\xff\xfe\n", "is not UTF-8"),
    (b"GATEWAY_PORT=18000\nLITELLM_MASTER_KEY sk-llmops-xyz\n", ":2: not a KEY=VALUE line"),
])
def test_up_with_broken_env_file(content: bytes, says: str, docker_engine: Any, project_copy: Path,
                                 run_llmops: Any, one_line_error: Any, leftovers: Any) -> None:
    env_file = project_copy / "compose" / ".env"
    env_file.write_bytes(content)
    p = run_llmops("--project-dir", str(project_copy), "--profile", "cpu", "--project-name", PROJECT, "up")
    line = one_line_error(p, 2)
    assert str(env_file) in line and says in line, line
    assert "xyz" not in line and "\\xff" not in line
    assert leftovers(PROJECT) == {"containers": [], "networks": [], "volumes": []}
    assert env_file.read_bytes() == content  # not "repaired" by appending a key


def test_down_works_without_env_file(docker_engine, run_llmops, project_copy, tmp_path) -> None:
    """A fresh clone has no compose/.env until `up`: taking a (non-existent) stack down must not
    need the gateway's key (scripts/test's teardown runs even when no test brought a stack up)."""
    assert not (project_copy / "compose" / ".env").exists()
    p = run_llmops("--project-dir", str(project_copy), "--project-name", "llmops-e2e-noenv", "--profile", "cpu",
                   "down", "--volumes")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and not (project_copy / "compose" / ".env").exists()
