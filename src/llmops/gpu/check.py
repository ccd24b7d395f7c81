"""The `06_gpu_memory` check: sample NVML, attribute memory to services, compare with the budget.

Entry point: `run_gpu_report(run, servers, GpuReportOptions(...)) -> (CheckResult, text)`.  It
records a `gpu_sample` event per device per sample but does not write 06_gpu_memory itself: the
caller writes the check's evidence once.  The work is split: `expect.expectation` (servers ->
budgets), `sampling.record` (NVML -> a recording), `analysis.analyse` (recording -> result,
pure) and `text.format_gpu_text` (result -> text).  The GPU environment for the manifest is
`result.details["gpu_env"]`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ..rounding import rounded
from ..errors import UsageError
from ..evidence import CheckResult, utc_now_iso
from .analysis import CHECK, DEFAULT_TOLERANCE_PCT, analyse, error_pct, skipped_result
from .attribution import Attribution, Attributor, Resolver, docker_label_resolver
from .calibration import Calibration
from .expect import build_budgets, expectation
from .nvml import DeviceSample, NvmlUnavailable
from .sampling import record
from .server import ModelServer
from .text import UNATTRIBUTED, format_gpu_text


class EventSink(Protocol):
    """Where the samples go as they are taken: a runner's `Run` or an `evidence.RunDir`."""

    def event(self, kind: str, **fields: Any) -> None: ...

    def to_run_time(self, monotonic_t: float) -> float: ...


@dataclass
class GpuReportOptions:
    """What `gpu-report` (and certify's gpu phase) is asked: the sampling window, which GPU,
    the tolerance, and what the budget is made from besides the servers themselves."""

    duration_s: float = 5.0                  # certify's gpu phase: 5 s at 10 Hz
    interval_s: float = 0.1
    device: int | None = None                # None: every GPU, summed
    tolerance_pct: float = DEFAULT_TOLERANCE_PCT
    budget_file: Path | None = None
    calibration: Calibration | None = None   # None: the default calibration

    def validate(self) -> None:
        """UsageError (exit 2) for a window, interval or tolerance that means nothing."""
        if self.interval_s <= 0:
            raise UsageError(f"--interval must be > 0 seconds, got {self.interval_s}")
        if self.duration_s < 0:
            raise UsageError(f"--duration must be >= 0 seconds, got {self.duration_s}")
        if self.tolerance_pct < 0:
            raise UsageError(f"--tolerance must be >= 0 percent, got {self.tolerance_pct}")


def server_attributor(servers: list[ModelServer], resolver: Resolver) -> Attributor:
    """PIDs to services through the servers' own containers and host PIDs, then `resolver`."""
    return Attributor(known={s.container_id: s.name for s in servers if s.container_id},
                      pids={s.pid: s.name for s in servers if s.pid}, resolver=resolver)


def _sample_event(run: EventSink, now: float, row: list[DeviceSample]) -> None:
    for s in row:
        run.event("gpu_sample", t=run.to_run_time(now), device=s.index,
                  used_mib=rounded(s.used_mib, 1), free_mib=rounded(s.free_mib, 1),
                  total_mib=rounded(s.total_mib, 1), reserved_mib=rounded(s.reserved_mib, 1),
                  util_gpu_pct=s.util_gpu_pct, util_mem_pct=s.util_mem_pct,
                  memory_api=s.memory_api,
                  processes=[{"pid": p.pid, "used_mib": rounded(p.used_mib, 1)} for p in s.processes])


def run_gpu_report(run: EventSink, servers: list[ModelServer] | None, options: GpuReportOptions, *,
                   nvml: Any = None, resolver: Resolver | None = None,
                   attributor: Attributor | None = None,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[CheckResult, str]:
    """Sample GPU memory for `options.duration_s` every `options.interval_s`, attribute it to
    `servers` (by container, or by PID for a server that runs as a host process), judge it.

    `nvml`, `resolver`, `attributor`, `clock`, `sleep` are injection points for tests.  Raises
    ConfigError for a malformed budget file and UsageError for bad options; a missing GPU/driver
    is a `skipped` result (exit 3)."""
    options.validate()
    started, t0 = utc_now_iso(), time.monotonic()
    expect = expectation(servers, options.budget_file, options.calibration)
    try:
        rec = record(duration_s=options.duration_s, interval_s=options.interval_s,
                     device=options.device, nvml=nvml,
                     on_sample=lambda now, row: _sample_event(run, now, row), clock=clock, sleep=sleep)
    except NvmlUnavailable as exc:
        res = skipped_result(str(exc), expect, tolerance_pct=options.tolerance_pct, started=started, t0=t0)
        return res, format_gpu_text(res)
    if attributor is None:
        attributor = server_attributor(servers or [], resolver if resolver is not None else docker_label_resolver())
    att = attributor.attribute(rec.pids) if rec.pids else Attribution(mode="host", reason=None)
    if any(d.mig_enabled for d in rec.devices):
        att.notes.append("MIG is enabled: per-process memory may be unavailable and device "
                         "memory covers the whole GPU")
    res = analyse(rec, att, expect, tolerance_pct=options.tolerance_pct, started=started, t0=t0)
    return res, format_gpu_text(res)


__all__ = ["CHECK", "DEFAULT_TOLERANCE_PCT", "UNATTRIBUTED", "EventSink", "GpuReportOptions", "build_budgets",
           "error_pct", "format_gpu_text", "run_gpu_report", "server_attributor", "skipped_result"]
