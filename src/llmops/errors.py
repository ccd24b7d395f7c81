"""One exception hierarchy; each class carries the exit code DESIGN assigns to it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    SKIPPED = 3
    ENVIRONMENT = 4
    RESTORE_FAILED = 5
    INTERRUPTED = 130


def aggregate_exit(codes: list[int]) -> int:
    """Fold several check outcomes into one: 130 beats 5 beats 4 beats 2 beats 1 beats 3 beats 0.

    An interrupt dominates: whatever ran before it, the run did not finish."""
    rank = {130: 7, 5: 6, 4: 5, 2: 4, 1: 3, 3: 2, 0: 1}
    return max(codes, key=lambda c: rank.get(c, 0), default=0)


class LlmopsError(Exception):
    """An error the CLI reports as one line and an exit code, never a traceback."""

    exit_code: int = ExitCode.CHECK_FAILED


class UsageError(LlmopsError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A malformed compose file, LiteLLM config, budget file or similar."""


class EnvironmentProblem(LlmopsError):
    """Docker unreachable, a port taken, the stack not up: the world is not as required."""

    exit_code = ExitCode.ENVIRONMENT


class RestoreFailed(LlmopsError):
    """A fault could not be undone; the stack was left degraded."""

    exit_code = ExitCode.RESTORE_FAILED


class Aborted(LlmopsError):
    """Ctrl-C or SIGTERM: whatever was faulted has been restored first."""

    exit_code = ExitCode.INTERRUPTED


class Interrupted(KeyboardInterrupt):
    """Raised from a signal handler so that `finally` blocks run the restore.  Not an Exception, so
    no `except Exception` on the way may swallow it; and a KeyboardInterrupt, because asyncio
    re-raises only those (and SystemExit) out of the event loop: any other BaseException raised
    inside a load request's task was stored in that task, and the experiment ran on to its end
    (seen in CI: a SIGINT mid-`pause` ignored for the whole outage)."""


@contextmanager
def signals_raise() -> Iterator[None]:
    """While active, SIGINT and SIGTERM raise Interrupted instead of killing us mid-fault."""
    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
