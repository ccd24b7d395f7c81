"""DoD lines that the plain failover and the network-fault variants share.

They live apart from both so that chaos/failover.py can import the network-fault DoD
(chaos/net_dod.py) and the network-fault DoD can use these lines, with no import cycle."""

from __future__ import annotations

from typing import Any

from ..evidence import Criterion

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


def hung_line(label: str, ft: float | None, attempt_timeout: float | None, samples: int,
              secondary_p95_s: float | None = None) -> Criterion:
    limit = hung_failover_limit_s(attempt_timeout, secondary_p95_s)
    retry = max(RETRY_ALLOWANCE_S, secondary_p95_s or 0.0)
    how = (f"the primary's timeout {attempt_timeout:g} s + {retry:g} s for the retry (0.5 s or the secondary's "
           f"p95 reply), at most {HUNG_FAILOVER_CEILING_S:g} s"
           if attempt_timeout is not None else "the primary's timeout unknown: cannot be judged")
    # An unknown timeout is missing evidence: the line fails as not measured.
    return Criterion.judge(f"failover_time_s ({label})", f"<= {limit:g} s ({how})",
                           ft if attempt_timeout is not None else None, lambda v: v <= limit,
                           samples=samples, unit=" s")


def tail_lines(a: dict[str, Any], restored: bool, failback: bool = True) -> list[Criterion]:
    out = [Criterion.judge("restored (primary back, stack healthy)", "true", restored, lambda v: v is True,
                           samples=1)]
    if failback:
        fb = a["failback_time_s"]
        out.append(Criterion.judge("failback_time_s measured", "a value", fb, True,
                                   samples=1 if fb is not None else 0, unit=" s"))
    return out


def failed_line(a: dict[str, Any], label: str = "failed_requests during the whole run") -> Criterion:
    return Criterion.judge(label, "0", a["failed_requests"], lambda n: n == 0,
                           samples=a["total_requests"], need=MIN_REQUESTS)


def secondary_line(a: dict[str, Any]) -> Criterion:
    n = a["samples"]["secondary_after_fault"]
    return Criterion.judge("served_by_secondary after the fault", "true", bool(a["served_by_secondary"]),
                           lambda v: v is True, samples=n)
