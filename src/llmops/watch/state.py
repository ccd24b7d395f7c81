"""Which backend the gateway is on, and the running totals: pure state over the probes' answers.

The gateway probe says each interval which compose service served it (or that it got no
answer).  From that sequence alone:
- the gateway is *on the secondary* while the last answered probe was served by a secondary;
- a *failover* is a move from the primary to a secondary, a *failback* the move back;
- a probe that got no answer (or no backend header) changes neither: the gateway is where it was
  last seen, so a blip does not reset "on the secondary for 5 minutes", and the failed probe is
  counted on its own;
- a backend that is neither (an unknown host) is "other": not the secondary, and a move from or
  to it is no failover;
- the first answer only sets where the gateway is: a watch started mid-outage counts no failover
  it did not see, but the failback it then sees is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PRIMARY, SECONDARY, OTHER = "primary", "secondary", "other"


@dataclass
class BackendTracker:
    primary: str | None
    secondaries: frozenset[str]
    backend: str | None = None          # the service that served the last answered probe
    failovers: int = 0
    failbacks: int = 0

    def kind(self, backend: str | None) -> str | None:
        if backend is None:
            return None
        if backend == self.primary:
            return PRIMARY
        return SECONDARY if backend in self.secondaries else OTHER

    @property
    def on_secondary(self) -> bool:
        return self.kind(self.backend) == SECONDARY

    def observe(self, backend: str | None) -> str | None:
        """One probe's backend (None: no answer); "failover", "failback" or None."""
        if backend is None:
            return None
        before, after = self.kind(self.backend), self.kind(backend)
        self.backend = backend
        if before == PRIMARY and after == SECONDARY:
            self.failovers += 1
            return "failover"
        if before == SECONDARY and after == PRIMARY:
            self.failbacks += 1
            return "failback"
        return None

    def follow(self, primary: str | None, secondaries: frozenset[str]) -> None:
        """The stack was read again (a container recreated): keep the history, use the new roles."""
        self.primary, self.secondaries = primary, secondaries


@dataclass
class Tally:
    """Counters that only grow, per key (a service name, or "" for the gateway probe)."""

    probes: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, ok: bool) -> None:
        self.probes[key] = self.probes.get(key, 0) + 1
        self.failures[key] = self.failures.get(key, 0) + (0 if ok else 1)


@dataclass
class Transitions:
    """Up/down edges per service, for the lines `watch` prints (not a metric: the metric is the
    level, Prometheus sees the edges)."""

    up: dict[str, bool] = field(default_factory=dict)

    def observe(self, service: str, is_up: bool) -> str | None:
        before = self.up.get(service)
        self.up[service] = is_up
        if before is None or before == is_up:
            return None
        return "up" if is_up else "down"
