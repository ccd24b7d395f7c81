"""What one interval probes: each service with a role, where its health is, and who the gateway's
primary and secondaries are.  Built from a `Stack` snapshot (Docker labels) or from `--target`
specs (no Docker); the probes never learn which."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..probes import no_port_reason
from ..stack import Role, Service
from .listen import TargetSpec

if TYPE_CHECKING:
    from ..stack import Stack

LLAMA_ROLES = (Role.PRIMARY, Role.SECONDARY, Role.EMBEDDING)


@dataclass(frozen=True)
class Target:
    name: str
    role: str
    base_url: str | None          # None: nothing to reach (see `unreachable`)
    health_path: str
    expect: str
    container_id: str = ""
    unreachable: str = ""         # why there is no URL (stopped, port not published)

    @property
    def health_url(self) -> str | None:
        return f"{self.base_url}{self.health_path}" if self.base_url else None

    @property
    def is_llama(self) -> bool:
        """A llama-server: its /metrics is re-exported (the gateway's is LiteLLM's, not read)."""
        return self.role in LLAMA_ROLES and self.expect == "llama"


@dataclass(frozen=True)
class WatchPlan:
    """One view of the stack: the targets in name order, and the gateway's side of it."""

    project: str
    targets: tuple[Target, ...]
    alias: str | None = None                       # what the gateway probe asks for
    master_key: str | None = field(default=None, repr=False)
    # container ID -> service, for the GPU attribution of PIDs
    containers: tuple[tuple[str, str], ...] = ()
    # the plan's expected GPU bytes per service (only what gpu-plan could compute)
    expected_gpu_bytes: tuple[tuple[str, float], ...] = ()
    # the stack's DNS names -> compose service (`Stack.hosts`): which service a reply's api_base names
    hosts: tuple[tuple[str, str], ...] = ()

    def role(self, role: str) -> Target | None:
        return next((t for t in self.targets if t.role == role), None)

    @property
    def gateway(self) -> Target | None:
        return self.role(Role.GATEWAY)

    @property
    def primary(self) -> str | None:
        t = self.role(Role.PRIMARY)
        return t.name if t else None

    @property
    def secondaries(self) -> frozenset[str]:
        return frozenset(t.name for t in self.targets if t.role == Role.SECONDARY)

    def role_of(self, service: str) -> str:
        return next((t.role for t in self.targets if t.name == service), "")


def target_of(svc: Service) -> Target:
    """A Docker service as a target.  The gateway's health is its unkeyed label path: the keyed
    /health makes LiteLLM send every deployment a completion, and `watch` sends one request per
    interval through the gateway, not three."""
    expect = "" if svc.expect == "litellm" else svc.expect
    if svc.host_port is None:
        return Target(svc.name, svc.role, None, svc.health_path, expect, svc.container_id, no_port_reason(svc))
    return Target(svc.name, svc.role, svc.url, svc.health_path, expect, svc.container_id)


def plan_from_stack(stack: "Stack", master_key: str | None,
                    expected_gpu_bytes: dict[str, float] | None = None) -> WatchPlan:
    services = [s for s in stack.services if s.role]
    return WatchPlan(stack.project, tuple(target_of(s) for s in services), stack.alias, master_key,
                     tuple((s.container_id, s.name) for s in services if s.container_id),
                     tuple(sorted((expected_gpu_bytes or {}).items())), tuple(sorted(stack.hosts.items())))


def plan_from_specs(specs: list[TargetSpec], alias: str | None, master_key: str | None) -> WatchPlan:
    # the gateway's health answer is judged as any 2xx, as for a Docker gateway (see target_of)
    targets = tuple(sorted((Target(s.name, s.role, s.base_url, s.health_path, "" if s.expect == "litellm" else s.expect)
                            for s in specs), key=lambda t: t.name))
    return WatchPlan("(--target)", targets, alias, master_key)
