"""What /health reports: per-dependency readings that a background watcher keeps fresh.

/health never waits on a dependency itself, so it answers at once whatever Qdrant or the
embedding server does; the readings lag the truth by at most
``health_interval_s + health_probe_timeout_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from .errors import describe
from .settings import Settings


@dataclass
class DependencyWatch:
    """What the background watcher last learnt about one dependency.

    ``reading`` is what /health reports: down while the probe in flight has gone
    unanswered longer than ``answer_within_s``, else the latest finished probe's result,
    unless that result is older than ``max_age_s`` (the watcher itself stalled).
    """

    url: str
    ok: bool | None = None
    error: str | None = None
    checked_at: float | None = None     # monotonic time the latest probe finished
    latency_s: float | None = None
    inflight_since: float | None = None

    def started(self, now: float) -> None:
        self.inflight_since = now

    def finished(self, ok: bool, error: str | None, now: float) -> None:
        self.latency_s = now - self.inflight_since if self.inflight_since is not None else None
        self.ok, self.error, self.checked_at, self.inflight_since = ok, error, now, None

    def reading(self, now: float, answer_within_s: float, max_age_s: float) -> tuple[bool, str | None]:
        if self.inflight_since is not None and now - self.inflight_since > answer_within_s:
            return False, f"no answer for {now - self.inflight_since:.2f} s"
        if self.checked_at is None:
            return False, "not probed yet"
        if now - self.checked_at > max_age_s:
            return False, f"last probe finished {now - self.checked_at:.1f} s ago (health watcher stalled)"
        return bool(self.ok), self.error

    def snapshot(self, now: float, answer_within_s: float, max_age_s: float) -> dict[str, Any]:
        ok, error = self.reading(now, answer_within_s, max_age_s)
        return {
            "ok": ok,
            "error": error,
            "age_s": None if self.checked_at is None else round(now - self.checked_at, 4),
            "probe_latency_s": None if self.latency_s is None else round(self.latency_s, 4),
            "in_flight_s": None if self.inflight_since is None else round(now - self.inflight_since, 4),
        }


class HealthWatcher:
    """Probes Qdrant's /readyz and the embedding server's /health, one probe at a time each."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        # A probe may outlive the time after which its dependency reads as down: a slow but
        # alive dependency's late answer then turns the reading back to up.
        self.probe_give_up_s = max(1.0, 4 * settings.health_probe_timeout_s)
        # A separate pool for probes, so a probe never queues behind a stalled request.
        self.probe_http = httpx.AsyncClient(timeout=self.probe_give_up_s)
        self.deps = {
            "qdrant": DependencyWatch(f"{settings.qdrant_url}/readyz"),
            "embedding": DependencyWatch(f"{settings.embedding_url}/health"),
        }
        self.first_probes = asyncio.Event()
        self.started_at = time.monotonic()

    async def close(self) -> None:
        await self.probe_http.aclose()

    async def probe(self, url: str) -> tuple[bool, str | None]:
        try:
            resp = await self.probe_http.get(url)
        except httpx.HTTPError as exc:
            return False, describe(exc)
        if resp.status_code != 200:
            return False, f"HTTP {resp.status_code}"
        return True, None

    def policy(self) -> dict[str, Any]:
        return {
            "interval_s": self.s.health_interval_s,
            "probe_timeout_s": self.s.health_probe_timeout_s,
            "max_lag_s": round(self.s.health_interval_s + self.s.health_probe_timeout_s, 4),
        }

    def _max_age_s(self) -> float:
        return self.s.health_interval_s + self.probe_give_up_s + 1.0

    async def watch(self, dep: DependencyWatch) -> None:
        """Probe one dependency for ever, one probe at a time, ``health_interval_s`` apart."""
        while True:
            dep.started(time.monotonic())
            try:
                ok, error = await asyncio.wait_for(self.probe(dep.url), self.probe_give_up_s)
            except asyncio.TimeoutError:
                ok, error = False, f"no answer in {self.probe_give_up_s:g} s"
            dep.finished(ok, error, time.monotonic())
            if all(d.checked_at is not None for d in self.deps.values()):
                self.first_probes.set()
            await asyncio.sleep(self.s.health_interval_s)

    def watchers(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The background tasks that keep /health's readings fresh, by task name."""
        return {f"rag-watch-{name}": self.watch(dep) for name, dep in self.deps.items()}

    async def checks(self) -> dict[str, dict[str, Any]]:
        """Each dependency's reading now, by name."""
        # Only right after start: wait for the first probes rather than report "not probed yet"
        # as down, but never past the moment a probe still in flight would read as down anyway.
        wait_s = self.started_at + self.s.health_probe_timeout_s + 0.05 - time.monotonic()
        if not self.first_probes.is_set() and wait_s > 0:
            try:
                await asyncio.wait_for(self.first_probes.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        now, within, max_age = time.monotonic(), self.s.health_probe_timeout_s, self._max_age_s()
        return {name: dep.snapshot(now, within, max_age) for name, dep in self.deps.items()}
