"""The failover DoD can fail: under LiteLLM's default router settings (shuffle routing, no `order`)
both servers share the traffic before any fault, so a reply from the secondary after the fault is
no failover, and `llmops chaos failover` must say so and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import cli_env

PRIMARY_LINE = "primary served all traffic before the fault"


def test_failover_fails_under_litellm_default_routing(llmops: Any, healthy_stack: dict[str, Any],
                                                      tmp_path: Path) -> None:
    up = llmops("--json", "up", "--wait-timeout", "300", env=cli_env(LITELLM_CONFIG="config.defaults.yaml"),
                timeout=600)
    assert up.returncode == 0, up.stderr
    try:
        p = llmops("--evidence-dir", str(tmp_path), "chaos", "failover", "--mode", "stop", "--rps", "10",
                   "--fault-at", "3", "--outage", "5", timeout=600)
        run = (tmp_path / "latest").resolve()
        fo = json.loads((run / "04_failover_test.json").read_text())
        assert fo["details"]["router"]["path"].endswith("config.defaults.yaml"), fo["details"]["router"]
        assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
        assert fo["status"] == "fail"
        line = next(c for c in fo["dod"] if c["criterion"] == PRIMARY_LINE)
        before = fo["metrics"]["served_before_fault"]
        # with shuffle routing about half the ~30 steady-state replies come from the secondary
        assert line["pass"] is False and before["inference-code"] > 0, (line, before)
        assert line["measured"].startswith(f"{before['inference-code']} by inference-code")
        txt = (run / "04_failover_test.txt").read_text()
        assert f"[FAIL] {PRIMARY_LINE}: expected 0 by inference-code" in txt
        assert "traffic was shared before any fault" in txt
        assert f"FAIL {PRIMARY_LINE}" in p.stdout + p.stderr
    finally:
        back = llmops("--json", "up", "--wait-timeout", "300", timeout=600)
        assert back.returncode == 0, back.stderr
