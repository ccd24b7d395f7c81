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
from .validate import in_range

if TYPE_CHECKING:
    from .context import Context
    from .evidence import CheckResult
    from .runner import Phase, RunOutcome, Show

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

    from .compose import project_name

    if "ctx" not in _state:
        o = _state["opts"]
        files = tuple(o["compose_files"] or ())
        pd = find_project_dir(o["project_dir"], explicit_files=bool(files))
        c = Context(project_dir=pd, profile_opt=o["profile"], evidence_dir=Path(o["evidence_dir"] or "evidence"),
                    json_out=o["json"], compose_files=files)
        # Compose's own rule for the name, from the files it will read.
        c.project = c.compose.project = project_name(o["project"], c.compose.layout)
        _state["ctx"] = c
    return _state["ctx"]


LEVEL_STYLE = {"info": None, "warn": "yellow", "error": "red"}


def say(msg: str, level: str = "info") -> None:
    # Progress goes to stderr so that --json keeps stdout machine-readable.  The core's text is
    # plain (never markup: a bracket in a service's answer must print as itself); the level picks
    # the colour.
    _console(stderr=True).print(msg, style=LEVEL_STYLE.get(level), markup=False, highlight=False)


@app.callback()
def main_options(
    project_dir: Optional[Path] = typer.Option(None, "--project-dir", help="The stack's folder: compose's default file names, or llmops' compose/ (default: nearest from cwd)."),
    profile: str = typer.Option("auto", "--profile", help="auto | gpu | cpu"),
    evidence_dir: Optional[Path] = typer.Option(None, "--evidence-dir", help="Where run folders go (default ./evidence)."),
    project: Optional[str] = typer.Option(None, "--project-name", help="Compose project name (default: compose's rule; llmops for its own layout)."),
    compose_files: Optional[list[Path]] = typer.Option(None, "--compose-file", "-f", help="A compose file of the stack (repeat for several; default: COMPOSE_FILE, else compose's default names)."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    if profile not in ("auto", "gpu", "cpu"):
        raise UsageError(f"unknown profile {profile!r}; valid: auto, gpu, cpu")
    _state["opts"] = {"project_dir": project_dir, "profile": profile, "evidence_dir": evidence_dir,
                      "project": project, "json": json_out, "compose_files": compose_files}


def show(result: "CheckResult", text: str, path: Path) -> None:
    """Render one check the runner has just written."""
    if ctx().json_out:
        print(json.dumps(result.to_json(), default=str))
        return
    colour = {"pass": "green", "fail": "red", "skipped": "yellow", "error": "red"}[result.status]
    _console().print(text, highlight=False, markup=False, soft_wrap=True)
    _console().print(f"[{colour}]{result.check}: {result.status.upper()}[/]  evidence: {path}")
    for d in result.dod:
        if not d.passed:
            _console().print(f"  [red]FAIL[/] {d.criterion}: expected {d.expected}, measured {d.measured}")


def run_checks(*phases: "Phase", render: "Show" = show) -> "RunOutcome":
    """Run a command's checks; the runner writes the evidence and hands each result to `render`."""
    from .runner import run_checks as run

    return run(ctx(), list(phases), show=render, say=say)


def done(out: "RunOutcome") -> None:
    if not ctx().json_out:
        say(f"run folder: {out.path}  (exit {out.code})")
    raise typer.Exit(out.code)


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


@app.command()
def adopt(
    role: Optional[list[str]] = typer.Option(None, "--role", help="SERVICE=ROLE: name a service's role (rag and embedding are only assigned this way); overrides any guess."),
    alias: Optional[str] = typer.Option(None, "--alias", help="The LiteLLM model_name to fail over (when the config has several with 2+ deployments)."),
    gateway_config: Optional[Path] = typer.Option(None, "--gateway-config", help="The LiteLLM config file, when the gateway's mounts do not tell it."),
    write: bool = typer.Option(False, "--write", help="Write the labels to llmops.adopt.yml beside the compose files (never to yours)."),
) -> None:
    """Propose llmops roles for the services of a compose project llmops did not write."""
    from rich.table import Table

    from .adopt import propose, write_override
    from .stack import Role

    roles: dict[str, str] = {}
    for r in role or []:
        service, sep, value = r.partition("=")
        if not sep or not service or not value:
            raise UsageError(f"--role {r!r}: expected SERVICE=ROLE (roles: {', '.join(Role.ALL)})")
        roles[service] = value
    c = ctx()
    config = c.compose.config(without_adopt=True)
    a = propose(config, project_dir=c.compose.compose_dir, roles=roles, alias=alias, gateway_config=gateway_config,
                contracts=running_contracts(c, roles))
    if c.json_out:
        print(json.dumps({"rows": a.rows(), "problems": a.problems, "notes": a.notes,
                          "alias": a.alias, "gateway_config": str(a.gateway_config) if a.gateway_config else None}))
    else:
        t = Table(title=f"llmops adopt: {c.project} ({', '.join(f.name for f in c.compose.files)})")
        for col in ("service", "role", "labels", "evidence"):
            t.add_column(col, overflow="fold")
        for row in a.rows():
            t.add_row(*row)
        for name in a.unassigned:
            t.add_row(name, "(none)", "", "no rule matched; --role SERVICE=ROLE names one")
        con = _console()   # the table, notes and problems are the command's output (stdout) ...
        con.print(t)
        for n in a.notes:
            con.print(f"note: {n}", highlight=False)
        for p in a.problems:
            con.print(f"[red]problem:[/] {p}", highlight=False)
    a.check()   # ... and an ambiguity is one line on stderr, exit 2
    if write:
        path = write_override(a, c.compose.compose_dir)
        say(f"wrote {path}: every llmops command on this project now includes it")
    elif not c.json_out:
        say("nothing written: --write puts these labels in llmops.adopt.yml")


def running_contracts(c: "Context", named: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The project's running containers that answer as a rag or an embedding server does (the
    roles adopt never guesses from an image), with the answer as evidence."""
    from .adopt import contract_role
    from .probes import contract_answers

    try:
        services = c.services()
    except LlmopsError:        # no engine, or nothing running: the compose files alone decide
        return {}
    out: dict[str, tuple[str, str]] = {}
    for svc in services:
        if svc.state != "running" or svc.role or svc.name in named:
            continue
        for url, health, emb in contract_answers(svc):
            role = contract_role(health, emb)
            if role:
                what = "GET /health reports qdrant and embedding" if role == "rag" else \
                    "POST /v1/embeddings answered with vectors"
                out[svc.name] = (role, f"running: {url} {what}")
                break
    return out


@app.command("convert-embedding")
def convert_embedding(
    src: Path = typer.Argument(..., help="A BERT sentence-embedding checkpoint folder (config.json, *.safetensors, tokenizer.json, 1_Pooling/)."),
    out: Path = typer.Argument(..., help="The GGUF file to write."),
    outtype: str = typer.Option("f16", "--outtype", help="f16 (default), f32 or q8_0."),
    name: Optional[str] = typer.Option(None, "--name", help="general.name in the GGUF (default: the folder's name)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="mean, cls or last; only for a checkpoint without 1_Pooling/config.json."),
) -> None:
    """Convert a BERT embedding model to GGUF for llama-server --embeddings, without torch."""
    from .convert_bert import convert_bert

    m = convert_bert(src, out, outtype=outtype, name=name, pooling=pooling)
    say(f"wrote {m.path} ({m.size_bytes / 2**20:.1f} MiB, {m.outtype}): {m.name}, {m.layers} layers, "
        f"{m.dim} dims, {m.pooling} pooling, {'unit-length' if m.normalize else 'unnormalised'} vectors")
    say(f"serve with: {m.serve_hint()}")


# ---- lifecycle ----------------------------------------------------------------------------------

@app.command()
def up(
    wait_timeout: float = typer.Option(300.0, "--wait-timeout", callback=in_range(1, 3600),
                                       help="Seconds to wait for all services to be healthy (1-3600)."),
    build: bool = typer.Option(True, "--build/--no-build", help="Build missing images first."),
    warm: bool = typer.Option(True, "--warm/--no-warm", help="Then send one request through the gateway to every slot of each model deployment (warm standby)."),
    allow_public_bind: bool = typer.Option(False, "--allow-public-bind", help="Let LLMOPS_BIND be a non-loopback address: the gateway and model servers are then reachable from that network."),
    monitoring: bool = typer.Option(False, "--monitoring", help="Also start Prometheus (compose/monitoring.yml), scraping `llmops watch` and the llama-servers, with llmops' alert rules."),
) -> None:
    """Start the stack, wait until every service is healthy, then warm each gateway route."""
    from rich.live import Live
    from rich.table import Table

    from .lifecycle import prepare
    from .lifecycle import up as do_up

    c = ctx()
    if monitoring:
        from .watch.monitoring import include

        include(c, required=True)
    declared = c.declared()
    env, res = prepare(c, build=build, say=say, allow_public_bind=allow_public_bind)
    if monitoring:
        from .watch.monitoring import check_port

        say(f"monitoring: Prometheus on 127.0.0.1:{check_port(c)}, scraping `llmops watch` on 127.0.0.1:9464 (run it)")

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

        stack = c.stack(refresh=True)   # compose may have recreated containers
        if stack.gateway is None:      # the stack is up; only the warm-up needs the labels
            bare = ", ".join(stack.unlabelled)
            say("warm-up skipped: no service has the label llmops.role=gateway"
                + (f" (unlabelled: {bare}; `llmops adopt --write` labels them)" if bare else ""), "warn")
        warmed = warm_routes(c, stack) if stack.gateway is not None else []
        out["warmup"] = [w.to_json() for w in warmed]
        for w in warmed:
            if w.ok:
                say(f"warmed {w.deployment} ({w.slots} slots) through the gateway in {w.latency_s:.2f} s")
            else:
                say(f"warning: warm-up of {w.deployment} got HTTP {w.statuses} from "
                    f"{w.backends}: {w.error or f'expected {w.service or w.deployment}'} (run `llmops verify`)", "warn")
    if c.json_out:
        print(json.dumps(out))


@app.command()
def down(volumes: bool = typer.Option(False, "--volumes", help="Also delete named volumes (Qdrant data).")) -> None:
    """Stop and remove the stack's containers."""
    from .lifecycle import down as do_down

    from .watch.monitoring import include

    c = ctx()
    c.client  # noqa: B018 - exit 4 naming the fix when there is no engine
    include(c, required=False)   # a monitoring profile's Prometheus goes with the stack
    do_down(c, volumes)
    say("stack down")


@app.command()
def status(service: Optional[list[str]] = typer.Option(None, "--service", help="Only these services.")) -> None:
    """01_services_status: state, health, uptime and ports per service."""
    from .checks import status_phase

    c = ctx()
    c.client  # noqa: B018 - fail fast with exit 4 when the engine is down
    out = run_checks(status_phase(c, service))
    if out.code == ExitCode.ENVIRONMENT:
        say(f"stack `{c.project}` is not up: run `llmops up`", "error")
    done(out)


@app.command()
def verify(service: Optional[list[str]] = typer.Option(None, "--service", help="Only these services.")) -> None:
    """Status, every health endpoint (concurrently) and real requests through the stack."""
    from .checks import verify_phase

    done(run_checks(verify_phase(ctx(), service)))


@app.command()
def watch(
    listen: str = typer.Option("127.0.0.1:9464", "--listen", help="HOST:PORT to serve /metrics on (loopback unless --allow-public-listen)."),
    interval: float = typer.Option(5.0, "--interval", callback=in_range(0.5, 3600), help="Seconds between probe rounds (0.5-3600)."),
    once: bool = typer.Option(False, "--once", help="One round: print the Prometheus text on stdout and exit 0 (no server)."),
    allow_public_listen: bool = typer.Option(False, "--allow-public-listen", help="Let --listen be a non-loopback address: anyone on that network can then read the metrics."),
    target: Optional[list[str]] = typer.Option(None, "--target", help="NAME:ROLE=URL: a service outside Docker (repeatable; replaces the stack's; the gateway's key from LITELLM_MASTER_KEY)."),
    alias: Optional[str] = typer.Option(None, "--alias", help="With --target: the model name the gateway probe asks for."),
) -> None:
    """The stack's reliability as Prometheus metrics per compose service, every interval."""
    from .cli_watch import WatchOptions, run_watch

    raise typer.Exit(run_watch(ctx, say, WatchOptions(listen, interval, once, allow_public_listen, tuple(target or ()), alias)))


# ---- chaos -----------------------------------------------------------------------------------------

@chaos_app.command("failover")
def chaos_failover(
    target: Optional[str] = typer.Option(None, "--target", help="The model server to break (default: the primary)."),
    mode: str = typer.Option("stop", "--mode", help="stop | kill | pause | partition | blackhole | loss "
                             "(network faults between the gateway and the target; blackhole and loss need root, "
                             "nsenter and iptables)"),
    loss_pct: Optional[float] = typer.Option(None, "--loss-pct", help="--mode loss: percent of the gateway's "
                                             "packets to the target dropped at random (>0-100, default 5)."),
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
    from .runner import Check, Phase

    rps, max_tokens = stream_defaults(stream, rps, max_tokens)
    o = FailoverOptions(target, mode, rps, duration, fault_at, outage, not no_restore, max_tokens=max_tokens,
                        warm=not no_warm, loss_pct=loss_pct, stream=stream)
    done(run_checks(Phase("failover", [Check("failover", lambda run: run_failover(ctx(), run, o))])))


@chaos_app.command("qdrant")
def chaos_qdrant(
    mode: str = typer.Option("stop", "--mode", help="stop | kill | pause"),
    outage: float = typer.Option(6.0, "--outage", help="Seconds Qdrant stays away."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Leave Qdrant down (exit 5)."),
    data_safety: Optional[bool] = typer.Option(None, "--data-safety/--no-data-safety",
                                               help="Also SIGKILL Qdrant after acknowledged writes to a collection of "
                                                    "its own (llmops_durability) and count them.  Default: on for "
                                                    "llmops' own stack; on a stack of yours, asked (off without a terminal)."),
    points: int = typer.Option(200, "--points", help="Points written for the data-safety check."),
) -> None:
    """Take Qdrant away; measure rag's degraded health, 503s, reconnect and data safety."""
    from .chaos.qdrant import QdrantOptions, run_qdrant
    from .runner import Check, Phase

    o = QdrantOptions(mode, outage, not no_restore, data_safety=decide_data_safety(data_safety),
                      safety_points=points)
    done(run_checks(Phase("qdrant", [Check("qdrant", lambda run: run_qdrant(ctx(), run, o))])))


def decide_data_safety(flag: Optional[bool]) -> bool:
    """The data-safety step SIGKILLs the vector DB and writes a collection there: on llmops' own
    stack by default; on a user's only when they say so (the flag, or yes at a terminal)."""
    from .chaos.qdrant import DURABILITY_COLLECTION

    c = ctx()
    if flag is not None:
        return flag
    if c.compose.demo:
        return True
    vdb = c.stack().role("vectordb")
    name = vdb.name if vdb else "the vector DB"
    what = (f"data safety SIGKILLs {name} in stack `{c.project}` after writing points to a collection "
            f"{DURABILITY_COLLECTION!r} there (deleted after)")
    if sys.stdin.isatty():
        return bool(typer.confirm(f"{what}: run it?", default=False))
    say(f"{what}: not run without --data-safety (no terminal to ask)", "warn")
    return False


@chaos_app.command("restore")
def chaos_restore(timeout: float = typer.Option(120.0, "--timeout", callback=in_range(1, 3600),
                                                help="Seconds to wait for health (1-3600).")) -> None:
    """Undo every fault recorded in the restore ledger (after a crash or SIGKILL); safe to rerun."""
    from .chaos.ledger import Ledger
    from .chaos.restore import ledger_path, replay

    c = ctx()
    done = replay(c.client, Ledger(ledger_path(c.project_dir)), c.project, c.declared(), timeout, say=say)
    say(f"stack healthy; restored: {', '.join(done) if done else 'nothing needed restoring'}")


# ---- GPU, report, certify ---------------------------------------------------------------------------

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
    from .certify import gpu_check, llama_services
    from .gpu.calibration import load_calibration
    from .runner import Phase

    c = ctx()
    cal = load_calibration(calibration) if calibration else None
    if server:   # host processes: no Docker asked; a bad value is refused before any sampling
        from .gpu.hostproc import host_services, parse_host_servers

        services = host_services(parse_host_servers(server))
    else:
        from .stack import docker_client

        try:
            docker_client()
            services = llama_services(c)
        except LlmopsError as e:   # no engine or no stack: still report the GPU itself
            say(f"no stack to attribute to ({e}); reporting the GPU alone", "warn")
            services = []

    def render(r: "CheckResult", text: str, path: Path) -> None:
        show(r, text, path)
        if r.status == "skipped":
            say(f"skipped: {r.skipped}", "warn")

    check = gpu_check(lambda: services, duration_s=duration, interval_s=interval, device=device,
                      tolerance_pct=tolerance, budget_file=budget, calibration=cal)
    done(run_checks(Phase("gpu", [check]), render=render))


def running_specs(allow_unknown_flags: bool) -> list[Any]:
    """The running stack's llama-servers, when there is a stack and an engine to ask (else none:
    gpu-plan needs neither, and falls back to llmops' own compose/gpu.yml)."""
    from .gpu.plan import specs_from_services

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
    from .context import find_project_dir
    from .gpu.budget import load_budget_file
    from .gpu.calibration import load_calibration
    from .gpu.plan import detect_free_mib, format_plan, plan_servers, spec_from_args, specs_from_compose

    cal = load_calibration(calibration) if calibration else None
    bf = load_budget_file(budget) if budget else None
    if server:
        specs = [spec_from_args(a, i, allow_unknown_flags) for i, a in enumerate(server)]
    else:
        specs = running_specs(allow_unknown_flags) or specs_from_compose(
            find_project_dir(_state["opts"]["project_dir"]), allow_unknown_flags=allow_unknown_flags)
    if gpu_mib is not None:
        size, source = gpu_mib, "--gpu-mib"
    else:
        size, source = detect_free_mib()
    plan = plan_servers(specs, gpu_mib=size, gpu_source=source, calibration=cal, budget_file=bf)
    if json_flag or _state["opts"]["json"]:
        print(json.dumps(plan.to_json()))
    else:
        con = _console()
        con.print(format_plan(plan))
        for s in plan.servers:
            for term, why in s["unknown"].items():
                con.print(f"  {s['name']}: {term} unknown: {why}", highlight=False)
            for a in s["assumptions"]:
                con.print(f"  {s['name']}: {a}", highlight=False)
        con.print(f"Overhead per process: calibration {plan.calibration.name}", highlight=False)
        verdict = {True: "[green]fits[/]", False: "[red]does not fit as asked[/]",
                   None: "no fit check"}[plan.fits]
        con.print(f"Total {plan.total_mib if plan.total_mib is None else round(plan.total_mib)} MiB"
                  f" on {'?' if size is None else round(size)} MiB ({source}): {verdict}")
    raise typer.Exit(plan.exit_code)


@app.command()
def report(run_dir: Optional[Path] = typer.Argument(None, help="Run folder (default: evidence/latest).")) -> None:
    """Render summary.md/.html/.json, junit.xml and charts from a run's JSON files only."""
    from .report import render_report

    # A run folder is all a report needs: no checkout, no compose files, no engine.  Only the
    # default (the evidence folder's `latest`) needs to know where the evidence folder is.
    o = _state["opts"]
    if run_dir is not None:
        path = run_dir
    elif o["evidence_dir"] is not None:
        path = Path(o["evidence_dir"]) / "latest"
    else:
        path = ctx().evidence_dir / "latest"
    res = render_report(path)
    if o["json"]:
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
    failover_mode: str = typer.Option("stop", "--failover-mode", help="stop | kill | pause | partition | blackhole | loss (loss at 5 %)"),
    qdrant_mode: str = typer.Option("stop", "--qdrant-mode", help="stop | kill | pause"),
    data_safety: Optional[bool] = typer.Option(None, "--data-safety/--no-data-safety",
                                               help="The qdrant phase's SIGKILL durability step (as chaos qdrant)."),
    stream: bool = typer.Option(False, "--stream", help="The failover phase runs the streaming failover "
                                "(chaos failover --stream with its defaults) instead of the one-token load."),
) -> None:
    """verify, chaos failover, chaos qdrant, gpu-report and report, in one run folder."""
    from rich.live import Live
    from rich.table import Table

    from .certify import PHASES, check_skip, run_certify
    from .chaos.failover import FailoverOptions
    from .chaos.qdrant import QdrantOptions
    from .chaos.streamload import stream_defaults

    skip = skip or []
    check_skip(skip)
    rps, max_tokens = stream_defaults(stream, None, None)
    fo = FailoverOptions(mode=failover_mode, rps=rps, max_tokens=max_tokens, stream=stream)
    qo = QdrantOptions(mode=qdrant_mode, data_safety="qdrant" not in skip and decide_data_safety(data_safety))
    fo.validate()   # a bad option is refused now, not when its phase comes round
    qo.validate()
    from .runner import Runner

    c = ctx()
    c.client  # noqa: B018 - exit 4 now if there is no engine
    states: dict[str, str] = {p: ("skipped" if p in skip else "pending") for p in PHASES}
    live: list[Live] = []

    def on_phase(name: str, st: str) -> None:
        states[name] = st
        if live:
            live[0].update(board())

    runner = Runner(c, show=show, say=say, on_phase=on_phase, contain=True)
    run_path = runner.path   # the run folder, named on the board from the start

    def board() -> Table:
        t = Table(title=f"llmops certify -> {run_path}", show_header=False)
        for p in PHASES:
            colour = "green" if states[p] == "exit 0" else "yellow" if states[p] in ("running", "exit 3") else \
                "dim" if states[p] in ("pending", "skipped") else "red"
            t.add_row(p, f"[{colour}]{states[p]}[/]")
        return t

    with Live(board(), console=_console(stderr=True), refresh_per_second=4) as board_live:
        live.append(board_live)
        code, outcomes = run_certify(runner, skip, fo, qo)
    for o in outcomes:
        say(f"{o.phase:9} exit {o.code}  {o.seconds:6.1f} s" + (f"  {o.error}" if o.error else ""))
    say(f"certify: exit {code}; summary: {run_path / 'summary.md'}")
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
