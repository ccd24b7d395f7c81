"""DoD lines that the plain, the network-fault and the streamed failover share.

They live apart from all three so that chaos/failover.py can import the network-fault DoD
(chaos/net_dod.py) and the streamed one (chaos/stream_analysis.py), and those can use these
lines, with no import cycle."""

from __future__ import annotations

from ..evidence import Criterion
from .timeline import FailoverAnalysis

# Whatever the config says, a hung primary must not hold traffic longer than this: LiteLLM's
# default timeout (6000 s) would otherwise make the line "<= 6000.5 s", which nothing fails.
HUNG_FAILOVER_CEILING_S = 10.0
# The fewest requests a run's "0 failed" may rest on (a second of the default load).
MIN_REQUESTS = 5


# What the retry on the secondary may take, at least, after the hung attempt's timeout.
RETRY_ALLOWANCE_S = 0.5


def hung_failover_limit_s(attempt_timeout: float | None, secondary_p95_s: float | None = None) -> float:
    """The failover_time_s limit for a hung primary: one per-attempt timeout plus the retry on the
    secondary, 0.5 s or the secondary's own p95 reply in the same outage if that is longer (on a
    busy machine its normal replies took 0.4-0.8 s, and a fixed 0.5 s failed a failover that cost
    exactly one timeout); never above HUNG_FAILOVER_CEILING_S (an unknown timeout gets the ceiling)."""
    if attempt_timeout is None:
        return HUNG_FAILOVER_CEILING_S
    return round(min(attempt_timeout + max(RETRY_ALLOWANCE_S, secondary_p95_s or 0.0), HUNG_FAILOVER_CEILING_S), 4)


def hung_line(label: str, a: FailoverAnalysis, attempt_timeout: float | None) -> Criterion:
    """failover_time_s when the primary hangs (or is cut off): within one per-attempt timeout."""
    p95 = a.secondary_steady_p95_s
    limit = hung_failover_limit_s(attempt_timeout, p95)
    retry = max(RETRY_ALLOWANCE_S, p95 or 0.0)
    how = (f"the primary's timeout {attempt_timeout:g} s + {retry:g} s for the retry (0.5 s or the secondary's "
           f"p95 reply), at most {HUNG_FAILOVER_CEILING_S:g} s"
           if attempt_timeout is not None else "the primary's timeout unknown: cannot be judged")
    # An unknown timeout is missing evidence: the line fails as not measured.
    return Criterion.judge(f"failover_time_s ({label})", f"<= {limit:g} s ({how})",
                           a.failover_time_s if attempt_timeout is not None else None, lambda v: v <= limit,
                           samples=min(a.samples.secondary_after_fault, 1), unit=" s")


def restored_line(what: str, restored: bool) -> Criterion:
    return Criterion.judge(f"restored ({what} back, stack healthy)", "true", restored, lambda v: v is True,
                           samples=1)


def tail_lines(a: FailoverAnalysis, restored: bool, failback: bool = True) -> list[Criterion]:
    out = [restored_line("primary", restored)]
    if failback:
        fb = a.failback_time_s
        out.append(Criterion.judge("failback_time_s measured", "a value", fb, True,
                                   samples=1 if fb is not None else 0, unit=" s"))
    return out


def failover_lines(a: FailoverAnalysis) -> list[Criterion]:
    """The lines every failover of a whole outage opens with: nothing failed, and the traffic went
    from the primary alone to the secondary."""
    return [failed_line(a), *served_lines(a)]


def served_lines(a: FailoverAnalysis) -> list[Criterion]:
    """The primary alone served before the fault, the secondary after it."""
    return [before_fault_criterion(a), secondary_line(a)]


def failed_line(a: FailoverAnalysis, label: str = "failed_requests during the whole run") -> Criterion:
    return Criterion.judge(label, "0", a.failed_requests, lambda n: n == 0,
                           samples=a.total_requests, need=MIN_REQUESTS)


def secondary_line(a: FailoverAnalysis) -> Criterion:
    n = a.samples.secondary_after_fault
    return Criterion.judge("served_by_secondary after the fault", "true", bool(a.served_by_secondary),
                           lambda v: v is True, samples=n)


def before_fault_criterion(a: FailoverAnalysis) -> Criterion:
    """The DoD line every failover variant shares.  Without it the other lines prove nothing: a
    secondary already sharing the traffic (no `order`) answers right after any fault, with no
    failover at all."""
    before = a.served_before_fault
    primary, secondary = before          # analyse() keys it primary first
    n = before[primary] + before[secondary]
    return Criterion.judge("primary served all traffic before the fault",
                           f"0 by {secondary}, >= {MIN_BEFORE_FAULT} by {primary}", before,
                           lambda b: b[secondary] == 0, samples=n, need=MIN_BEFORE_FAULT,
                           shown=f"{before[secondary]} by {secondary}, {before[primary]} by {primary}")


# A steady state of fewer replies than this shows nothing about who served before the fault.
MIN_BEFORE_FAULT = 3
