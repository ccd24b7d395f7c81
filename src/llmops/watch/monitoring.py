"""The monitoring profile: `llmops up --monitoring` adds compose/monitoring.yml (a Prometheus
service under the compose profile `monitoring`) to llmops' own layout; `llmops down` always
reads it there, so the container goes with the stack and `down --volumes` takes its data too.

Only llmops' own layout has the file: on a stack of yours, run a Prometheus with
compose/prometheus/prometheus.yml and llmops.rules.yml, pointed at `llmops watch`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..compose import read_env_file
from ..errors import ConfigError, EnvironmentProblem, UsageError
from ..ports import holder, is_free

if TYPE_CHECKING:
    from ..context import Context

MONITORING_FILE = "monitoring.yml"
PROFILE = "monitoring"
SERVICE = "prometheus"
PORT_VARIABLE = "PROMETHEUS_PORT"
DEFAULT_PORT = 9090


def include(ctx: "Context", *, required: bool) -> bool:
    """Add the monitoring file and profile to every later compose call of this command (the
    profile through COMPOSE_PROFILES, which compose v2 and v1.28+ both read).  `required`
    (`up --monitoring`): refuse a layout without it (exit 2); else add it only where it exists."""
    f = ctx.compose.compose_dir / MONITORING_FILE
    if not ctx.compose.demo or not f.is_file():
        if required:
            raise UsageError("--monitoring is part of llmops' own layout (compose/monitoring.yml); for your "
                             "stack, run Prometheus with compose/prometheus/prometheus.yml pointed at `llmops watch`")
        return False
    if f not in ctx.compose.files:
        ctx.compose.add_files(f)
    profiles = [p for p in os.environ.get("COMPOSE_PROFILES", "").split(",") if p.strip()]
    if PROFILE not in profiles:
        os.environ["COMPOSE_PROFILES"] = ",".join([*profiles, PROFILE])
    return True


def prometheus_port(ctx: "Context") -> int:
    raw = os.environ.get(PORT_VARIABLE) or read_env_file(ctx.compose.env_file).get(PORT_VARIABLE) or str(DEFAULT_PORT)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"{PORT_VARIABLE}={raw!r} is not a TCP port 1-65535")
    return int(raw)


def check_port(ctx: "Context") -> int:
    """Prometheus runs on the host's network, so compose publishes no port for it and its own
    pre-flight cannot see a clash: refuse here, naming the holder, unless it is ours already."""
    port = prometheus_port(ctx)
    if any(s.name == SERVICE and s.state == "running" for s in ctx.services()):
        return port
    if not is_free(port) or not is_free(port, "0.0.0.0"):
        raise EnvironmentProblem(f"port {port} (for {SERVICE}) is already taken by {holder(port, ctx.client)}; "
                                 f"free it or set {PORT_VARIABLE} in {ctx.compose.env_file}")
    return port
