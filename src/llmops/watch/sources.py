"""Where the plan comes from, and the containers' states each interval.

`DockerSource` reads the stack through the labels (a `Stack` snapshot, taken again only when a
container was recreated, added, or came back: its published port may be new), and each interval
the containers' states in ONE engine call (`GET /containers/json` of the project: no inspect per
container).  `StaticSource` is `--target`: no Docker at all.  Both are blocking: the loop calls
them in worker threads, with timeouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..stack import ONEOFF_LABEL, PROJECT_LABEL, ROLE_LABEL, SERVICE_LABEL
from .targets import WatchPlan, plan_from_stack

if TYPE_CHECKING:
    from ..context import Context


@dataclass(frozen=True)
class ContainerState:
    container_id: str
    running: bool
    labelled: bool          # carries llmops.role


class Source(Protocol):
    plan: WatchPlan

    def states(self) -> dict[str, ContainerState] | None: ...

    def refresh(self) -> WatchPlan: ...


class StaticSource:
    """`--target` services: the plan never changes and nothing tells container states."""

    def __init__(self, plan: WatchPlan) -> None:
        self.plan = plan

    def states(self) -> dict[str, ContainerState] | None:
        return None

    def refresh(self) -> WatchPlan:
        return self.plan


def states_from_rows(rows: list[dict]) -> dict[str, ContainerState]:
    """`GET /containers/json` rows -> service -> state (a running container wins over a stopped
    one of the same service, as in `stack.discover`)."""
    out: dict[str, ContainerState] = {}
    for r in rows:
        labels = r.get("Labels") or {}
        if labels.get(ONEOFF_LABEL, "False") == "True" or SERVICE_LABEL not in labels:
            continue
        st = ContainerState(str(r.get("Id", "")), r.get("State") == "running", bool(labels.get(ROLE_LABEL)))
        prev = out.get(labels[SERVICE_LABEL])
        if prev is None or (st.running and not prev.running):
            out[labels[SERVICE_LABEL]] = st
    return out


def is_stale(plan: WatchPlan, states: dict[str, ContainerState]) -> bool:
    """Must the stack be read again?  A labelled service the plan lacks, a container the plan
    does not know (recreated), or one that runs now but had no port to probe at the snapshot."""
    for t in plan.targets:
        st = states.get(t.name)
        if st is None:
            continue
        if t.container_id and st.container_id != t.container_id:
            return True
        if st.running and t.base_url is None:
            return True
    known = {t.name for t in plan.targets}
    return any(st.labelled and name not in known for name, st in states.items())


class DockerSource:
    def __init__(self, ctx: "Context", gpu_plan: bool = False) -> None:
        self.ctx = ctx
        self.gpu_plan = gpu_plan
        self.notes: list[str] = []
        self.plan = self.refresh()

    def refresh(self) -> WatchPlan:
        from .gpumem import expected_gpu_bytes

        stack = self.ctx.stack(refresh=True)
        expected: dict[str, float] = {}
        if self.gpu_plan:
            expected, note = expected_gpu_bytes(stack.services)
            if note and note not in self.notes:
                self.notes.append(note)
        self.plan = plan_from_stack(stack, self.ctx.master_key, expected)
        return self.plan

    def states(self) -> dict[str, ContainerState] | None:
        rows = self.ctx.client.api.containers(all=True, filters={"label": f"{PROJECT_LABEL}={self.ctx.project}"})
        return states_from_rows(rows)
