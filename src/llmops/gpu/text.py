"""The people's version of 06_gpu_memory, rendered from the check's result (or its JSON) alone:
every helper here reads a part of that JSON."""

from __future__ import annotations

from typing import Any

from ..evidence import CheckResult, JsonObject

UNATTRIBUTED = "unattributed"


def _f(v: Any, fmt: str = "{:.0f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def format_gpu_text(result: CheckResult | JsonObject) -> str:
    """The people's version of 06_gpu_memory, rendered from the result (or its JSON) alone."""
    r = result.to_json() if isinstance(result, CheckResult) else result
    m, d = r.get("metrics", {}), r.get("details", {})
    out = ["GPU memory (06_gpu_memory)", f"Started: {r.get('started_at')}", ""]
    if r.get("status") == "skipped" and m.get("used_mib") is None:
        out.append(f"SKIPPED: {d.get('reason')}")
    elif d.get("reason"):
        out.append(f"{r.get('status', '').upper()}: {d.get('reason')}")
    out += _devices(d)
    out.append("")
    out += _per_service(m.get("per_service") or {}, d.get("budgets") or {})
    out += _calibration(d)
    out.append("")
    out += _totals(m)
    out += _attribution(d)
    out += _notes(d)
    return "\n".join(out)


def _devices(d: JsonObject) -> list[str]:
    out = []
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
    return out


def _per_service(ps: JsonObject, budgets: JsonObject) -> list[str]:
    if not ps:
        return []
    out = ["Per service (MiB): plan = formula buffers, engine = llama-server's own buffer lines,"
           " NVML = the process; overhead = calibrated per-process memory no buffer holds",
           f"{'service':<20}{'weights':>9}{'KV':>8}{'compute':>9}{'plan':>8}{'engine':>8}"
           f"{'plan err':>9}{'overhead':>9}{'expected':>9}{'NVML':>8}{'error':>9}"]
    for name, e in ps.items():
        t = e.get("terms") or {}
        out.append(f"{name:<20}{_f(t.get('weights_mib')):>9}{_f(t.get('kv_cache_mib')):>8}"
                   f"{_f(t.get('compute_mib')):>9}{_f(e.get('formula_buffers_mib')):>8}"
                   f"{_f(e.get('engine_reported_mib')):>8}"
                   f"{_f(e.get('buffers_error_pct'), '{:+.1f}%'):>9}"
                   f"{_f(t.get('cuda_context_mib')):>9}{_f(e.get('expected_mib')):>9}"
                   f"{_f(e.get('measured_mib')):>8}{_f(e.get('error_pct'), '{:+.1f}%'):>9}")
        if e.get("engine_fit") and e.get("engine_fit") != "not run":
            out.append(f"  {name}: llama.cpp fit: {e['engine_fit']}"
                       + (f" (projected {_f(e.get('engine_projected_mib'))} MiB)"
                          if e.get("engine_projected_mib") is not None else "")
                       + (": " + "; ".join(e["fit_changes"]) if e.get("fit_changes") else ""))
    out += [f"  {name}: " + "; ".join(_budget_bits(b)) for name, b in budgets.items()]
    return out


def _budget_bits(b: JsonObject) -> list[str]:
    """How one budget was made: its formula's error, its terms' sources, what it planned."""
    bits = []
    if b.get("error"):
        bits.append(f"no formula: {b['error']}")
    srcs = sorted({v for v in (b.get("sources") or {}).values()})
    if srcs:
        bits.append("terms from " + ", ".join(srcs))
    p = b.get("params") or {}
    if p:
        bits.append(f"{p.get('gpu_layers')}/{p.get('n_layer')} layers"
                    f"{' + output' if p.get('output_on_gpu') else ''}, ctx {p.get('n_ctx')}, "
                    f"KV {p.get('cache_type_k')}/{p.get('cache_type_v')}, "
                    f"{p.get('n_head_kv')} KV heads x {p.get('head_dim_k')}")
    bits += b.get("assumptions") or []
    bits += [f"{t} unknown: {why}" for t, why in (b.get("unknown") or {}).items()]
    return bits


def _calibration(d: JsonObject) -> list[str]:
    out = []
    cal = d.get("calibration")
    if cal:
        out.append(f"Calibration measured here ({cal.get('name')}): overhead "
                   + ", ".join(f"{k} {v:.0f}" for k, v in (cal.get("overhead_mib") or {}).items())
                   + " MiB; from " + ", ".join(f"{s} {v['overhead_mib']:.0f}"
                                              for s, v in (cal.get("measured") or {}).items())
                   + "  (pass this file to `llmops gpu-plan --calibration`)")
    if d.get("overhead_mib"):
        out.append(f"Overhead (budget file): {d['overhead_mib']:.0f} MiB")
    return out


def _totals(m: JsonObject) -> list[str]:
    return [f"Expected: {_f(m.get('expected_mib'))} MiB   Measured (mean used): "
            f"{_f(m.get('used_mib'))} MiB   Error: {_f(m.get('error_pct'), '{:+.1f}%')}   "
            f"(tolerance ±{m.get('tolerance_pct', 0):g}%)",
            f"Total: {_f(m.get('total_mib'))} MiB   Peak used: {_f(m.get('peak_used_mib'))} MiB"
            f" at t={_f(m.get('peak_t_s'), '{:.2f}')} s   p95: {_f(m.get('p95_used_mib'))} MiB",
            f"Headroom at peak: {_f(m.get('headroom_mib'))} MiB free"]


def _attribution(d: JsonObject) -> list[str]:
    att = d.get("attribution")
    if not att:
        return []
    out = ["", f"Attribution: {att['mode']}" + (f" - {att['reason']}" if att.get("reason") else "")]
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
    out += [f"  note: {n}" for n in att.get("notes") or []]
    return out


def _notes(d: JsonObject) -> list[str]:
    notes = list(d.get("notes") or [])
    notes += [f"{k} not supported: {v}" for k, v in (d.get("unsupported") or {}).items()]
    return ["", "Notes:", *[f"  - {n}" for n in notes]] if notes else []
