"""The check runner's rules (pure logic: checks are plain callables that pass, fail, raise or abort):
one evidence writer, one exit-code rule, interrupts that stop a certify run, and errors that
become one phase's `error` result while the other phases still run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmops.context import Context
from llmops.errors import Aborted, EnvironmentProblem, ExitCode, RestoreFailed, aggregate_exit
from llmops.evidence import CHECK_FILES, CheckResult, Criterion, RunDir, utc_now_iso
from llmops.runner import Check, Phase, Runner, run_checks

ROOT = Path(__file__).resolve().parents[1]


class NoEngineContext(Context):
    """A real Context whose Docker engine is absent: the manifest is written without one."""

    @property
    def client(self) -> Any:  # type: ignore[override]
        raise EnvironmentProblem("no Docker engine in unit tests")


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return NoEngineContext(project_dir=ROOT, profile_opt="cpu", evidence_dir=tmp_path / "ev", project="llmops-unit")


def passing(check: str, restored: bool | None = None) -> Check:
    def run(_run: Any) -> tuple[CheckResult, str]:
        dod = [Criterion.judge("it worked", "yes", "yes", lambda v: v == "yes", samples=1)]
        metrics = {} if restored is None else {"restored": restored}
        return CheckResult(check, utc_now_iso(), 0.01, metrics, dod), f"{check} ran"

    return Check(check, run)


def raising(check: str, exc: BaseException, calls: list[str] | None = None) -> Check:
    def run(_run: Any) -> tuple[CheckResult, str]:
        if calls is not None:
            calls.append(check)
        raise exc

    return Check(check, run)


def sending(check: str, sig: signal.Signals) -> Check:
    def run(_run: Any) -> tuple[CheckResult, str]:
        os.kill(os.getpid(), sig)
        raise AssertionError("the signal should have interrupted this check")

    return Check(check, run)


def folder(ctx: Context) -> Path:
    """The run folder the runner created (the one `latest` points at)."""
    latest = ctx.evidence_dir / "latest"
    assert latest.is_symlink()
    return latest.resolve()


def evidence(ctx: Context, check: str) -> dict[str, Any]:
    return json.loads((folder(ctx) / f"{CHECK_FILES[check]}.json").read_text())


# ---- exit codes --------------------------------------------------------------------------------------

def test_interrupt_dominates_every_other_exit_code() -> None:
    for other in (0, 1, 2, 3, 4, 5):
        assert aggregate_exit([other, 130]) == 130
        assert aggregate_exit([130, other]) == 130


def test_check_result_owns_the_restore_and_error_rules() -> None:
    ok = Criterion.judge("ok", "1", 1, True, samples=1)
    bad = Criterion.judge("ok", "1", 2, False, samples=1)

    def result(status: str, **kw: Any) -> CheckResult:
        dod = {"pass": [ok], "fail": [bad]}.get(status, [])
        return CheckResult("failover", "t", 0.0, kw.get("metrics", {}), dod, kw.get("details", {}),
                           error="boom" if status == "error" else None)

    assert result("pass", metrics={"restored": False}).exit_code() == 5
    assert result("fail", metrics={"restored": False}).exit_code() == 5
    assert result("pass", metrics={"restored": True}).exit_code() == 0
    assert result("error", details={"exit_code": 4}).exit_code() == 4
    assert result("error", details={"exit_code": 130}, metrics={"restored": False}).exit_code() == 130
    e = CheckResult.failed_to_run("qdrant", "boom", ExitCode.RESTORE_FAILED, "t", 0.0, restored=False)
    assert e.exit_code() == 5 and e.to_json()["details"]["reason"] == "boom" and e.metrics == {"restored": False}


# ---- a single command: errors propagate, as they always have --------------------------------------

def test_single_command_writes_each_check_once_then_the_manifest(ctx: Context, monkeypatch: Any) -> None:
    writes: list[str] = []
    real = RunDir.write_check

    def counting(self: RunDir, result: CheckResult, text: str) -> Path:
        writes.append(result.check)
        return real(self, result, text)

    monkeypatch.setattr(RunDir, "write_check", counting)
    shown: list[str] = []
    out = run_checks(ctx, [Phase("verify", [passing("status"), passing("functional"), passing("health")])],
                     show=lambda r, _t, p: shown.append(p.name))
    assert out.code == 0 and writes == ["status", "functional", "health"]
    assert shown == ["01_services_status.json", "02_functional_check.json", "03_health_check.json"]
    manifest = json.loads((out.path / "manifest.json").read_text())
    assert manifest["project"] == "llmops-unit" and manifest["tool"] == "llmops"
    assert "Definition of Done" in (out.path / "01_services_status.txt").read_text()


def test_single_command_not_restored_exits_5(ctx: Context) -> None:
    assert run_checks(ctx, [Phase("failover", [passing("failover", restored=False)])]).code == 5


def test_single_command_lets_errors_through_without_evidence(ctx: Context) -> None:
    with pytest.raises(EnvironmentProblem):
        run_checks(ctx, [Phase("failover", [raising("failover", EnvironmentProblem("pre-flight refused"))])])
    assert not ctx.evidence_dir.exists()   # no run folder, no manifest: one line on stderr, as before


# ---- certify: contained errors and interrupts --------------------------------------------------------

def certify_like(ctx: Context, phases: list[Phase], states: dict[str, list[str]] | None = None) -> Any:
    states = states if states is not None else {}
    runner = Runner(ctx, contain=True,
                    on_phase=lambda name, st: states.setdefault(name, []).append(st))
    return runner.run(phases)


def test_unexpected_exception_becomes_that_checks_error_and_the_rest_still_run(ctx: Context) -> None:
    boom = httpx.ConnectError("[Errno 111] Connection refused\nsecond line")
    states: dict[str, list[str]] = {}
    out = certify_like(ctx, [Phase("verify", [passing("status"), raising("functional", boom), passing("health")]),
                             Phase("failover", [passing("failover", restored=True)]),
                             Phase("qdrant", [passing("qdrant", restored=True)])], states)
    assert out.code == 1 and not out.interrupted
    err = evidence(ctx, "functional")
    assert err["status"] == "error"
    assert err["details"]["reason"] == "ConnectError: [Errno 111] Connection refused"
    assert not (folder(ctx) / "03_health_check.json").exists()   # the phase ended at its error
    assert evidence(ctx, "failover")["status"] == "pass" and evidence(ctx, "qdrant")["status"] == "pass"
    assert "could not run: ConnectError" in (folder(ctx) / "02_functional_check.txt").read_text()
    assert (folder(ctx) / "manifest.json").exists()
    assert states["qdrant"] == ["running", "exit 0"] and states["verify"] == ["running", "exit 1"]
    assert [o.error is not None for o in out.phases] == [True, False, False]


def test_an_llmops_error_keeps_its_exit_code(ctx: Context) -> None:
    out = certify_like(ctx, [Phase("failover", [raising("failover", EnvironmentProblem("pre-flight: not healthy"))]),
                             Phase("qdrant", [passing("qdrant")])])
    assert out.code == 4
    assert evidence(ctx, "failover")["details"] == {"reason": "pre-flight: not healthy", "exit_code": 4,
                                                    "error": "pre-flight: not healthy", "skipped": None}


def test_a_failed_restore_is_recorded_as_not_restored(ctx: Context) -> None:
    out = certify_like(ctx, [Phase("qdrant", [raising("qdrant", RestoreFailed("qdrant stayed down"))]),
                             Phase("gpu", [passing("gpu")])])
    assert out.code == 5 and evidence(ctx, "qdrant")["metrics"] == {"restored": False}
    assert evidence(ctx, "gpu")["status"] == "pass"


def test_abort_in_a_phase_stops_the_run_with_130(ctx: Context) -> None:
    later: list[str] = []
    states: dict[str, list[str]] = {}
    out = certify_like(ctx, [Phase("verify", [passing("status")]),
                             Phase("failover", [raising("failover", Aborted("interrupted by SIGINT; restored"))]),
                             Phase("qdrant", [raising("qdrant", RuntimeError("must not start"), later)]),
                             Phase("gpu", [raising("gpu", RuntimeError("must not start"), later)])], states)
    assert out.code == 130 and out.interrupted
    assert later == [], "a phase started after the interrupt"
    assert states["qdrant"] == ["skipped"] and states["gpu"] == ["skipped"]
    assert evidence(ctx, "failover")["details"]["exit_code"] == 130
    assert not (folder(ctx) / "05_qdrant_retry_test.json").exists()
    assert (folder(ctx) / "manifest.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_outside_any_fault_stops_the_run(ctx: Context, sig: signal.Signals) -> None:
    later: list[str] = []
    before = signal.getsignal(sig)
    out = certify_like(ctx, [Phase("verify", [sending("status", sig)]),
                             Phase("failover", [raising("failover", RuntimeError("must not start"), later)])])
    assert out.code == 130 and later == []
    assert evidence(ctx, "status")["details"]["reason"] == f"interrupted by {sig.name}"
    assert signal.getsignal(sig) is before   # the runner leaves the handlers as it found them


def test_verify_and_certify_run_the_same_checks(ctx: Context) -> None:
    from llmops.certify import certify_phases
    from llmops.checks import verify_phase

    cert = certify_phases(ctx, say=lambda _m: None)[0]
    alone = verify_phase(ctx)
    assert cert.name == alone.name == "verify"
    assert [c.id for c in cert.checks] == [c.id for c in alone.checks] == ["status", "functional", "health"]
    assert [c.id for c in verify_phase(ctx, ["rag"]).checks] == ["status", "health"]


def test_certify_renders_the_report_after_an_interrupt(ctx: Context, monkeypatch: Any) -> None:
    import llmops.certify as certify

    later: list[str] = []
    monkeypatch.setattr(certify, "certify_phases", lambda *_a, **_k: [
        Phase("verify", [passing("status"), passing("functional"), passing("health")]),
        Phase("failover", [raising("failover", Aborted("interrupted by SIGTERM; inference restored"))]),
        Phase("qdrant", [raising("qdrant", RuntimeError("must not start"), later)])])
    states: dict[str, list[str]] = {}
    runner = Runner(ctx, contain=True, on_phase=lambda name, st: states.setdefault(name, []).append(st))
    code, outcomes = certify.run_certify(runner, [])
    assert code == 130 and later == []
    assert [o.phase for o in outcomes] == ["verify", "failover"]
    assert (folder(ctx) / "summary.md").stat().st_size > 0
    assert "interrupted by SIGTERM" in (folder(ctx) / "summary.md").read_text()
    assert states["report"][-1].startswith("exit ")


def test_certify_renders_the_report_when_the_manifest_cannot_be_collected(ctx: Context, monkeypatch: Any) -> None:
    """A crash in manifest collection came after the checks were written, and cost the report."""
    import llmops.certify as certify

    def broken_manifest(*_a: Any, **_k: Any) -> dict[str, Any]:
        raise RuntimeError("manifest exploded\nsecond line")

    monkeypatch.setattr(ctx, "manifest", broken_manifest)
    monkeypatch.setattr(certify, "certify_phases", lambda *_a, **_k: [
        Phase("verify", [passing("status"), passing("functional"), passing("health")])])
    code, _ = certify.run_certify(Runner(ctx, contain=True), [])
    manifest = json.loads((folder(ctx) / "manifest.json").read_text())
    assert manifest["manifest_error"] == "RuntimeError: manifest exploded"
    assert manifest["project"] == "llmops-unit"
    md = (folder(ctx) / "summary.md").read_text()
    assert "| Manifest error | `RuntimeError: manifest exploded` |" in md
    assert code in (0, 3)       # the checks' verdict stands; the manifest's trouble is shown, not judged
