"""`llmops certify`: the whole reliability procedure in one run folder, then the report.

Each phase runs the same checks the single commands run (`verify` included: one list), through
the check runner, which contains failures: a phase that fails is recorded and the run goes on; a
phase that cannot run at all (pre-flight refused, engine gone, an unexpected exception) is
recorded as an `error` check with its one-line reason; SIGINT/SIGTERM restore, stop, and still
leave a report of what ran (exit 130).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .context import Context
from .errors import LlmopsError, UsageError, aggregate_exit
from .runner import Check, Checked, Phase, PhaseOutcome, Run, Runner, Say
from .stack import Role

if TYPE_CHECKING:
    from .chaos.failover import FailoverOptions
    from .chaos.qdrant import QdrantOptions
    from .gpu.check import GpuReportOptions
    from .gpu.server import ModelServer

PHASES = ("verify", "failover", "qdrant", "gpu", "report")
CHECK_PHASES = PHASES[:-1]   # the report checks nothing itself: it renders what these wrote


def check_skip(skip: list[str]) -> None:
    """`--skip` names real phases and leaves at least one that checks something: a certify run
    that checked nothing must not exit 0 (nor write a report that looks like a pass)."""
    if bad := [p for p in skip if p not in PHASES]:
        raise UsageError(f"unknown phase {', '.join(bad)}; valid: {', '.join(PHASES)}")
    if all(p in skip for p in CHECK_PHASES):
        raise UsageError(f"every check phase is skipped ({', '.join(CHECK_PHASES)}): nothing would be certified")


def gpu_check(servers: Callable[[], list[ModelServer]], options: GpuReportOptions) -> Check:
    """06: `gpu-report` and certify's gpu phase; its GPU environment goes into the manifest."""

    def run(r_: Run) -> Checked:
        from .gpu.check import run_gpu_report

        r, text = run_gpu_report(r_, servers(), options)
        return Checked(r, text, {"gpu_env": r.details.get("gpu_env")})

    return Check("gpu", run)


def certify_phases(ctx: Context, say: Say, failover_opts: FailoverOptions | None = None,
                   qdrant_opts: QdrantOptions | None = None, gpu_opts: GpuReportOptions | None = None) -> list[Phase]:
    """The phases in order, each the same check its single command runs."""
    from .checks import verify_phase
    from .chaos.failover import FailoverOptions, run_failover
    from .chaos.qdrant import QdrantOptions, run_qdrant
    from .gpu.check import GpuReportOptions
    from .gpu.server import servers_from_stack

    phases = [
        verify_phase(ctx),
        Phase("failover", [Check("failover", lambda run: run_failover(ctx, run, failover_opts or FailoverOptions()))]),
        Phase("qdrant", [Check("qdrant", lambda run: run_qdrant(ctx, run, qdrant_opts or QdrantOptions()))]),
        Phase("gpu", [gpu_check(lambda: servers_from_stack(ctx.stack(), ctx.client),
                                gpu_opts or GpuReportOptions())]),
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


def run_certify(runner: Runner, skip: list[str], failover_opts: FailoverOptions | None = None,
                qdrant_opts: QdrantOptions | None = None,
                gpu_opts: GpuReportOptions | None = None) -> tuple[int, list[PhaseOutcome]]:
    """Every phase in the runner's one run folder (a `contain=True` runner: see runner.py), then
    the report, also after an interrupt."""
    check_skip(skip)
    on_phase = runner.on_phase
    out = runner.run(certify_phases(runner.ctx, runner.say, failover_opts, qdrant_opts, gpu_opts), skip)
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


__all__ = ["PHASES", "CHECK_PHASES", "check_skip", "run_certify", "certify_phases", "gpu_check"]
