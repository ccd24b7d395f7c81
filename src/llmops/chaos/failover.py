"""`llmops chaos failover`: kill the primary model server under constant load and time the gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..context import Context
from ..errors import EnvironmentProblem, UsageError
from ..evidence import CheckResult, Criterion, utc_now_iso
from ..gateway_config import mounted_config_path, summarize
from ..probes import complete
from ..stack import Service
from .common import FaultFrame, check_mode, check_range, preflight
from .loadgen import MAX_DURATION_S, MAX_RPS, MAX_TOKENS_LIMIT, LoadGenerator, Request
from .restore import wait_http_ok
from .timeline import Marks, analyse, per_second, render_rows

REFERENCE_FAILOVER_S = 1.15
PENALTY_LIMIT_S = 0.1


@dataclass
class FailoverOptions:
    target: str = "inference-chat"
    mode: str = "stop"
    rps: float = 10.0
    duration_s: float = 60.0       # hard cap on the whole load phase
    fault_at_s: float = 3.0
    outage_s: float = 5.0
    restore: bool = True
    failback_window_s: float = 30.0
    # Tokens per load request.  A request in flight on the primary when it dies loses the work done
    # there (up to one service time) before the gateway retries it, so its penalty grows with the
    # request's size; with one token that loss stays below the gateway's own retry cost.
    max_tokens: int = 1
    warm: bool = True              # pre-flight: send the load's request to every deployment by id
    stream: bool = False           # streamed completions (chaos/stream_failover.py)

    def validate(self) -> None:
        check_mode(self.mode)
        if self.stream:
            from .streamload import MAX_STREAM_RPS
            check_range("--rps (streaming)", self.rps, 0.5, MAX_STREAM_RPS)
        check_range("--rps", self.rps, 0.5, MAX_RPS)
        check_range("--duration", self.duration_s, 5, MAX_DURATION_S)
        check_range("--fault-at", self.fault_at_s, 1, self.duration_s - 2)
        check_range("--outage", self.outage_s, 0.5, self.duration_s - self.fault_at_s - 1)
        check_range("--max-tokens", self.max_tokens, 1, MAX_TOKENS_LIMIT)


def run_failover(ctx: Context, o: FailoverOptions, say: Callable[[str], None]) -> tuple[CheckResult, str]:
    o.validate()
    started_at, t_wall = utc_now_iso(), time.perf_counter()
    svcs, _declared = preflight(ctx, o.target)
    target = svcs[o.target]
    if not target.role.startswith("inference"):
        raise UsageError(f"target {o.target} is not a model server; valid: "
                         + ", ".join(s.name for s in svcs.values() if s.role.startswith("inference")))
    others = [s for s in svcs.values() if s.role.startswith("inference") and s.name != o.target]
    gateway = next((s for s in svcs.values() if s.role == "gateway"), None)
    if not others or gateway is None:
        raise EnvironmentProblem("no secondary model server or no gateway in the stack")
    secondary = others[0]
    key = ctx.master_key
    if not key:
        raise EnvironmentProblem("no LITELLM_MASTER_KEY in compose/.env: run `llmops up`")
    cfg_path = mounted_config_path(ctx.client.containers.get(gateway.container_id).attrs)
    router = summarize(cfg_path) if cfg_path and cfg_path.exists() else None
    for w in (router.warnings if router else ["gateway config not found: cannot lint router settings"]):
        say(f"[yellow]gateway config warning:[/] {w}")
    attempt_timeout = router.per_attempt_timeout_s() if router else None
    alias = gateway.labels.get("llmops.model-alias", "chat-7b")
    warmed = preflight_requests(ctx, gateway, key, alias, o)
    if warmed:
        say("pre-flight: " + ", ".join(f"{w['deployment']} answered through the gateway" for w in warmed))
    run = ctx.open_run()
    frame = FaultFrame(ctx, target, o.mode, restore=o.restore, phase="failover")
    marks: dict[str, float | None] = {"t_start": None, "t_primary_ok": None}

    def record(r: Request) -> None:
        run.event("request", phase="failover", t=run.to_run_time(r.t_send), seq=r.seq,
                  latency_s=round(r.latency_s, 4), status=r.status, backend=r.backend, model_id=r.model_id,
                  retries=r.retries, fallbacks=r.fallbacks, error=r.error, completion_tokens=r.completion_tokens)

    streamed: list[dict[str, Any]] = []
    if o.stream:   # streamed load: its own pre-flight, records and analysis (chaos/stream_failover.py)
        from .stream_failover import make_stream_load, stream_preflight
        streamed = stream_preflight(gateway.url, key, router, o.max_tokens)
        lg = make_stream_load(gateway.url, key, alias, o.rps, o.duration_s, o.max_tokens, run)
    else:
        lg = LoadGenerator(gateway.url, key, alias, o.rps, o.duration_s, on_request=record,
                           max_tokens=o.max_tokens)

    async def experiment(f: FaultFrame) -> list[Request]:
        marks["t_start"] = time.monotonic()
        load = asyncio.create_task(lg.run())
        try:
            say(f"steady state: {o.rps:g} rps through {gateway.name} for {o.fault_at_s:g} s")
            await asyncio.sleep(o.fault_at_s)
            say(f"fault: docker {o.mode} {target.name}")
            await asyncio.to_thread(f.inject)
            await asyncio.sleep(o.outage_s)
            if o.restore:
                say(f"restore: {target.name}")
                await asyncio.to_thread(f.undo)
                t_ok = await asyncio.to_thread(wait_http_ok, f"{target.url}/health", 60.0,
                                               lambda b: b.get("status") == "ok")
                marks["t_primary_ok"] = t_ok
                if t_ok is not None:
                    run.event("primary_healthy", t=run.to_run_time(t_ok), service=target.name)
                    end = min(marks["t_start"] + o.duration_s, t_ok + o.failback_window_s)  # type: ignore[operator]
                    say("waiting for traffic to come back to the primary")
                    while time.monotonic() < end and not any(
                            r.ok and r.backend == target.name and r.t_done >= t_ok for r in lg.requests):
                        await asyncio.sleep(0.1)
                    await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))  # a little steady state after
        finally:
            lg.stop()
        return await load

    def body(f: FaultFrame) -> list[Request]:
        return asyncio.run(experiment(f))

    reqs = frame.run(body, say) or sorted(lg.requests, key=lambda r: r.t_send)
    m = Marks(t_start=marks["t_start"] or 0.0, t_fault=frame.t_fault or 0.0, t_restore=frame.t_restore,
              t_primary_ok=marks["t_primary_ok"], primary=target.name, secondary=secondary.name)
    if o.stream:
        from .stream_failover import stream_result
        return stream_result(reqs, m, o, frame, router, {  # type: ignore[arg-type]
            "mode": o.mode, "target": target.name, "secondary": secondary.name, "rps": o.rps,
            "max_tokens": o.max_tokens, "fault_at_s": o.fault_at_s, "outage_s": o.outage_s,
            "preflight_warm": warmed, "stream_preflight": streamed, "router": router.to_json() if router else None,
            "restored": frame.restored, "restore_action": frame.restore_how, "notes": frame.notes,
            "marks": {k: (round(v - m.t_start, 4) if v else None) for k, v in
                      (("fault", m.t_fault), ("restore", m.t_restore), ("primary_ok", m.t_primary_ok))}},
            started_at, t_wall)
    a = analyse(reqs, m)
    rows = per_second(reqs, m)
    metrics = {k: a[k] for k in ("failover_time_s", "failover_penalty_s", "failed_requests", "total_requests",
                                 "served_by_secondary", "failback_time_s")}
    metrics["restored"] = frame.restored
    metrics["latency"] = a["latency"]
    dod = failover_dod(a, o.mode, frame.restored, attempt_timeout)
    details = {"mode": o.mode, "target": target.name, "secondary": secondary.name, "rps": o.rps,
               "max_tokens": o.max_tokens, "fault_at_s": o.fault_at_s, "outage_s": o.outage_s,
               "per_attempt_timeout_s": attempt_timeout, "preflight_warm": warmed,
               "router": router.to_json() if router else None, "analysis": a, "timeline": rows,
               "restored": frame.restored, "restore_action": frame.restore_how, "notes": frame.notes,
               "marks": {k: (round(v - m.t_start, 4) if v else None) for k, v in
                         (("fault", m.t_fault), ("restore", m.t_restore), ("primary_ok", m.t_primary_ok))}}
    r = CheckResult("failover", CheckResult.status_from(dod), started_at, time.perf_counter() - t_wall,
                    metrics, dod, details)
    return r, failover_text(r, rows)


def preflight_requests(ctx: Context, gateway: Service, key: str, alias: str,
                       o: FailoverOptions) -> list[dict[str, Any]]:
    """Real completions through the gateway before any fault: a gateway that rejects them (say, a
    master key from another checkout) would fail every load request, so refuse (exit 4) instead.

    With `o.warm`, every deployment is sent the load's own request by its id, as `up` does: the
    standby's prompt cache otherwise holds whatever ran last (`verify`'s gateway /health evicts
    it), and the first failed-over request would pay that history, not the failover."""
    if o.warm:
        from ..warmup import warm_routes

        done = warm_routes(ctx, alias)
        bad = next((w for w in done if not w.ok), None)
        if bad is not None:
            raise EnvironmentProblem(f"pre-flight: a completion through {gateway.name} to {bad.deployment} failed "
                                     f"({bad.statuses}: {' '.join((bad.error or '').split())[:150]}); "
                                     "refusing to inject a fault")
        if done:
            return [w.to_json() for w in done]
    probe = complete(gateway.url, key, alias, timeout=10.0, max_tokens=o.max_tokens)
    if probe.status_code != 200:
        why = " ".join((probe.error or "").split())[:150]
        raise EnvironmentProblem(f"pre-flight: a completion through {gateway.name} failed "
                                 f"({probe.status_code or 'no answer'}: {why}); refusing to inject a fault")
    return []


def failover_dod(a: dict[str, Any], mode: str, restored: bool, attempt_timeout: float | None) -> list[Criterion]:
    ft, pen = a["failover_time_s"], a["failover_penalty_s"]
    dod = [
        Criterion("failed_requests during the whole run", "0", str(a["failed_requests"]), a["failed_requests"] == 0),
        Criterion("served_by_secondary after the fault", "true", str(a["served_by_secondary"]).lower(),
                  bool(a["served_by_secondary"])),
    ]
    if mode in ("stop", "kill"):
        dod.append(Criterion("failover_time_s (connection refused)", f"< {REFERENCE_FAILOVER_S} s (reference)",
                             f"{ft} s", ft is not None and ft < REFERENCE_FAILOVER_S))
        dod.append(Criterion("failover_penalty_s", f"< {PENALTY_LIMIT_S} s", f"{pen} s",
                             pen is not None and pen < PENALTY_LIMIT_S))
    else:
        limit = (attempt_timeout or 0) + 0.5
        dod.append(Criterion("failover_time_s (hung server)", f"<= {limit:g} s (per-attempt timeout + 0.5 s)",
                             f"{ft} s", ft is not None and attempt_timeout is not None and ft <= limit))
    dod.append(Criterion("restored (primary back, stack healthy)", "true", str(restored).lower(), restored))
    dod.append(Criterion("failback_time_s measured", "a value", f"{a['failback_time_s']} s",
                         a["failback_time_s"] is not None))
    return dod


def failover_text(r: CheckResult, rows: list[dict[str, Any]]) -> str:
    d, m, a = r.details, r.metrics, r.details["analysis"]
    mk = d["marks"]
    lat = a["latency"]
    first = a["first_failover_request"] or {}

    def fmt(x: Any, unit: str = " s") -> str:
        return "n/a" if x is None else f"{x:.3f}{unit}" if isinstance(x, float) else f"{x}{unit}"

    lines = [
        f"Failover test: {d['target']} -> {d['secondary']} through the gateway, fault mode `{d['mode']}`",
        "",
        "Scenario:",
        "  1. Pre-flight: every service Up (healthy)"
        + ("; the load's request answered by " + " and ".join(w["deployment"] for w in d["preflight_warm"])
           + " through the gateway." if d.get("preflight_warm") else "."),
        f"  2. Steady state: {d['rps']:g} requests/s of max_tokens={d['max_tokens']} (open loop) through api-gateway; "
        f"p50 {fmt(lat['before']['p50_s'])}, served {a['served'].get(d['target'], 0)} by {d['target']} overall.",
        f"  3. Fault at t={fmt(mk['fault'])}: docker {d['mode']} {d['target']}.",
        f"  4. Failover: first HTTP 200 from {d['secondary']} {fmt(m['failover_time_s'])} after the fault "
        f"(request sent at t={fmt(first.get('sent_at_s'))}, latency {fmt(first.get('latency_s'))}"
        + ("; in flight on the primary when it died, retried" if first.get("in_flight_at_fault") else "") + ").",
        f"  5. Restore at t={fmt(mk['restore'])} ({d['restore_action'] or 'none'}); primary /health OK at t={fmt(mk['primary_ok'])}.",
        f"  6. Failback: first response from {d['target']} {fmt(m['failback_time_s'])} after its health turned OK.",
        "",
        "Figures:",
        f"  failover_time_s      {fmt(m['failover_time_s'])}   (reference procedure: 1.15 s)",
        f"  failover_penalty_s   {fmt(m['failover_penalty_s'])}   (secondary steady median {fmt(a['secondary_steady_median_s'])})",
        f"  failed_requests      {m['failed_requests']} of {m['total_requests']}",
        f"  served_by_secondary  {str(m['served_by_secondary']).lower()}",
        f"  failback_time_s      {fmt(m['failback_time_s'])}",
        f"  restored             {str(m['restored']).lower()}",
        f"  per-attempt timeout  {fmt(d['per_attempt_timeout_s'])}",
        "",
        "Latency      requests errors  p50      p95      max",
    ]
    for phase in ("before", "during", "after"):
        s = lat[phase]
        lines.append(f"  {phase:10} {s['requests']:>8} {s['errors']:>6}  {fmt(s['p50_s'])}  {fmt(s['p95_s'])}  {fmt(s['max_s'])}")
    lines += ["", "Timeline (one row per second of sending):", render_rows(rows, d["target"], d["secondary"])]
    for n in d["notes"]:
        lines.append(f"NOTE: {n}")
    return "\n".join(lines)
