"""`llmops gpu-report|gpu-plan`: GPU memory, measured and planned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from ..errors import LlmopsError
from ..validate import in_range
from .app import app, ctx, done, opts, run_checks, say, show
from .ui import console

if TYPE_CHECKING:
    from ..evidence import CheckResult
    from ..gpu.server import ModelServer


@app.command("gpu-report")
def gpu_report(
    duration: float = typer.Option(10.0, "--duration", callback=in_range(0, 86400),
                                   help="Seconds of sampling (0-86400)."),
    interval: float = typer.Option(0.1, "--interval", callback=in_range(0.01, 60),
                                   help="Seconds between samples, drift-free (0.01-60)."),
    budget: Optional[Path] = typer.Option(None, "--budget", help="YAML/JSON file overriding budget terms."),
    tolerance: float = typer.Option(1.0, "--tolerance", callback=in_range(0, 100), help="Allowed |error| in percent (the reference procedure's 1 %; tune the calibration, not this)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Per-process overhead measured by an earlier gpu-report (its 06_gpu_memory.json) or a calibration file."),
    device: Optional[int] = typer.Option(None, "--device", help="Only this GPU index."),
    server: Optional[list[str]] = typer.Option(None, "--server", help="NAME=PID[:LOGFILE]: a llama-server running as a host process, not in Docker (repeatable; replaces the stack's services). Its command line and LLAMA_ARG_* come from /proc/PID, its buffer sizes and fit from LOGFILE (start it with -lv 4)."),
) -> None:
    """06_gpu_memory: NVML memory over time, per service: plan, engine-reported and NVML side by side."""
    from ..certify import gpu_check
    from ..gpu.calibration import load_calibration
    from ..gpu.check import GpuReportOptions
    from ..runner import Phase

    c = ctx()
    options = GpuReportOptions(duration_s=duration, interval_s=interval, device=device, tolerance_pct=tolerance,
                               budget_file=budget, calibration=load_calibration(calibration) if calibration else None)
    if server:   # host processes: no Docker asked; a bad value is refused before any sampling
        from ..gpu.hostproc import host_services, parse_host_servers

        servers = host_services(parse_host_servers(server))
    else:
        from ..gpu.server import servers_from_stack
        from ..stack import docker_client

        try:
            docker_client()
            servers = servers_from_stack(c.stack(), c.client)
        except LlmopsError as e:   # no engine or no stack: still report the GPU itself
            say(f"no stack to attribute to ({e}); reporting the GPU alone", "warn")
            servers = []

    def render(r: "CheckResult", text: str, path: Path) -> None:
        show(r, text, path)
        if r.status == "skipped":
            say(f"skipped: {r.skipped}", "warn")

    done(run_checks(Phase("gpu", [gpu_check(lambda: servers, options)]), render=render))


def running_specs(allow_unknown_flags: bool) -> list["ModelServer"]:
    """The running stack's llama-servers, when there is a stack and an engine to ask (else none:
    gpu-plan needs neither, and falls back to llmops' own compose/gpu.yml)."""
    from ..gpu.plan import specs_from_services

    try:
        services = ctx().stack().services
    except LlmopsError:
        return []
    return specs_from_services(services, allow_unknown_flags)


@app.command("gpu-plan")
def gpu_plan(
    server: Optional[list[str]] = typer.Option(None, "--server", help='A llama-server command line with -m FILE, e.g. "-m m.gguf -c 4096 -ngl 99" (repeatable, in start order). Default: the gpu profile\'s model servers from compose/gpu.yml.'),
    gpu_mib: Optional[float] = typer.Option(None, "--gpu-mib", callback=in_range(1, 16 * 1024 * 1024), help="Free GPU memory to plan for (default: GPU 0's free memory by NVML; none: no fit check)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Per-process overhead: a gpu-report 06_gpu_memory.json or a calibration file (default: the H200 calibration in docs/gpu.md)."),
    budget: Optional[Path] = typer.Option(None, "--budget", help="Budget file: per-server terms override the formula."),
    json_flag: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    allow_unknown_flags: bool = typer.Option(False, "--allow-unknown-flags", help="Plan command lines with flags llmops's list of llama-server's flags lacks (a newer build); they are ignored."),
) -> None:
    """Will the model servers fit?  Computed from the GGUF files: no GPU and no Docker needed.  Exit 0 fits (or no GPU size known), 1 does not fit, 2 bad input."""
    from ..context import find_project_dir
    from ..gpu.budget import load_budget_file
    from ..gpu.calibration import load_calibration
    from ..gpu.plan import detect_free_mib, plan_servers, plan_table, spec_from_args, specs_from_compose

    cal = load_calibration(calibration) if calibration else None
    bf = load_budget_file(budget) if budget else None
    if server:
        specs = [spec_from_args(a, i, allow_unknown_flags) for i, a in enumerate(server)]
    else:
        specs = running_specs(allow_unknown_flags) or specs_from_compose(
            find_project_dir(opts().project_dir), allow_unknown_flags=allow_unknown_flags)
    if gpu_mib is not None:
        size, source = gpu_mib, "--gpu-mib"
    else:
        size, source = detect_free_mib()
    plan = plan_servers(specs, gpu_mib=size, gpu_source=source, calibration=cal, budget_file=bf)
    if json_flag or opts().json:
        print(json.dumps(plan.to_json()))
    else:
        from .ui import plan_view

        con = console()
        con.print(plan_view(plan_table(plan)))
        for s in plan.servers:
            for term, why in s.unknown.items():
                con.print(f"  {s.name}: {term} unknown: {why}", highlight=False)
            for a in s.assumptions:
                con.print(f"  {s.name}: {a}", highlight=False)
        con.print(f"Overhead per process: calibration {plan.calibration.name}", highlight=False)
        verdict, style = {True: ("fits", "green"), False: ("does not fit as asked", "red"),
                          None: ("no fit check", None)}[plan.fits]
        con.print(f"Total {plan.total_mib if plan.total_mib is None else round(plan.total_mib)} MiB"
                  f" on {'?' if size is None else round(size)} MiB ({source}): ", end="", markup=False, highlight=False)
        con.print(verdict, style=style, markup=False, highlight=False)
    raise typer.Exit(plan.exit_code)
