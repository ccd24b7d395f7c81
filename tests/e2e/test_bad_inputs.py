"""Every command refuses bad input with one line on stderr and the DESIGN exit code, never a traceback.

One table, run through the real CLI in a subprocess.  The compose project is one that never
exists, so a row that slipped past validation would reach the engine and exit 4, not 2: the
exit code itself proves the input was refused before anything was touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

NEG = "llmops-e2e-badinput"

# A setup returns extra argv (files it made) given the scratch folder and the project copy.
Setup = Callable[[Path, Path], list[str]]


def _non_utf8_budget(tmp: Path, _project: Path) -> list[str]:
    f = tmp / "budget.yaml"
    f.write_bytes(b"overhead_mib: 12\n# caf\xe9 \xff\xfe\n")
    return ["--budget", str(f)]


def _negative_budget(tmp: Path, _project: Path) -> list[str]:
    f = tmp / "budget.yaml"
    f.write_text("overhead_mib: -5\n")
    return ["--budget", str(f)]


def _evidence_under_a_file(tmp: Path, _project: Path) -> list[str]:
    blocker = tmp / "a-file"
    blocker.write_text("not a folder\n")
    return ["--evidence-dir", str(blocker / "evidence")]


def _non_utf8_env(_tmp: Path, project: Path) -> list[str]:
    (project / "compose" / ".env").write_bytes(b"LITELLM_MASTER_KEY=sk-\xff\xfe\n")
    return []


def _not_a_gguf(tmp: Path, _project: Path) -> list[str]:
    f = tmp / "model.gguf"
    f.write_bytes(b"this is not a gguf file\n" * 8)
    return ["--server", f"-m {f}"]


def _bind(value: str) -> Setup:
    def setup(_tmp: Path, project: Path) -> list[str]:
        (project / "compose" / ".env").write_text(f"LLMOPS_BIND={value}\n")
        return []
    return setup


def _none(_tmp: Path, _project: Path) -> list[str]:
    return []


# (id, global argv, command argv, setup placing files, expected exit code)
ROWS: list[tuple[str, list[str], list[str], Setup, int]] = [
    ("no-such-command", [], ["nosuch"], _none, 2),
    ("bad-profile", ["--profile", "bogus"], ["status"], _none, 2),
    ("unknown-service", [], ["status", "--service", "nope"], _none, 2),
    ("verify-unknown-service", [], ["verify", "--service", "nope"], _none, 2),
    ("up-timeout-nan", [], ["up", "--no-build", "--wait-timeout", "nan"], _none, 2),
    ("up-timeout-negative", [], ["up", "--no-build", "--wait-timeout", "-5"], _none, 2),
    ("up-timeout-inf", [], ["up", "--no-build", "--wait-timeout", "inf"], _none, 2),
    ("failover-rps-nan", [], ["chaos", "failover", "--rps", "nan"], _none, 2),
    ("failover-rps-too-high", [], ["chaos", "failover", "--rps", "1000"], _none, 2),
    ("failover-unknown-mode", [], ["chaos", "failover", "--mode", "explode"], _none, 2),
    ("failover-duration-inf", [], ["chaos", "failover", "--duration", "inf"], _none, 2),
    ("failover-fault-at-nan", [], ["chaos", "failover", "--fault-at", "nan"], _none, 2),
    ("failover-outage-negative", [], ["chaos", "failover", "--outage", "-1"], _none, 2),
    ("failover-max-tokens-0", [], ["chaos", "failover", "--max-tokens", "0"], _none, 2),
    ("failover-unknown-target", [], ["chaos", "failover", "--target", "nope"], _none, 2),
    ("qdrant-unknown-mode", [], ["chaos", "qdrant", "--mode", "explode"], _none, 2),
    ("qdrant-outage-nan", [], ["chaos", "qdrant", "--outage", "nan"], _none, 2),
    ("qdrant-outage-inf", [], ["chaos", "qdrant", "--outage", "inf"], _none, 2),
    ("restore-timeout-nan", [], ["chaos", "restore", "--timeout", "nan"], _none, 2),
    ("restore-timeout-negative", [], ["chaos", "restore", "--timeout", "-1"], _none, 2),
    ("gpu-interval-nan", [], ["gpu-report", "--interval", "nan"], _none, 2),
    ("gpu-duration-inf", [], ["gpu-report", "--duration", "inf"], _none, 2),
    ("gpu-duration-huge", [], ["gpu-report", "--duration", "1e9"], _none, 2),
    ("gpu-tolerance-nan", [], ["gpu-report", "--tolerance", "nan"], _none, 2),
    ("gpu-tolerance-negative", [], ["gpu-report", "--tolerance", "-1"], _none, 2),
    ("gpu-budget-not-utf8", [], ["gpu-report", "--duration", "1"], _non_utf8_budget, 2),
    ("gpu-budget-negative-term", [], ["gpu-report", "--duration", "1"], _negative_budget, 2),
    ("gpu-budget-missing", [], ["gpu-report", "--duration", "1", "--budget", "/nonexistent/budget.yaml"], _none, 2),
    ("evidence-dir-uncreatable", [], ["gpu-report", "--duration", "0.5"], _evidence_under_a_file, 4),
    ("certify-unknown-phase", [], ["certify", "--skip", "nope"], _none, 2),
    # a run that would check nothing is refused before the engine is asked anything
    ("certify-every-phase-skipped", [], ["certify", "--skip", "verify", "--skip", "failover", "--skip", "qdrant",
                                        "--skip", "gpu"], _none, 2),
    ("certify-unknown-failover-mode", [], ["certify", "--failover-mode", "explode"], _none, 2),
    ("build-unknown-image", [], ["build", "--only", "nope"], _none, 2),
    ("env-not-utf8", [], ["up", "--no-build", "--wait-timeout", "5"], _non_utf8_env, 2),
    ("report-missing-run-dir", [], ["report", "/nonexistent/run"], _none, 2),
    ("gpu-plan-missing-model", [], ["gpu-plan", "--server", "-m /nonexistent/model.gguf"], _none, 2),
    ("gpu-plan-not-a-gguf", [], ["gpu-plan"], _not_a_gguf, 2),
    ("failover-loss-pct-below-iptables", [], ["chaos", "failover", "--mode", "loss", "--loss-pct", "1e-300"], _none, 2),
    ("failover-loss-pct-above-100", [], ["chaos", "failover", "--mode", "loss", "--loss-pct", "100.0001"], _none, 2),
    ("gpu-plan-fa-maybe", [], ["gpu-plan", "--server", "-m /nonexistent/model.gguf -fa maybe"], _none, 2),
    ("gpu-plan-quantized-v-without-fa", [], ["gpu-plan", "--server", "-m /nonexistent/model.gguf -ctv q4_0 -fa off"], _none, 2),
    ("gpu-plan-unknown-flag", [], ["gpu-plan", "--server", "-m /nonexistent/model.gguf --ctx 999999 --bogus-flag"], _none, 2),
    ("up-bind-not-an-ip", [], ["up", "--no-build", "--wait-timeout", "5"], _bind("localhost"), 2),
    ("up-bind-public-without-flag", [], ["up", "--no-build", "--wait-timeout", "5"], _bind("0.0.0.0"), 2),
]


@pytest.fixture
def nothing_started(docker_engine: Any, leftovers: Callable[[str], dict[str, list[str]]]) -> Iterator[None]:
    """A refused input must start nothing: anything of the test's own project afterwards fails the
    test (and is removed, so one slip does not leak a stack into the rest of the suite)."""
    assert not any(leftovers(NEG).values()), f"leftovers of {NEG} before the test: {leftovers(NEG)}"
    yield
    left = leftovers(NEG)
    if any(left.values()):
        f = {"label": f"com.docker.compose.project={NEG}"}
        for c in docker_engine.containers.list(all=True, filters=f):
            c.remove(force=True)
        for n in docker_engine.networks.list(filters=f):
            n.remove()
        for v in docker_engine.volumes.list(filters=f):
            v.remove(force=True)
        pytest.fail(f"a refused input started {NEG}: {left}")


@pytest.mark.parametrize("gopts, args, setup, code", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_exit_code(nothing_started, run_llmops, one_line_error, project_copy, tmp_path,
                                             gopts: list[str], args: list[str], setup: Setup, code: int) -> None:
    extra = setup(tmp_path, project_copy)
    # Options that belong to the global callback go before the command; the rest after it.
    globals_, per_command = ((extra, []) if extra[:1] == ["--evidence-dir"] else ([], extra))
    ev = [] if globals_ else ["--evidence-dir", str(tmp_path / "ev")]
    p = run_llmops("--project-dir", str(project_copy), "--project-name", NEG, "--profile", "cpu", *ev,
                   *globals_, *gopts, *args, *per_command, timeout=120)
    one_line_error(p, code)


def test_table_is_big_enough() -> None:
    # The issue asks for at least 25 bad inputs across all commands.
    assert len(ROWS) >= 25
    assert {r[2][0] for r in ROWS} >= {"status", "verify", "up", "chaos", "gpu-report", "certify", "build",
                                       "report", "gpu-plan"}
