"""Bounded retries: tenacity's exponential backoff with jitter, within an attempt count and a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from .errors import CollectionMissing, DependencyDown, DependencyRejected

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How one kind of call is retried; the deadline is the caller's, per request."""

    max_attempts: int
    per_attempt_timeout_s: float
    backoff_initial_s: float
    backoff_max_s: float
    # An attempt with less time than this left cannot succeed, so it is not started.
    min_attempt_s: float = 0.05


def _backoff(policy: RetryPolicy) -> wait_exponential_jitter:
    try:
        return wait_exponential_jitter(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.backoff_initial_s
        )
    except TypeError:  # tenacity < 9.2 names the first wait `initial`
        return wait_exponential_jitter(
            initial=policy.backoff_initial_s, max=policy.backoff_max_s, jitter=policy.backoff_initial_s
        )


async def call_with_deadline(
    op: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline_at: float,
    classify: Callable[[BaseException], Exception],
    attempts_out: list[int],
) -> T:
    """Run ``op(timeout)`` with tenacity until it succeeds, attempts run out or the deadline nears.

    ``op`` receives its own timeout, already clipped to the time left, and is also
    cancelled at that timeout, so a peer that accepts and never answers cannot stall us.
    ``attempts_out[0]`` holds the attempts made, even when this raises.
    """

    def out_of_time(rs: RetryCallState) -> bool:
        # Checked after the wait is chosen: stop if sleeping would leave no useful attempt.
        return deadline_at - time.monotonic() - rs.upcoming_sleep < policy.min_attempt_s

    async def attempt() -> T:
        attempts_out[0] += 1
        remaining = deadline_at - time.monotonic()
        if remaining < policy.min_attempt_s:
            raise DependencyDown("deadline reached before the attempt could start")
        timeout = min(policy.per_attempt_timeout_s, remaining)
        try:
            return await asyncio.wait_for(op(timeout), timeout)
        except (DependencyDown, DependencyRejected, CollectionMissing):
            raise
        except Exception as exc:
            raise classify(exc) from exc

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts) | out_of_time,
        wait=_backoff(policy),
        retry=retry_if_exception_type(DependencyDown),
        reraise=True,
    )
    attempts_out[:] = [0]
    return await retrying(attempt)
