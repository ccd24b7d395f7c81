"""Real faults through the Docker SDK, and their undo."""

from __future__ import annotations

import datetime as _dt
import re
import time
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .modes import ENGINE_RECORD_MODES, MODES


def inject_into(c: Any, mode: str) -> None:
    """The fault alone, on a container already looked up: the engine's inspect takes longer than
    the kill itself (~0.15 s here), and requests sent meanwhile still meet a live server."""
    if mode == "stop":
        c.stop(timeout=1)
    elif mode == "kill":
        c.kill()          # SIGKILL: no graceful shutdown, connection refused at once
    elif mode == "pause":
        c.pause()         # a hung server: accepts connections, never answers
    else:
        raise UsageError(f"unknown fault mode {mode!r}; valid: {', '.join(MODES)}")


# The engine's own record of a process's exit (ENGINE_RECORD_MODES) is the moment the primary was
# gone.  Requests sent between the call and that moment met a live (or dying) server, so they count
# as in flight.
# Slack for the engine's and our clocks (both the host's wall clock) when placing FinishedAt
# inside the call's window.
CLOCK_SLACK_S = 0.005


@dataclass(frozen=True)
class FaultClock:
    """A fault's moments on the run's monotonic clock: the call issued and returned, and when the
    primary was gone (`t_dead`), with the source of that moment."""

    t_issued: float
    t_returned: float
    t_dead: float
    source: str           # "State.FinishedAt", "call returned", or why the issue time was used

    @property
    def call_s(self) -> float:
        return self.t_returned - self.t_issued


def parse_docker_time(value: Any) -> float | None:
    """Docker's RFC 3339 nanosecond UTC time (`2026-12-03T06:30:01.123456789Z`) as epoch seconds;
    None for the zero time Docker writes before a container first exited, or anything unreadable."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value.strip())
    if not m:
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return _dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp()
    except ValueError:
        return None


def fault_clock(mode: str, t_issued: float, wall_issued: float, t_returned: float, wall_returned: float,
                finished_at: Any = None) -> FaultClock:
    """When the primary was gone.  `stop`/`kill`: the container's `State.FinishedAt`, mapped onto
    the monotonic clock through the wall/monotonic pair read when the call returned.  It must lie
    inside the call (a stale FinishedAt from an earlier exit, or an unreadable one, does not): if
    it does not, the issue time is used, which can only make the failover look slower, never
    faster.  Every other mode (pause, network faults): the moment the call returned, when the
    cgroup was frozen or the rule in place."""
    if mode not in ENGINE_RECORD_MODES:
        return FaultClock(t_issued, t_returned, t_returned, "call returned")
    epoch = parse_docker_time(finished_at)
    if epoch is None:
        return FaultClock(t_issued, t_returned, t_issued,
                          f"State.FinishedAt unreadable ({str(finished_at)[:40]!r}): timed from the call issued")
    if not (wall_issued - CLOCK_SLACK_S <= epoch <= wall_returned + CLOCK_SLACK_S):
        return FaultClock(t_issued, t_returned, t_issued,
                          f"State.FinishedAt {finished_at} lies outside the call: timed from the call issued")
    t_dead = t_returned - (wall_returned - epoch)
    return FaultClock(t_issued, t_returned, min(max(t_dead, t_issued), t_returned), "State.FinishedAt")


def undo(client: Any, container_id: str) -> str:
    """Bring the container back to running, whatever the fault was; safe to call twice."""
    c = client.containers.get(container_id)
    c.reload()
    st = c.attrs["State"]
    if st.get("Paused"):
        c.unpause()
        return "unpaused"
    if st.get("Running") or st.get("Restarting"):
        return "already running"
    c.start()
    return "started"


def wait_running(client: Any, container_id: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = client.containers.get(container_id)
        st = c.attrs["State"]
        if st.get("Running") and not st.get("Paused"):
            return True
        time.sleep(0.2)
    return False
