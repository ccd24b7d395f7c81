"""The streaming side of `llmops chaos failover --stream`: pre-flight, load, evidence and text.

`chaos/failover.py` runs the experiment (fault, restore, wait for failback) the same way for both
loads and hands over here for what differs: the request is a stream, and a stream can be cut.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import EnvironmentProblem
from ..evidence import CheckResult
from ..gateway_config import RouterSummary
from ..runner import Run
from .common import Frame
from .modes import HUNG_MODES
from .stream_analysis import StreamAnalysis, analyse_streams, cut_rows, render_cut_rows, stream_dod
from .streamload import StreamLoadGenerator, StreamProof, StreamRequest, stream_once
from .timeline import Marks, SecondRow, analyse, failover_metrics, fmt, in_effect

# The plain analysis' figures a streamed run's metrics carry, and the streamed analysis' own.
BASE_METRICS = ("failover_time_s", "failover_penalty_s", "served_by_secondary", "failback_time_s")
STREAM_METRICS = ("failed_requests", "total_requests", "cut_streams", "in_flight_on_primary", "cut_in_flight_on_primary",
                  "tokens_lost", "failed_to_start", "ttft_penalty_s", "stall_detect_s")


def stream_preflight(gateway_url: str, key: str, router: RouterSummary | None, max_tokens: int) -> list[StreamProof]:
    """Send the load's own streamed request to every deployment by its id: proves each streams
    whole through the gateway before any fault (else exit 4), and leaves the standby's prompt
    cache holding the load's prompt, as the plain pre-flight does for its request."""
    out = []
    for d in (router.deployments if router else []):
        dep = d.id
        if not dep:
            continue
        r = stream_once(gateway_url, key, dep, max_tokens, hosts=router.hosts if router else None)
        if not r.ok or r.backend != dep:
            why = r.error or (r.verdict.reason if r.verdict else "") or f"served by {r.backend}"
            raise EnvironmentProblem(f"pre-flight: a streamed completion through the gateway to {dep} was not "
                                     f"whole (HTTP {r.status}: {' '.join(why.split())[:150]}); refusing to inject a fault")
        out.append(StreamProof.of(dep, r))
    return out


def make_stream_load(gateway_url: str, key: str, alias: str, rps: float, duration_s: float, max_tokens: int,
                     run: Run) -> StreamLoadGenerator:
    def record(r: StreamRequest) -> None:
        v = r.verdict
        run.event("request", phase="failover", stream=True, t=run.to_run_time(r.t_send), seq=r.seq,
                  latency_s=round(r.latency_s, 4), status=r.status, backend=r.backend, model_id=r.model_id,
                  retries=r.retries, fallbacks=r.fallbacks, error=r.error, ok=r.ok, cut=r.cut,
                  ttft_s=None if r.ttft_s is None else round(r.ttft_s, 4), tokens=r.tokens,
                  done=bool(v and v.done), error_event=v.error_event if v else None,
                  finish_reason=v.finish_reason if v else None,
                  chunk_t=[round(run.to_run_time(r.t_send + c), 4) for c in r.chunk_s])
        if r.cut:
            run.event("stream_cut", phase="failover", t=run.to_run_time(r.t_done), seq=r.seq, backend=r.backend,
                      tokens_received=r.tokens, reason=v.reason if v else "no verdict")

    return StreamLoadGenerator(gateway_url, key, alias, rps, duration_s, on_request=record, max_tokens=max_tokens)


def stream_result(reqs: list[StreamRequest], m: Marks, o: Any, frame: Frame, router: RouterSummary | None,
                  details: dict[str, Any], started_at: str, t_wall: float) -> tuple[CheckResult, str]:
    """The streamed run's evidence: `details` is failover.failover_details' head, its analyses and
    timeline go after it.  `o`: the FailoverOptions (mode, max_tokens)."""
    base = analyse(reqs, m)
    s = analyse_streams(reqs, m, o.mode, o.max_tokens)
    # the target's: what its hang costs a new stream before the fallback (None: LiteLLM's default)
    st = router.stream_timeout_s(details["target"]) if router is not None else None
    sj = s.to_json()
    own = {**{k: sj[k] for k in STREAM_METRICS},
           "ttft": {ph: {"p50_s": v.ttft_p50_s, "p95_s": v.ttft_p95_s} for ph, v in s.ttft.items()}}
    metrics = failover_metrics(base, reqs, frame.restored, details["marks"].get("fault_call_s"), BASE_METRICS, own)
    dod = stream_dod(s, base, o.mode, st, frame.restored)
    rows = cut_rows(reqs, m)
    every = {str(dep.id): dep.stream_timeout for dep in (router.deployments if router else [])}
    details = {**details, "stream": True, "stream_timeout_s": st, "stream_timeouts_s": every, "analysis": base.to_json(),
               "stream_analysis": sj, "timeline": [row.to_json() for row in rows],
               "streams": [{**r.to_json(), "sent_at_s": round(r.t_send - m.t_start, 4)} for r in reqs]}
    r = CheckResult("failover", started_at, time.perf_counter() - t_wall, metrics, dod, details)
    return r, stream_text(r, s, rows)


def stream_text(r: CheckResult, s: StreamAnalysis, rows: list[SecondRow]) -> str:
    d, m, mk = r.details, r.metrics, r.details["marks"]

    def secs(x: Any) -> str:
        return "LiteLLM's default" if x is None else f"{float(x):g} s"

    first = s.first_stream_after_fault
    fates = ", ".join(f"{n} {k}" for k, n in sorted(s.in_flight_fates.items())) or "none"
    lines = [
        f"Streaming failover test: {d['target']} -> {d['secondary']} through the gateway, fault mode `{d['mode']}`",
        "",
        "Scenario:",
        "  1. Pre-flight: every service Up (healthy); the load's streamed request answered whole by "
        + (" and ".join(w["deployment"] for w in d.get("stream_preflight") or []) or "no deployment") + ".",
        f"  2. Steady state: {d['rps']:g} streamed completions/s of max_tokens={d['max_tokens']} (open loop); "
        f"TTFT p50 {fmt(s.ttft.before.ttft_p50_s)}.",
        f"  3. Fault at t={fmt(mk['fault'])}{in_effect(mk)}: docker {d['mode']} {d['target']}; {s.in_flight_on_primary} stream(s) "
        f"in flight on it: {fates}.",
        f"  4. First stream sent after the fault: t={fmt(first.sent_at_s if first else None)}, first token after "
        f"{fmt(first.ttft_s if first else None)} from {first.backend if first else None}.",
        f"  5. Restore at t={fmt(mk['restore'])} ({d['restore_action'] or 'none'}); primary /health OK at "
        f"t={fmt(mk['primary_ok'])}; failback {fmt(m['failback_time_s'])} after.",
        "",
        "Figures (a cut stream is a failed request even with HTTP 200):",
        f"  cut_streams          {m['cut_streams']} (in flight on the primary at the fault: "
        f"{s.in_flight_on_primary}, of them cut: {s.cut_in_flight_on_primary})",
        f"  tokens_lost          {m['tokens_lost']} (delivered before the cuts)",
        f"  failed_to_start      {m['failed_to_start']} (after the fault: {s.failed_to_start_after_fault})",
        f"  failed_requests      {m['failed_requests']} of {m['total_requests']}",
        f"  ttft_penalty_s       {fmt(m['ttft_penalty_s'])}   (secondary steady TTFT median "
        f"{fmt(s.secondary_steady_ttft_median_s)})",
        f"  stall_detect_s       {fmt(m['stall_detect_s'])}" + ("   (pause: fault to the stalled stream's end)"
                                                                if d["mode"] in HUNG_MODES else ""),
        f"  stream_timeout       {secs(d['stream_timeout_s'])} on {d['target']}"
        + "".join(f", {secs(t)} on {dep}" for dep, t in (d.get("stream_timeouts_s") or {}).items()
                  if dep != d["target"]),
        f"  failover_time_s      {fmt(m['failover_time_s'])}   (first whole stream from {d['secondary']})",
        f"  failback_time_s      {fmt(m['failback_time_s'])}",
        f"  restored             {str(m['restored']).lower()}",
        "",
        "TTFT         streams failed  cut   p50      p95      max",
    ]
    for ph, t in s.ttft.items():
        lines.append(f"  {ph:10} {t.streams:>7} {t.failed:>6} {t.cut:>4}  {fmt(t.ttft_p50_s)}  "
                     f"{fmt(t.ttft_p95_s)}  {fmt(t.ttft_max_s)}")
    if s.healthy:
        lines += ["", "Healthy margin (whole streams served on the first attempt; stream_timeout must stay above):"]
        for b, h in s.healthy.items():
            lines.append(f"  {b:16} {h.streams:>3} streams   TTFT max {fmt(h.ttft_max_s)}   "
                         f"longest chunk gap {fmt(h.gap_max_s)}")
    lines += ["", "Timeline (one row per second of sending):", render_cut_rows(rows, d["target"], d["secondary"])]
    if s.cut:
        lines += ["", "Cut streams:"]
        for c in s.cut:
            lines.append(f"  #{c.seq} sent t={fmt(c.sent_at_s)} ended t={fmt(c.end_at_s)} on {c.backend} "
                         f"after {c.tokens} tokens: {c.cut_reason}")
    ex = s.cut_example
    if ex:
        lines += ["", f"Raw SSE tail of cut stream #{ex.seq} (what the client received last):"]
        lines += ["  " + ln for ln in ex.raw_sse_tail.splitlines()[-8:]]
    for n in d["notes"]:
        lines.append(f"NOTE: {n}")
    return "\n".join(lines)
