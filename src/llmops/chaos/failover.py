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
from ..probes import complete
from ..runner import WARN, Run
from ..stack import ALIAS_LABEL, ROLE_LABEL, Role, Service
from .common import FaultFrame, check_range, preflight
from .dod_common import (HUNG_FAILOVER_CEILING_S, MIN_REQUESTS, failed_line, hung_failover_limit_s,  # noqa: F401
                         hung_line as _hung_line, secondary_line, tail_lines as _tail_lines)
from .net_dod import check_mode_or_net, fault_words, make_frame, net_evidence, network_dod, network_text
from .netfaults import NET_MODES, check_loss_pct
from .loadgen import MAX_DURATION_S, MAX_RPS, MAX_TOKENS_LIMIT, LoadGenerator, Request
from .restore import wait_http_ok
from .timeline import Marks, analyse, availability_pct, before_fault_criterion, in_effect, per_second, render_rows

REFERENCE_FAILOVER_S = 1.15
PENALTY_LIMIT_S = 0.1
# Fault modes by what the gateway meets.  Refused: the connection fails at once, so failover is
# judged against the reference 1.15 s and the penalty line.  Hung: the primary accepts nothing and
# answers nothing, so each attempt waits out the per-attempt timeout; failover is judged against
# hung_failover_limit_s().  Every mode must be in one of the two (failover_dod refuses others).
# --stream: after --fault-at, wait at most this long for a stream whose first chunk came from the primary.
MID_STREAM_WAIT_S = 10.0
# LiteLLM's own cooldown when the config sets none (litellm.constants.DEFAULT_COOLDOWN_TIME_SECONDS).
LITELLM_DEFAULT_COOLDOWN_S = 5.0
REFUSED_MODES: frozenset[str] = frozenset({"stop", "kill"})
HUNG_MODES: frozenset[str] = frozenset({"pause"})


@dataclass
class FailoverOptions:
    target: str | None = None     # None: the stack's primary model server
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
    loss_pct: float | None = None  # --mode loss only: percent of the gateway's packets dropped
    stream: bool = False           # streamed completions (chaos/stream_failover.py)

    def validate(self) -> None:
        if self.mode not in NET_MODES:
            check_mode_or_net(self.mode)
        self.loss_pct = check_loss_pct(self.mode, self.loss_pct)
        if self.stream:
            from .streamload import MAX_STREAM_RPS
            if self.mode not in REFUSED_MODES | HUNG_MODES or self.mode in NET_MODES:
                raise UsageError(f"--stream works with --mode stop, kill or pause, not {self.mode}")
            check_range("--rps (streaming)", self.rps, 0.5, MAX_STREAM_RPS)
        check_range("--rps", self.rps, 0.5, MAX_RPS)
        check_range("--duration", self.duration_s, 5, MAX_DURATION_S)
        check_range("--fault-at", self.fault_at_s, 1, self.duration_s - 2)
        check_range("--outage", self.outage_s, 0.5, self.duration_s - self.fault_at_s - 1)
        check_range("--max-tokens", self.max_tokens, 1, MAX_TOKENS_LIMIT)


def warm_refusal(done: list[Any], gateway: str) -> str | None:
    """Why the pre-flight refuses to inject a fault, or None: a warm-up completion to a deployment
    failed (the load would fail too) or was answered by another service than its api_base names."""
    bad = next((w for w in done if not w.ok), None)
    if bad is None:
        return None
    why = " ".join((bad.error or "").split())[:150] or \
        f"answered by {', '.join(str(b) for b in bad.backends)}, not {bad.service or bad.deployment}"
    return (f"pre-flight: a completion through {gateway} to deployment {bad.deployment} "
            f"({bad.service or 'no service matches its api_base'}) failed (HTTP {bad.statuses}: {why}); "
            "refusing to inject a fault")


def run_failover(ctx: Context, run: Run, o: FailoverOptions) -> tuple[CheckResult, str]:
    o.validate()
    say = run.say
    started_at, t_wall = utc_now_iso(), time.perf_counter()
    stack = ctx.stack()
    target_name = o.target or stack.require(Role.PRIMARY).name
    svcs, _declared = preflight(ctx, target_name)
    target = svcs[target_name]
    if not target.is_model_server:
        valid = ", ".join(s.name for s in stack.model_servers)
        raise UsageError(f"target {target_name} is not a model server (label {ROLE_LABEL}={Role.PRIMARY} or "
                         f"{Role.SECONDARY}); " + (f"valid: {valid}" if valid else
                                                   "no service has either label: run `llmops adopt`"))
    others = [s for s in stack.model_servers if s.name != target_name]
    gateway = stack.gateway
    if not others or gateway is None:
        raise EnvironmentProblem("no secondary model server or no gateway in the stack")
    secondary = others[0]
    key = ctx.master_key
    if not key:
        raise EnvironmentProblem("no LITELLM_MASTER_KEY in compose/.env: run `llmops up`")
    router = stack.router
    if router is not None and router.drift:   # every limit below comes from these settings
        raise EnvironmentProblem(f"pre-flight: {router.drift}; refusing to inject a fault")
    for w in (router.warnings if router else [f"gateway config not found (the gateway reads {stack.router_inside}, "
                                              f"which no mount of {stack.gateway.name if stack.gateway else 'it'} "
                                              "brings from this host): cannot lint router settings, and no "
                                              "per-attempt timeout is known"]):
        say(f"gateway config warning: {w}", WARN)
    # The hung-server limit is the primary's own timeout: a longer one on the secondary must not
    # loosen it (a secondary with timeout 30 once let a 9 s failover pass).
    attempt_timeout = router.timeout_s(target.name) if router else None
    alias = stack.alias
    if not alias:
        raise EnvironmentProblem(f"{gateway.name} has no {ALIAS_LABEL} label: which alias to load?")
    cooldown = (router.router_settings.get("cooldown_time") if router else None)
    warmed = preflight_requests(ctx, gateway, key, alias, target.name, o,
                                float(cooldown) if cooldown is not None else None)
    if warmed:
        say("pre-flight: " + ", ".join(f"{w['deployment']} answered through the gateway" for w in warmed))
    frame = make_frame(ctx, run, target, gateway, o)
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
    lg.hosts = stack.hosts

    async def experiment(f: FaultFrame) -> list[Request]:
        marks["t_start"] = time.monotonic()
        load = asyncio.create_task(lg.run())
        try:
            say(f"steady state: {o.rps:g} rps through {gateway.name} for {o.fault_at_s:g} s")
            await asyncio.sleep(o.fault_at_s)
            if o.stream:   # the fault must land while the primary is mid-stream (else: inconclusive)
                mid = await lg.wait_mid_stream(target.name, MID_STREAM_WAIT_S)  # type: ignore[attr-defined]
                say("a stream is mid-flight on the primary" if mid else
                    f"no stream mid-flight on the primary within {MID_STREAM_WAIT_S:g} s: the run will be inconclusive")
            say(f"fault: {fault_words(o, target.name, gateway.name)}")
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

    reqs = frame.apply(body) or sorted(lg.requests, key=lambda r: r.t_send)
    m = Marks(t_start=marks["t_start"] or 0.0, t_fault=frame.t_fault or 0.0, t_restore=frame.t_restore,
              t_primary_ok=marks["t_primary_ok"], primary=target.name, secondary=secondary.name,
              t_dead=frame.t_dead, t_returned=frame.clock.t_returned if frame.clock else None)
    marks_json = fault_marks(m, frame)
    if o.stream:
        from .stream_failover import stream_result
        return stream_result(reqs, m, o, frame, router, {  # type: ignore[arg-type]
            "mode": o.mode, "target": target.name, "secondary": secondary.name, "rps": o.rps,
            "max_tokens": o.max_tokens, "fault_at_s": o.fault_at_s, "outage_s": o.outage_s,
            "preflight_warm": warmed, "stream_preflight": streamed, "router": router.to_json() if router else None,
            "restored": frame.restored, "restore_action": frame.restore_how, "notes": frame.notes,
            "marks": marks_json}, started_at, t_wall)
    a = analyse(reqs, m)
    rows = per_second(reqs, m)
    metrics = {k: a[k] for k in ("failover_time_s", "failover_penalty_s", "failed_requests", "total_requests",
                                 "served_by_secondary", "served_before_fault", "failback_time_s")}
    metrics["fault_call_s"] = marks_json["fault_call_s"]
    metrics["availability_pct"] = availability_pct(reqs)
    metrics["restored"] = frame.restored
    metrics["latency"] = a["latency"]
    network = net_evidence(frame, metrics)
    dod = (network_dod(a, o.mode, frame.restored, attempt_timeout, o.loss_pct, network,
                       router.router_settings.get("num_retries") if router else None) if network is not None
           else failover_dod(a, o.mode, frame.restored, attempt_timeout))
    details = {"mode": o.mode, "target": target.name, "secondary": secondary.name, "gateway": gateway.name,
               "rps": o.rps,
               "max_tokens": o.max_tokens, "fault_at_s": o.fault_at_s, "outage_s": o.outage_s,
               "per_attempt_timeout_s": attempt_timeout, "preflight_warm": warmed,
               "router": router.to_json() if router else None, "analysis": a, "timeline": rows,
               "restored": frame.restored, "restore_action": frame.restore_how, "notes": frame.notes,
               "marks": marks_json}
    if network is not None:
        details["network_fault"] = network
        details["fault_description"] = fault_words(o, target.name, gateway.name)
    r = CheckResult("failover", started_at, time.perf_counter() - t_wall, metrics, dod, details)
    return r, failover_text(r, rows)


def fault_marks(m: Marks, frame: FaultFrame) -> dict[str, Any]:
    """The run's moments for the evidence, in seconds from the load's start: the fault issued,
    the primary gone (and how that is known), the restore, the primary healthy again."""
    def rel(v: float | None) -> float | None:
        return round(v - m.t_start, 4) if v else None

    return {"fault": rel(m.t_fault), "fault_in_effect": rel(m.t_dead), "restore": rel(m.t_restore),
            "primary_ok": rel(m.t_primary_ok),
            "fault_call_s": round(frame.fault_call_s, 4) if frame.fault_call_s is not None else None,
            "dead_from": frame.clock.source if frame.clock else None}


def preflight_requests(ctx: Context, gateway: Service, key: str, alias: str, primary: str,
                       o: FailoverOptions, cooldown_s: float | None = None) -> list[dict[str, Any]]:
    """Real completions through the gateway before any fault: a gateway that rejects them (say, a
    master key from another checkout) would fail every load request, so refuse (exit 4) instead.

    With `o.warm`, every deployment is sent the load's own request by its id, as `up` does: the
    standby's prompt cache otherwise holds whatever ran last (`verify`'s gateway /health evicts
    it), and the first failed-over request would pay that history, not the failover.

    Then the alias itself must reach the primary: right after an earlier fault the gateway keeps
    the primary in cooldown, and a steady state measured then would be the secondary's (seen in
    back-to-back benchmark runs: 12 replies from the secondary before a fault).  That is waited out,
    one cooldown at most."""
    warmed: list[dict[str, Any]] = []
    wait_s = (cooldown_s if cooldown_s is not None else LITELLM_DEFAULT_COOLDOWN_S) + 3.0
    if o.warm:
        from ..warmup import warm_routes

        # Right after an earlier fault's restore, on a busy machine, the gateway's first
        # connection to the restarted primary can still fail ("Connection error"): that is the
        # previous experiment's tail, so it is retried for one cooldown before refusing.
        deadline = time.monotonic() + wait_s
        while True:
            done = warm_routes(ctx)
            bad = next((w for w in done if not w.ok), None)
            if bad is None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        refusal = warm_refusal(done, gateway.name)
        if refusal:
            raise EnvironmentProblem(refusal)
        warmed = [w.to_json() for w in done]
    deadline = time.monotonic() + wait_s
    while True:
        probe = complete(gateway.url, key, alias, timeout=10.0, max_tokens=o.max_tokens, hosts=ctx.stack().hosts)
        if probe.status_code != 200:
            why = " ".join((probe.error or "").split())[:150]
            raise EnvironmentProblem(f"pre-flight: a completion through {gateway.name} failed "
                                     f"({probe.status_code or 'no answer'}: {why}); refusing to inject a fault")
        if probe.backend == primary:
            return warmed
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"pre-flight: {gateway.name} still sends {alias} to {probe.backend}, not the "
                                     f"primary {primary}, after {wait_s:g} s (a cooldown from an earlier fault?); "
                                     "refusing to inject a fault")
        time.sleep(0.25)


def failover_dod(a: dict[str, Any], mode: str, restored: bool, attempt_timeout: float | None) -> list[Criterion]:
    if mode not in REFUSED_MODES | HUNG_MODES:
        raise ValueError(f"fault mode {mode!r} is neither a refused nor a hung mode: no failover limit for it")
    ft, pen = a["failover_time_s"], a["failover_penalty_s"]
    n_first, n_steady = a["samples"]["secondary_after_fault"], a["samples"]["steady"]
    dod = [failed_line(a), before_fault_criterion(a), secondary_line(a)]
    if mode in REFUSED_MODES:
        dod.append(Criterion.judge("failover_time_s (connection refused, from the primary's exit)",
                                   f"< {REFERENCE_FAILOVER_S} s (reference)", ft,
                                   lambda v: v < REFERENCE_FAILOVER_S, samples=min(n_first, 1), unit=" s"))
        limit = penalty_limit_s(a.get("secondary_steady_spread_s"))
        dod.append(Criterion.judge("failover_penalty_s", f"< {limit:g} s ({PENALTY_LIMIT_S:g} s beyond the "
                                   f"secondary's own slowest steady reply over its median, >= {MIN_STEADY} replies)", pen,
                                   lambda v: v < limit, samples=n_steady, need=MIN_STEADY, unit=" s"))
    else:
        dod.append(_hung_line("hung server", ft, attempt_timeout, min(n_first, 1), a.get("secondary_steady_p95_s")))
    return dod + _tail_lines(a, restored)


# The secondary's steady median (the penalty's baseline) needs at least this many replies.
MIN_STEADY = 3


def penalty_limit_s(spread_s: float | None) -> float:
    """What the first failed-over reply may cost beyond the secondary's median: 0.1 s beyond the
    secondary's own spread (its slowest steady reply in the same outage over its median).  On a
    quiet machine the spread is tens of ms and the line is close to the reference 0.1 s; on a busy
    one a reply no slower than one the secondary gave with no failover at all cost the user
    nothing the failover caused (a fixed 0.1 s failed 5 of 10 busy runs whose first reply was
    0.1-0.6 s above a 0.2 s median, with 0.5-2.8 s replies in the same steady state).  A failover
    that paid a timeout still fails `failover_time_s`."""
    return round(PENALTY_LIMIT_S + max(0.0, spread_s or 0.0), 4)


def failover_text(r: CheckResult, rows: list[dict[str, Any]]) -> str:
    d, m, a = r.details, r.metrics, r.details["analysis"]
    mk = d["marks"]
    lat = a["latency"]
    first = a["first_failover_request"] or {}
    before, fl = a["served_before_fault"], a["in_flight_at_fault"]
    tw = a.get("teardown_window") or {}

    def fmt(x: Any, unit: str = " s") -> str:
        return "n/a" if x is None else f"{x:.3f}{unit}" if isinstance(x, float) else f"{x}{unit}"

    lines = [
        f"Failover test: {d['target']} -> {d['secondary']} through the gateway, fault mode `{d['mode']}`",
        "",
        "Scenario:",
        "  1. Pre-flight: every service Up (healthy)"
        + ("; the load's request answered by " + " and ".join(w["deployment"] for w in d["preflight_warm"])
           + " through the gateway." if d.get("preflight_warm") else "."),
        f"  2. Steady state: {d['rps']:g} requests/s of max_tokens={d['max_tokens']} (open loop) through {d.get('gateway')}; "
        f"p50 {fmt(lat['before']['p50_s'])}; replies completed before the fault: {before.get(d['target'], 0)} "
        f"from {d['target']}, {before.get(d['secondary'], 0)} from {d['secondary']}"
        + (" (traffic was shared before any fault: the failover figures below are not a failover)"
           if before.get(d["secondary"]) else "") + ".",
        f"  3. Fault at t={fmt(mk['fault'])}{in_effect(mk)}: {d.get('fault_description') or 'docker ' + d['mode'] + ' ' + d['target']}.",
        f"  4. Failover: first HTTP 200 from {d['secondary']} to a request sent after the primary was gone, "
        f"{fmt(m['failover_time_s'])} after it was gone (sent at t={fmt(first.get('sent_at_s'))}, "
        f"latency {fmt(first.get('latency_s'))}); the primary's end from {mk.get('dead_from') or 'the call issued'}, "
        f"the engine call took {fmt(mk.get('fault_call_s'))}.",
        f"     In flight at the fault: {fl['requests']} request(s), {fl['failed']} failed, "
        f"{fl['served'].get(d['secondary'], 0)} served by {d['secondary']} ({fl['retried_on_secondary']} retried by the "
        f"gateway), slowest {fmt(fl['max_latency_s'])}; not counted in the failover time or penalty.",
        f"  5. Restore at t={fmt(mk['restore'])} ({d['restore_action'] or 'none'}); primary /health OK at t={fmt(mk['primary_ok'])}.",
        f"  6. Failback: first response from {d['target']} {fmt(m['failback_time_s'])} after its health turned OK.",
        "",
        "Figures:",
        f"  failover_time_s      {fmt(m['failover_time_s'])}   (from the primary gone; reference procedure: 1.15 s)",
        f"  fault_call_s         {fmt(m.get('fault_call_s'))}   (how long the engine call took; reported, not judged)",
        f"  availability         {fmt(m.get('availability_pct'), ' %')}   (2xx of all requests)",
        f"  failover_penalty_s   {fmt(m['failover_penalty_s'])}   (secondary steady median {fmt(a['secondary_steady_median_s'])}; "
        f"request sent at t={fmt((a.get('penalty_request') or {}).get('sent_at_s'))}, once the engine call had returned)",
        f"  teardown window      {tw.get('requests', 0)} request(s) sent after the primary was gone, before the engine "
        f"call returned: {tw.get('failed', 0)} failed, slowest {fmt(tw.get('max_latency_s'))} (not judged for the penalty)",
        f"  failed_requests      {m['failed_requests']} of {m['total_requests']}",
        f"  served_by_secondary  {str(m['served_by_secondary']).lower()}",
        f"  served before fault  {before.get(d['target'], 0)} by {d['target']}, "
        f"{before.get(d['secondary'], 0)} by {d['secondary']}",
        f"  in-flight penalty    {fmt(fl['max_penalty_s'])}   (worst in-flight request on the secondary, not judged)",
        f"  failback_time_s      {fmt(m['failback_time_s'])}",
        f"  restored             {str(m['restored']).lower()}",
        f"  primary's timeout    {fmt(d['per_attempt_timeout_s'])}",
        "",
        "Latency      requests errors  p50      p95      max",
    ]
    for phase in ("before", "during", "after"):
        s = lat[phase]
        lines.append(f"  {phase:10} {s['requests']:>8} {s['errors']:>6}  {fmt(s['p50_s'])}  {fmt(s['p95_s'])}  {fmt(s['max_s'])}")
    if d.get("network_fault"):
        lines += ["", *network_text(d["network_fault"])]
    lines += ["", "Timeline (one row per second of sending):", render_rows(rows, d["target"], d["secondary"])]
    for n in d["notes"]:
        lines.append(f"NOTE: {n}")
    return "\n".join(lines)
