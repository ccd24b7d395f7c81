"""`llmops certify`: the whole reliability procedure in one run folder, then the report.

Each phase runs the same checks the single commands run (`verify` included: one list), through
the check runner, which contains failures: a phase that fails is recorded and the run goes on; a
phase that cannot run at all (pre-flight refused, engine gone, an unexpected exception) is
recorded as an `error` check with its one-line reason; SIGINT/SIGTERM restore, stop, and still
leave a report of what ran (exit 130).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .context import Context
from .errors import LlmopsError, UsageError, aggregate_exit
from .runner import Check, Checked, Phase, PhaseOutcome, Run, Runner, Say
from .stack import MODEL_LABEL, Role

PHASES = ("verify", "failover", "qdrant", "gpu", "report")
CHECK_PHASES = PHASES[:-1]   # the report checks nothing itself: it renders what these wrote


def check_skip(skip: list[str]) -> None:
    """`--skip` names real phases and leaves at least one that checks something: a certify run
    that checked nothing must not exit 0 (nor write a report that looks like a pass)."""
    if bad := [p for p in skip if p not in PHASES]:
        raise UsageError(f"unknown phase {', '.join(bad)}; valid: {', '.join(PHASES)}")
    if all(p in skip for p in CHECK_PHASES):
        raise UsageError(f"every check phase is skipped ({', '.join(CHECK_PHASES)}): nothing would be certified")


def llama_services(ctx: Context) -> list[dict[str, Any]]:
    """What the GPU budget needs per model server: its argv, model file on the host, and logs."""
    from .build import cache_dir

    out = []
    for s in ctx.stack().model_servers:
        cfg = s.attrs.get("Config", {})
        argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
        model_in = s.labels.get(MODEL_LABEL)
        host_model = None
        if model_in:
            for m in s.attrs.get("Mounts", []) or []:
                if model_in.startswith(m["Destination"].rstrip("/") + "/"):
                    host_model = Path(m["Source"]) / model_in[len(m["Destination"].rstrip("/")) + 1:]
            cached = cache_dir() / "models" / Path(model_in).name   # the cpu profile bakes this file in
            if host_model is None and cached.exists():
                host_model = cached
        try:
            # the whole log: the buffer-size lines come at load, before any request lines
            logs = ctx.client.containers.get(s.container_id).logs(tail="all").decode(errors="replace")
        except Exception:  # noqa: BLE001 - logs only refine the budget
            logs = None
        out.append({"service": s.name, "container_id": s.container_id, "argv": argv,
                    "model_path": host_model, "log_text": logs,
                    "env": dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)})
    return out


def gpu_check(services: Callable[[], list[dict[str, Any]]], **kw: Any) -> Check:
    """06: `gpu-report` and certify's gpu phase; its GPU environment goes into the manifest."""

    def run(r_: Run) -> Checked:
        from .gpu.check import run_gpu_report

        r, text = run_gpu_report(r_, services=services(), **kw)
        return Checked(r, text, {"gpu_env": r.details.get("gpu_env")})

    return Check("gpu", run)


def certify_phases(ctx: Context, say: Say, failover_opts: Any = None, qdrant_opts: Any = None,
                   gpu_kw: dict[str, Any] | None = None) -> list[Phase]:
    from .checks import verify_phase
    from .chaos.failover import FailoverOptions, run_failover
    from .chaos.qdrant import QdrantOptions, run_qdrant

    from .gpu.check import DEFAULT_TOLERANCE_PCT

    kw = {"duration_s": 5.0, "interval_s": 0.1, "device": None, "tolerance_pct": DEFAULT_TOLERANCE_PCT,
          "budget_file": None, **(gpu_kw or {})}
    phases = [
        verify_phase(ctx),
        Phase("failover", [Check("failover", lambda run: run_failover(ctx, run, failover_opts or FailoverOptions()))]),
        Phase("qdrant", [Check("qdrant", lambda run: run_qdrant(ctx, run, qdrant_opts or QdrantOptions()))]),
        Phase("gpu", [gpu_check(lambda: llama_services(ctx), **kw)]),
    ]
    # A stack with no vector DB has no Qdrant check to run: not in this stack (the manifest and
    # the report say so), which is neither a failure nor a skip.
    try:
        absent = ctx.stack().absent_roles
    except LlmopsError:
        absent = []
    if Role.VECTORDB in absent:
        say(f"qdrant phase: not in this stack (no service with role {Role.VECTORDB})")
        phases = [p for p in phases if p.name != "qdrant"]
    return phases


def run_certify(runner: Runner, skip: list[str], failover_opts: Any = None, qdrant_opts: Any = None,
                gpu_kw: dict[str, Any] | None = None) -> tuple[int, list[PhaseOutcome]]:
    """Every phase in the runner's one run folder (a `contain=True` runner: see runner.py), then
    the report, also after an interrupt."""
    check_skip(skip)
    on_phase = runner.on_phase
    out = runner.run(certify_phases(runner.ctx, runner.say, failover_opts, qdrant_opts, gpu_kw), skip)
    code = out.code
    if "report" in skip:
        on_phase("report", "skipped")
    else:   # also after an interrupt: the report says what ran
        from .report import render_report

        on_phase("report", "running")
        rep = render_report(out.path)
        on_phase("report", f"exit {rep.exit_code}")
        code = aggregate_exit([code, rep.exit_code])
    return code, out.phases


__all__ = ["PHASES", "CHECK_PHASES", "check_skip", "run_certify", "certify_phases", "llama_services", "gpu_check"]
