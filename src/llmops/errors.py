"""One exception hierarchy; each class carries the exit code DESIGN assigns to it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Every exit code llmops uses: its value, what it means, and its rank when several checks'
    codes fold into one run's (the loudest wins).  Like httpx's `codes`, the member carries its
    own text, so no second table can drift from it."""

    meaning: str
    rank: int

    def __new__(cls, value: int, rank: int, meaning: str) -> "ExitCode":
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.rank = rank
        obj.meaning = meaning
        return obj

    OK = 0, 1, "all checks passed"
    SKIPPED = 3, 2, "skipped: nothing failed, but something could not be checked"
    CHECK_FAILED = 1, 3, "a check failed, or was inconclusive"
    USAGE = 2, 4, "usage or config error (a bad option, a malformed config, check file or label)"
    ENVIRONMENT = 4, 5, "environment error (Docker unreachable, the stack not up, pre-flight refused)"
    RESTORE_FAILED = 5, 6, "RESTORE FAILED: the stack was left degraded"
    INTERRUPTED = 130, 7, "interrupted, after restoring what was broken"

    @classmethod
    def rank_of(cls, code: int) -> int:
        """An unknown code ranks as a failed check: never below a pass or a skip."""
        try:
            return cls(code).rank
        except ValueError:
            return cls.CHECK_FAILED.rank

    @classmethod
    def meaning_of(cls, code: int) -> str:
        try:
            return cls(code).meaning
        except ValueError:
            return f"unknown exit code {code} (counted as a failure)"


def aggregate_exit(codes: list[int]) -> int:
    """Fold several check outcomes into one: 130 beats 5 beats 4 beats 2 beats 1 beats 3 beats 0,
    and an unknown code counts as 1's rank (so `[7, 0]` is 7, never 0).

    An interrupt dominates: whatever ran before it, the run did not finish."""
    return int(max(codes, key=ExitCode.rank_of, default=ExitCode.OK))


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
