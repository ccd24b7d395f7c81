"""The check runner: owns the run folder, runs a command's checks, writes their evidence, and
decides the exit code.

This is the one module that creates a run folder, writes its `NN_*.txt/.json` files and its
`manifest.json` (each once).  A check is handed a :class:`Run` (the folder's events and clock,
the stack snapshot, and a plain-text `say` with a level); it measures and returns a
:class:`Checked` (its result, its text, and what it adds to the manifest).  The CLI only renders
what the runner hands its `show` callback.

Two modes:
- a single command (`contain=False`): an error propagates to the CLI as one line and its exit code,
  as it always has;
- `certify` (`contain=True`): SIGINT/SIGTERM stop the run (the fault frame of the phase in progress
  restores first; no later phase starts; exit 130), and any other exception becomes that check's
  `error` result with a one-line reason while the other phases still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ExitCode, Interrupted, LlmopsError, RestoreFailed, aggregate_exit, signals_raise
from .evidence import CheckResult, RunDir, utc_now_iso

if TYPE_CHECKING:
    from .context import Context
    from .stack import Stack

Show = Callable[[CheckResult, str, Path], None]

# A message's level: the CLI picks its colour; the core writes plain text only.
INFO, WARN, ERROR = "info", "warn", "error"


class Say(Protocol):
    def __call__(self, msg: str, level: str = INFO) -> None: ...


def quiet(msg: str, level: str = INFO) -> None:
    """A `say` that says nothing (tests, library callers)."""


class Run:
    """What a check gets from the runner: one run folder (created on first use, so that a single
    command refused before it measured anything leaves none), its event log and clock, the stack
    snapshot of the phase, and `say`."""

    def __init__(self, ctx: "Context", say: Say) -> None:
        self._ctx = ctx
        self.say = say
        self._dir: RunDir | None = None

    @property
    def dir(self) -> RunDir:
        if self._dir is None:
            self._dir = RunDir.create(self._ctx.evidence_dir)
        return self._dir

    @property
    def opened(self) -> bool:
        return self._dir is not None

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def stack(self) -> "Stack":
        """The phase's snapshot (the runner takes a new one at each phase)."""
        return self._ctx.stack()

    def event(self, kind: str, **fields: Any) -> None:
        self.dir.event(kind, **fields)

    def to_run_time(self, monotonic_t: float) -> float:
        return self.dir.to_run_time(monotonic_t)

    def now(self) -> float:
        return self.dir.now()

    def write_json(self, name: str, data: Any) -> Path:
        return self.dir.write_json(name, data)


@dataclass
class Checked:
    """A check's answer: its result, its text file's body, and its additions to manifest.json
    (the gpu check's GPU environment)."""

    result: CheckResult
    text: str
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """One evidence file's worth of work: `id` is its CHECK_FILES key."""

    id: str
    run: Callable[[Run], "Checked | tuple[CheckResult, str]"]


@dataclass
class Phase:
    """Checks that run together; an exception ends the phase, not the run."""

    name: str
    checks: list[Check]


@dataclass
class PhaseOutcome:
    """What certify's board and closing lines show of one phase."""

    phase: str
    code: int                 # the phase's checks' exit codes, folded
    seconds: float
    checks: list[str] = field(default_factory=list)   # the checks that ran (a phase ends at an error)
    error: str | None = None  # the one-line reason the phase could not go on


@dataclass
class RunOutcome:
    """A run's end: its exit code, its folder, and its phases."""

    code: int
    path: Path
    phases: list[PhaseOutcome]
    interrupted: bool         # SIGINT/SIGTERM stopped it: later phases did not start


def one_line(exc: BaseException) -> str:
    """An exception as the one line an evidence file and a terminal can hold."""
    if isinstance(exc, LlmopsError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class Runner:
    def __init__(self, ctx: "Context", *, show: Show | None = None, say: Say = quiet,
                 on_phase: Callable[[str, str], None] | None = None, contain: bool = False) -> None:
        self.ctx = ctx
        self.show = show
        self.say = say
        self.current = Run(ctx, say)
        self.manifest_additions: dict[str, Any] = {}
        self.on_phase = on_phase or (lambda _name, _state: None)
        self.contain = contain
        self.results: list[CheckResult] = []
        self.outcomes: list[PhaseOutcome] = []
        self.interrupted = False

    @property
    def path(self) -> Path:
        """The run folder (created now if no check has written yet)."""
        return self.current.path

    def run(self, phases: Iterable[Phase], skip: Iterable[str] = ()) -> RunOutcome:
        """Run the phases in order, then write the manifest; the run's exit code is every check's."""
        skip = set(skip)
        # Between faults too, a signal must end the run in order, not kill it mid-phase.
        with signals_raise() if self.contain else nullcontext():
            try:
                for ph in phases:
                    if ph.name in skip or self.interrupted:
                        self.on_phase(ph.name, "skipped")
                        continue
                    self.run_phase(ph)
            except Interrupted:   # between two phases
                self.interrupted = True
        return self.finish()

    def run_phase(self, ph: Phase) -> PhaseOutcome:
        self.on_phase(ph.name, "running")
        self.ctx.forget_stack()   # each phase looks at the stack as the last one left it
        t = time.perf_counter()
        results: list[CheckResult] = []
        error = None
        for check in ph.checks:
            r, error = self._one(check)
            results.append(r)
            if error is not None:
                break
        out = PhaseOutcome(ph.name, aggregate_exit([r.exit_code() for r in results]), time.perf_counter() - t,
                           [r.check for r in results], error)
        self.outcomes.append(out)
        self.on_phase(ph.name, f"exit {out.code}")
        return out

    def _one(self, check: Check) -> tuple[CheckResult, str | None]:
        t, at = time.perf_counter(), utc_now_iso()
        try:
            out = check.run(self.current)
            if not isinstance(out, Checked):
                out = Checked(*out)
            r, text, error = out.result, out.text, None
            self.manifest_additions.update(out.manifest)
        except (Interrupted, KeyboardInterrupt) as e:
            if not self.contain:
                raise
            self.interrupted = True
            error = f"interrupted by {e or 'SIGINT'}"
            r = CheckResult.failed_to_run(check.id, error, ExitCode.INTERRUPTED, at, time.perf_counter() - t)
        except LlmopsError as e:
            if not self.contain:
                raise
            self.interrupted = self.interrupted or int(e.exit_code) == ExitCode.INTERRUPTED
            error = one_line(e)
            r = CheckResult.failed_to_run(check.id, error, int(e.exit_code), at, time.perf_counter() - t,
                                  restored=False if isinstance(e, RestoreFailed) else None)
        except Exception as e:  # noqa: BLE001 - certify: one phase's surprise must not lose the others
            if not self.contain:
                raise
            error = one_line(e)
            r = CheckResult.failed_to_run(check.id, error, ExitCode.CHECK_FAILED, at, time.perf_counter() - t)
        if error is not None:
            self.say(f"{check.id}: {error}", ERROR)
            text = f"{check.id} could not run: {error}"
        self.record(r, text)
        return r, error

    def record(self, r: CheckResult, text: str) -> Path:
        path = self.current.dir.write_check(r, text)
        self.results.append(r)
        if self.show:
            self.show(r, text, path)
        return path

    def finish(self) -> RunOutcome:
        run = self.current.dir
        try:
            manifest = self.ctx.manifest(run.path, gpu_env=self.manifest_additions.get("gpu_env"))
        except Exception as e:  # noqa: BLE001 - the checks are written: a manifest crash must not cost the report
            from .manifest import failed_manifest

            manifest = failed_manifest(e, project=getattr(self.ctx, "project", None))
        run.write_json("manifest.json", manifest)
        return RunOutcome(self.code, run.path, self.outcomes, self.interrupted)

    @property
    def code(self) -> int:
        if not self.results:   # nothing was checked: never a pass
            return int(ExitCode.INTERRUPTED if self.interrupted else ExitCode.USAGE)
        return aggregate_exit([r.exit_code() for r in self.results])


def run_checks(ctx: "Context", phases: list[Phase], *, show: Show | None = None,
               say: Say = quiet) -> RunOutcome:
    """A single command's run: its checks' evidence, the manifest, one exit code."""
    return Runner(ctx, show=show, say=say).run(phases)


__all__ = ["Check", "Checked", "Run", "Say", "INFO", "WARN", "ERROR", "quiet", "Phase", "PhaseOutcome", "RunOutcome", "Runner", "run_checks", "one_line"]
