"""The running stack, from container labels (never from container names): a `Stack` snapshot.

Compose v1 names containers `proj_svc_1`, v2 `proj-svc-1`; both set the same labels, so the
labels are the contract.  This module is the ONE place that maps labels to roles: code elsewhere
asks the `Stack` for "the gateway" or "the primary", never for a service name or an alias.  The
list of services a stack *should* have comes from the compose files (`Compose.declared()`).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends import HostMap, backend_of
from .errors import ConfigError, EnvironmentProblem, UsageError

if TYPE_CHECKING:
    from .gateway_config import RouterSummary

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
# The labels our compose files put on every service (docker-compose.yml is their only source).
ROLE_LABEL = "llmops.role"
ALIAS_LABEL = "llmops.model-alias"       # on the gateway: the alias clients ask for; on the
                                         # embedding server: the model name it must serve
DIM_LABEL = "llmops.embedding-dim"       # on the embedding server: the dimension it must serve
MODEL_LABEL = "llmops.model"             # on a model server: the model file inside the container
HEALTH_LABEL = "llmops.health"
PORT_LABEL = "llmops.port"
EXPECT_LABEL = "llmops.expect"


class Role:
    """The values of the `llmops.role` label: what each service is for."""

    GATEWAY = "gateway"
    PRIMARY = "inference-primary"
    SECONDARY = "inference-secondary"
    RAG = "rag"
    EMBEDDING = "embedding"
    VECTORDB = "vectordb"
    MODEL_SERVERS = (PRIMARY, SECONDARY)
    ALL = (GATEWAY, PRIMARY, SECONDARY, RAG, EMBEDDING, VECTORDB)


# Label values reach probes (URLs, and argv of programs run as root in a container's namespace),
# and they come from compose files and from *image* labels, which Docker merges into the
# container's: a third-party image can carry any string.  So each is checked here, where labels
# are read, against the narrowest shape that works: a plain URL path (no quotes, spaces, `%`,
# `+`, `?`, parentheses), a TCP port, a known role.
_HEALTH_PATH = re.compile(r"/[A-Za-z0-9._~/-]{0,200}")


def _bad_label(service: str, label: str, value: str, want: str) -> ConfigError:
    shown = value if len(value) <= 60 else value[:60] + "..."
    return ConfigError(f"service {service}: label {label}={shown!r} is not {want}")


def label_health_path(service: str, labels: dict[str, str]) -> str:
    """The `llmops.health` path, or ConfigError naming the service and label ("/health" if unset)."""
    value = labels.get(HEALTH_LABEL)
    if value is None:
        return "/health"
    if not isinstance(value, str) or not _HEALTH_PATH.fullmatch(value):
        raise _bad_label(service, HEALTH_LABEL, str(value), "a URL path like /health (letters, digits, . _ ~ / - only)")
    return value


def label_port(service: str, labels: dict[str, str]) -> int:
    """The `llmops.port` container port 1-65535, or ConfigError; 0 when the label is unset."""
    value = labels.get(PORT_LABEL)
    if value is None or value == "":
        return 0
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _bad_label(service, PORT_LABEL, str(value), "a TCP port 1-65535")
    return int(text)


def label_role(service: str, labels: dict[str, str]) -> str:
    """The `llmops.role`, one of `Role.ALL`, or ConfigError; "" when the label is unset (a service
    llmops does not probe)."""
    value = labels.get(ROLE_LABEL)
    if value is None or value == "":
        return ""
    if value not in Role.ALL:
        raise _bad_label(service, ROLE_LABEL, str(value), f"a known role ({', '.join(Role.ALL)})")
    return value


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
    # `docker inspect` as discovered: mounts, argv and env without asking the engine again
    attrs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def url(self) -> str:
        # Probes always go to loopback: traffic must stay on this machine.
        if self.host_port is None:
            why = "not running" if self.state != "running" else (
                f"no {PORT_LABEL} label (run `llmops adopt`)" if not self.port else
                f"container port {self.port} is not published")
            raise EnvironmentProblem(f"service {self.name} has no host port to reach: {why}")
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def expect(self) -> str:
        return self.labels.get(EXPECT_LABEL, "")

    @property
    def published_host_ports(self) -> set[int]:
        """Every host port this container publishes (whatever its labels say)."""
        ports = ((self.attrs.get("NetworkSettings") or {}).get("Ports") or {})
        return {int(b["HostPort"]) for bs in ports.values() for b in bs or [] if str(b.get("HostPort", "")).isdigit()}

    @property
    def dns_names(self) -> list[str]:
        """The names other containers reach this one by: compose's network aliases, its hostname
        and its container name."""
        names = [self.name, self.container_name]
        for net in ((self.attrs.get("NetworkSettings") or {}).get("Networks") or {}).values():
            net = net or {}
            names += [*(net.get("Aliases") or []), *(net.get("DNSNames") or [])]
        names.append((self.attrs.get("Config") or {}).get("Hostname") or "")
        return [n for n in dict.fromkeys(names) if n]

    @property
    def argv(self) -> list[str]:
        """The container's command line: its Entrypoint, then its Cmd."""
        cfg = self.attrs.get("Config") or {}
        return [str(a) for a in [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]]

    @property
    def env(self) -> dict[str, str]:
        """The container's environment (`Config.Env`), as KEY -> value."""
        cfg = self.attrs.get("Config") or {}
        return dict(str(e).split("=", 1) for e in cfg.get("Env") or [] if "=" in str(e))

    def host_path(self, path_in_container: str) -> Path | None:
        """The host file behind a path inside this container, through its mounts (the deepest
        one wins, as in the container's own view); None when no mount holds it (a file baked
        into the image)."""
        from .gateway_config import host_path_of

        mounts = [(str(m.get("Source", "")), str(m.get("Destination", "")))
                  for m in self.attrs.get("Mounts") or []]
        return host_path_of(path_in_container, mounts)

    @property
    def embedding_expect(self) -> tuple[str | None, int | None]:
        """(model name, dimension) this embedding server must serve, from its labels."""
        return self.labels.get(ALIAS_LABEL) or None, label_dim(self.name, self.labels)

    @property
    def is_model_server(self) -> bool:
        return self.role in Role.MODEL_SERVERS

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


def label_dim(service: str, labels: dict[str, str]) -> int | None:
    """The `llmops.embedding-dim` an embedding server must serve (1-65536), None when unset."""
    value = labels.get(DIM_LABEL)
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65536:
        raise _bad_label(service, DIM_LABEL, str(value), "a vector dimension 1-65536")
    return int(text)


def check_labels(service: str, labels: dict[str, str]) -> None:
    """Every llmops label of one service checked (ConfigError naming the first bad one): for the
    compose files' labels before anything starts; a container's own are checked as it is read."""
    label_role(service, labels)
    label_port(service, labels)
    label_health_path(service, labels)
    label_dim(service, labels)


def compose_labels(svc: dict[str, Any]) -> dict[str, str]:
    """A compose service's `labels:`, written as a mapping or as a list of `key=value`."""
    raw = svc.get("labels") or {}
    if isinstance(raw, list):
        return dict(str(x).partition("=")[::2] for x in raw)
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def service_from_attrs(attrs: dict[str, Any]) -> Service:
    """Build a Service from `docker inspect` attributes (pure; unit-tested with real inspect shapes)."""
    cfg = attrs.get("Config", {}) or {}
    labels = cfg.get("Labels", {}) or {}
    st = attrs.get("State", {}) or {}
    state = "paused" if st.get("Paused") else (st.get("Status") or "unknown")
    health = (st.get("Health") or {}).get("Status")
    name = labels.get(SERVICE_LABEL, "?")
    port = label_port(name, labels)
    label_dim(name, labels)
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
        name=name,
        role=label_role(name, labels),
        container_id=attrs.get("Id", ""),
        container_name=(attrs.get("Name") or "").lstrip("/"),
        state=state,
        health=health,
        started_at=st.get("StartedAt"),
        health_path=label_health_path(name, labels),
        port=port,
        host_port=host_port,
        host_ip=host_ip,
        labels=dict(labels),
        attrs=attrs,
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


def select(services: list[Service], names: list[str] | None, valid: list[str]) -> list[Service]:
    """Filter by --service; an unknown name is a usage error that lists the valid ones."""
    if not names:
        return services
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UsageError(f"unknown service {', '.join(unknown)}; valid: {', '.join(valid)}")
    return [s for s in services if s.name in names]


def host_map(services: list[Service]) -> dict[str, str]:
    """Every DNS name a service answers to (network aliases, hostname, container name) -> the
    service: a LiteLLM config may name a backend by any of them, and `backend_of` (with this map)
    turns every `x-litellm-model-api-base` back into its compose service."""
    out: dict[str, str] = {}
    for s in services:
        for n in s.dns_names:
            out.setdefault(n, s.name)     # an alias two services share: the first (in name order) keeps it
    for s in services:   # a service's own name always means that service
        out[s.name] = s.name
    return out


@dataclass
class Stack:
    """One snapshot of the stack, taken once per command (per certify phase): its services by
    role, the gateway's alias and the router settings it really runs.

    Polling loops (waiting for health) still list containers themselves: they want the state now,
    not the state at the snapshot."""

    project: str
    declared: list[str]
    services: list[Service]

    @classmethod
    def snapshot(cls, client: Any, project: str, declared: list[str]) -> "Stack":
        return cls(project, list(declared), discover(client, project))

    @property
    def by_name(self) -> dict[str, Service]:
        return {s.name: s for s in self.services}

    def role(self, role: str) -> Service | None:
        return next((s for s in self.services if s.role == role), None)

    @property
    def absent_roles(self) -> list[str]:
        """Roles no service of this stack has: checks that need them are "not in this stack"
        (neither failed nor skipped).  Empty for a stack that is not up at all."""
        if not self.services:
            return []
        held = {s.role for s in self.services}
        return [r for r in Role.ALL if r not in held]

    @property
    def unlabelled(self) -> list[str]:
        """Services llmops cannot use: no `llmops.role` label."""
        return [s.name for s in self.services if not s.role]

    def require(self, role: str) -> Service:
        """The service with this role, or exit 4 naming the fix: `up` when nothing runs, `adopt`
        when services run that no label gives a role."""
        s = self.role(role)
        if s is None:
            if not self.services:
                raise EnvironmentProblem(f"stack `{self.project}` is not up (no container of that compose project): "
                                         f"run `llmops up`")
            bare = self.unlabelled
            hint = (f"services without an llmops.role label: {', '.join(bare)}; `llmops adopt` proposes "
                    f"their roles and `llmops adopt --write` labels them" if bare else
                    f"no service has the label {ROLE_LABEL}={role}")
            raise EnvironmentProblem(f"no service with role {role} in stack `{self.project}` ({hint})")
        return s

    def require_up(self) -> "Stack":
        """Itself, or exit 4 when the stack is not up at all."""
        if not self.services:
            raise EnvironmentProblem(f"stack `{self.project}` is not up: run `llmops up`")
        return self

    @property
    def gateway(self) -> Service | None:
        return self.role(Role.GATEWAY)

    @property
    def primary(self) -> Service | None:
        return self.role(Role.PRIMARY)

    @property
    def model_servers(self) -> list[Service]:
        return [s for s in self.services if s.is_model_server]

    @property
    def running(self) -> list[Service]:
        return [s for s in self.services if s.state == "running"]

    @property
    def alias(self) -> str | None:
        """The model alias clients ask the gateway for (its `llmops.model-alias` label)."""
        gw = self.gateway
        return gw.labels.get(ALIAS_LABEL) if gw else None

    @property
    def hosts(self) -> HostMap:
        """DNS name -> service for this snapshot's services (see `host_map`)."""
        return host_map(self.services)

    def backend_of(self, api_base: str | None) -> str | None:
        """The service of this stack behind a LiteLLM api_base (an unknown host names itself)."""
        return backend_of(api_base, self.hosts)

    @property
    def router_path(self) -> Path | None:
        from .gateway_config import mounted_config_path

        gw = self.gateway
        return mounted_config_path(gw.attrs) if gw else None

    @property
    def router_inside(self) -> str | None:
        """The config path the gateway reads inside its container (for messages)."""
        from .gateway_config import gateway_config_inside

        gw = self.gateway
        return gateway_config_inside(gw.attrs) if gw else None

    @cached_property
    def router(self) -> "RouterSummary | None":
        """The gateway's router settings, read once from the config file it has mounted (None when
        there is no gateway or its config is not on this host).  Lazy: a malformed config fails
        only the commands that need it."""
        from .gateway_config import running_router

        gw = self.gateway
        r = running_router(gw.attrs, self.alias, self.hosts) if gw else None
        if r is not None and r.drift:   # every limit judged against these settings is in doubt
            r.warnings.insert(0, r.drift)
        return r
