"""`up` and `down`: pre-flight, compose up, and waiting for every service to be healthy."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compose import published_ports, read_env_file
from .context import Context
from .errors import ConfigError, EnvironmentProblem
from .ports import holder, is_free
from .stack import Service, check_labels, compose_labels

QDRANT_REAL_IMAGES = ("qdrant/qdrant",)


@dataclass
class UpResult:
    time_to_healthy_s: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0
    built: bool = False
    t0: float = 0.0


def compose_env(ctx: Context) -> dict[str, str]:
    """Per-run compose variables: the real Qdrant image when Docker already has one."""
    env: dict[str, str] = {}
    if ctx.profile == "cpu":
        for img in ctx.client.images.list():
            for tag in img.tags:
                if tag.split(":")[0] in QDRANT_REAL_IMAGES:
                    env["LLMOPS_QDRANT_IMAGE"] = tag
                    return env
    return env


def gateway_config_digest(config: dict[str, Any]) -> dict[str, str]:
    """The digest of the LiteLLM config the gateway will mount, for its environment: compose then
    recreates the gateway whenever the file's content changes (a bind mount alone does not), and
    `config_drift` can tell later whether the running gateway loaded what the file now says."""
    from .gateway_config import CONFIG_DIGEST_ENV, CONFIG_IN_CONTAINER, config_argument, file_digest, host_path_of
    from .stack import ROLE_LABEL, Role, compose_labels

    services = list((config.get("services") or {}).values())
    gateways = [s for s in services if compose_labels(s or {}).get(ROLE_LABEL) == Role.GATEWAY]
    for svc in gateways or services:   # unlabelled: whichever service mounts the config
        cmd = svc.get("command") or []
        argv = [str(a) for a in ([*(svc.get("entrypoint") or []), *cmd] if isinstance(cmd, list) else [])]
        inside = config_argument(argv, svc.get("environment") if isinstance(svc.get("environment"), dict) else None)
        mounts = []
        for v in svc.get("volumes") or []:
            src, _, rest = v.partition(":") if isinstance(v, str) else (v.get("source", ""), ":", v.get("target", ""))
            mounts.append((str(src), rest.split(":")[0]))
        src_path = host_path_of(inside or CONFIG_IN_CONTAINER, mounts)
        if src_path is not None and src_path.is_file():
            return {CONFIG_DIGEST_ENV: file_digest(src_path)}
    return {}


BIND_VARIABLE = "LLMOPS_BIND"


def check_bind(value: str | None, allow_public: bool) -> str:
    """`LLMOPS_BIND`, the host address every published port binds to: an IP address (compose pastes
    it into `ADDR:PORT:PORT`, so anything else is a broken or surprising port spec), and loopback
    unless `--allow-public-bind`: another address exposes the gateway and every model server,
    whose only guard is the master key, to that network."""
    if not value:
        return "127.0.0.1"                     # compose's ${LLMOPS_BIND:-127.0.0.1}
    text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{BIND_VARIABLE}={value!r} is not an IP address "
                          "(for example 127.0.0.1; set it in compose/.env or the environment)") from None
    if ip.version == 6 and text == value:
        raise ConfigError(f"{BIND_VARIABLE}={value!r}: write an IPv6 address in brackets ([{value}]), "
                          "or compose reads its colons as port separators")
    if not ip.is_loopback and not allow_public:
        raise ConfigError(f"{BIND_VARIABLE}={value} is not a loopback address: it would publish the gateway "
                          "and every model server on that network; pass --allow-public-bind to mean it")
    return value


def bind_value(ctx: Context) -> str | None:
    """LLMOPS_BIND as compose will read it: the environment first, then compose/.env."""
    if BIND_VARIABLE in os.environ:
        return os.environ[BIND_VARIABLE]
    return read_env_file(ctx.compose.env_file).get(BIND_VARIABLE)


def check_ports(ctx: Context, config: dict[str, Any], ours: list[Service]) -> None:
    """Refuse before starting anything when a port is held by someone else, naming the holder."""
    # Every port our own containers publish, labelled or not: a second `up` of a stack with no
    # llmops.port labels must not blame its own containers.
    mine = {p for s in ours if s.state in ("running", "paused") for p in s.published_host_ports}
    variables = ctx.compose.port_variables()
    for port, svc in sorted(published_ports(config).items()):
        if port in mine:
            continue
        if not is_free(port) or not is_free(port, "0.0.0.0"):
            hint = f"; free it or set {variables[svc]} in {ctx.compose.env_file}" if svc in variables else ""
            raise EnvironmentProblem(f"port {port} (for {svc}) is already taken by {holder(port, ctx.client)}{hint}")


def missing_images(ctx: Context, config: dict[str, Any]) -> list[str]:
    import docker

    missing = []
    for svc in (config.get("services") or {}).values():
        img = svc.get("image")
        if not img:
            continue
        try:
            ctx.client.images.get(img)
        except docker.errors.ImageNotFound:
            missing.append(img)
    return sorted(set(missing))


def last_logs(ctx: Context, svc: Service, n: int = 8) -> str:
    try:
        raw = ctx.client.containers.get(svc.container_id).logs(tail=n).decode(errors="replace")
    except Exception:  # noqa: BLE001 - logs are a courtesy in an error message
        return ""
    return " | ".join(line.strip() for line in raw.strip().splitlines()[-n:])


def prepare(ctx: Context, *, build: bool, say: Callable[[str], None] = print,
            allow_public_bind: bool = False) -> tuple[dict[str, str], UpResult]:
    """Pre-flight before anything starts: bind address, engine, config, ports, images (built if missing)."""
    t0 = time.monotonic()
    check_bind(bind_value(ctx), allow_public_bind)   # exit 2 before the engine is even asked
    ctx.client  # noqa: B018 - exit 4 with the fix before touching anything
    env = compose_env(ctx)
    ctx.compose.ensure_env()
    config = ctx.compose.config(env)
    env.update(gateway_config_digest(config))
    for name, svc in sorted((config.get("services") or {}).items()):
        check_labels(name, compose_labels(svc or {}))   # exit 2 before anything starts
    check_ports(ctx, config, ctx.services())
    result = UpResult(t0=t0)
    # Our own images (gateway, rag, embedding, and the cpu llama-server) are built, never pulled.
    missing = [m for m in missing_images(ctx, config) if m.startswith("llmops/")]
    if missing:
        if not build:
            raise EnvironmentProblem(f"images missing: {', '.join(missing)}; run `llmops build`")
        from .build import Builder

        say(f"images missing ({', '.join(missing)}): building offline")
        Builder(ctx.project_dir, say=say).all(wanted=missing)   # wanted: an optional image the files name
        result.built = True
    return env, result


def up(ctx: Context, env: dict[str, str], result: UpResult, *, wait_timeout: float,
       on_tick: Callable[[list[Service], dict[str, float], float], None] | None = None) -> UpResult:
    t0 = result.t0
    declared = ctx.declared()
    # Containers that exist before `compose up` may be about to be recreated: their health says
    # nothing about the new ones, so they count only once compose has finished.
    before = {s.name: s.container_id for s in ctx.services()}
    t_up = time.monotonic()
    proc = subprocess.Popen([*ctx.compose.base_argv(), "up", "-d", "--remove-orphans"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env})
    healthy_at: dict[str, float] = {}
    deadline = t_up + wait_timeout
    services: list[Service] = []
    while True:
        now = time.monotonic()
        services = ctx.services()
        done = proc.poll() is not None
        for s in services:
            fresh = s.container_id != before.get(s.name)
            if not (s.up_healthy and s.state == "running"):
                healthy_at.pop(s.name, None)
            elif s.name not in healthy_at and (fresh or done):
                healthy_at[s.name] = now - t_up if fresh else 0.0
        if on_tick:
            on_tick(services, healthy_at, now - t_up)
        if done and proc.returncode != 0:
            out = (proc.stdout.read() if proc.stdout else "").strip().splitlines()
            bad = _worst(services, declared)
            tail = f"; last log lines of {bad.name}: {last_logs(ctx, bad)}" if bad else ""
            raise EnvironmentProblem(f"compose up failed: {out[-1] if out else 'no output'}{tail}")
        if done and all(n in healthy_at for n in declared):
            break
        if now > deadline:
            proc.kill()
            bad = _worst(services, declared)
            name = bad.name if bad else next(n for n in declared if n not in healthy_at)
            raise EnvironmentProblem(
                f"{name} not healthy after {wait_timeout:.0f} s"
                + (f" (state {bad.state}, health {bad.health}); last log lines: {last_logs(ctx, bad)}" if bad else " (no container)"))
        time.sleep(0.5)
    result.time_to_healthy_s = {k: round(v, 2) for k, v in healthy_at.items()}
    result.total_s = round(time.monotonic() - t0, 2)
    return result


def _worst(services: list[Service], declared: list[str]) -> Service | None:
    """The service to blame: one whose health check failed (or that is not running) before one
    that is merely still starting, which on a busy machine may only be slow."""
    bad = [s for s in services if s.name in declared and not s.up_healthy]

    def rank(s: Service) -> int:
        if s.state != "running" or s.health == "unhealthy":
            return 0
        return 1 if s.health == "starting" else 2

    return min(bad, key=rank) if bad else None


def down(ctx: Context, volumes: bool) -> None:
    args = ["down", "--remove-orphans"] + (["--volumes"] if volumes else [])
    # compose interpolates the whole file even to take a stack down, and the gateway's key is
    # mandatory there; `down` never starts the gateway, so a checkout without compose/.env (a fresh
    # clone whose tests never ran `up`) gets a stand-in instead of a refusal.
    env = {} if ctx.master_key else {"LITELLM_MASTER_KEY": "unused-by-down"}
    ctx.compose.run(*args, env=env, timeout=300)
