"""LiteLLM reads its config once, at start, and a bind mount keeps the old file when an editor writes
a new one.  The evidence once reported `stream_timeout: 0.75` from the file on disk while the
gateway still ran 1 s.  Now `up` recreates the gateway when the config's content changes, and a
failover refuses (exit 4) to judge a gateway against settings it does not run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import ROOT, cli_env

LITELLM = ROOT / "compose" / "litellm"
NAME = "config.e2e-drift.yaml"      # a copy of ours, so the shipped config is never touched


def _role(stack: dict[str, Any], role: str) -> Any:
    c = stack["client"].containers.list(filters={"label": [f"com.docker.compose.project={stack['project']}",
                                                           f"llmops.role={role}"]})
    assert len(c) == 1, c
    return c[0]


def test_a_config_changed_under_a_running_gateway_is_refused_then_reloaded_by_up(
        llmops: Any, healthy_stack: dict[str, Any]) -> None:
    path = LITELLM / NAME
    env = cli_env(LITELLM_CONFIG=NAME)
    path.write_text((LITELLM / "config.yaml").read_text())
    try:
        assert llmops("--json", "up", "--wait-timeout", "300", env=env, timeout=600).returncode == 0
        gw, primary = _role(healthy_stack, "gateway"), _role(healthy_stack, "inference-primary")
        # what an editor does: write a new file and rename it over the old one (a new inode)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(path.read_text().replace("stream_timeout: 0.75", "stream_timeout: 0.5"))
        os.replace(tmp, path)
        assert b"stream_timeout: 0.75" in gw.exec_run(["cat", "/etc/litellm/config.yaml"]).output  # the old one

        p = llmops("chaos", "failover", "--mode", "kill", "--fault-at", "2", "--outage", "1", env=env, timeout=300)
        assert p.returncode == 4, p.stdout[-1500:] + p.stderr[-1500:]
        assert "changed since the gateway started" in p.stderr and "llmops up" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        primary.reload()
        assert primary.status == "running"                   # refused before any fault

        assert llmops("--json", "up", "--wait-timeout", "300", env=env, timeout=600).returncode == 0
        fresh = _role(healthy_stack, "gateway")
        assert fresh.id != gw.id                             # recreated: the new digest changed its env
        assert b"stream_timeout: 0.5" in fresh.exec_run(["cat", "/etc/litellm/config.yaml"]).output
        v = llmops("verify", env=env, timeout=300)
        assert "changed since the gateway started" not in v.stdout + v.stderr
    finally:
        path.unlink(missing_ok=True)
        back = llmops("--json", "up", "--wait-timeout", "300", timeout=600)
        assert back.returncode == 0, back.stderr
