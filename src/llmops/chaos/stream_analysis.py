"""Pure analysis of a streaming failover run: which streams were cut, what it cost, the DoD lines.

Inputs are `StreamRequest`s on the load generator's monotonic clock and the same `Marks` the
plain analysis uses (fault, restore, primary healthy again).  Definitions:
- a stream is **in flight at the fault** when it was sent before the fault was in effect (the
  engine's call returned, `Marks.t_effect`) and ended after the fault was issued; it
  is **on the primary** unless the gateway's headers name the secondary (then the gateway fell
  back before its first chunk);
- `cut_streams`: streams that answered 200 and then broke (see `sse.judge`); every one is a
  failed request;
- `tokens_lost`: content tokens cut streams had delivered before they broke;
- `failed_to_start`: requests that never delivered a first token (non-200, transport error, or a
  200 with no content);
- `ttft_penalty_s`: the first stream sent after the fault was in effect, its time to first token over the
  secondary's steady median TTFT (streams the secondary served later in the outage);
- `stall_detect_s` (pause): from the fault to the end of the slowest stalled in-flight stream.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..rounding import rounded
from ..evidence import Criterion, JsonObject
from .dod_common import served_lines, tail_lines
from .modes import HUNG_MODES, REFUSED_MODES
from .streamload import StreamRequest
from .timeline import FailoverAnalysis, Marks, Phases, SecondRow, percentile, phases, render_seconds, seconds

TTFT_PENALTY_LIMIT_S = 0.1
PAUSE_TTFT_SLACK_S = 0.5


@dataclass
class TtftStats:
    streams: int
    failed: int
    cut: int
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    ttft_max_s: float | None


@dataclass
class HealthyMargin:
    """A backend's worst first token and chunk gap over the whole first-attempt streams it served."""

    streams: int
    ttft_max_s: float | None
    ttft_p95_s: float | None
    gap_max_s: float | None


@dataclass
class StreamBrief:
    """One stream as the evidence lists it (times from the load's start)."""

    seq: int
    sent_at_s: float | None
    end_at_s: float | None
    backend: str | None
    status: int | None
    tokens: int
    ttft_s: float | None
    fate: str
    cut_reason: str | None


@dataclass
class CutExample(StreamBrief):
    raw_sse_tail: str


@dataclass
class FirstStream:
    seq: int
    sent_at_s: float | None
    ttft_s: float | None
    backend: str | None
    ok: bool


@dataclass
class StreamAnalysis:
    """The figures of one streamed failover run (the module's docstring defines them).  Its fields
    are the evidence's `details.stream_analysis`, in that order: `to_json` writes them."""

    total_requests: int
    failed_requests: int
    cut_streams: int
    in_flight_at_fault: int
    in_flight_on_primary: int
    cut_in_flight_on_primary: int
    cut_not_in_flight: int
    failed_not_in_flight: int
    tokens_lost: int
    failed_to_start: int
    failed_to_start_after_fault: int
    streams_after_fault: int
    steady_ttft_samples: int
    ttft_during_outage_samples: int
    ttft_penalty_s: float | None
    secondary_steady_ttft_median_s: float | None
    first_stream_after_fault: FirstStream | None
    max_ttft_during_outage_s: float | None
    stall_detect_s: float | None
    stall_gap_s: float | None
    completed_across_fault: int
    duplicated_text: int
    reference_text: str | None
    ttft: Phases[TtftStats]
    healthy: dict[str, HealthyMargin]
    in_flight: list[StreamBrief]
    in_flight_fates: dict[str, int]
    cut: list[StreamBrief]
    cut_example: CutExample | None
    max_tokens: int

    def to_json(self) -> JsonObject:
        return asdict(self)


def _ttft_stats(reqs: Sequence[StreamRequest]) -> TtftStats:
    t = [r.ttft_s for r in reqs if r.ttft_s is not None]
    return TtftStats(len(reqs), sum(not r.ok for r in reqs), sum(r.cut for r in reqs), rounded(percentile(t, 50), 4),
                     rounded(percentile(t, 95), 4), rounded(max(t) if t else None, 4))


def max_gap_s(r: StreamRequest) -> float | None:
    """The longest wait the client had for the next chunk: the first token, then each gap."""
    if not r.chunk_s:
        return None
    return max(b - a for a, b in zip([0.0, *r.chunk_s], r.chunk_s))


@dataclass
class _Served:
    """One backend's whole first-attempt streams: each one's first token and longest chunk gap."""

    ttft: list[float | None] = field(default_factory=list)
    gap: list[float | None] = field(default_factory=list)


def healthy_margins(reqs: Sequence[StreamRequest]) -> dict[str, HealthyMargin]:
    """Per backend, the worst first token and chunk gap of whole streams it served on the first
    attempt.  `stream_timeout` is the HTTP read timeout for both: a deployment's value must stay
    above these, or the gateway cuts (or cools down) a healthy server."""
    out: dict[str, _Served] = {}
    for r in reqs:
        if not r.ok or r.backend is None or r.retries not in (None, "0"):
            continue
        b = out.setdefault(r.backend, _Served())
        b.ttft.append(r.ttft_s)
        b.gap.append(max_gap_s(r))
    return {k: HealthyMargin(len(v.ttft), rounded(max(v.ttft), 4), rounded(percentile(v.ttft, 95), 4),
                             rounded(max(v.gap), 4)) for k, v in sorted(out.items())}


def in_flight(r: StreamRequest, m: Marks) -> bool:
    """Sent before the fault was in effect, ended after it was issued."""
    return r.t_send < m.t_effect and r.t_done > m.t_fault


def fate(r: StreamRequest, m: Marks) -> str:
    """What became of a stream in flight at the fault."""
    if r.cut:
        return "cut"
    if r.status != 200:
        return "failed"
    if r.backend == m.secondary:
        return "fell back before its first chunk"
    return "completed"


def reference_text(reqs: Sequence[StreamRequest]) -> str | None:
    """The text whole streams carried most often (temperature 0: both servers run one model, so a
    whole answer is the same text; a stream continued on the fallback with the prompt re-sent
    would repeat its beginning)."""
    texts = Counter(r.verdict.text for r in reqs if r.ok and r.verdict is not None)
    return texts.most_common(1)[0][0] if texts else None


def brief(r: StreamRequest, m: Marks) -> StreamBrief:
    return StreamBrief(r.seq, rounded(r.t_send - m.t_start, 4), rounded(r.t_done - m.t_start, 4), r.backend, r.status,
                       r.tokens, rounded(r.ttft_s, 4), fate(r, m), r.verdict.reason if (r.cut and r.verdict) else None)


def _first_stream(r: StreamRequest | None, m: Marks) -> FirstStream | None:
    if r is None:
        return None
    return FirstStream(r.seq, rounded(r.t_send - m.t_start, 4), rounded(r.ttft_s, 4), r.backend, r.ok)


def analyse_streams(reqs: Sequence[StreamRequest], m: Marks, mode: str, max_tokens: int) -> StreamAnalysis:
    reqs = sorted(reqs, key=lambda r: r.t_send)
    tf = m.t_fault
    outage_end = m.t_primary_ok if m.t_primary_ok is not None else math.inf
    flying = [r for r in reqs if in_flight(r, m)]
    on_primary = [r for r in flying if r.backend != m.secondary]
    cut = [r for r in reqs if r.cut]
    after = [r for r in reqs if r.t_send >= m.t_effect]
    first_after = after[0] if after else None
    sec_after = [r for r in after if r.ok and r.backend == m.secondary and r.ttft_s is not None]
    steady = [r.ttft_s for r in sec_after[1:] if r.t_send < outage_end and r.ttft_s is not None]
    steady_med = statistics.median(steady) if steady else None
    penalty = (first_after.ttft_s - steady_med) if (first_after is not None and first_after.ttft_s is not None
                                                    and steady_med is not None) else None
    ref = reference_text(reqs)
    completed_across = [r for r in on_primary if fate(r, m) == "completed"]
    dup = [r for r in completed_across if ref is not None and r.verdict is not None and r.verdict.text != ref]
    stalled = [r for r in on_primary if r.cut] if mode in HUNG_MODES else []
    ttft_after = [r.ttft_s for r in after if r.t_send < outage_end and r.ttft_s is not None]
    example = next((r for r in cut if r in on_primary), cut[0] if cut else None)
    return StreamAnalysis(
        total_requests=len(reqs),
        failed_requests=sum(not r.ok for r in reqs),
        cut_streams=len(cut),
        in_flight_at_fault=len(flying),
        in_flight_on_primary=len(on_primary),
        cut_in_flight_on_primary=sum(r.cut for r in on_primary),
        cut_not_in_flight=sum(1 for r in cut if r not in on_primary),
        failed_not_in_flight=sum(1 for r in reqs if not r.ok and r not in on_primary),
        tokens_lost=sum(r.tokens for r in cut),
        failed_to_start=sum(not r.started for r in reqs),
        failed_to_start_after_fault=sum(not r.started for r in after),
        streams_after_fault=len(after),
        steady_ttft_samples=len(steady),
        ttft_during_outage_samples=len(ttft_after),
        ttft_penalty_s=rounded(penalty, 4),
        secondary_steady_ttft_median_s=rounded(steady_med, 4),
        first_stream_after_fault=_first_stream(first_after, m),
        max_ttft_during_outage_s=rounded(max(ttft_after) if ttft_after else None, 4),
        stall_detect_s=rounded(max((r.t_done - tf for r in stalled), default=None), 4),
        stall_gap_s=rounded(max((r.t_done - (r.t_last_chunk or r.t_send) for r in stalled), default=None), 4),
        completed_across_fault=len(completed_across),
        duplicated_text=len(dup),
        reference_text=ref,
        ttft=phases(reqs, m, _ttft_stats),
        healthy=healthy_margins(reqs),
        in_flight=[brief(r, m) for r in flying],
        in_flight_fates=dict(Counter(fate(r, m) for r in on_primary)),
        cut=[brief(r, m) for r in cut],
        cut_example=CutExample(**asdict(brief(example, m)), raw_sse_tail=example.raw_tail) if example else None,
        max_tokens=max_tokens,
    )


def stream_dod(s: StreamAnalysis, base: FailoverAnalysis, mode: str, stream_timeout: float | None,
               restored: bool) -> list[Criterion]:
    """DoD lines of a streaming failover.  `base` is the plain analysis of the same requests
    (timeline.analyse), for served_by_secondary and failback.

    The experiment exists to see what becomes of a stream the primary was serving when it died:
    a run with none in flight is inconclusive (a failing line that says so), and "no repeated
    text" is only a claim when at least one stream was continued across the fault."""
    fates = s.in_flight_fates
    n, after = s.total_requests, s.streams_after_fault
    flying = s.in_flight_on_primary
    dod = [
        Criterion.judge("streams in flight on the primary at the fault (else the run is inconclusive)", ">= 1",
                        flying, lambda k: k >= 1,
                        samples=n, need=MIN_STREAMS,
                        shown=(f"{flying}: " + ", ".join(f"{k} {f}" for f, k in sorted(fates.items()))
                               if flying else "0: inconclusive, no stream was in flight on the primary when it "
                               "died, so the cut-stream classification was not exercised")),
        Criterion.judge("streams sent after the fault that failed to start", "0", s.failed_to_start_after_fault,
                        lambda k: k == 0, samples=after),
        Criterion.judge("cut streams not in flight on the primary at the fault (fault time from the timeline)", "0",
                        s.cut_not_in_flight, lambda k: k == 0, samples=n, need=MIN_STREAMS,
                        shown=f"{s.cut_not_in_flight} ({s.cut_streams} cut; in flight on the primary: {flying})"),
        Criterion.judge("failed streams not in flight on the primary at the fault", "0", s.failed_not_in_flight,
                        lambda k: k == 0, samples=n, need=MIN_STREAMS),
    ]
    if s.completed_across_fault:
        dod.append(Criterion.judge("streams completed across the fault repeat no text", "0 duplicated",
                                   s.duplicated_text, lambda k: k == 0, samples=s.completed_across_fault,
                                   shown=f"{s.duplicated_text} of {s.completed_across_fault} differ from "
                                   "the steady answer"))
    dod += served_lines(base)
    if mode in REFUSED_MODES:
        dod.append(Criterion.judge("ttft_penalty_s (first stream sent after the fault)", f"< {TTFT_PENALTY_LIMIT_S} s",
                                   s.ttft_penalty_s, lambda p: p < TTFT_PENALTY_LIMIT_S,
                                   samples=s.steady_ttft_samples, need=1, unit=" s"))
    else:
        limit = (stream_timeout or 0) + PAUSE_TTFT_SLACK_S
        mx = s.max_ttft_during_outage_s
        dod.append(Criterion.judge("first token of every stream sent during the outage",
                                   f"<= {limit:g} s (stream_timeout + {PAUSE_TTFT_SLACK_S:g} s)",
                                   mx if stream_timeout is not None else None, lambda v: v <= limit,
                                   samples=s.ttft_during_outage_samples, shown=f"max {mx} s"))
    return dod + tail_lines(base, restored)


# A streamed run needs this many streams in all before its counts of cut and failed streams mean anything.
MIN_STREAMS = 3


def cut_rows(reqs: Sequence[StreamRequest], m: Marks) -> list[SecondRow]:
    """Per second of sending: streams whole, cut, failed to start; TTFT max."""
    rows = []
    for sec, b, marks, served in seconds(reqs, m):
        t = [r.ttft_s for r in b if r.ttft_s is not None]
        counts = {"streams": len(b), "whole": sum(r.ok for r in b), "cut": sum(r.cut for r in b),
                  "no_start": sum(not r.started for r in b)}
        rows.append(SecondRow(sec, counts, served, "max_ttft_s", rounded(max(t) if t else None, 4), marks))
    return rows


def render_cut_rows(rows: Sequence[SecondRow], primary: str, secondary: str) -> str:
    return render_seconds(rows, primary, secondary, (("sent", "streams", 4), ("whole", "whole", 5), ("cut", "cut", 4),
                                                     ("nostart", "no_start", 7)), "max ttft")
