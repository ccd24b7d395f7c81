"""Pure analysis of a GPU recording: budgets, per-service figures, verdict, calibration.

No I/O: everything here takes what `sampling.record` returned and what the caller found about
the services, and returns a `CheckResult`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..rounding import rounded
from ..errors import ConfigError
from ..evidence import CheckResult, Criterion
from .attribution import Attribution
from .budget import TERMS, Budget, BudgetFile, apply_overrides, budget_for_llama
from .calibration import Calibration, measure_calibration
from .llamalog import EngineReport, parse_llama_log
from .nvml import series_stats
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


# ----------------------------------------------------------------------------- budgets

def build_budgets(services: list[dict] | None, budget_file: BudgetFile | None,
                  calibration: Calibration | None = None
                  ) -> tuple[dict[str, Budget], dict[str, EngineReport], list[str]]:
    """Formula budgets for the services that name a model and a command line, overridden by the
    budget file; services only the budget file names are included with the terms it gives.

    The engine reports are every server log parsed, with or without buffer-size lines: what fit
    did is in the log at any log level, so its DoD line must not depend on `-lv 4`.  Whoever
    reads buffers checks `EngineReport.empty` (see `buffer_reports`)."""
    notes: list[str] = []
    budgets: dict[str, Budget] = {}
    engines: dict[str, EngineReport] = {}
    ctx_file = budget_file.cuda_context_mib if budget_file else None
    for s in services or []:
        name = str(s.get("service") or "?")
        model, argv = s.get("model_path"), s.get("argv")
        if model is None and not argv:
            # not a llama-server (rag, qdrant, ...): budgeted only if the budget file names it;
            # its GPU memory, if any, is still attributed and shown as "no budget"
            continue
        rep = parse_llama_log(s["log_text"]) if s.get("log_text") else None
        # When fit shrank the server, budget what runs (the log's context and layers): the
        # server's memory is then judged against the right plan, and the shrinking itself is
        # its own DoD line (`fit_criterion`) instead of a budget error of several percent.
        ran_ctx, ran_ngl = (rep.n_ctx, rep.offloaded[0] if rep.offloaded else None) \
            if rep is not None and rep.fit == "changed" else (None, None)
        if model is not None:
            try:
                b = budget_for_llama(Path(model), argv, service=name, env=s.get("env"),
                                     cuda_context_mib=ctx_file, calibration=calibration,
                                     n_ctx=ran_ctx, n_gpu_layers=ran_ngl)
            except ConfigError as exc:
                b = Budget(service=name, error=str(exc))
        else:
            b = Budget(service=name, error="no host path of its model file is known")
        if ran_ctx is not None or ran_ngl is not None:
            b.assumptions.append(f"planned with what llama.cpp's fit left (its log): n_ctx {ran_ctx}, "
                                 f"{ran_ngl} layers on the GPU")
        if ctx_file is not None and b.error is None:
            b.sources["cuda_context_mib"] = "budget-file"
        budgets[name] = b
        if rep is not None:
            engines[name] = rep
            if rep.empty:
                notes.append(f"{name}: no buffer-size lines in the server log (current llama.cpp "
                             "prints them only at -lv 4; the gpu profile passes it)")
            if rep.fit == "changed":
                notes.append(f"{name}: llama.cpp's fit changed the command line: "
                             + "; ".join(rep.fit_changes))
            elif rep.fit_changes:
                notes.append(f"{name}: llama.cpp's fit could not keep its margin and kept the command "
                             "line: " + "; ".join(rep.fit_changes))
    if budget_file:
        for name, terms in budget_file.services.items():
            b = budgets.get(name)
            if b is None:
                b = Budget(service=name)
                for t in TERMS:                      # a file-only service: unspecified terms are 0
                    setattr(b, t, 0.0)
                    b.sources[t] = "budget-file (unset: 0)"
                budgets[name] = b
            apply_overrides(b, terms)
            if b.error and b.total_mib is not None:
                b.assumptions.append(f"formula unavailable ({b.error}); budget file supplies all terms")
                b.error = None
    return budgets, engines, notes


def buffer_reports(engines: dict[str, EngineReport]) -> dict[str, EngineReport]:
    """The reports that have buffer-size lines: the engine column and the calibration."""
    return {n: e for n, e in engines.items() if not e.empty}


def expected_total(budgets: dict[str, Budget], overhead: float) -> float | None:
    totals = [b.total_mib for b in budgets.values()]
    if any(t is None for t in totals) or (not budgets and not overhead):
        return None
    return float(sum(totals)) + overhead  # type: ignore[arg-type]


def service_entry(b: Budget | None, eng: EngineReport | None, measured: dict | None,
                  pids: list[int] | None) -> dict[str, Any]:
    """One service's three columns: plan (formula buffers), engine-reported, NVML."""
    exp = b.total_mib if b else None
    m = measured or {}
    fit = eng                                  # fit is read from any log, buffers only at -lv 4
    eng = eng if eng is not None and not eng.empty else None
    return {
        "expected_mib": rounded(exp, 1),
        "terms": {t: rounded(getattr(b, t), 1) for t in TERMS} if b else None,
        "formula_buffers_mib": rounded(b.buffers_mib, 1) if b else None,
        "engine_reported_mib": rounded(eng.gpu_total_mib, 2) if eng else None,
        "engine_projected_mib": fit.projected_mib if fit else None,
        "engine_fit": fit.fit if fit else None,
        "fit_changes": fit.fit_changes if fit else [],
        "buffers_error_pct": rounded(error_pct(b.buffers_mib if b else None,
                                          eng.gpu_total_mib if eng else None), 2),
        "measured_mib": rounded(m.get("mean"), 1),
        "measured_samples": int(m.get("n") or 0),
        "measured_peak_mib": rounded(m.get("peak"), 1),
        "error_pct": rounded(error_pct(m.get("mean"), exp), 2),
        "pids": pids if pids is not None else [],
    }


def skipped_result(started: str, t0: float, reason: str, budgets: dict[str, Budget],
                   engines: dict[str, EngineReport], overhead: float, notes: list[str],
                   tolerance_pct: float, budget_path: Path | None) -> CheckResult:
    per_service = {n: service_entry(b, engines.get(n), None, None) for n, b in budgets.items()}
    return CheckResult(
        check=CHECK, skipped=reason, started_at=started, duration_s=time.monotonic() - t0,
        metrics={"total_mib": None, "used_mib": None,
                 "expected_mib": rounded(expected_total(budgets, overhead), 1),
                 "error_pct": None, "peak_used_mib": None, "per_service": per_service,
                 "headroom_mib": None, "tolerance_pct": tolerance_pct},
        details={"budgets": {n: b.to_json() for n, b in budgets.items()},
                 "engine_reported": {n: e.to_json() for n, e in buffer_reports(engines).items()},
                 "overhead_mib": overhead, "budget_file": str(budget_path) if budget_path else None,
                 "notes": notes, "calibration": None, "gpu_env": None},
    )


# ----------------------------------------------------------------------------- the recording

def _device_stats(rec: Recording, rel: Any) -> tuple[Any, float | None, float | None, list[dict]]:
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
        per_device.append({**dj, "total_mib": rounded(last.total_mib, 1) if last else None,
                           "reserved_mib": rounded(last.reserved_mib, 1) if last else None,
                           "used": series_stats(pts).to_json(),
                           "util_gpu_pct": series_stats(ug).to_json(),
                           "processes_error": last.processes_error if last else None})
    return used, total_mib, free_at_peak, per_device


def _pid_series(rec: Recording, rel: Any) -> tuple[dict[int, list], set[int]]:
    """Per PID series (a process may hold memory on several GPUs: sum; unknown stays unknown)."""
    pid_pts: dict[int, list[tuple[float, float | None]]] = {}
    for t, row in rec.ticks:
        seen: dict[int, float | None] = {}
        for s in row:
            for p in s.processes:
                if p.pid not in seen:
                    seen[p.pid] = p.used_mib
                elif seen[p.pid] is not None and p.used_mib is not None:
                    seen[p.pid] = seen[p.pid] + p.used_mib  # type: ignore[operator]
                else:
                    seen[p.pid] = None
        for pid, v in seen.items():
            pid_pts.setdefault(pid, []).append((rel(t), v))
    unknown = {pid for pid, pts in pid_pts.items() if any(v is None for _, v in pts)}
    return pid_pts, unknown


def _group(att: Attribution, pids: Any) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for pid in pids:
        info = att.pids.get(pid)
        svc = info.service if (att.mode == "host" and info and info.service) else UNATTRIBUTED
        groups.setdefault(svc, []).append(pid)
    return groups


def _group_series(rec: Recording, rel: Any, pids: list[int], unknown: set[int]
                  ) -> dict[str, float | None] | None:
    if any(p in unknown for p in pids):
        return None
    pts = []
    for t, row in rec.ticks:
        present = [pr.used_mib for s in row for pr in s.processes if pr.pid in pids]
        pts.append((rel(t), float(sum(v for v in present if v is not None))))
    st = series_stats(pts)
    return {"mean": st.mean, "peak": st.peak, "p95": st.p95, "n": st.n}


def _per_service(rec: Recording, rel: Any, att: Attribution, budgets: dict[str, Budget],
                 engines: dict[str, EngineReport], groups: dict[str, list[int]],
                 unknown: set[int]) -> dict[str, Any]:
    per_service: dict[str, Any] = {}
    for name, b in budgets.items():
        pids = sorted(groups.get(name, []))
        measured = _group_series(rec, rel, pids, unknown) if att.mode == "host" else None
        e = per_service[name] = service_entry(b, engines.get(name), measured, pids)
        if att.mode != "host":
            e["measured_note"] = att.reason
        elif measured is None:
            e["measured_note"] = "NVML did not report usedGpuMemory for its PIDs"
        elif not pids:
            e["measured_note"] = "no GPU process was attributed to this service"
    for name, pids in groups.items():          # services on the GPU with no budget
        if name not in per_service and name != UNATTRIBUTED:
            m = _group_series(rec, rel, pids, unknown)
            per_service[name] = service_entry(None, engines.get(name), m, sorted(pids))
            per_service[name]["measured_note"] = "no budget for this service"
    return per_service


def _calibration(budgets: dict[str, Budget], engines: dict[str, EngineReport],
                 per_service: dict[str, Any], name: str) -> Calibration | None:
    """NVML minus the engine's own buffers, per service that has both."""
    entries = {}
    for svc, e in per_service.items():
        eng, b = engines.get(svc), budgets.get(svc)
        if eng is None or eng.empty or e.get("measured_note") or e.get("measured_mib") is None:
            continue
        src = (b.sources.get("cuda_context_mib", "") if b else "")
        cls = src[src.rfind("(") + 1:-1] if src.endswith(")") else None
        entries[svc] = {"class": cls, "nvml_mib": e["measured_mib"], "engine_mib": eng.gpu_total_mib}
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


def _service_line(name: str, b: Budget, e: dict[str, Any], tolerance_pct: float) -> Criterion:
    exp, mean, err = b.total_mib, e.get("measured_mib"), e.get("error_pct")
    return Criterion.judge(f"{name}: measured VRAM within tolerance of its budget",
                           f"{exp:.0f} MiB ±{tolerance_pct:g}%", err, lambda x: abs(x) <= tolerance_pct,
                           samples=int(e.get("measured_samples") or 0),
                           shown=f"{mean:.0f} MiB ({err:+.1f}%)" if mean is not None and err is not None
                           else None)


def service_criteria(budgets: dict[str, Budget], per_service: dict[str, Any], *,
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
        e = per_service.get(name) or {}
        if b.total_mib is None:
            continue                 # "budget known for every service" already fails for it
        pids = e.get("pids") or []
        if not pids and unattributed_mib != 0:      # None: the unattributed memory is unknown
            held = "unknown" if unattributed_mib is None else f"{unattributed_mib:.0f} MiB"
            notes.append(f"{name}: no GPU process attributed to it; no per-service VRAM line (its "
                         f"memory may be among the unattributed, {held})")
            continue
        if any(p in unknown_pids for p in pids):
            notes.append(f"{name}: NVML gave no usedGpuMemory for its PIDs {pids}: its VRAM line "
                         "is not measured")
        dod.append(_service_line(name, b, e, tolerance_pct))
    return dod, notes


def analyse(rec: Recording, att: Attribution, *, started: str, t0: float,
            budgets: dict[str, Budget], engines: dict[str, EngineReport], overhead: float,
            notes: list[str], tolerance_pct: float, budget_path: Path | None,
            duration_s: float, interval_s: float) -> CheckResult:
    """The 06_gpu_memory result from a recording and the attribution of its PIDs."""
    t_first = rec.ticks[0][0] if rec.ticks else 0.0

    def rel(t: float) -> float:
        return t - t_first

    used, total_mib, free_at_peak, per_device = _device_stats(rec, rel)
    pid_pts, pid_unknown = _pid_series(rec, rel)
    groups = _group(att, pid_pts)
    per_service = _per_service(rec, rel, att, budgets, engines, groups, pid_unknown)
    un_pids = sorted(groups.get(UNATTRIBUTED, []))
    un = _group_series(rec, rel, un_pids, pid_unknown) if un_pids else {"mean": 0.0, "peak": 0.0}
    known_proc_mean = None
    if not pid_unknown and rec.ticks:
        known_proc_mean = series_stats([(rel(t), float(sum(p.used_mib or 0 for s in row
                                                           for p in s.processes)))
                                        for t, row in rec.ticks]).mean
    expected = expected_total(budgets, overhead)
    err = error_pct(used.mean, expected)
    dod = _criteria(budgets, expected, used.mean, err, tolerance_pct, len(rec.ticks))
    known = att.mode == "host" and any(pid not in pid_unknown for pid in pid_pts)
    svc_dod, svc_notes = service_criteria(budgets, per_service, per_process_known=known,
                                          unknown_pids=pid_unknown,
                                          unattributed_mib=un["mean"] if un else None,
                                          tolerance_pct=tolerance_pct)
    dod += svc_dod
    notes = notes + svc_notes
    fit = fit_criterion(engines)
    if fit is not None:
        dod.append(fit)

    error = skipped = None
    if rec.sample_error:
        error = rec.sample_error
    elif not rec.ticks:
        error = "no sample was taken"
    elif expected is None and not budgets:
        skipped = "nothing to compare with: no service with a model file and no --budget file"
    gpu_names = ", ".join(sorted({str(d["name"]) for d in rec.devices})) or "GPU"
    cal = _calibration(budgets, engines, per_service,
                       f"{gpu_names} driver {rec.driver.get('driver_version') or '?'}")
    sched = rec.schedule
    metrics = {
        "total_mib": rounded(total_mib, 1), "used_mib": rounded(used.mean, 1), "expected_mib": rounded(expected, 1),
        "error_pct": rounded(err, 2), "peak_used_mib": rounded(used.peak, 1), "per_service": per_service,
        "p95_used_mib": rounded(used.p95, 1), "peak_t_s": rounded(used.t_peak, 3),
        "headroom_mib": rounded(free_at_peak, 1), "unattributed_mib": rounded(un["mean"], 1) if un else None,
        "tolerance_pct": tolerance_pct,
    }
    details = {
        "memory_api": sorted({d["memory_api"] for d in rec.devices if d["memory_api"]}),
        "devices": per_device, **rec.driver,
        "used_definition": "mean over the window of NVML device 'used' (v2 excludes driver-"
                           "reserved memory; v1 includes it), summed over the selected GPUs",
        "sampling": {"duration_s": duration_s, "interval_s": interval_s,
                     "samples": sched.samples, "missed": sched.missed,
                     "max_lateness_ms": round(sched.max_lateness_s * 1000, 1),
                     "wall_s": round(rec.wall_s, 3), "cpu_s": round(rec.cpu_s, 4),
                     "cpu_pct_of_one_core": round(100 * rec.cpu_s / rec.wall_s, 3)
                     if rec.wall_s > 0 else None},
        "attribution": att.to_json(),
        "processes": {str(pid): {"service": next((n for n, ps in groups.items() if pid in ps),
                                                 UNATTRIBUTED),
                                 "used": series_stats(pts).to_json(),
                                 "used_unknown": pid in pid_unknown}
                      for pid, pts in sorted(pid_pts.items())},
        "unattributed": {"pids": un_pids, "mean_mib": rounded(un["mean"], 1) if un else None},
        "non_process_mib": rounded(used.mean - known_proc_mean, 1)
        if (used.mean is not None and known_proc_mean is not None) else None,
        "budgets": {n: b.to_json() for n, b in budgets.items()},
        "engine_reported": {n: e.to_json() for n, e in buffer_reports(engines).items()},
        "calibration": cal.to_json() if cal else None,
        "overhead_mib": overhead,
        "budget_file": str(budget_path) if budget_path else None,
        "unsupported": rec.unsupported,
        "gpu_env": rec.gpu_env(),
        "notes": notes,
    }
    return CheckResult(check=CHECK, started_at=started, duration_s=time.monotonic() - t0, metrics=metrics,
                       dod=dod, details=details, error=error, skipped=skipped)
