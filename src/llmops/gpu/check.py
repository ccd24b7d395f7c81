"""The `06_gpu_memory` check: sample NVML, attribute memory to services, compare with the budget.

Entry point: `run_gpu_report(run, ...) -> (CheckResult, text)`.  It records a `gpu_sample`
event per device per sample but does not write 06_gpu_memory itself: the caller writes the
check's evidence once.  The work is split: `sampling.record` (NVML -> a recording),
`analysis.analyse` (recording -> result, pure) and `text.format_gpu_text` (result -> text).
The GPU environment for the manifest is `result.details["gpu_env"]`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ..rounding import rounded
from ..errors import UsageError
from ..evidence import CheckResult, RunDir, utc_now_iso
from .analysis import (  # noqa: F401 - public names of this module
    CHECK, DEFAULT_TOLERANCE_PCT, analyse, build_budgets, error_pct, skipped_result,
)
from .attribution import Attribution, Attributor, Resolver, docker_label_resolver
from .budget import load_budget_file
from .calibration import Calibration
from .nvml import DeviceSample, NvmlUnavailable
from .sampling import record
from .text import UNATTRIBUTED, format_gpu_text  # noqa: F401


def run_gpu_report(run: RunDir, *, duration_s: float, interval_s: float, device: int | None,
                   tolerance_pct: float = DEFAULT_TOLERANCE_PCT, budget_file: Path | None,
                   services: list[dict] | None, calibration: Calibration | None = None,
                   nvml: Any = None, resolver: Resolver | None = None,
                   attributor: Attributor | None = None,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[CheckResult, str]:
    """Sample GPU memory for `duration_s` every `interval_s`, attribute it, judge it.

    `services` items: {"service", "container_id", "argv", "model_path", "log_text"} (+ optional
    "env": the container's environment, for LLAMA_ARG_*; + optional "pid": a server that runs
    as a host process, attributed by that PID, see `hostproc`).  `nvml`, `resolver`, `attributor`,
    `clock`, `sleep` are injection points for tests.  Raises ConfigError for a malformed budget
    file and UsageError for bad arguments; a missing GPU/driver is a `skipped` result (exit 3).
    """
    if interval_s <= 0:
        raise UsageError(f"--interval must be > 0 seconds, got {interval_s}")
    if duration_s < 0:
        raise UsageError(f"--duration must be >= 0 seconds, got {duration_s}")
    if tolerance_pct < 0:
        raise UsageError(f"--tolerance must be >= 0 percent, got {tolerance_pct}")
    started, t0 = utc_now_iso(), time.monotonic()
    bf = load_budget_file(budget_file) if budget_file else None
    overhead = bf.overhead_mib if bf else 0.0
    budgets, engines, notes = build_budgets(services, bf, calibration)

    def on_sample(now: float, row: list[DeviceSample]) -> None:
        for s in row:
            run.event("gpu_sample", t=run.to_run_time(now), device=s.index,
                      used_mib=rounded(s.used_mib, 1), free_mib=rounded(s.free_mib, 1),
                      total_mib=rounded(s.total_mib, 1), reserved_mib=rounded(s.reserved_mib, 1),
                      util_gpu_pct=s.util_gpu_pct, util_mem_pct=s.util_mem_pct,
                      memory_api=s.memory_api,
                      processes=[{"pid": p.pid, "used_mib": rounded(p.used_mib, 1)} for p in s.processes])

    try:
        rec = record(duration_s=duration_s, interval_s=interval_s, device=device, nvml=nvml,
                     on_sample=on_sample, clock=clock, sleep=sleep)
    except NvmlUnavailable as exc:
        res = skipped_result(started, t0, str(exc), budgets, engines, overhead, notes,
                             tolerance_pct, budget_file)
        return res, format_gpu_text(res)
    notes = rec.notes + notes

    if attributor is None:
        known = {str(s["container_id"]): str(s["service"]) for s in services or []
                 if s.get("container_id") and s.get("service")}
        by_pid = {int(s["pid"]): str(s["service"]) for s in services or []
                  if s.get("pid") and s.get("service")}
        attributor = Attributor(known=known, pids=by_pid,
                                resolver=resolver if resolver is not None else docker_label_resolver())
    pids = rec.pids
    att = attributor.attribute(pids) if pids else Attribution(mode="host", reason=None)
    if any(d["mig_enabled"] for d in rec.devices):
        att.notes.append("MIG is enabled: per-process memory may be unavailable and device "
                         "memory covers the whole GPU")
    res = analyse(rec, att, started=started, t0=t0, budgets=budgets, engines=engines,
                  overhead=overhead, notes=notes, tolerance_pct=tolerance_pct,
                  budget_path=budget_file, duration_s=duration_s, interval_s=interval_s)
    return res, format_gpu_text(res)
