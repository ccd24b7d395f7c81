"""The circuit breaker over Qdrant queries: an outage costs callers one attempt, not the whole deadline."""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("rag")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class CircuitBreaker:
    """Tracks query outcomes against Qdrant.

    closed: full retry policy. After ``threshold`` consecutive failed queries it opens.
    open: each query makes a single attempt (no retries), so an outage costs callers
    one attempt's timeout instead of the whole deadline; a success closes it.
    half_open: after ``reset_s`` in open, the next query gets the full policy again.
    """

    def __init__(self, threshold: int, reset_s: float) -> None:
        self.threshold = max(1, threshold)
        self.reset_s = reset_s
        self.state = "closed"
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_ok_at: str | None = None
        self.last_failure_at: str | None = None
        self.opened_at_mono: float | None = None
        self.transitions: list[dict[str, Any]] = []

    def _move(self, new: str, reason: str) -> None:
        if new != self.state:
            self.transitions = (self.transitions + [{"at": now_iso(), "from": self.state, "to": new, "reason": reason}])[-20:]
            log.info("breaker %s -> %s (%s)", self.state, new, reason)
            self.state = new

    def current(self) -> str:
        if self.state == "open" and self.opened_at_mono is not None:
            if time.monotonic() - self.opened_at_mono >= self.reset_s:
                self._move("half_open", f"{self.reset_s}s elapsed since opening")
        return self.state

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.last_ok_at = now_iso()
        self.opened_at_mono = None
        self._move("closed", "query succeeded")

    def record_failure(self, error: str) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        self.last_failure_at = now_iso()
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            self.opened_at_mono = time.monotonic()
            self._move("open", f"{self.consecutive_failures} consecutive failed queries: {error}")

    def retry_after_s(self) -> int:
        if self.state == "open" and self.opened_at_mono is not None:
            return max(1, math.ceil(self.reset_s - (time.monotonic() - self.opened_at_mono)))
        return 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.current(),
            "consecutive_failures": self.consecutive_failures,
            "threshold": self.threshold,
            "reset_s": self.reset_s,
            "last_error": self.last_error,
            "last_failure_at": self.last_failure_at,
            "last_ok_at": self.last_ok_at,
            "transitions": self.transitions[-5:],
        }
