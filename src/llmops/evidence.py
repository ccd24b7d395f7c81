"""The run folder and its files: NN_check.txt/.json, events.ndjson, manifest.json.

Every timestamp inside a run is taken from one monotonic clock (`RunDir.now()`),
so that events written by different checks line up on one axis.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EnvironmentProblem, ExitCode, aggregate_exit

# The reference procedure's file names, by check id.  Order matters: it is the report's order.
CHECK_FILES: dict[str, str] = {
    "status": "01_services_status",
    "functional": "02_functional_check",
    "health": "03_health_check",
    "failover": "04_failover_test",
    "qdrant": "05_qdrant_retry_test",
    "gpu": "06_gpu_memory",
}

STATUSES = ("pass", "fail", "skipped", "error")


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Criterion:
    """One Definition-of-Done line: what was expected, what was measured, and whether it held."""

    criterion: str
    expected: str
    measured: str
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "expected": self.expected,
                "measured": self.measured, "pass": bool(self.passed)}


@dataclass
class CheckResult:
    check: str
    status: str
    started_at: str
    duration_s: float
    metrics: dict[str, Any] = field(default_factory=dict)
    dod: list[Criterion] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    @staticmethod
    def status_from(dod: list[Criterion]) -> str:
        return "pass" if dod and all(c.passed for c in dod) else "fail"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "started_at": self.started_at,
                "duration_s": round(self.duration_s, 3), "metrics": self.metrics,
                "dod": [c.to_json() for c in self.dod], "details": self.details}

    def exit_code(self) -> int:
        """The one exit-code rule for a check.

        `details.exit_code` (an error's own code, 130 when interrupted, 4 when nothing was there to
        check) overrides the status's code; a fault left in place (`metrics.restored` is False)
        makes it 5 (also when only `details.restored` says so), unless the run was interrupted."""
        code = int(self.details.get("exit_code", _STATUS_EXIT[self.status]))
        # Either place counts: a restore failure must never be masked by where it was written.
        if self.metrics.get("restored") is False or self.details.get("restored") is False:
            code = aggregate_exit([code, ExitCode.RESTORE_FAILED])
        return int(code)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CheckResult":
        """A check file read back (the report's input), tolerant of a hand-edited or older file:
        an unknown status reads as `error`, missing parts as empty."""
        status = d.get("status") if d.get("status") in STATUSES else "error"
        details = d.get("details") if isinstance(d.get("details"), dict) else {}
        metrics = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
        dod = [Criterion(str(c.get("criterion", "")), str(c.get("expected", "")), str(c.get("measured", "")),
                         bool(c.get("pass"))) for c in d.get("dod") or [] if isinstance(c, dict)]
        return cls(str(d.get("check", "")), status, str(d.get("started_at", "")),
                   float(d.get("duration_s") or 0.0), dict(metrics), dod, dict(details))

    @classmethod
    def error(cls, check: str, reason: str, exit_code: int, started_at: str, duration_s: float,
              restored: bool | None = None) -> "CheckResult":
        """A check that could not run (or was cut short): its one-line reason and exit code."""
        metrics: dict[str, Any] = {} if restored is None else {"restored": restored}
        return cls(check, "error", started_at, duration_s, dict(metrics), [],
                   {"reason": reason, "exit_code": int(exit_code), **metrics})


_STATUS_EXIT = {"pass": ExitCode.OK, "fail": ExitCode.CHECK_FAILED, "skipped": ExitCode.SKIPPED,
                "error": ExitCode.CHECK_FAILED}


def dod_lines(result: CheckResult) -> str:
    """The DoD lines as the reference procedure printed them, for the .txt files."""
    out = ["Definition of Done:"]
    for c in result.dod:
        mark = "PASS" if c.passed else "FAIL"
        out.append(f"  [{mark}] {c.criterion}: expected {c.expected}, measured {c.measured}")
    out.append(f"Result: {result.status.upper()}")
    return "\n".join(out)


class RunDir:
    """One run's folder.  Thread-safe for events, which the load generator writes concurrently."""

    def __init__(self, path: Path, t0: float | None = None) -> None:
        self.path = path
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._events = (self.path / "events.ndjson").open("a", encoding="utf-8")
        except OSError as e:   # a file in the way, no permission, a read-only or full disk
            raise EnvironmentProblem(f"cannot write the run folder {self.path}: {e.strerror or e}; "
                                     "choose another --evidence-dir") from None
        self._t0 = time.monotonic() if t0 is None else t0
        self._lock = threading.Lock()

    @classmethod
    def create(cls, evidence_dir: Path, run_id: str | None = None) -> "RunDir":
        run_id = run_id or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(evidence_dir)
        path = base / run_id
        n = 1
        while path.exists():
            n += 1
            path = base / f"{run_id}-{n}"
        run = cls(path)
        run.point_latest()
        return run

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        return cls(Path(path))

    def point_latest(self) -> None:
        latest = self.path.parent / "latest"
        tmp = self.path.parent / f".latest-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(self.path.name)
        os.replace(tmp, latest)

    def now(self) -> float:
        """Seconds since the run started, on the monotonic clock."""
        return time.monotonic() - self._t0

    def to_run_time(self, monotonic_t: float) -> float:
        return monotonic_t - self._t0

    def event(self, kind: str, **fields: Any) -> None:
        rec = {"t": round(fields.pop("t", self.now()), 4), "kind": kind, **fields}
        line = json.dumps(rec, default=str)
        with self._lock:
            self._events.write(line + "\n")
            self._events.flush()

    def write_check(self, result: CheckResult, text: str) -> Path:
        stem = CHECK_FILES[result.check]
        (self.path / f"{stem}.json").write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        body = text.rstrip() + "\n\n" + dod_lines(result) + "\n"
        (self.path / f"{stem}.txt").write_text(body)
        return self.path / f"{stem}.json"

    def write_json(self, name: str, data: Any) -> Path:
        p = self.path / name
        p.write_text(json.dumps(data, indent=2, default=str) + "\n")
        return p

    def close(self) -> None:
        with self._lock:
            self._events.close()


def load_checks(run_path: Path) -> dict[str, dict[str, Any]]:
    """The check JSON files present in a run folder, keyed by check id, in report order."""
    out: dict[str, dict[str, Any]] = {}
    for check, stem in CHECK_FILES.items():
        p = Path(run_path) / f"{stem}.json"
        if p.exists():
            out[check] = json.loads(p.read_text())
    return out


def read_events(run_path: Path) -> list[dict[str, Any]]:
    p = Path(run_path) / "events.ndjson"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
