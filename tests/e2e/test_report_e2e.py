"""The report from a real run: `llmops verify` against the real stack, then `llmops report` from a
folder outside the checkout.  Its Environment section shows what manifest.json recorded."""

from __future__ import annotations

import json
import platform
import re
import sys
import subprocess
from pathlib import Path
from typing import Any

from conftest import cli_env


def test_verify_then_report_shows_docker_and_os_from_manifest(llmops: Any, stack: dict[str, Any],
                                                              docker_engine: Any, tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    p = llmops("--evidence-dir", str(evidence), "verify")
    # The stack's verdict is test_stack's business (on a loaded machine a health probe can time
    # out); this test needs a run folder the real code wrote, whichever way it went.
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    run = (evidence / "latest").resolve()
    manifest = json.loads((run / "manifest.json").read_text())
    # the writer really recorded them, and they are this machine's
    assert manifest["engine"]["docker"] == docker_engine.version()["Version"]
    assert manifest["host"]["os"] and manifest["host"]["name"] == platform.node()
    assert len(manifest["images"]) == 6

    elsewhere = tmp_path / "not-a-checkout"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-m", "llmops", "--json", "report", str(run)], cwd=elsewhere,
                       capture_output=True, text=True, env=cli_env(), timeout=300)
    assert r.returncode == p.returncode, r.stderr[-3000:]      # the report's verdict is verify's
    assert str(run / "summary.md") in json.loads(r.stdout)["files"]

    md = (run / "summary.md").read_text()
    env = md.split("## Environment", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+) \|$", env, re.M))
    assert rows["Docker"] == f"`{manifest['engine']['docker']}`"
    assert rows["OS / platform"] == f"`{manifest['host']['os']}`"
    assert rows["Profile"] == "`cpu`"
    assert rows["Compose project"] == f"`{stack['project']}`"
    for name in manifest["images"]:
        assert f"{name}: " in rows["Images"]
    assert "allowed_fails: 0" in rows["Router settings"]
    html = (run / "summary.html").read_text()
    assert manifest["engine"]["docker"] in html and manifest["host"]["os"] in html
    s = json.loads((run / "summary.json").read_text())
    assert s["environment"] == manifest and [c["check"] for c in s["checks"]] == ["status", "functional", "health"]
