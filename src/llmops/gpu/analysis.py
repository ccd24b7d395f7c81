"""Pure analysis of a GPU recording: per-service figures, verdict, calibration.

No I/O: everything here takes what `sampling.record` returned and what the servers should hold
(`expect.Expectation`), and returns a `CheckResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from ..rounding import rounded
from ..evidence import CheckResult, Criterion, JsonObject
from .attribution import Attribution
from .budget import TERMS, Budget
from .calibration import Calibration, OverheadSample, measure_calibration
from .expect import Expectation
from .llamalog import EngineReport
from .nvml import SeriesStats, pid_memory, series_stats
from .sampling import Recording
from .text import UNATTRIBUTED

CHECK = "gpu"
# The reference procedure's criterion: measured within 1 % of expected.  A real GPU that misses
# it needs its calibration measured (gpu-report records one), not a wider tolerance.
DEFAULT_TOLERANCE_PCT = 1.0


def error_pct(used_mib: float | None, expected_mib: float | None) -> float | None:
    """100 * (used - expected) / expected, or None when either side is unknown or expected is 0."""
    if used_mib is None or not expected_mib:
        return None
    return 100.0 * (used_mib - expected_mib) / expected_mib


# ----------------------------------------------------------------------------- per service

@dataclass(frozen=True)
class GroupMemory:
    """Some PIDs' memory summed over the window (`_Series.group`)."""

    mean: float | None
    peak: float | None
    p95: float | None = None
    n: int = 0


@dataclass
class ServiceEntry:
    """One service's three columns: plan (formula buffers), engine-reported, NVML.  Its fields are
    the evidence's `metrics.per_service[name]`, in that order (`measured_note` only once noted)."""

    expected_mib: float | None
    terms: dict[str, float | None] | None
    formula_buffers_mib: float | None
    engine_reported_mib: float | None
    engine_projected_mib: float | None
    engine_fit: str | None
    fit_changes: list[str]
    buffers_error_pct: float | None
    measured_mib: float | None
    measured_samples: int
    measured_peak_mib: float | None
    error_pct: float | None
    pids: list[int]
    measured_note: str | None = None    # why NVML's figure is missing or not judged
    # the evidence has the key once a note was given, even a None one (an attribution without a reason)
    _noted: bool = field(default=False, init=False, repr=False)

    def note(self, why: str | None) -> None:
        self.measured_note, self._noted = why, True

    def to_json(self) -> JsonObject:
        j = asdict(self)
        if not j.pop("_noted"):
            del j["measured_note"]
        return j


def service_entry(b: Budget | None, eng: EngineReport | None, measured: GroupMemory | None,
                  pids: list[int] | None) -> ServiceEntry:
    """One service's three columns: plan (formula buffers), engine-reported, NVML."""
    exp = b.total_mib if b else None
    m = measured or GroupMemory(None, None)
    reported = eng.reported_mib if eng else None   # fit is read from any log, buffers only at -lv 4
    return ServiceEntry(
        expected_mib=rounded(exp, 1),
        terms={t: rounded(getattr(b, t), 1) for t in TERMS} if b else None,
        formula_buffers_mib=rounded(b.buffers_mib, 1) if b else None,
        engine_reported_mib=rounded(reported, 2),
        engine_projected_mib=eng.projected_mib if eng else None,
        engine_fit=eng.fit if eng else None,
        fit_changes=eng.fit_changes if eng else [],
        buffers_error_pct=rounded(error_pct(b.buffers_mib if b else None, reported), 2),
        measured_mib=rounded(m.mean, 1),
        measured_samples=int(m.n or 0),
        measured_peak_mib=rounded(m.peak, 1),
        error_pct=rounded(error_pct(m.mean, exp), 2),
        pids=pids if pids is not None else [],
    )


def skipped_result(reason: str, expect: Expectation, *, tolerance_pct: float, started: str,
                   t0: float) -> CheckResult:
    """The result when nothing could be sampled (no GPU, no driver): the budgets alone."""
    budgets = expect.budgets
    per_service = {n: service_entry(b, expect.engines.get(n), None, None).to_json() for n, b in budgets.items()}
    return CheckResult(
        check=CHECK, skipped=reason, started_at=started, duration_s=time.monotonic() - t0,
        metrics={"total_mib": None, "used_mib": None,
                 "expected_mib": rounded(expect.expected_mib, 1),
                 "error_pct": None, "peak_used_mib": None, "per_service": per_service,
                 "headroom_mib": None, "tolerance_pct": tolerance_pct},
        details={"budgets": {n: b.to_json() for n, b in budgets.items()},
                 "engine_reported": {n: e.to_json() for n, e in expect.buffer_reports.items()},
                 "overhead_mib": expect.overhead_mib,
                 "budget_file": str(expect.budget_path) if expect.budget_path else None,
                 "notes": expect.notes, "calibration": None, "gpu_env": None},
    )


# ----------------------------------------------------------------------------- the recording

def _device_stats(rec: Recording, rel: Callable[[float], float]) -> tuple[SeriesStats, float | None, float | None,
                                                                         list[JsonObject]]:
    """The selected GPUs' used memory together, their total, the free memory at its peak, and
    each GPU's `details.devices` record."""
    ticks = rec.ticks
    used = series_stats([(rel(t), sum(s.used_mib for s in row)) for t, row in ticks])
    total_mib = sum(s.total_mib for s in ticks[-1][1]) if ticks else None
    free_at_peak = None
    if used.t_peak is not None:
        for t, row in ticks:
            if rel(t) == used.t_peak:
                free_at_peak = sum(s.free_mib for s in row)
                break
    per_device = []
    for i, dj in enumerate(rec.devices):
        pts = [(rel(t), row[i].used_mib) for t, row in ticks]
        ug = [(rel(t), row[i].util_gpu_pct) for t, row in ticks]
        last = ticks[-1][1][i] if ticks else None
        per_device.append({**dj.to_json(), "total_mib": rounded(last.total_mib, 1) if last else None,
                           "reserved_mib": rounded(last.reserved_mib, 1) if last else None,
                           "used": series_stats(pts).to_json(),
                           "util_gpu_pct": series_stats(ug).to_json(),
                           "processes_error": last.processes_error if last else None})
    return used, total_mib, free_at_peak, per_device


def _pid_series(rec: Recording, rel: Callable[[float], float]) -> tuple[dict[int, list[tuple[float, float | None]]],
                                                                       set[int]]:
    """Per PID series (a process may hold memory on several GPUs: sum; unknown stays unknown)."""
    pid_pts: dict[int, list[tuple[float, float | None]]] = {}
    for t, row in rec.ticks:
        for pid, v in pid_memory(row).items():
            pid_pts.setdefault(pid, []).append((rel(t), v))
    unknown = {pid for pid, pts in pid_pts.items() if any(v is None for _, v in pts)}
    return pid_pts, unknown


def _group(att: Attribution, pids: Iterable[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for pid in pids:
        info = att.pids.get(pid)
        svc = info.service if (att.mode == "host" and info and info.service) else UNATTRIBUTED
        groups.setdefault(svc, []).append(pid)
    return groups


class _Series:
    """The recording as series over time from its first sample: the selected GPUs together and
    one by one, each PID, and the PIDs of each service (as the attribution groups them)."""

    def __init__(self, rec: Recording, att: Attribution) -> None:
        self.rec, self.att = rec, att
        self.t_first = rec.ticks[0][0] if rec.ticks else 0.0
        self.used, self.total_mib, self.free_at_peak, self.per_device = _device_stats(rec, self.rel)
        self.pid_pts, self.pid_unknown = _pid_series(rec, self.rel)
        self.groups = _group(att, self.pid_pts)
        self.un_pids = sorted(self.groups.get(UNATTRIBUTED, []))
        self.un = self.group(self.un_pids) if self.un_pids else GroupMemory(0.0, 0.0)

    def rel(self, t: float) -> float:
        return t - self.t_first

    def group(self, pids: list[int]) -> GroupMemory | None:
        """The summed memory of these PIDs over time; None when NVML could not size one of them."""
        if any(p in self.pid_unknown for p in pids):
            return None
        pts = []
        for t, row in self.rec.ticks:
            present = [pr.used_mib for s in row for pr in s.processes if pr.pid in pids]
            pts.append((self.rel(t), float(sum(v for v in present if v is not None))))
        st = series_stats(pts)
        return GroupMemory(st.mean, st.peak, st.p95, st.n)

    @property
    def per_process_known(self) -> bool:
        return self.att.mode == "host" and any(pid not in self.pid_unknown for pid in self.pid_pts)

    @property
    def known_proc_mean(self) -> float | None:
        """The mean of every process's memory together, when NVML sized every one."""
        if self.pid_unknown or not self.rec.ticks:
            return None
        return series_stats([(self.rel(t), float(sum(p.used_mib or 0 for s in row for p in s.processes)))
                             for t, row in self.rec.ticks]).mean


def _per_service(ser: _Series, expect: Expectation) -> dict[str, ServiceEntry]:
    att = ser.att
    per_service: dict[str, ServiceEntry] = {}
    for name, b in expect.budgets.items():
        pids = sorted(ser.groups.get(name, []))
        measured = ser.group(pids) if att.mode == "host" else None
        e = per_service[name] = service_entry(b, expect.engines.get(name), measured, pids)
        if att.mode != "host":
            e.note(att.reason)
        elif measured is None:
            e.note("NVML did not report usedGpuMemory for its PIDs")
        elif not pids:
            e.note("no GPU process was attributed to this service")
    for name, pids in ser.groups.items():          # services on the GPU with no budget
        if name not in per_service and name != UNATTRIBUTED:
            per_service[name] = service_entry(None, expect.engines.get(name), ser.group(pids), sorted(pids))
            per_service[name].note("no budget for this service")
    return per_service


def _calibration(expect: Expectation, per_service: dict[str, ServiceEntry], name: str) -> Calibration | None:
    """NVML minus the engine's own buffers, per service that has both."""
    entries = {}
    for svc, e in per_service.items():
        eng, b = expect.engines.get(svc), expect.budgets.get(svc)
        if eng is None or eng.reported_mib is None or e.measured_note or e.measured_mib is None:
            continue
        src = (b.sources.get("cuda_context_mib", "") if b else "")
        cls = src[src.rfind("(") + 1:-1] if src.endswith(")") else None
        entries[svc] = OverheadSample(cls, e.measured_mib, eng.reported_mib)
    return measure_calibration(entries, name)


def fit_criterion(engines: dict[str, EngineReport]) -> Criterion | None:
    """Every server whose log says what fit did runs what its command line asks; None when no
    log says (then nothing was measured, and no line is shown).

    A log says when it has fit lines (`fit` other than "not run"), with or without buffer-size
    lines: the same fit-shrunk server must fail whether or not it ran at `-lv 4`."""
    told = {n: e for n, e in engines.items() if e.fit != "not run"}
    if not told:
        return None
    shrunk = {n: e for n, e in told.items() if e.fit == "changed"}
    what = "; ".join(f"{n}: n_ctx {e.n_ctx}, offloaded {e.offloaded[0] if e.offloaded else '?'}"
                     f"/{e.offloaded[1] if e.offloaded else '?'}" for n, e in shrunk.items())
    return Criterion.judge("servers run what their command lines ask (llama.cpp's fit changed nothing)",
                           f"0 of {len(told)} changed", len(shrunk), lambda k: k == 0, samples=len(told),
                           shown=f"{len(shrunk)} changed" + (f" ({what})" if what else ""))


def _criteria(budgets: dict[str, Budget], expected: float | None, used_mean: float | None,
              err: float | None, tolerance_pct: float, samples: int) -> list[Criterion]:
    dod: list[Criterion] = []
    missing = [n for n, b in budgets.items() if b.total_mib is None]
    if budgets:
        why = "; ".join(f"{n}: {', '.join(f'{t} unknown ({r})' for t, r in budgets[n].unknown.items()) or budgets[n].error or 'unknown'}"
                        for n in missing)
        dod.append(Criterion.judge("budget known for every service", f"all {len(budgets)}", len(missing),
                                   lambda k: k == 0, samples=len(budgets),
                                   shown=f"{len(budgets) - len(missing)} of {len(budgets)}"
                                   + (f" (missing: {why})" if missing else "")))
    dod.append(Criterion.judge("measured VRAM within tolerance of budget",
                               f"{expected:.0f} MiB ±{tolerance_pct:g}%" if expected is not None else
                               f"the budget ±{tolerance_pct:g}%", err, lambda e: abs(e) <= tolerance_pct,
                               samples=samples,
                               shown=f"{used_mean:.0f} MiB ({err:+.1f}%)" if used_mean is not None and err is not None
                               else None))
    return dod


def _service_line(name: str, b: Budget, e: ServiceEntry, tolerance_pct: float) -> Criterion:
    exp, mean, err = b.total_mib, e.measured_mib, e.error_pct
    return Criterion.judge(f"{name}: measured VRAM within tolerance of its budget",
                           f"{exp:.0f} MiB ±{tolerance_pct:g}%", err, lambda x: abs(x) <= tolerance_pct,
                           samples=int(e.measured_samples or 0),
                           shown=f"{mean:.0f} MiB ({err:+.1f}%)" if mean is not None and err is not None
                           else None)


def service_criteria(budgets: dict[str, Budget], per_service: dict[str, ServiceEntry], *,
                     per_process_known: bool, unknown_pids: set[int], unattributed_mib: float | None,
                     tolerance_pct: float) -> tuple[list[Criterion], list[str]]:
    """One line per service with a budget total, judged on its own NVML figure, and the notes
    for the services that get none.

    The device total alone lets +20 % on one server and -20 % on the other pass as +0 %, so each
    server is judged too.  Which services get a line:
    * no per-process memory at all (NVML gives no usedGpuMemory for any PID, or the PIDs cannot
      be attributed from here): no per-service line, one note; the device total still judges;
    * per-process memory known for other PIDs but not for this service's: its line fails as not
      measured.  It is the one server whose figure is missing, and passing it would hide exactly
      the imbalance this line is for;
    * no PID attributed to the service while some GPU memory is unattributed (or of unknown
      size): no line, a note.
      Its memory may be in the unattributed part (a host process, a container Docker did not
      name), which the device total covers; failing here would fail every budget for a process
      outside the stack (scripts/gpu-check's children);
    * no PID attributed and nothing unattributed: judged at 0 MiB, which fails: the budget says
      memory is held and NVML lists none for it."""
    if not per_process_known:
        named = [n for n, b in budgets.items() if b.total_mib is not None]
        return [], ([f"no per-service VRAM line for {', '.join(named)}: NVML gave no per-process "
                     "memory here, so only the device total is judged"] if named else [])
    dod: list[Criterion] = []
    notes: list[str] = []
    for name, b in budgets.items():
        e = per_service.get(name)
        if b.total_mib is None:
            continue                 # "budget known for every service" already fails for it
        pids = e.pids if e else []
        if not pids and unattributed_mib != 0:      # None: the unattributed memory is unknown
            held = "unknown" if unattributed_mib is None else f"{unattributed_mib:.0f} MiB"
            notes.append(f"{name}: no GPU process attributed to it; no per-service VRAM line (its "
                         f"memory may be among the unattributed, {held})")
            continue
        if any(p in unknown_pids for p in pids):
            notes.append(f"{name}: NVML gave no usedGpuMemory for its PIDs {pids}: its VRAM line "
                         "is not measured")
        dod.append(_service_line(name, b, e or service_entry(None, None, None, None), tolerance_pct))
    return dod, notes


def _outcome(rec: Recording, expect: Expectation) -> tuple[str | None, str | None]:
    """(error, skipped): what stops a verdict, if anything."""
    if rec.sample_error:
        return rec.sample_error, None
    if not rec.ticks:
        return "no sample was taken", None
    if expect.expected_mib is None and not expect.budgets:
        return None, "nothing to compare with: no service with a model file and no --budget file"
    return None, None


def _details(ser: _Series, expect: Expectation, cal: Calibration | None, notes: list[str]) -> JsonObject:
    rec, used, un = ser.rec, ser.used, ser.un
    sched = rec.schedule
    known_proc_mean = ser.known_proc_mean
    return {
        "memory_api": sorted({d.memory_api for d in rec.devices if d.memory_api}),
        "devices": ser.per_device, **rec.driver.to_json(),
        "used_definition": "mean over the window of NVML device 'used' (v2 excludes driver-"
                           "reserved memory; v1 includes it), summed over the selected GPUs",
        "sampling": {"duration_s": rec.duration_s, "interval_s": rec.interval_s,
                     "samples": sched.samples, "missed": sched.missed,
                     "max_lateness_ms": round(sched.max_lateness_s * 1000, 1),
                     "wall_s": round(rec.wall_s, 3), "cpu_s": round(rec.cpu_s, 4),
                     "cpu_pct_of_one_core": round(100 * rec.cpu_s / rec.wall_s, 3)
                     if rec.wall_s > 0 else None},
        "attribution": ser.att.to_json(),
        "processes": {str(pid): {"service": next((n for n, ps in ser.groups.items() if pid in ps),
                                                 UNATTRIBUTED),
                                 "used": series_stats(pts).to_json(),
                                 "used_unknown": pid in ser.pid_unknown}
                      for pid, pts in sorted(ser.pid_pts.items())},
        "unattributed": {"pids": ser.un_pids, "mean_mib": rounded(un.mean, 1) if un else None},
        "non_process_mib": rounded(used.mean - known_proc_mean, 1)
        if (used.mean is not None and known_proc_mean is not None) else None,
        "budgets": {n: b.to_json() for n, b in expect.budgets.items()},
        "engine_reported": {n: e.to_json() for n, e in expect.buffer_reports.items()},
        "calibration": cal.to_json() if cal else None,
        "overhead_mib": expect.overhead_mib,
        "budget_file": str(expect.budget_path) if expect.budget_path else None,
        "unsupported": rec.unsupported,
        "gpu_env": rec.gpu_env(),
        "notes": notes,
    }


def analyse(rec: Recording, att: Attribution, expect: Expectation, *, tolerance_pct: float,
            started: str, t0: float) -> CheckResult:
    """The 06_gpu_memory result from a recording and the attribution of its PIDs."""
    ser = _Series(rec, att)
    used, un = ser.used, ser.un
    per_service = _per_service(ser, expect)
    expected = expect.expected_mib
    err = error_pct(used.mean, expected)
    dod = _criteria(expect.budgets, expected, used.mean, err, tolerance_pct, len(rec.ticks))
    svc_dod, svc_notes = service_criteria(expect.budgets, per_service,
                                          per_process_known=ser.per_process_known,
                                          unknown_pids=ser.pid_unknown,
                                          unattributed_mib=un.mean if un else None,
                                          tolerance_pct=tolerance_pct)
    dod += svc_dod
    fit = fit_criterion(expect.engines)
    if fit is not None:
        dod.append(fit)
    error, skipped = _outcome(rec, expect)
    gpu_names = ", ".join(sorted({str(d.name) for d in rec.devices})) or "GPU"
    cal = _calibration(expect, per_service, f"{gpu_names} driver {rec.driver.driver_version or '?'}")
    metrics = {
        "total_mib": rounded(ser.total_mib, 1), "used_mib": rounded(used.mean, 1),
        "expected_mib": rounded(expected, 1), "error_pct": rounded(err, 2),
        "peak_used_mib": rounded(used.peak, 1), "per_service": {n: e.to_json() for n, e in per_service.items()},
        "p95_used_mib": rounded(used.p95, 1), "peak_t_s": rounded(used.t_peak, 3),
        "headroom_mib": rounded(ser.free_at_peak, 1), "unattributed_mib": rounded(un.mean, 1) if un else None,
        "tolerance_pct": tolerance_pct,
    }
    details = _details(ser, expect, cal, rec.notes + expect.notes + svc_notes)
    return CheckResult(check=CHECK, started_at=started, duration_s=time.monotonic() - t0, metrics=metrics,
                       dod=dod, details=details, error=error, skipped=skipped)
