"""Restore guarantees: signal handlers that turn SIGINT/SIGTERM into an orderly restore, ledger
replay after a crash, and a restore that counts only once health checks pass again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

# Interrupted and signals_raise live in errors.py: the check runner turns signals into the same
# exception between faults, so one handler covers a whole certify run.
from ..errors import Interrupted, RestoreFailed, signals_raise
from ..stack import Service, discover
from .faults import undo, wait_running
from .ledger import Entry, Ledger
from .modes import NET_MODES
from .netfaults import sweep, undo_net


__all__ = ["Interrupted", "signals_raise", "ledger_path", "http_ok", "wait_http_ok", "wait_stack_healthy",
           "restore_entry", "replay"]


def ledger_path(project_dir: Path) -> Path:
    return project_dir / ".llmops" / "restore-ledger.json"


def http_ok(url: str, timeout: float = 1.0, check: Callable[[Any], bool] | None = None) -> bool:
    try:
        r = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    if r.status_code != 200:
        return False
    if check is None:
        return True
    try:
        return bool(check(r.json()))
    except ValueError:
        return False


def wait_http_ok(url: str, timeout: float, check: Callable[[Any], bool] | None = None,
                 interval: float = 0.05) -> float | None:
    """Poll until the endpoint answers as expected; the monotonic time it first did, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url, min(1.0, max(0.05, deadline - time.monotonic())), check):
            return time.monotonic()
        time.sleep(interval)
    return None


def wait_stack_healthy(client: Any, project: str, declared: list[str], timeout: float) -> list[Service]:
    """Every declared service running and Docker-healthy, or RestoreFailed naming who is not."""
    deadline = time.monotonic() + timeout
    while True:
        svcs = {s.name: s for s in discover(client, project)}
        bad = [n for n in declared if n not in svcs or not svcs[n].up_healthy]
        if not bad:
            return list(svcs.values())
        if time.monotonic() > deadline:
            detail = ", ".join(f"{n} ({svcs[n].state}/{svcs[n].health})" if n in svcs else f"{n} (missing)" for n in bad)
            raise RestoreFailed(f"stack left degraded after restore: {detail}; run `llmops chaos restore`")
        time.sleep(0.5)


def restore_entry(client: Any, ledger: Ledger, entry: Entry) -> str:
    """Undo one fault; the ledger entry goes only once the container runs again."""
    import docker

    if entry.mode in NET_MODES:
        return _restore_net(client, ledger, entry)
    try:
        how = undo(client, entry.container_id)
    except docker.errors.NotFound:
        ledger.remove(entry)     # the container is gone (stack recreated): nothing left to undo
        return "container gone"
    except docker.errors.APIError as e:
        raise RestoreFailed(f"could not restore {entry.service}: {e.explanation or e}") from None
    if not wait_running(client, entry.container_id):
        raise RestoreFailed(f"{entry.service} did not come back to running after {how}")
    ledger.remove(entry)
    return how


def _restore_net(client: Any, ledger: Ledger, entry: Entry) -> str:
    """Undo a network fault; the entry goes only once its rules are gone or its network is back."""
    import docker

    try:
        how = undo_net(client, entry.mode, entry.container_id, entry.net, entry.tag)
    except docker.errors.NotFound:
        ledger.remove(entry)     # container (or network) gone with the stack: nothing left to undo
        return "container gone"
    except docker.errors.APIError as e:
        raise RestoreFailed(f"could not restore {entry.service} ({entry.mode}): {e.explanation or e}") from None
    ledger.remove(entry)
    return how


def replay(client: Any, ledger: Ledger, project: str, declared: list[str], timeout: float = 120.0,
           say: Callable[[str], None] = print) -> list[str]:
    """`llmops chaos restore`: undo every recorded fault of this project, then verify health."""
    done = []
    for e in ledger.entries():
        if e.project != project:
            continue
        how = restore_entry(client, ledger, e)
        say(f"restored {e.service} (fault was {e.mode}): {how}")
        done.append(e.service)
    # Also heal what no ledger knows about: a container left stopped or paused by hand, and
    # iptables rules tagged with this project whose ledger entry is gone.
    done += sweep(client, discover(client, project), project, say)
    for s in discover(client, project):
        if s.state in ("exited", "paused", "created"):
            say(f"{s.name} was {s.state}: {undo(client, s.container_id)}")
            done.append(s.name)
    wait_stack_healthy(client, project, declared, timeout)
    return done
