"""The `06_gpu_memory` check: sample NVML, attribute memory to services, compare with the budget.

Entry point: `run_gpu_report(run, ...) -> CheckResult`; it writes 06_gpu_memory.txt/.json and a
`gpu_sample` event per device per sample.  `format_gpu_text(result)` renders the .txt from the
result alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from llmops.errors import ConfigError, UsageError
from llmops.evidence import CheckResult, Criterion, RunDir, utc_now_iso
from llmops.gpu.attribution import Attribution, Attributor, Resolver, docker_label_resolver
from llmops.gpu.budget import (
    DEFAULT_CUDA_CONTEXT_MIB, TERMS, Budget, BudgetFile, EngineReport, apply_overrides,
    budget_for_llama, load_budget_file, parse_llama_log,
)
from llmops.gpu.nvml import (
    DeviceSample, NvmlSession, NvmlUnavailable, load_nvml, run_schedule, series_stats,
)

CHECK = "gpu"
UNATTRIBUTED = "unattributed"


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(float(v), nd)


def error_pct(used_mib: float | None, expected_mib: float | None) -> float | None:
    """100 * (used - expected) / expected, or None when either side is unknown or expected is 0."""
    if used_mib is None or not expected_mib:
        return None
    return 100.0 * (used_mib - expected_mib) / expected_mib


# ----------------------------------------------------------------------------- budgets

def build_budgets(services: list[dict] | None, budget_file: BudgetFile | None
                  ) -> tuple[dict[str, Budget], dict[str, EngineReport], list[str]]:
    """Formula budgets for the services that name a model and a command line, overridden by the
    budget file; services only the budget file names are included with the terms it gives."""
    notes: list[str] = []
    budgets: dict[str, Budget] = {}
    engines: dict[str, EngineReport] = {}
    ctx_default = DEFAULT_CUDA_CONTEXT_MIB
    if budget_file and budget_file.cuda_context_mib is not None:
        ctx_default = budget_file.cuda_context_mib
    for s in services or []:
        name = str(s.get("service") or "?")
        model, argv = s.get("model_path"), s.get("argv")
        if model is None and not argv:
            # not a llama-server (rag, qdrant, ...): budgeted only if the budget file names it;
            # its GPU memory, if any, is still attributed and shown as "no budget"
            continue
        if model is not None:
            try:
                b = budget_for_llama(Path(model), argv, service=name, env=s.get("env"),
                                     cuda_context_mib=ctx_default)
            except ConfigError as exc:
                b = Budget(service=name, error=str(exc))
        else:
            b = Budget(service=name, error="no host path of its model file is known")
        if budget_file and budget_file.cuda_context_mib is not None and b.error is None:
            b.sources["cuda_context_mib"] = "budget-file"
        budgets[name] = b
        if s.get("log_text"):
            rep = parse_llama_log(s["log_text"])
            if not rep.empty:
                engines[name] = rep
            else:
                notes.append(f"{name}: no buffer-size lines found in the server log")
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


# ----------------------------------------------------------------------------- the check

def _skipped(run: RunDir, started: str, t0: float, reason: str, budgets: dict[str, Budget],
             engines: dict[str, EngineReport], overhead: float, notes: list[str],
             tolerance_pct: float, budget_path: Path | None) -> CheckResult:
    expected = _expected_total(budgets, overhead)
    per_service = {n: _service_entry(b, engines.get(n), None, None) for n, b in budgets.items()}
    res = CheckResult(
        check=CHECK, status="skipped", started_at=started, duration_s=time.monotonic() - t0,
        metrics={"total_mib": None, "used_mib": None, "expected_mib": _r(expected),
                 "error_pct": None, "peak_used_mib": None, "per_service": per_service,
                 "headroom_mib": None, "tolerance_pct": tolerance_pct},
        details={"reason": reason, "budgets": {n: b.to_json() for n, b in budgets.items()},
                 "overhead_mib": overhead, "budget_file": str(budget_path) if budget_path else None,
                 "notes": notes},
    )
    run.write_check(res, format_gpu_text(res))
    return res


def _expected_total(budgets: dict[str, Budget], overhead: float) -> float | None:
    totals = [b.total_mib for b in budgets.values()]
    if any(t is None for t in totals) or (not budgets and not overhead):
        return None
    return float(sum(totals)) + overhead  # type: ignore[arg-type]


def _service_entry(b: Budget | None, eng: EngineReport | None, measured: dict | None,
                   pids: list[int] | None) -> dict[str, Any]:
    exp = b.total_mib if b else None
    buffers = None
    if b and None not in (b.weights_mib, b.kv_cache_mib, b.compute_mib):
        buffers = b.weights_mib + b.kv_cache_mib + b.compute_mib  # type: ignore[operator]
    m = measured or {}
    return {
        "expected_mib": _r(exp),
        "terms": {t: _r(getattr(b, t)) for t in TERMS} if b else None,
        "formula_buffers_mib": _r(buffers),
        "engine_reported_mib": _r(eng.gpu_total_mib) if eng else None,
        "measured_mib": _r(m.get("mean")),
        "measured_peak_mib": _r(m.get("peak")),
        "error_pct": _r(error_pct(m.get("mean"), exp), 2),
        "pids": pids if pids is not None else [],
    }


def run_gpu_report(run: RunDir, *, duration_s: float, interval_s: float, device: int | None,
                   tolerance_pct: float, budget_file: Path | None,
                   services: list[dict] | None,
                   nvml: Any = None, resolver: Resolver | None = None,
                   attributor: Attributor | None = None,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> CheckResult:
    """Sample GPU memory for `duration_s` every `interval_s`, attribute it, judge it.

    `services` items: {"service", "container_id", "argv", "model_path", "log_text"} (+ optional
    "env": the container's environment, for LLAMA_ARG_*).  `nvml`, `resolver`, `attributor`,
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
    budgets, engines, notes = build_budgets(services, bf)

    # --- NVML
    if nvml is None:
        try:
            nvml, load_notes = load_nvml()
            notes.extend(load_notes)
        except NvmlUnavailable as exc:
            return _skipped(run, started, t0, str(exc), budgets, engines, overhead, notes,
                            tolerance_pct, budget_file)
    try:
        session = NvmlSession(nvml).__enter__()
    except NvmlUnavailable as exc:
        return _skipped(run, started, t0, str(exc), budgets, engines, overhead, notes,
                        tolerance_pct, budget_file)
    try:
        devices = session.devices
        if device is not None:
            if not 0 <= device < len(devices):
                raise UsageError(f"no GPU {device}: this machine has GPU "
                                 f"{'0' if len(devices) == 1 else f'0..{len(devices) - 1}'}")
            devices = [devices[device]]

        ticks: list[tuple[float, list[DeviceSample]]] = []
        sample_error: list[str] = []

        def tick(k: int, now: float) -> None:
            if sample_error:
                return
            row: list[DeviceSample] = []
            try:
                for d in devices:
                    row.append(session.sample(d, now))
            except Exception as exc:   # NVMLError mid-run (GPU fell off the bus, driver reload)
                sample_error.append(f"sampling GPU failed at sample {k}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                return
            ticks.append((now, row))
            for s in row:
                run.event("gpu_sample", t=run.to_run_time(now), device=s.index,
                          used_mib=_r(s.used_mib), free_mib=_r(s.free_mib),
                          total_mib=_r(s.total_mib), reserved_mib=_r(s.reserved_mib),
                          util_gpu_pct=s.util_gpu_pct, util_mem_pct=s.util_mem_pct,
                          memory_api=s.memory_api,
                          processes=[{"pid": p.pid, "used_mib": _r(p.used_mib)}
                                     for p in s.processes])

        cpu0, wall0 = time.process_time(), time.monotonic()
        sched = run_schedule(duration_s, interval_s, tick, clock=clock, sleep=sleep)
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        dev_json = [{"index": d.index, "name": d.name, "uuid": d.uuid, "mig_enabled": d.mig_enabled,
                     "memory_api": session.memory_api.get(d.index),
                     "memory_v2_error": session.v2_errors.get(d.index)} for d in devices]
        driver = {"driver_version": session.driver_version,
                  "cuda_driver_version": session.cuda_driver_version}
        unsupported = session.unsupported
    finally:
        session.__exit__(None, None, None)

    # --- attribution
    all_pids = sorted({p.pid for _, row in ticks for s in row for p in s.processes})
    if attributor is None:
        known = {str(s["container_id"]): str(s["service"]) for s in services or []
                 if s.get("container_id") and s.get("service")}
        attributor = Attributor(known=known,
                                resolver=resolver if resolver is not None else docker_label_resolver())
    att = attributor.attribute(all_pids) if all_pids else Attribution(mode="host", reason=None)
    if any(d.mig_enabled for d in devices):
        att.notes.append("MIG is enabled: per-process memory may be unavailable and device "
                         "memory covers the whole GPU")

    return _finish(run, started, t0, ticks, sched, devices_json=dev_json, driver=driver,
                   unsupported=unsupported, att=att, budgets=budgets, engines=engines,
                   overhead=overhead, notes=notes, tolerance_pct=tolerance_pct,
                   budget_path=budget_file, duration_s=duration_s, interval_s=interval_s,
                   cpu_s=cpu_s, wall_s=wall_s, sample_error=sample_error[0] if sample_error else None)


def _finish(run: RunDir, started: str, t0: float, ticks: list[tuple[float, list[DeviceSample]]],
            sched: Any, *, devices_json: list[dict], driver: dict, unsupported: dict,
            att: Attribution, budgets: dict[str, Budget], engines: dict[str, EngineReport],
            overhead: float, notes: list[str], tolerance_pct: float, budget_path: Path | None,
            duration_s: float, interval_s: float, cpu_s: float, wall_s: float,
            sample_error: str | None) -> CheckResult:
    t_first = ticks[0][0] if ticks else 0.0
    rel = lambda t: t - t_first  # noqa: E731

    used_pts = [(rel(t), sum(s.used_mib for s in row)) for t, row in ticks]
    used = series_stats(used_pts)
    total_mib = sum(s.total_mib for s in ticks[-1][1]) if ticks else None
    free_at_peak = None
    if used.t_peak is not None:
        for t, row in ticks:
            if rel(t) == used.t_peak:
                free_at_peak = sum(s.free_mib for s in row)
                break

    per_device = []
    for i, dj in enumerate(devices_json):
        pts = [(rel(t), row[i].used_mib) for t, row in ticks]
        ug = [(rel(t), row[i].util_gpu_pct) for t, row in ticks]
        last = ticks[-1][1][i] if ticks else None
        per_device.append({**dj, "total_mib": _r(last.total_mib) if last else None,
                           "reserved_mib": _r(last.reserved_mib) if last else None,
                           "used": series_stats(pts).to_json(),
                           "util_gpu_pct": series_stats(ug).to_json(),
                           "processes_error": last.processes_error if last else None})

    # per PID series (a process may hold memory on several GPUs: sum; unknown stays unknown)
    pid_pts: dict[int, list[tuple[float, float | None]]] = {}
    for t, row in ticks:
        seen: dict[int, float | None] = {}
        for s in row:
            for p in s.processes:
                if p.pid in seen and seen[p.pid] is not None and p.used_mib is not None:
                    seen[p.pid] = seen[p.pid] + p.used_mib  # type: ignore[operator]
                elif p.pid not in seen:
                    seen[p.pid] = p.used_mib
                else:
                    seen[p.pid] = None
        for pid, v in seen.items():
            pid_pts.setdefault(pid, []).append((rel(t), v))
    pid_unknown = {pid for pid, pts in pid_pts.items() if any(v is None for _, v in pts)}

    groups: dict[str, list[int]] = {}
    for pid in pid_pts:
        info = att.pids.get(pid)
        svc = info.service if (att.mode == "host" and info and info.service) else UNATTRIBUTED
        groups.setdefault(svc, []).append(pid)

    def group_series(pids: list[int]) -> dict[str, float | None] | None:
        if any(p in pid_unknown for p in pids):
            return None
        pts = []
        for t, row in ticks:
            present = [pr.used_mib for s in row for pr in s.processes if pr.pid in pids]
            pts.append((rel(t), float(sum(v for v in present if v is not None))))
        st = series_stats(pts)
        return {"mean": st.mean, "peak": st.peak, "p95": st.p95}

    per_service: dict[str, Any] = {}
    for name, b in budgets.items():
        pids = sorted(groups.get(name, []))
        measured = group_series(pids) if att.mode == "host" else None
        per_service[name] = _service_entry(b, engines.get(name), measured, pids)
        if att.mode != "host":
            per_service[name]["measured_note"] = att.reason
        elif measured is None:
            per_service[name]["measured_note"] = "NVML did not report usedGpuMemory for its PIDs"
        elif not pids:
            per_service[name]["measured_note"] = "no GPU process was attributed to this service"
    for name, pids in groups.items():          # services on the GPU with no budget
        if name not in per_service and name != UNATTRIBUTED:
            m = group_series(pids)
            per_service[name] = _service_entry(None, engines.get(name), m, sorted(pids))
            per_service[name]["measured_note"] = "no budget for this service"
    un_pids = sorted(groups.get(UNATTRIBUTED, []))
    un = group_series(un_pids) if un_pids else {"mean": 0.0, "peak": 0.0}
    known_proc_mean = None
    if not pid_unknown:
        known_proc_mean = (series_stats([(rel(t), float(sum(p.used_mib or 0 for s in row
                                                            for p in s.processes)))
                                         for t, row in ticks]).mean) if ticks else None

    expected = _expected_total(budgets, overhead)
    err = error_pct(used.mean, expected)
    headroom = free_at_peak

    dod: list[Criterion] = []
    missing = [n for n, b in budgets.items() if b.total_mib is None]
    if budgets:
        dod.append(Criterion("budget known for every service", f"all {len(budgets)}",
                             f"{len(budgets) - len(missing)} of {len(budgets)}"
                             + (f" (missing: {', '.join(missing)})" if missing else ""),
                             not missing))
    if expected is not None and used.mean is not None:
        dod.append(Criterion("measured VRAM within tolerance of budget",
                             f"{expected:.0f} MiB ±{tolerance_pct:g}%",
                             f"{used.mean:.0f} MiB ({err:+.1f}%)", abs(err) <= tolerance_pct))  # type: ignore[arg-type]

    reason = None
    if sample_error:
        status, reason = "error", sample_error
    elif not ticks:
        status, reason = "error", "no sample was taken"
    elif expected is None and not budgets:
        status, reason = "skipped", ("nothing to compare with: no service with a model file and "
                                     "no --budget file")
    else:
        status = CheckResult.status_from(dod)

    metrics = {
        "total_mib": _r(total_mib), "used_mib": _r(used.mean), "expected_mib": _r(expected),
        "error_pct": _r(err, 2), "peak_used_mib": _r(used.peak),
        "per_service": per_service,
        "p95_used_mib": _r(used.p95), "peak_t_s": _r(used.t_peak, 3),
        "headroom_mib": _r(headroom), "unattributed_mib": _r(un["mean"]) if un else None,
        "tolerance_pct": tolerance_pct,
    }
    details = {
        "reason": reason,
        "memory_api": sorted({d["memory_api"] for d in devices_json if d["memory_api"]}),
        "devices": per_device, **driver,
        "used_definition": "mean over the window of NVML device 'used' (v2 excludes driver-"
                           "reserved memory; v1 includes it), summed over the selected GPUs",
        "sampling": {"duration_s": duration_s, "interval_s": interval_s,
                     "samples": sched.samples, "missed": sched.missed,
                     "max_lateness_ms": round(sched.max_lateness_s * 1000, 1),
                     "wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 4),
                     "cpu_pct_of_one_core": round(100 * cpu_s / wall_s, 3) if wall_s > 0 else None},
        "attribution": att.to_json(),
        "processes": {str(pid): {"service": groups_of(pid, groups),
                                 "used": series_stats(pts).to_json(),
                                 "used_unknown": pid in pid_unknown}
                      for pid, pts in sorted(pid_pts.items())},
        "unattributed": {"pids": un_pids, "mean_mib": _r(un["mean"]) if un else None},
        "non_process_mib": _r(used.mean - known_proc_mean)
        if (used.mean is not None and known_proc_mean is not None) else None,
        "budgets": {n: b.to_json() for n, b in budgets.items()},
        "engine_reported": {n: e.to_json() for n, e in engines.items()},
        "overhead_mib": overhead,
        "budget_file": str(budget_path) if budget_path else None,
        "unsupported": unsupported,
        "notes": notes,
    }
    res = CheckResult(check=CHECK, status=status, started_at=started,
                      duration_s=time.monotonic() - t0, metrics=metrics, dod=dod, details=details)
    run.write_check(res, format_gpu_text(res))
    return res


def groups_of(pid: int, groups: dict[str, list[int]]) -> str:
    for name, pids in groups.items():
        if pid in pids:
            return name
    return UNATTRIBUTED


# ----------------------------------------------------------------------------- text

def _f(v: Any, fmt: str = "{:.0f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def format_gpu_text(result: CheckResult | dict[str, Any]) -> str:
    """The people's version of 06_gpu_memory, rendered from the result (or its JSON) alone."""
    r = result.to_json() if isinstance(result, CheckResult) else result
    m, d = r.get("metrics", {}), r.get("details", {})
    out = ["GPU memory (06_gpu_memory)", f"Started: {r.get('started_at')}", ""]
    if r.get("status") == "skipped" and m.get("used_mib") is None:
        out.append(f"SKIPPED: {d.get('reason')}")
    elif d.get("reason"):
        out.append(f"{r.get('status', '').upper()}: {d.get('reason')}")
    for dev in d.get("devices", []):
        u = dev.get("used", {})
        out.append(f"GPU {dev['index']}: {dev.get('name')}  ({dev.get('uuid') or 'no uuid'})"
                   f"  memory API {dev.get('memory_api')}"
                   + (f"  [v2 failed: {dev['memory_v2_error']}]" if dev.get("memory_v2_error") else "")
                   + ("  MIG enabled" if dev.get("mig_enabled") else ""))
        ug = dev.get("util_gpu_pct", {})
        out.append(f"  total {_f(dev.get('total_mib'))} MiB; used mean {_f(u.get('mean'))}, "
                   f"p95 {_f(u.get('p95'))}, peak {_f(u.get('peak'))} MiB at t={_f(u.get('t_peak_s'), '{:.2f}')} s"
                   + (f"; reserved {_f(dev.get('reserved_mib'))} MiB" if dev.get("reserved_mib") is not None else "")
                   + (f"; utilization mean {_f(ug.get('mean'))}% peak {_f(ug.get('peak'))}%"
                      if ug.get("n") else "; utilization not available"))
        if dev.get("processes_error"):
            out.append(f"  processes: {dev['processes_error']}")
    if d.get("driver_version") or d.get("cuda_driver_version"):
        out.append(f"Driver {d.get('driver_version') or '?'}, CUDA {d.get('cuda_driver_version') or '?'}")
    smp = d.get("sampling")
    if smp:
        out.append(f"Sampling: {smp['samples']} samples, every {smp['interval_s']:g} s for "
                   f"{smp['duration_s']:g} s (missed {smp['missed']}, max lateness "
                   f"{smp['max_lateness_ms']} ms, sampler CPU {_f(smp.get('cpu_pct_of_one_core'), '{:.2f}')}% of one core)")
    out.append("")

    ps = m.get("per_service") or {}
    if ps:
        hdr = (f"{'service':<20}{'weights':>9}{'KV':>8}{'compute':>9}{'CUDActx':>9}"
               f"{'formula':>9}{'engine*':>9}{'measured':>10}{'error':>9}")
        out += ["Budget per service (MiB)", hdr]
        for name, e in ps.items():
            t = e.get("terms") or {}
            out.append(f"{name:<20}{_f(t.get('weights_mib')):>9}{_f(t.get('kv_cache_mib')):>8}"
                       f"{_f(t.get('compute_mib')):>9}{_f(t.get('cuda_context_mib')):>9}"
                       f"{_f(e.get('expected_mib')):>9}{_f(e.get('engine_reported_mib')):>9}"
                       f"{_f(e.get('measured_mib')):>10}"
                       f"{_f(e.get('error_pct'), '{:+.1f}%'):>9}")
        out.append("  * engine: llama-server's own GPU buffer sizes (weights+KV+compute, "
                   "no CUDA context); formula buffers without context: "
                   + ", ".join(f"{n} {_f(e.get('formula_buffers_mib'))}" for n, e in ps.items()))
        for name, b in (d.get("budgets") or {}).items():
            srcs = sorted({v for v in (b.get("sources") or {}).values()})
            bits = []
            if b.get("error"):
                bits.append(f"no formula: {b['error']}")
            if srcs:
                bits.append("terms from " + ", ".join(srcs))
            p = b.get("params") or {}
            if p:
                bits.append(f"{p.get('gpu_layers')}/{p.get('n_layer')} layers"
                            f"{' + output' if p.get('output_on_gpu') else ''}, ctx {p.get('n_ctx')}, "
                            f"KV {p.get('cache_type_k')}/{p.get('cache_type_v')}, "
                            f"{p.get('n_head_kv')} KV heads x {p.get('head_dim_k')}")
            bits += b.get("assumptions") or []
            out.append(f"  {name}: " + "; ".join(bits))
    if d.get("overhead_mib"):
        out.append(f"Overhead (budget file): {d['overhead_mib']:.0f} MiB")
    out.append("")
    out.append(f"Expected: {_f(m.get('expected_mib'))} MiB   Measured (mean used): "
               f"{_f(m.get('used_mib'))} MiB   Error: {_f(m.get('error_pct'), '{:+.1f}%')}   "
               f"(tolerance ±{m.get('tolerance_pct', 0):g}%)")
    out.append(f"Total: {_f(m.get('total_mib'))} MiB   Peak used: {_f(m.get('peak_used_mib'))} MiB"
               f" at t={_f(m.get('peak_t_s'), '{:.2f}')} s   p95: {_f(m.get('p95_used_mib'))} MiB")
    out.append(f"Headroom at peak: {_f(m.get('headroom_mib'))} MiB free")

    att = d.get("attribution")
    if att:
        out.append("")
        out.append(f"Attribution: {att['mode']}" + (f" - {att['reason']}" if att.get("reason") else ""))
        procs = d.get("processes") or {}
        for pid, pi in (att.get("pids") or {}).items():
            pr = procs.get(pid, {})
            used = pr.get("used", {})
            mem = "unknown (NVML: not available)" if pr.get("used_unknown") else \
                f"{_f(used.get('mean'))} MiB mean, {_f(used.get('peak'))} peak"
            who = pi.get("service") or UNATTRIBUTED
            where = (f"container {pi['container_id'][:12]}" if pi.get("container_id")
                     else (pi.get("note") or ""))
            out.append(f"  pid {pid:>7} {pi.get('comm') or '?':<16} {who:<20} {where:<24} {mem}")
        un = d.get("unattributed") or {}
        out.append(f"  unattributed: {_f(un.get('mean_mib'))} MiB over {len(un.get('pids') or [])} PID(s);"
                   f" memory not held by any listed process: {_f(d.get('non_process_mib'))} MiB")
        for n in att.get("notes") or []:
            out.append(f"  note: {n}")
    notes = list(d.get("notes") or [])
    for k, v in (d.get("unsupported") or {}).items():
        notes.append(f"{k} not supported: {v}")
    if notes:
        out.append("")
        out.append("Notes:")
        out += [f"  - {n}" for n in notes]
    return "\n".join(out)
