"""`llmops certify`: the whole reliability procedure in one run folder, then the report.

Each phase is the same code the single commands run.  A phase that fails is recorded and the run
goes on; a phase that cannot run at all (pre-flight refused, engine gone) is recorded as an
`error` check with its reason, so the report says what happened instead of leaving a gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .context import Context
from .errors import LlmopsError, RestoreFailed, aggregate_exit
from .evidence import CheckResult, utc_now_iso

PHASES = ("verify", "failover", "qdrant", "gpu", "report")


@dataclass
class PhaseOutcome:
    phase: str
    code: int
    seconds: float
    checks: list[str] = field(default_factory=list)
    error: str | None = None


def error_result(check: str, exc: LlmopsError, started_at: str, t: float) -> CheckResult:
    restored: dict[str, Any] = {"restored": False} if isinstance(exc, RestoreFailed) else {}
    return CheckResult(check, "error", started_at, time.perf_counter() - t, dict(restored),
                       [], {"reason": str(exc), "exit_code": int(exc.exit_code), **restored})


def llama_services(ctx: Context) -> list[dict[str, Any]]:
    """What the GPU budget needs per model server: its argv, model file on the host, and logs."""
    from .build import cache_dir

    out = []
    for s in ctx.services():
        if not s.role.startswith("inference"):
            continue
        c = ctx.client.containers.get(s.container_id)
        cfg = c.attrs.get("Config", {})
        argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
        model_in = s.labels.get("llmops.model")
        host_model = None
        if model_in:
            for m in c.attrs.get("Mounts", []) or []:
                if model_in.startswith(m["Destination"].rstrip("/") + "/"):
                    host_model = Path(m["Source"]) / model_in[len(m["Destination"].rstrip("/")) + 1:]
            cached = cache_dir() / "models" / Path(model_in).name   # the cpu profile bakes this file in
            if host_model is None and cached.exists():
                host_model = cached
        try:
            # the whole log: the buffer-size lines come at load, before any request lines
            logs = c.logs(tail="all").decode(errors="replace")
        except Exception:  # noqa: BLE001 - logs only refine the budget
            logs = None
        out.append({"service": s.name, "container_id": s.container_id, "argv": argv,
                    "model_path": host_model, "log_text": logs,
                    "env": dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)})
    return out


def run_certify(ctx: Context, skip: list[str], emit: Callable[[CheckResult, str], None],
                say: Callable[[str], None], on_phase: Callable[[str, str], None],
                failover_opts: Any = None, qdrant_opts: Any = None,
                gpu_kw: dict[str, Any] | None = None) -> tuple[int, list[PhaseOutcome]]:
    from .checks import run_functional, run_health_check, run_status
    from .chaos.failover import FailoverOptions, run_failover
    from .chaos.qdrant import QdrantOptions, run_qdrant

    run = ctx.open_run()
    outcomes: list[PhaseOutcome] = []

    def phase(name: str, check: str, fn: Callable[[], list[CheckResult]]) -> None:
        if name in skip:
            on_phase(name, "skipped")
            return
        on_phase(name, "running")
        t, at = time.perf_counter(), utc_now_iso()
        try:
            results = fn()
            code = aggregate_exit([5 if r.metrics.get("restored") is False else r.exit_code() for r in results])
            outcomes.append(PhaseOutcome(name, code, time.perf_counter() - t, [r.check for r in results]))
        except LlmopsError as e:
            say(f"[red]{name}: {e}[/]")
            r = error_result(check, e, at, t)
            emit(r, f"{name} could not run: {e}")
            outcomes.append(PhaseOutcome(name, int(e.exit_code), time.perf_counter() - t, [check], str(e)))
        on_phase(name, f"exit {outcomes[-1].code}")

    def verify() -> list[CheckResult]:
        ctx.running_services()
        out = []
        r, text = run_status(ctx)
        emit(r, text)
        out.append(r)
        services = [s for s in ctx.services() if s.state == "running"]
        for fn in (run_functional, run_health_check):
            r, text = fn(ctx, services)
            emit(r, text)
            out.append(r)
        return out

    def failover() -> list[CheckResult]:
        r, text = run_failover(ctx, failover_opts or FailoverOptions(), say)
        emit(r, text)
        return [r]

    def qdrant() -> list[CheckResult]:
        r, text = run_qdrant(ctx, qdrant_opts or QdrantOptions(), say)
        emit(r, text)
        return [r]

    def gpu() -> list[CheckResult]:
        from .gpu.check import DEFAULT_TOLERANCE_PCT, run_gpu_report

        kw = {"duration_s": 5.0, "interval_s": 0.1, "device": None,
              "tolerance_pct": DEFAULT_TOLERANCE_PCT, "budget_file": None, **(gpu_kw or {})}
        r, text = run_gpu_report(run, services=llama_services(ctx), **kw)
        ctx.extra["gpu_env"] = r.details.get("gpu_env")
        emit(r, text)
        return [r]

    phase("verify", "status", verify)
    phase("failover", "failover", failover)
    phase("qdrant", "qdrant", qdrant)
    phase("gpu", "gpu", gpu)
    run.write_json("manifest.json", ctx.manifest())
    code = aggregate_exit([o.code for o in outcomes])
    if "report" not in skip:
        from .report import render_report

        on_phase("report", "running")
        rep = render_report(run.path)
        on_phase("report", f"exit {rep.exit_code}")
        code = aggregate_exit([code, rep.exit_code])
    return code, outcomes


__all__ = ["PHASES", "run_certify", "llama_services"]
