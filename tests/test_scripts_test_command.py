"""scripts/test's verdict (issue 14, item 8): pytest's "no tests collected" (exit 5) is a failure.
The whole script rebuilds images, so its exit-code logic is tested here on its own: the real
pytest's exit code for a `-k` that matches nothing, fed to the function scripts/test ends with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test"


def verdict(code: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", 'source "$1"; pytest_verdict "$2"', "bash",
                           str(ROOT / "scripts" / "lib.sh"), str(code)], capture_output=True, text=True)


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4])
def test_verdict_keeps_pytest_codes(code: int) -> None:
    assert verdict(code).returncode == code


def test_no_tests_collected_fails(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    nothing = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                              str(tmp_path), str(tmp_path), "-k", "nothing_matches_this"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert nothing.returncode == 5, nothing.stdout
    v = verdict(nothing.returncode)
    assert v.returncode == 5
    assert "collected no tests" in v.stderr


def test_script_ends_with_the_verdict() -> None:
    """scripts/test passes pytest's code through pytest_verdict, and nothing turns 5 into 0."""
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    lines = [x.strip() for x in SCRIPT.read_text().splitlines() if x.strip() and not x.strip().startswith("#")]
    assert lines[-1] == 'pytest_verdict "$code"'
    assert "code=0" not in SCRIPT.read_text()


def test_ci_runs_the_readme_commands_in_order() -> None:
    """Why 1 of the verdict issue: CI ran only the test command, on a machine with no stack up,
    so it never saw the tests read the stack certify left running.  It now runs both, in order,
    and a red certify stops it."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")]).returncode == 0
    calls = [x.strip() for x in ci.splitlines() if x.strip().startswith("bash scripts/")]
    assert calls == ["bash scripts/certify", "bash scripts/test"]
    assert ci.index("exit $certify") < ci.index("bash scripts/test")
    readme = (ROOT / "README.md").read_text()
    assert readme.index("./scripts/certify") < readme.index("./scripts/test")
