"""What both chaos experiments share: validation, pre-flight, and the fault-with-restore frame."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..context import Context
from ..runner import Run
from ..errors import Aborted, EnvironmentProblem, UsageError
from ..stack import Service
from ..validate import check_range  # noqa: F401 - the experiments' options use it from here
from .faults import FaultClock, fault_clock, inject_into
from .ledger import Entry, Ledger
from .modes import ENGINE_RECORD_MODES
from .restore import Interrupted, ledger_path, restore_entry, signals_raise, wait_stack_healthy


def preflight(ctx: Context, target: str) -> tuple[dict[str, Service], list[str]]:
    """The target must be a declared, running service (else exit 2); the whole stack must be
    healthy before we break anything (else exit 4)."""
    stack = ctx.stack()
    declared = stack.declared
    if target not in declared:
        raise UsageError(f"unknown target {target}; valid: {', '.join(declared)}")
    svcs = stack.by_name
    if not svcs:
        raise EnvironmentProblem(f"stack `{ctx.project}` is not up: run `llmops up`")
    t = svcs.get(target)
    if t is None or t.state != "running":
        raise UsageError(f"target {target} is not running ({t.state if t else 'no container'}); "
                         "run `llmops chaos restore` or `llmops up`")
    bad = [n for n in declared if n not in svcs or not svcs[n].up_healthy]
    if bad:
        raise EnvironmentProblem(f"pre-flight: stack not healthy ({', '.join(bad)}); refusing to inject a fault")
    return svcs, declared


@contextmanager
def signals_deferred() -> Iterator[list[str]]:
    """While restoring, SIGINT and SIGTERM wait: the restore finishes, then the signal counts (the
    caller stops after it instead of losing it)."""
    got: list[str] = []

    def handler(signum: int, _frame: Any) -> None:
        got.append(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Frame(Protocol):
    """What an experiment reads of a fault frame once it has run, whichever kind it is (FaultFrame
    below, or chaos/netframe.py's NetFaultFrame): its moments, its restore, and its own evidence."""

    t_fault: float | None
    t_restore: float | None
    fault_call_s: float | None
    clock: FaultClock | None
    restored: bool
    restore_how: str
    notes: list[str]

    @property
    def t_dead(self) -> float | None: ...

    def finish(self) -> None: ...

    def summary(self) -> dict[str, Any] | None: ...


@dataclass
class FaultFrame:
    """Injects one fault and guarantees its undo: ledger first, restore in `finally`, on SIGINT and
    SIGTERM, verified by the whole stack being healthy again."""

    ctx: Context
    evidence: Run                 # the run folder's events and `say`, from the runner
    service: Service
    mode: str
    restore: bool = True
    phase: str = "chaos"          # which experiment, so charts can tell the faults apart
    entry: Entry | None = None
    t_fault: float | None = None        # the engine call was issued
    fault_call_s: float | None = None   # how long the engine took to carry the fault out (reported, not judged)
    clock: FaultClock | None = None     # when the primary was gone (t_dead), and how that is known
    t_restore: float | None = None
    restored: bool = False
    restore_how: str = ""
    interrupted: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        return Ledger(ledger_path(self.ctx.project_dir))

    def inject(self) -> float:
        self.entry = self.ledger.add(self.ctx.project, self.service.name, self.service.container_id, self.mode)
        container = self.ctx.client.containers.get(self.service.container_id)
        self.t_fault, wall0 = time.monotonic(), time.time()
        inject_into(container, self.mode)
        self.mark_done(wall0, container)
        return self.t_fault

    def mark_done(self, wall_issued: float, container: Any = None) -> None:
        """The call returned: record its duration and when the primary was gone (for stop and
        kill, the engine's `State.FinishedAt`, read after the call; see faults.fault_clock)."""
        assert self.t_fault is not None
        t1, wall1 = time.monotonic(), time.time()
        finished = None
        if container is not None and self.mode in ENGINE_RECORD_MODES:
            try:
                container.reload()
                finished = (container.attrs.get("State") or {}).get("FinishedAt")
            except Exception as e:  # noqa: BLE001 - then the issue time stands (fault_clock says so)
                finished = f"inspect failed: {e}"
        self.clock = fault_clock(self.mode, self.t_fault, wall_issued, t1, wall1, finished)
        self.fault_call_s = self.clock.call_s
        if not self.clock.source.startswith(("State.FinishedAt", "call returned")):
            self.notes.append(self.clock.source)
        run = self.evidence
        run.event("fault", t=run.to_run_time(self.t_fault), phase=self.phase, service=self.service.name,
                  action=self.mode, call_s=round(self.fault_call_s, 4),
                  dead_t=round(run.to_run_time(self.clock.t_dead), 4), dead_from=self.clock.source,
                  **self.fault_fields())

    def fault_fields(self) -> dict[str, Any]:
        """Extra fields for the fault event (the network frame adds its tag and loss)."""
        return {}

    def finish(self) -> None:
        """What must be done once the fault is over, before its evidence is read: nothing for a
        container fault (the network frame stops its sampler)."""

    def summary(self) -> dict[str, Any] | None:
        """The frame's own evidence beyond the run's: none for a container fault (the network
        frame's is its `network_fault` record)."""
        return None

    @property
    def t_dead(self) -> float | None:
        return self.clock.t_dead if self.clock is not None else None

    def undo(self) -> float:
        assert self.entry is not None
        self.t_restore = time.monotonic()
        self.restore_how = restore_entry(self.ctx.client, self.ledger, self.entry)
        self.evidence.event("restore", t=self.evidence.to_run_time(self.t_restore),
                            phase=self.phase, service=self.service.name, action=self.restore_how)
        self.entry = None
        return self.t_restore

    def apply(self, body: Callable[["FaultFrame"], Any]) -> Any:
        """Run `body` (which injects) under the frame: whatever happens, undo and wait for health."""
        say = self.evidence.say
        out = None
        try:
            with signals_raise():
                out = body(self)
        except Interrupted as e:
            self.interrupted = str(e)
        finally:
            with signals_deferred() as late:
                if self.entry is not None and self.restore:
                    say(f"restoring {self.service.name} ({self.mode}) ...")
                    self.undo()
                if self.restore:
                    wait_stack_healthy(self.ctx.client, self.ctx.project, self.ctx.declared(), timeout=120)
                    self.restored = True
                elif self.entry is not None:
                    self.notes.append(f"--no-restore: {self.service.name} left under its `{self.mode}` fault; "
                                      "run `llmops chaos restore`")
            self.interrupted = self.interrupted or (late[0] if late else None)
        if self.interrupted:
            raise Aborted(f"interrupted by {self.interrupted}; {self.service.name} restored and the stack is healthy")
        return out
