"""The network-fault variant of `chaos failover` (partition, blackhole, loss): its evidence, its
Definition of Done and its text.  Its frame is chaos/netframe.py's; chaos/failover.py runs the
experiment and asks `network_outcome` for the rest (nothing here imports it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..evidence import Criterion, JsonObject
from .common import Frame
from .dod_common import MIN_REQUESTS, before_fault_criterion, failover_lines, hung_line, tail_lines
from .modes import CUT_OFF_MODES
from .netframe import FaultOptions
from .timeline import FailoverAnalysis


def _count(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class ProbeCounts:
    """The gateway probe's samples before or during the fault: how many connected, how many
    failed to run (None: not probed, or an older summary)."""

    samples: int
    reached: int | None
    failed: int | None


@dataclass(frozen=True)
class NetworkEvidence:
    """The network fault's own evidence: the frame's record (`NetFaultFrame.summary`, with its
    divergence sampler's figures), kept whole for `details.network_fault`, and what the DoD reads
    of it."""

    record: JsonObject

    @property
    def dropped_packets(self) -> int | None:
        return _count(self.record.get("dropped_packets"))

    @property
    def before(self) -> ProbeCounts:
        return self._probes("before")

    @property
    def during(self) -> ProbeCounts:
        return self._probes("during")

    def _probes(self, when: str) -> ProbeCounts:
        r = self.record
        return ProbeCounts(_count(r.get(f"samples_{when}")) or 0, _count(r.get(f"gateway_reached_{when}")),
                           _count(r.get(f"probe_failed_{when}")))


@dataclass
class NetworkOutcome:
    """What a network fault adds to a failover run: its DoD (instead of the container fault's)
    and its evidence, `details.network_fault` and `details.fault_description`."""

    dod: list[Criterion]
    network_fault: NetworkEvidence
    fault_description: str

    def details(self) -> JsonObject:
        return {"network_fault": self.network_fault.record, "fault_description": self.fault_description}


def network_outcome(frame: Frame, a: FailoverAnalysis, o: FaultOptions, attempt_timeout: float | None,
                    retries: Any, metrics: JsonObject, description: str) -> NetworkOutcome | None:
    """The network fault's evidence and DoD; None for a container fault (its frame has no evidence
    of its own).  `retries`: router_settings.num_retries; `description`: netframe.fault_words."""
    network = net_evidence(frame, metrics)
    if network is None:
        return None
    return NetworkOutcome(network_dod(a, o.mode, frame.restored, attempt_timeout, o.loss_pct, network, retries),
                          network, description)


def net_evidence(frame: Frame, metrics: JsonObject) -> NetworkEvidence | None:
    """The network fault's own evidence (health divergence, dropped packets), into the metrics too."""
    frame.finish()
    record = frame.summary()
    if record is None:
        return None
    # the metrics carry the record's own values, whatever their type
    metrics["health_divergence_s"] = record.get("health_divergence_s")
    if record.get("loss_pct") is not None:
        metrics["loss_pct"] = record["loss_pct"]
    if record.get("rule"):
        metrics["dropped_packets"] = record.get("dropped_packets")
    return NetworkEvidence(record)


def network_dod(a: FailoverAnalysis, mode: str, restored: bool, attempt_timeout: float | None,
                loss_pct: float | None, nf: NetworkEvidence, retries: Any) -> list[Criterion]:
    """partition and blackhole: nothing fails and the gateway gives up on the primary within one
    attempt (the hung-server limit, 10 s at most), and the gateway's own probe, shown to work before
    the fault, could not connect during it; loss: no more requests fail than the retry policy
    (`retries`, router_settings.num_retries; None: not measured) allows at that loss, at every
    loss rate.  All: the primary alone served before the fault, and the fault really cut the
    gateway off."""
    if mode in CUT_OFF_MODES:
        return [*failover_lines(a), hung_line(mode, a, attempt_timeout), probe_before_line(nf), cut_line(nf),
                *tail_lines(a, restored)]
    dod = [loss_line(a, loss_pct or 0.0, retries), before_fault_criterion(a)]
    dropped = nf.dropped_packets
    dod.append(Criterion.judge("packets dropped by the loss rule", "> 0", dropped, lambda n: n > 0,
                               samples=1 if dropped is not None else 0))
    return dod + tail_lines(a, restored, failback=False)


# ---- packet loss: how many failed requests the retry policy allows (docs/loss-bound.md) ----------------

# Gateway->primary packets an attempt needs on a fresh connection: the SYN, the handshake's last
# ACK and the request (a one-token completion's JSON fits one segment).  The gateway's ACKs of the
# reply are not counted: the reply has arrived by then.  A kept-alive connection needs the request
# alone, so 3 overstates how often an attempt is hit, which only loosens the bound.
LOSS_PACKETS_PER_ATTEMPT = 3
# Binomial standard deviations added to the expected failures.
LOSS_MARGIN_SIGMA = 3.0


def attempt_hit_p(p: float, packets_per_attempt: int) -> float:
    """q: the chance that a DROP of a fraction p of the gateway's packets hits one of an attempt's
    packets.  Counting every hit as a failed attempt overstates it: a dropped segment costs a
    retransmit (>= 200 ms; 1 s for a SYN) and fails the attempt only when that outlasts its timeout."""
    return 1.0 - (1.0 - p) ** packets_per_attempt


def request_failure_p(p: float, retries: int, packets_per_attempt: int) -> float:
    """f: the chance that a request fails.  It fails only if every attempt fails.  The first goes to
    the primary, behind the rule (hit with q); each retry goes to the secondary, because the failure
    cools the primary down (allowed_fails 0), and the secondary is behind no rule, so loss fails a
    retry with probability 0: f = q * 0**retries, q with no retry and 0 with one or more."""
    retry_hit = 0.0
    return attempt_hit_p(p, packets_per_attempt) * retry_hit ** retries


def loss_failure_bound(p: float, retries: int, packets_per_attempt: int, n_requests: int, margin: float) -> int:
    """The most failed requests of `n_requests` that per-packet loss `p` (0-1) explains under the
    retry policy: the expected n*f plus `margin` binomial standard deviations, rounded down."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"loss {p!r} is not a probability")
    if retries < 0 or packets_per_attempt < 1 or n_requests < 0 or margin < 0:
        raise ValueError("retries, n_requests and margin must be >= 0 and packets_per_attempt >= 1")
    f = request_failure_p(p, retries, packets_per_attempt)
    expected = n_requests * f
    # The small epsilon keeps an exact integer (say 0.0 + 0) from rounding down past itself.
    return math.floor(expected + margin * math.sqrt(n_requests * f * (1.0 - f)) + 1e-9)


def loss_bound_words(p: float, retries: int, packets_per_attempt: int, n_requests: int, margin: float) -> str:
    """How the bound was derived, for the line's `expected`."""
    q = attempt_hit_p(p, packets_per_attempt)
    f = request_failure_p(p, retries, packets_per_attempt)
    head = f"q = 1-(1-{p:g})^{packets_per_attempt} = {q:.1%} per primary attempt"
    if retries:
        how = (f"{head}; num_retries {retries}, each retry on the secondary, behind no rule: f = q*0^{retries} = 0")
    else:
        how = f"{head}; num_retries 0: every hit attempt fails its request, f = q"
    sigma = math.sqrt(n_requests * f * (1.0 - f))
    return f"{how}; {n_requests} x f = {n_requests * f:.1f} expected + {margin:g} sigma ({sigma:.1f}); docs/loss-bound.md"


def _retry_count(retries: Any) -> int | None:
    if isinstance(retries, bool) or retries is None:
        return None
    try:
        r = int(retries)
    except (TypeError, ValueError):
        return None
    return r if r >= 0 and r == float(retries) else None


def loss_line(a: FailoverAnalysis, pct: float, retries: Any) -> Criterion:
    """failed_requests at every loss rate, against the bound the retry policy gives.  The run's
    every request counts in n, though the loss lasts the outage only: that overstates exposure,
    which only loosens the bound (and changes nothing with a retry: f = 0)."""
    n, failed = a.total_requests, a.failed_requests
    label = f"failed_requests at {pct:g} % packet loss"
    r = _retry_count(retries)
    if r is None:   # no retry policy, no bound: missing evidence, not a pass
        return Criterion.judge(label, f"<= a bound from router_settings.num_retries ({retries!r}: cannot be judged)",
                               None, True, samples=n, need=MIN_REQUESTS)
    p, k = pct / 100.0, LOSS_PACKETS_PER_ATTEMPT
    bound = loss_failure_bound(p, r, k, n, LOSS_MARGIN_SIGMA)
    return Criterion.judge(label, f"<= {bound} of {n} ({loss_bound_words(p, r, k, n, LOSS_MARGIN_SIGMA)})",
                           failed, lambda v: v <= bound, samples=n, need=MIN_REQUESTS, shown=f"{failed} of {n}")


# The gateway probe must have connected this often before the fault: a probe that never reached
# the primary would read as "cut off" during it without having shown that it can connect at all.
MIN_REACHED_BEFORE = 3
PROBE_WORDS = "TCP connects from its namespace"


def _probe_shown(reached: int | None, n: int, failed: int | None) -> str:
    if reached is None:
        return f"not probed ({n} samples)"
    return f"{reached} of {n} reached" + (f", probe failed ({failed})" if failed else "")


def probe_before_line(nf: NetworkEvidence) -> Criterion:
    """The probe's control: it reached the primary before the fault, so its silence during the
    fault is the network's, not its own.  Fewer than MIN_REACHED_BEFORE connects is not measured."""
    p = nf.before
    n, reached, failed = p.samples, p.reached, p.failed
    return Criterion.judge(f"gateway reached the primary before the fault ({PROBE_WORDS})",
                           f">= {MIN_REACHED_BEFORE} reached", reached, lambda v: v >= MIN_REACHED_BEFORE,
                           samples=reached or 0, need=MIN_REACHED_BEFORE, shown=_probe_shown(reached, n, failed))


def cut_line(nf: NetworkEvidence) -> Criterion:
    """No probe during the fault connected, and none failed to run: a failed probe saw nothing, so it
    is never counted as "not reached".  No samples means the cut was never observed: that fails."""
    p = nf.during
    during, reached, failed = p.samples, p.reached, p.failed
    # A missing failure count (not probed, or an older summary) leaves the line unmeasured.
    value = reached if failed is not None else None
    return Criterion.judge(f"gateway could not reach the primary during the fault ({PROBE_WORDS})",
                           "0 reached and 0 probe failures, >= 1 sample", value,
                           lambda n: n == 0 and failed == 0, samples=during,
                           shown=_probe_shown(reached, during, failed))


def network_text(nf: JsonObject) -> list[str]:
    """The text's lines for the evidence's `details.network_fault` record."""
    def v(x: Any) -> str:
        return "n/a" if x is None else str(x)

    lines = ["Network fault:",
             f"  tag                    {nf.get('tag')}",
             f"  network / primary ip   {nf.get('network')} / {nf.get('primary_ip')} (gateway {nf.get('gateway_ip')})"]
    if nf.get("rule"):
        lines.append(f"  rule (primary's netns) iptables -I INPUT {' '.join(nf['rule'])}")
    if nf.get("loss_pct") is not None:
        lines.append(f"  loss                   {nf['loss_pct']:g} % of the gateway's packets; dropped {v(nf.get('dropped_packets'))}")
    elif nf.get("dropped_packets") is not None:
        lines.append(f"  packets dropped        {nf['dropped_packets']}")
    lines += [
        f"  health divergence      {v(nf.get('health_divergence_s'))} s of {v(nf.get('outage_s'))} s outage: the primary's "
        "/health answered OK from the host while the gateway could not connect to it",
        f"  samples during fault   {v(nf.get('samples_during'))}: health OK {v(nf.get('health_ok_during'))}"
        + (f" ({nf['health_ok_via_netns']} inside its namespace: the published port went with the network)"
           if nf.get("health_ok_via_netns") else "") + ", "
        f"gateway connected {v(nf.get('gateway_reached_during'))}, cut {v(nf.get('gateway_cut_during'))}, "
        f"probe failed {v(nf.get('probe_failed_during'))} "
        f"(before the fault: {v(nf.get('gateway_reached_before'))} of {v(nf.get('samples_before'))} connected, "
        f"probe failed {v(nf.get('probe_failed_before'))})",
    ]
    if nf.get("probe_error"):
        lines.append(f"  first probe failure    {nf['probe_error']}")
    return lines
