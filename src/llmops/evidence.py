"""The run folder and its files: NN_check.txt/.json, events.ndjson, manifest.json.

Every timestamp inside a run is taken from one monotonic clock (`RunDir.now()`),
so that events written by different checks line up on one axis.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, EnvironmentProblem, ExitCode, aggregate_exit

# A parsed or to-be-written JSON object (an evidence file's content): its keys are the files'
# contract, documented in README's Evidence section.
JsonObject = dict[str, Any]

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


NOT_MEASURED = "not measured"


def is_measured(value: Any) -> bool:
    """A value a verdict may rest on: not missing, not None, not NaN."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return True


@dataclass(frozen=True)
class Criterion:
    """One Definition-of-Done line, with the evidence it rests on.

    `samples` is how many observations the measured value was made from and `need` the fewest
    this line may be judged on.  Build lines with `Criterion.judge`: it never evaluates the test on
    a missing value, and with too few samples or no value the line fails as "not measured".  A
    line constructed by hand (or read back from a file) that claims a pass without enough samples,
    or with a "not measured" value, is refused at construction: no line can pass on nothing."""

    criterion: str
    expected: str
    measured: str
    passed: bool
    samples: int
    need: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.samples, int) or isinstance(self.samples, bool) or self.samples < 0:
            raise ValueError(f"{self.criterion!r}: samples must be a count, not {self.samples!r}")
        if not isinstance(self.need, int) or isinstance(self.need, bool) or self.need < 1:
            raise ValueError(f"{self.criterion!r}: need must be at least 1, not {self.need!r}")
        if self.passed and (self.samples < self.need or self.measured.startswith(NOT_MEASURED)):
            raise ValueError(f"{self.criterion!r} claims a pass on {self.samples} of {self.need} "
                             f"samples, measured {self.measured!r}")

    @classmethod
    def judge(cls, criterion: str, expected: str, value: Any, test: Callable[[Any], bool] | bool, *,
              samples: int, need: int = 1, shown: str | None = None, unit: str = "") -> "Criterion":
        """The line for `value` under `test` (a predicate, only called on a measured value, or a
        bool already computed from it).  `shown` is the measured text; the default is the value
        with `unit`."""
        if samples < need:
            return cls(criterion, expected, f"{NOT_MEASURED} ({samples} of {need} samples)", False, samples, need)
        if not is_measured(value):
            return cls(criterion, expected, f"{NOT_MEASURED} (no value from {samples} samples)", False,
                       samples, need)
        ok = bool(test(value)) if callable(test) else bool(test)
        text = shown if shown is not None else f"{_show(value)}{unit}"
        return cls(criterion, expected, text, ok, samples, need)

    def to_json(self) -> JsonObject:
        return {"criterion": self.criterion, "expected": self.expected, "measured": self.measured,
                "pass": bool(self.passed), "samples": self.samples, "need": self.need}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# What each outcome exits with; `details.exit_code` and `restored` can only make it louder.
_STATUS_EXIT = {"pass": ExitCode.OK, "fail": ExitCode.CHECK_FAILED, "skipped": ExitCode.SKIPPED,
                "error": ExitCode.CHECK_FAILED}


@dataclass
class CheckResult:
    """One check's evidence.  Its status is derived, never set: `error` when the check could not
    run (`error` holds the one-line reason), `skipped` when it was skipped (`skipped` holds why),
    else `pass` when it has DoD lines and every one passed, else `fail` (no lines is a fail: a
    check that measured nothing proves nothing)."""

    check: str
    started_at: str
    duration_s: float
    metrics: JsonObject = field(default_factory=dict)
    dod: list[Criterion] = field(default_factory=list)
    details: JsonObject = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None

    @property
    def status(self) -> str:
        return derive_status(self.dod, self.error, self.skipped)

    def to_json(self) -> JsonObject:
        details = dict(self.details)
        if self.error or self.skipped:
            details["reason"] = self.error or self.skipped
        details["error"], details["skipped"] = self.error, self.skipped
        return {"check": self.check, "status": self.status, "started_at": self.started_at,
                "duration_s": round(self.duration_s, 3), "metrics": self.metrics,
                "dod": [c.to_json() for c in self.dod], "details": details}

    def exit_code(self) -> int:
        """The one exit-code rule for a check.

        The status's code, made louder (never quieter) by `details.exit_code` (an error's own
        code: 130 when interrupted, 4 when nothing was there to check) and by a fault left in place
        (`restored` false in the metrics or the details: 5)."""
        codes = [int(_STATUS_EXIT[self.status])]
        if "exit_code" in self.details:
            codes.append(int(self.details["exit_code"]))
        if self.restore_failed:
            codes.append(ExitCode.RESTORE_FAILED)
        return aggregate_exit(codes)

    @property
    def restore_failed(self) -> bool:
        """The check says it could not restore the stack.  Either place counts: a restore failure
        must never be masked by where it was written."""
        return self.metrics.get("restored") is False or self.details.get("restored") is False

    @classmethod
    def from_json(cls, d: Any, source: str = "check file") -> "CheckResult":
        """A check file read back (the report's input).  The file is the verdict, so it is read
        strictly: a field of the wrong type, a DoD line that claims a pass it cannot have, or a
        stored status that its own lines and reason do not give is a `MalformedEvidence` (exit 2)
        naming `source` and the field."""
        return _read_check(d, source)

    @classmethod
    def failed_to_run(cls, check: str, reason: str, exit_code: int, started_at: str, duration_s: float,
                      restored: bool | None = None) -> "CheckResult":
        """A check that could not run (or was cut short): its one-line reason and exit code."""
        metrics: JsonObject = {} if restored is None else {"restored": restored}
        return cls(check, started_at, duration_s, dict(metrics), [],
                   {"exit_code": int(exit_code), **metrics}, error=reason)


def derive_status(dod: list[Criterion], error: str | None, skipped: str | None) -> str:
    if error:
        return "error"
    if skipped:
        return "skipped"
    return "pass" if dod and all(c.passed for c in dod) else "fail"


class MalformedEvidence(ConfigError):  # noqa: N818 - reads as what it is, like httpx's errors
    """A check file that is not what llmops writes: exit 2, one line naming the file and field."""


def _read_check(d: Any, source: str) -> CheckResult:
    def bad(field_: str, want: str, got: Any) -> MalformedEvidence:
        return MalformedEvidence(f"{source}: {field_} must be {want}, not {json.dumps(got, default=str)[:60]}")

    if not isinstance(d, dict):
        raise bad("the file", "a JSON object", d)
    for key, typ, want in (("check", str, "a string"), ("status", str, "a string"),
                           ("started_at", str, "a string"), ("metrics", dict, "an object"),
                           ("dod", list, "a list"), ("details", dict, "an object")):
        if key not in d:
            raise MalformedEvidence(f"{source}: field {key} is missing")
        if not isinstance(d[key], typ):
            raise bad(key, want, d[key])
    if d["status"] not in STATUSES:
        raise bad("status", "one of " + ", ".join(STATUSES), d["status"])
    dur = d.get("duration_s")
    if isinstance(dur, bool) or not isinstance(dur, (int, float)) or not math.isfinite(dur):
        raise bad("duration_s", "a number of seconds", dur)
    metrics, details = d["metrics"], d["details"]
    for where, obj in (("metrics", metrics), ("details", details)):
        if "restored" in obj and obj["restored"] is not None and not isinstance(obj["restored"], bool):
            raise bad(f"{where}.restored", "true or false", obj["restored"])
    code = details.get("exit_code")
    if "exit_code" in details and (isinstance(code, bool) or not isinstance(code, int)):
        raise bad("details.exit_code", "an integer", code)
    for key in ("error", "skipped"):
        if details.get(key) is not None and not isinstance(details[key], str):
            raise bad(f"details.{key}", "a string or null", details[key])
    dod = []
    for i, c in enumerate(d["dod"]):
        where = f"dod[{i}]"
        if not isinstance(c, dict):
            raise bad(where, "an object", c)
        for key in ("criterion", "expected", "measured"):
            if not isinstance(c.get(key), str):
                raise bad(f"{where}.{key}", "a string", c.get(key))
        if not isinstance(c.get("pass"), bool):
            raise bad(f"{where}.pass", "true or false", c.get("pass"))
        for key in ("samples", "need"):
            if isinstance(c.get(key), bool) or not isinstance(c.get(key), int):
                raise bad(f"{where}.{key}", "a count", c.get(key))
        try:
            dod.append(Criterion(c["criterion"], c["expected"], c["measured"], c["pass"], c["samples"], c["need"]))
        except ValueError as e:
            raise MalformedEvidence(f"{source}: {where}: {e}") from None
    r = CheckResult(d["check"], d["started_at"], float(dur), dict(metrics), dod, dict(details),
                    error=details.get("error") or None, skipped=details.get("skipped") or None)
    if r.status != d["status"]:
        raise MalformedEvidence(f"{source}: stored status {d['status']!r} disagrees with its own DoD lines "
                                f"and reason, which give {r.status!r}")
    return r


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


def load_checks(run_path: Path) -> dict[str, JsonObject]:
    """The check JSON files present in a run folder, keyed by check id, in report order."""
    out: dict[str, JsonObject] = {}
    for check, stem in CHECK_FILES.items():
        p = Path(run_path) / f"{stem}.json"
        if p.exists():
            out[check] = json.loads(p.read_text())
    return out


def read_events(run_path: Path) -> list[JsonObject]:
    p = Path(run_path) / "events.ndjson"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
