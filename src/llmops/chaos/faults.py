"""Real faults through the Docker SDK, and their undo."""

from __future__ import annotations

import time
from typing import Any

from ..errors import UsageError

MODES = ("stop", "kill", "pause")


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
