"""Discover the running stack from container labels (never from container names).

Compose v1 names containers `proj_svc_1`, v2 `proj-svc-1`; both set the same labels, so the
labels are the contract.  The list of services a stack *should* have comes from the compose files.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .errors import ConfigError, EnvironmentProblem, UsageError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"


@dataclass
class Service:
    name: str
    role: str
    container_id: str
    container_name: str
    state: str                     # running, exited, paused, restarting, created
    health: str | None             # healthy, unhealthy, starting, or None without a healthcheck
    started_at: str | None
    health_path: str
    port: int                      # the container port
    host_port: int | None          # the published host port, if any
    host_ip: str = "127.0.0.1"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        # Probes always go to loopback: traffic must stay on this machine.
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def expect(self) -> str:
        return self.labels.get("llmops.expect", "")

    @property
    def up_healthy(self) -> bool:
        return self.state == "running" and self.health in ("healthy", None)

    def uptime_s(self, now: _dt.datetime | None = None) -> float | None:
        if not self.started_at or self.state != "running":
            return None
        started = parse_docker_time(self.started_at)
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return max(0.0, (now - started).total_seconds())


def parse_docker_time(s: str) -> _dt.datetime:
    # Docker gives nanoseconds (2026-11-26T06:40:01.123456789Z); datetime takes microseconds.
    s = s.rstrip("Z")
    if "." in s:
        head, frac = s.split(".", 1)
        s = f"{head}.{frac[:6].ljust(6, '0')}"  # 3.10 takes only 6 (or 3) digits
    return _dt.datetime.fromisoformat(s).replace(tzinfo=_dt.timezone.utc)


def service_from_attrs(attrs: dict[str, Any]) -> Service:
    """Build a Service from `docker inspect` attributes (pure; unit-tested with real inspect shapes)."""
    cfg = attrs.get("Config", {}) or {}
    labels = cfg.get("Labels", {}) or {}
    st = attrs.get("State", {}) or {}
    state = "paused" if st.get("Paused") else (st.get("Status") or "unknown")
    health = (st.get("Health") or {}).get("Status")
    port = int(labels.get("llmops.port", "0") or 0)
    host_port, host_ip = None, "127.0.0.1"
    ports = ((attrs.get("NetworkSettings") or {}).get("Ports") or {})
    bindings = ports.get(f"{port}/tcp") or []
    if not bindings:  # a stopped container has no live bindings; HostConfig keeps the intent
        bindings = ((attrs.get("HostConfig") or {}).get("PortBindings") or {}).get(f"{port}/tcp") or []
    for b in bindings:
        if b.get("HostPort"):
            host_port = int(b["HostPort"])
            host_ip = b.get("HostIp") or "0.0.0.0"
            break
    return Service(
        name=labels.get(SERVICE_LABEL, "?"),
        role=labels.get("llmops.role", ""),
        container_id=attrs.get("Id", ""),
        container_name=(attrs.get("Name") or "").lstrip("/"),
        state=state,
        health=health,
        started_at=st.get("StartedAt"),
        health_path=labels.get("llmops.health", "/health"),
        port=port,
        host_port=host_port,
        host_ip=host_ip,
        labels=dict(labels),
    )


def docker_client() -> Any:
    """A Docker SDK client, or one clear line saying what to do."""
    try:
        import docker  # lazy: `llmops --help` must not pay for it
    except ImportError:
        raise EnvironmentProblem("the Docker SDK for Python is not installed: "
                                 "pip install docker (or reinstall llmops)") from None
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as e:  # noqa: BLE001 - every failure here means the same thing to the user
        raise EnvironmentProblem(
            f"Docker engine unreachable ({e.__class__.__name__}): start it (`dockerd &`, "
            "or `llmops engine --install` as root on Debian/Ubuntu)") from None


def discover(client: Any, project: str) -> list[Service]:
    """The project's containers, one Service per compose service, in name order."""
    # ignore_removed: compose may remove a container between the list and its inspect
    containers = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"},
                                        ignore_removed=True)
    out: dict[str, Service] = {}
    for c in containers:
        labels = c.attrs.get("Config", {}).get("Labels", {}) or {}
        if labels.get(ONEOFF_LABEL, "False") == "True":
            continue
        svc = service_from_attrs(c.attrs)
        prev = out.get(svc.name)
        if prev is None or (svc.state == "running" and prev.state != "running"):
            out[svc.name] = svc
    return [out[k] for k in sorted(out)]


def declared_services(compose_files: list[Path]) -> list[str]:
    """Service names as the compose files declare them (the later file only overrides)."""
    names: list[str] = []
    for f in compose_files:
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{f.name}{where}: malformed YAML") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("services", {}), dict):
            raise ConfigError(f"{f.name}: `services` must be a mapping")
        for n in doc.get("services", {}) or {}:
            if n not in names:
                names.append(n)
    return sorted(names)


def select(services: list[Service], names: list[str] | None, valid: list[str]) -> list[Service]:
    """Filter by --service; an unknown name is a usage error that lists the valid ones."""
    if not names:
        return services
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UsageError(f"unknown service {', '.join(unknown)}; valid: {', '.join(valid)}")
    return [s for s in services if s.name in names]


def backend_of(api_base: str | None) -> str | None:
    """The compose service behind a LiteLLM `x-litellm-model-api-base` (its URL's host name)."""
    if not api_base:
        return None
    host = urlparse(api_base).hostname
    return host or None
