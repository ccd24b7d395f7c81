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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..rounding import rounded
from ..evidence import Criterion


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


def in_effect(marks: dict[str, Any]) -> str:
    """For the evidence text: when the primary was gone (requests sent before it count as in
    flight at the fault)."""
    t = marks.get("fault_in_effect")
    return "" if t is None else f" (primary gone at t={t:.3f} s)"


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure is a latency that really happened)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, math.ceil(p / 100 * len(s)) - 1)
    return s[k]


def _stats(reqs: Sequence[Req]) -> dict[str, Any]:
    lat = [r.latency_s for r in reqs]
    return {"requests": len(reqs), "errors": sum(not r.ok for r in reqs),
            "p50_s": rounded(percentile(lat, 50), 4), "p95_s": rounded(percentile(lat, 95), 4), "max_s": rounded(max(lat) if lat else None, 4)}


def _retried(r: Req) -> bool:
    """LiteLLM's x-litellm-attempted-retries header says the gateway retried this request."""
    n = getattr(r, "retries", None)
    return n not in (None, "", "0")


def analyse(reqs: Sequence[Req], m: Marks) -> dict[str, Any]:
    reqs = sorted(reqs, key=lambda r: r.t_send)
    failed = [r for r in reqs if not r.ok]
    # By completion, not by sending: a request completed before the fault was served while the
    # primary was still up, so the secondary serving it means traffic was shared before any fault.
    done_before = [r for r in reqs if r.ok and r.t_done < m.t_fault]
    served_before = {b: sum(1 for r in done_before if r.backend == b) for b in (m.primary, m.secondary)}
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
    failover_time = first.t_done - m.t_effect if first else None
    penalty = (pen_first.latency_s - steady_median) if pen_first and steady_median is not None else None
    teardown = [r for r in reqs if m.t_effect <= r.t_send < m.t_in_place]
    failback = None
    if m.t_primary_ok is not None:
        back = sorted((r for r in reqs if r.ok and r.backend == m.primary and r.t_done >= m.t_primary_ok),
                      key=lambda r: r.t_done)
        failback = back[0].t_done - m.t_primary_ok if back else None
    in_flight = [r for r in reqs if r.t_send < m.t_effect and r.t_done >= m.t_fault]
    in_flight_sec = [r for r in in_flight if r.ok and r.backend == m.secondary]
    before = [r for r in reqs if r.t_send < m.t_fault]
    during = [r for r in reqs if m.t_fault <= r.t_send < outage_end]
    after = [r for r in reqs if r.t_send >= outage_end]
    return {
        "failover_time_s": rounded(failover_time, 4),
        "failover_penalty_s": rounded(penalty, 4),
        # How many observations each figure rests on (the DoD lines' samples).
        "samples": {"secondary_after_fault": len(after_fault), "steady": len(steady),
                    "done_before_fault": len(done_before)},
        "failed_requests": len(failed),
        "total_requests": len(reqs),
        "served_by_secondary": first is not None,
        "served_before_fault": served_before,
        "failback_time_s": rounded(failback, 4),
        "secondary_steady_median_s": rounded(steady_median, 4),
        # The secondary's own steady state during the outage, for the limits: its p95 reply and how
        # far its slowest reply lies above its median.  On a busy machine one reply varies by that
        # much with no failover at all.
        "secondary_steady_p95_s": rounded(percentile(steady, 95), 4) if steady else None,
        "secondary_steady_spread_s": rounded(max(steady) - steady_median, 4) if steady else None,
        "first_failover_request": ({"seq": getattr(first, "seq", None), "sent_at_s": rounded(first.t_send - m.t_start, 4),
                                    "latency_s": rounded(first.latency_s, 4)} if first else None),
        "penalty_request": ({"seq": getattr(pen_first, "seq", None), "sent_at_s": rounded(pen_first.t_send - m.t_start, 4),
                             "latency_s": rounded(pen_first.latency_s, 4)} if pen_first else None),
        # Sent after the primary was gone and before the engine's call returned.
        "teardown_window": {
            "seconds": rounded(m.t_in_place - m.t_effect, 4),
            "requests": len(teardown), "failed": sum(not r.ok for r in teardown),
            "max_latency_s": rounded(max((r.latency_s for r in teardown), default=None), 4),
            "max_penalty_s": rounded(max(r.latency_s for r in teardown) - steady_median
                                if teardown and steady_median is not None else None, 4),
        },
        # Sent before the fault, completed after it.  Those the secondary served lost whatever work
        # the primary had done on them (under ordered routing they are LiteLLM's retries), so their
        # extra latency is shown here rather than mixed into the failover time or penalty.
        "in_flight_at_fault": {
            "requests": len(in_flight),
            "failed": sum(not r.ok for r in in_flight),
            "served": {b: sum(1 for r in in_flight if r.ok and r.backend == b) for b in (m.primary, m.secondary)},
            "retried_on_secondary": sum(1 for r in in_flight_sec if _retried(r)),
            "seqs_on_secondary": [getattr(r, "seq", None) for r in in_flight_sec],
            "max_latency_s": rounded(max((r.latency_s for r in in_flight), default=None), 4),
            "max_penalty_s": rounded(max(r.latency_s for r in in_flight_sec) - steady_median
                                if in_flight_sec and steady_median is not None else None, 4),
        },
        "latency": {"before": _stats(before), "during": _stats(during), "after": _stats(after)},
        "served": {b: sum(1 for r in reqs if r.ok and r.backend == b) for b in (m.primary, m.secondary)},
    }


def availability_pct(reqs: Sequence[Req]) -> float | None:
    """2xx responses of all requests the load sent, in percent: the reference procedure's
    "service availability 99 %+" row, measured.  None when nothing was sent."""
    return round(100.0 * sum(1 for r in reqs if r.ok) / len(reqs), 3) if reqs else None


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


def per_second(reqs: Sequence[Req], m: Marks) -> list[dict[str, Any]]:
    """One row per second of the run: requests sent, errors, and who served them."""
    rows = []
    for sec, bucket, marks, served in seconds(reqs, m):
        lat = [r.latency_s for r in bucket]
        rows.append({"second": sec, "requests": len(bucket), "errors": sum(not r.ok for r in bucket),
                     "served": served, "max_latency_s": rounded(max(lat) if lat else None, 4), "marks": marks})
    return rows


def render_rows(rows: list[dict[str, Any]], primary: str, secondary: str) -> str:
    out = [f"{'t(s)':>5} {'req':>4} {'err':>4} {primary[:14]:>14} {secondary[:14]:>14} {'max lat':>8}  events"]
    for row in rows:
        ml = row["max_latency_s"]
        out.append(f"{row['second']:>5} {row['requests']:>4} {row['errors']:>4} {row['served'].get(primary, 0):>14} "
                   f"{row['served'].get(secondary, 0):>14} {(f'{ml:.3f}' if ml is not None else '-'):>8}  "
                   f"{' '.join(row['marks'])}")
    return "\n".join(out)


def before_fault_criterion(a: dict[str, Any]) -> Criterion:
    """The DoD line every failover variant shares.  Without it the other lines prove nothing: a
    secondary already sharing the traffic (no `order`) answers right after any fault, with no
    failover at all."""
    before = a["served_before_fault"]
    primary, secondary = before          # analyse() keys it primary first
    n = before[primary] + before[secondary]
    return Criterion.judge("primary served all traffic before the fault",
                           f"0 by {secondary}, >= {MIN_BEFORE_FAULT} by {primary}", before,
                           lambda b: b[secondary] == 0, samples=n, need=MIN_BEFORE_FAULT,
                           shown=f"{before[secondary]} by {secondary}, {before[primary]} by {primary}")


# A steady state of fewer replies than this shows nothing about who served before the fault.
MIN_BEFORE_FAULT = 3
