"""Pure analysis of a failover run's request timeline into DESIGN's metrics.

Inputs are requests on one monotonic clock plus the moments of fault, restore and the primary's
health turning OK.  Definitions (README, "Failover: what is measured"):
- served_before_fault: who served the 2xx responses completed before the fault.  A failover is
  only measured if the primary served all of them: with the secondary already serving (shuffle
  routing, no `order`), a reply from it after the fault proves nothing;
- failover_time_s: the primary gone (t_dead) -> first 2xx response from the secondary to a request
  *sent* after t_dead (earliest completion).  t_dead is the engine's own record of the exit
  (State.FinishedAt) for stop/kill, the call's return for pause and the network faults: the clock
  measures the gateway, not how long a busy Docker daemon took to carry the fault out (that is
  fault_call_s, reported beside it).  Requests in flight at the fault are left out of it: under
  shuffle routing one of them is often already on the secondary, which made the figure ~0 by
  construction;
- failover_penalty_s: the latency of the first 2xx response from the secondary to a request sent
  once the fault was wholly in place (the engine's call returned, too) minus the secondary's
  steady-state median latency (the median of the secondary's later 2xx responses during the
  outage, once its path is warm); requests sent during the engine's teardown are reported apart;
- the fault is *issued* at t_fault and *in effect* at t_dead (a request sent meanwhile may still
  meet a live server);
- in_flight_at_fault: requests sent before t_dead and completed after the fault was issued.  They are reported on
  their own (count, who served them, how many LiteLLM retried, worst latency and penalty) and
  count in failed_requests when they fail, but they set neither failover time nor penalty;
- failed_requests: every non-2xx or transport error during the whole run;
- failback_time_s: primary health OK -> first response completed afterwards that the primary served.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..evidence import JsonObject
from ..rounding import rounded

T = TypeVar("T")


class Req(Protocol):
    t_send: float
    latency_s: float
    status: int | None
    backend: str | None

    @property
    def t_done(self) -> float: ...

    @property
    def ok(self) -> bool: ...


@dataclass
class Marks:
    t_start: float
    t_fault: float
    t_restore: float | None
    t_primary_ok: float | None
    primary: str
    secondary: str
    t_dead: float | None = None   # the primary was gone (chaos.faults.fault_clock); None: t_fault
    t_returned: float | None = None   # the engine call returned: the engine's own clean-up is done

    @property
    def t_effect(self) -> float:
        return self.t_fault if self.t_dead is None else self.t_dead

    @property
    def t_in_place(self) -> float:
        """The fault wholly in place: the primary gone and the engine's call returned."""
        return max(self.t_effect, self.t_returned if self.t_returned is not None else self.t_effect)


def in_effect(marks: JsonObject) -> str:
    """For the evidence text, from its `details.marks`: when the primary was gone (requests sent
    before it count as in flight at the fault)."""
    t = marks.get("fault_in_effect")
    return "" if t is None else f" (primary gone at t={t:.3f} s)"


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure is a latency that really happened)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, math.ceil(p / 100 * len(s)) - 1)
    return s[k]


@dataclass
class Phases(Generic[T]):
    """One figure before the fault, during the outage and after it (its keys in the evidence)."""

    before: T
    during: T
    after: T

    def items(self) -> list[tuple[str, T]]:
        return [("before", self.before), ("during", self.during), ("after", self.after)]


def phases(reqs: Sequence[Any], m: Marks, stats: Callable[[list[Any]], T]) -> Phases[T]:
    """`stats` of the requests sent before the fault, during the outage (up to the primary healthy
    again) and after it."""
    outage_end = m.t_primary_ok if m.t_primary_ok is not None else math.inf
    return Phases(stats([r for r in reqs if r.t_send < m.t_fault]),
                  stats([r for r in reqs if m.t_fault <= r.t_send < outage_end]),
                  stats([r for r in reqs if r.t_send >= outage_end]))


@dataclass
class LatencyStats:
    requests: int
    errors: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


def _stats(reqs: Sequence[Req]) -> LatencyStats:
    lat = [r.latency_s for r in reqs]
    return LatencyStats(len(reqs), sum(not r.ok for r in reqs), rounded(percentile(lat, 50), 4),
                        rounded(percentile(lat, 95), 4), rounded(max(lat) if lat else None, 4))


@dataclass
class Samples:
    """How many observations each figure rests on (the DoD lines' samples)."""

    secondary_after_fault: int
    steady: int
    done_before_fault: int


@dataclass
class RequestRef:
    """One request the figures name: its number, when it was sent (from the load's start), its latency."""

    seq: int | None
    sent_at_s: float | None
    latency_s: float | None


@dataclass
class TeardownWindow:
    """Requests sent after the primary was gone and before the engine's call returned."""

    seconds: float | None
    requests: int
    failed: int
    max_latency_s: float | None
    max_penalty_s: float | None


@dataclass
class InFlight:
    """Requests sent before the fault and completed after it.  Those the secondary served lost
    whatever work the primary had done on them (under ordered routing they are LiteLLM's retries),
    so their extra latency is shown here rather than mixed into the failover time or penalty."""

    requests: int
    failed: int
    served: dict[str, int]
    retried_on_secondary: int
    seqs_on_secondary: list[int | None]
    max_latency_s: float | None
    max_penalty_s: float | None


@dataclass
class FailoverAnalysis:
    """The figures of one failover run (the module's docstring defines them).  Its fields are the
    evidence's `details.analysis`, in that order: `to_json` writes them."""

    failover_time_s: float | None
    failover_penalty_s: float | None
    samples: Samples
    failed_requests: int
    total_requests: int
    served_by_secondary: bool
    served_before_fault: dict[str, int]   # primary first, then secondary
    failback_time_s: float | None
    secondary_steady_median_s: float | None
    # The secondary's own steady state during the outage, for the limits: its p95 reply and how
    # far its slowest reply lies above its median.  On a busy machine one reply varies by that
    # much with no failover at all.
    secondary_steady_p95_s: float | None
    secondary_steady_spread_s: float | None
    first_failover_request: RequestRef | None
    penalty_request: RequestRef | None
    teardown_window: TeardownWindow
    in_flight_at_fault: InFlight
    latency: Phases[LatencyStats]
    served: dict[str, int]

    def to_json(self) -> JsonObject:
        return asdict(self)


def _retried(r: Req) -> bool:
    """LiteLLM's x-litellm-attempted-retries header says the gateway retried this request."""
    n = getattr(r, "retries", None)
    return n not in (None, "", "0")


def _ref(r: Req | None, m: Marks) -> RequestRef | None:
    if r is None:
        return None
    return RequestRef(getattr(r, "seq", None), rounded(r.t_send - m.t_start, 4), rounded(r.latency_s, 4))


def _over(latencies: list[float], median: float | None) -> float | None:
    """The slowest of `latencies` over the secondary's steady median (None without either)."""
    return rounded(max(latencies) - median, 4) if latencies and median is not None else None


def analyse(reqs: Sequence[Req], m: Marks) -> FailoverAnalysis:
    reqs = sorted(reqs, key=lambda r: r.t_send)
    # By completion, not by sending: a request completed before the fault was served while the
    # primary was still up, so the secondary serving it means traffic was shared before any fault.
    done_before = [r for r in reqs if r.ok and r.t_done < m.t_fault]
    after_fault = sorted((r for r in reqs if r.ok and r.backend == m.secondary and r.t_send >= m.t_effect),
                         key=lambda r: r.t_done)
    first = after_fault[0] if after_fault else None
    # The penalty is the gateway's own cost once the fault is wholly in place.  A request sent
    # while the engine is still tearing the dead container down (after its exit, before the call
    # returned: 0.2-0.45 s on a busy machine) can wait on that clean-up, which is the engine's
    # latency, not the gateway's; such requests are reported apart (teardown_window) and count
    # in failed_requests, but set no penalty.  For pause and the network faults the two moments
    # are one.
    judged = [r for r in after_fault if r.t_send >= m.t_in_place]
    pen_first = judged[0] if judged else None
    outage_end = m.t_primary_ok if m.t_primary_ok is not None else math.inf
    steady = ([r.latency_s for r in judged[1:] if r.t_send >= pen_first.t_done and r.t_send < outage_end]
              if pen_first else [])
    steady_median = statistics.median(steady) if steady else None
    penalty = (pen_first.latency_s - steady_median) if pen_first and steady_median is not None else None
    teardown = [r for r in reqs if m.t_effect <= r.t_send < m.t_in_place]
    failback = None
    if m.t_primary_ok is not None:
        back = sorted((r for r in reqs if r.ok and r.backend == m.primary and r.t_done >= m.t_primary_ok),
                      key=lambda r: r.t_done)
        failback = back[0].t_done - m.t_primary_ok if back else None
    in_flight = [r for r in reqs if r.t_send < m.t_effect and r.t_done >= m.t_fault]
    in_flight_sec = [r for r in in_flight if r.ok and r.backend == m.secondary]
    return FailoverAnalysis(
        failover_time_s=rounded(first.t_done - m.t_effect if first else None, 4),
        failover_penalty_s=rounded(penalty, 4),
        samples=Samples(len(after_fault), len(steady), len(done_before)),
        failed_requests=sum(not r.ok for r in reqs),
        total_requests=len(reqs),
        served_by_secondary=first is not None,
        served_before_fault=_served(done_before, m),
        failback_time_s=rounded(failback, 4),
        secondary_steady_median_s=rounded(steady_median, 4),
        secondary_steady_p95_s=rounded(percentile(steady, 95), 4) if steady else None,
        secondary_steady_spread_s=rounded(max(steady) - steady_median, 4) if steady else None,
        first_failover_request=_ref(first, m),
        penalty_request=_ref(pen_first, m),
        teardown_window=TeardownWindow(
            rounded(m.t_in_place - m.t_effect, 4), len(teardown), sum(not r.ok for r in teardown),
            rounded(max((r.latency_s for r in teardown), default=None), 4),
            _over([r.latency_s for r in teardown], steady_median)),
        in_flight_at_fault=InFlight(
            len(in_flight), sum(not r.ok for r in in_flight), _served(in_flight, m),
            sum(1 for r in in_flight_sec if _retried(r)), [getattr(r, "seq", None) for r in in_flight_sec],
            rounded(max((r.latency_s for r in in_flight), default=None), 4),
            _over([r.latency_s for r in in_flight_sec], steady_median)),
        latency=phases(reqs, m, _stats),
        served=_served(reqs, m),
    )


def _served(reqs: Sequence[Req], m: Marks) -> dict[str, int]:
    """How many of `reqs` each of the two servers answered with a 2xx, primary first."""
    return {b: sum(1 for r in reqs if r.ok and r.backend == b) for b in (m.primary, m.secondary)}


def availability_pct(reqs: Sequence[Req]) -> float | None:
    """2xx responses of all requests the load sent, in percent: the reference procedure's
    "service availability 99 %+" row, measured.  None when nothing was sent."""
    return round(100.0 * sum(1 for r in reqs if r.ok) / len(reqs), 3) if reqs else None


def failover_metrics(a: FailoverAnalysis, reqs: Sequence[Req], restored: bool, fault_call_s: float | None,
                     figures: Sequence[str], extra: JsonObject | None = None) -> JsonObject:
    """A failover run's metrics: the analysis' `figures` (by their evidence keys), the load's own
    `extra`, then what every load's metrics end with."""
    j = a.to_json()
    return {**{k: j[k] for k in figures}, **(extra or {}), "fault_call_s": fault_call_s,
            "availability_pct": availability_pct(reqs), "restored": restored, "latency": j["latency"]}


def fmt(x: Any, unit: str = " s") -> str:
    """A figure for the evidence text: 3 decimals for a float, n/a for none."""
    return "n/a" if x is None else f"{x:.3f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def seconds(reqs: Sequence[Req], m: Marks) -> Iterator[tuple[int, list[Any], list[str], dict[str, int]]]:
    """Each second of sending: its requests, the marks that fall in it, and who served them."""
    if not reqs:
        return
    end = max(r.t_send for r in reqs)
    for sec in range(int(end - m.t_start) + 1):
        lo, hi = m.t_start + sec, m.t_start + sec + 1
        bucket = [r for r in reqs if lo <= r.t_send < hi]
        marks = [n for n, v in (("FAULT", m.t_fault), ("RESTORE", m.t_restore), ("PRIMARY OK", m.t_primary_ok))
                 if v is not None and lo <= v < hi]
        served: dict[str, int] = {}
        for r in bucket:
            if r.ok and r.backend:
                served[r.backend] = served.get(r.backend, 0) + 1
        yield sec, bucket, marks, served


@dataclass(frozen=True)
class SecondRow:
    """One second of sending: its counts, who served, its slowest figure, the marks that fall in
    it.  `to_json` writes the evidence's `details.timeline` row: second, the counts in order
    (a plain run's requests and errors; a streamed run's streams, whole, cut, no_start), served,
    the slowest under `worst_key` (max_latency_s; max_ttft_s), marks."""

    second: int
    counts: dict[str, int]
    served: dict[str, int]          # 2xx replies (whole streams) by backend
    worst_key: str
    worst_s: float | None
    marks: list[str]                # FAULT, RESTORE, PRIMARY OK

    def to_json(self) -> JsonObject:
        return {"second": self.second, **self.counts, "served": self.served, self.worst_key: self.worst_s,
                "marks": self.marks}


def per_second(reqs: Sequence[Req], m: Marks) -> list[SecondRow]:
    """One row per second of the run: requests sent, errors, and who served them."""
    rows = []
    for sec, bucket, marks, served in seconds(reqs, m):
        lat = [r.latency_s for r in bucket]
        rows.append(SecondRow(sec, {"requests": len(bucket), "errors": sum(not r.ok for r in bucket)}, served,
                              "max_latency_s", rounded(max(lat) if lat else None, 4), marks))
    return rows


def render_seconds(rows: Sequence[SecondRow], primary: str, secondary: str, counts: Sequence[tuple[str, str, int]],
                   worst: str) -> str:
    """The per-second table: each row's `counts` (heading, key, width), who served, its slowest
    figure (under the heading `worst`, in seconds) and its marks."""
    out = [f"{'t(s)':>5} " + "".join(f"{head:>{w}} " for head, _, w in counts)
           + f"{primary[:14]:>14} {secondary[:14]:>14} {worst:>8}  events"]
    for row in rows:
        v = row.worst_s
        out.append(f"{row.second:>5} " + "".join(f"{row.counts[key]:>{w}} " for _, key, w in counts)
                   + f"{row.served.get(primary, 0):>14} {row.served.get(secondary, 0):>14} "
                   f"{(f'{v:.3f}' if v is not None else '-'):>8}  {' '.join(row.marks)}")
    return "\n".join(out)


def render_rows(rows: Sequence[SecondRow], primary: str, secondary: str) -> str:
    return render_seconds(rows, primary, secondary, (("req", "requests", 4), ("err", "errors", 4)), "max lat")
