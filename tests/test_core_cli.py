"""`llmops --help` stays light: no docker, httpx, litellm, torch, matplotlib, qdrant_client or pynvml.

The import check runs in a fresh interpreter (this test process has imported them already)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llmops import cli

HEAVY = ("docker", "httpx", "litellm", "torch", "matplotlib", "qdrant_client", "pynvml", "yaml", "requests")

PROBE = r"""
import json, sys
from llmops import cli
sys.argv = ["llmops", *json.loads(sys.argv[1])]
code = None
try:
    cli.main()
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)}))
"""


def _help_in_fresh_process(args: list[str]) -> dict:
    src = PROBE.replace("HEAVY", repr(HEAVY))
    out = subprocess.run([sys.executable, "-c", src, json.dumps(args)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["up", "--help"], ["status", "--help"], ["verify", "--help"],
                                  ["chaos", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    r = _help_in_fresh_process(args)
    assert r["code"] in (0, None)
    assert r["heavy"] == []


def test_probe_detects_heavy_imports() -> None:
    # The probe itself can fail: a command that touches the core does import the heavy modules.
    src = PROBE.replace("HEAVY", repr(HEAVY)).replace("from llmops import cli", "from llmops import cli, probes")
    out = subprocess.run([sys.executable, "-c", src, json.dumps(["--help"])], capture_output=True, text=True,
                         timeout=60)
    assert "httpx" in json.loads(out.stdout.strip().splitlines()[-1])["heavy"]


def test_help_lists_the_commands() -> None:
    r = CliRunner().invoke(cli.app, ["--help"])
    assert r.exit_code == 0, r.output
    for cmd in ("engine", "build", "up", "down", "status", "verify", "chaos"):
        assert cmd in r.output
    for opt in ("--project-dir", "--profile", "--evidence-dir", "--project-name", "--json"):
        assert opt in r.output


def test_bad_profile_is_usage_error_in_process() -> None:
    r = CliRunner().invoke(cli.app, ["--profile", "bogus", "status"])
    assert isinstance(r.exception, cli.UsageError)
    assert "valid: auto, gpu, cpu" in str(r.exception)
