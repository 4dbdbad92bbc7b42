"""The retry policy and the politeness gate, set in Settings and shared by every portal request.

Only transient errors (PortalUnavailable and its children) are retried: exponential backoff with jitter,
Retry-After honoured, maintenance waited out up to `unavailable_wait` seconds (asking every `backoff_max`
seconds). A refused login is never retried.

The gate is the pace of every portal request the agent makes itself (a file fetch, a listing query): each
starts `pause` seconds plus a random share of `pause_jitter` after the one before (0.5–1 s by default, the
pace of public clients that have run for years), never more than `rate_limit` per second, and every request
is held back while the portal has asked us to wait (429 Retry-After, maintenance), so a stalled portal is
never hammered. With `concurrency` 1 (the default) that is one call at a time with a random pause between.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_random_exponential,
)

from agent.config import Settings
from agent.errors import Maintenance, PortalUnavailable, RateLimited

log = logging.getLogger(__name__)


class Gate:
    """Spaces requests and pauses them all when the portal asks for a break."""

    def __init__(self, rate_limit: float, pause: float = 0.0, pause_jitter: float = 0.0) -> None:
        self.interval = 1 / rate_limit if rate_limit > 0 else 0.0
        self.pause, self.pause_jitter = pause, pause_jitter
        self._next_slot = 0.0
        self._held_until = 0.0

    @classmethod
    def of(cls, settings: Settings) -> Gate:
        return cls(settings.rate_limit, settings.pause, settings.pause_jitter)

    def _spacing(self) -> float:
        pause = self.pause + random.uniform(0.0, self.pause_jitter) if self.pause_jitter else self.pause
        return max(self.interval, pause)

    def hold(self, seconds: float) -> None:
        self._held_until = max(self._held_until, time.monotonic() + seconds)

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next_slot, self._held_until)
        self._next_slot = slot + self._spacing()
        if slot > now:
            await asyncio.sleep(slot - now)


class _StopPolicy:
    """Attempts for ordinary transient errors; elapsed time for maintenance windows."""

    def __init__(self, attempts: int, maintenance_seconds: float) -> None:
        self.attempts = attempts
        self.maintenance_seconds = maintenance_seconds

    def __call__(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, Maintenance):
            return (state.seconds_since_start or 0) >= self.maintenance_seconds
        return state.attempt_number >= self.attempts


class _WaitPolicy:
    def __init__(self, gate: Gate, backoff_max: float) -> None:
        self.gate = gate
        self.backoff_max = backoff_max
        self.backoff = wait_random_exponential(multiplier=0.5, max=backoff_max)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        seconds = self.backoff(state)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            seconds = error.retry_after
        elif isinstance(error, Maintenance):
            seconds = self.backoff_max  # a portal down for maintenance is asked again at the slowest pace only
        if isinstance(error, (RateLimited, Maintenance)):
            self.gate.hold(seconds)  # everyone waits, not just this request
        return seconds


def gave_up(error: PortalUnavailable, settings: Settings) -> PortalUnavailable:
    """What a run stops with once retrying `error` is over: what it waited for, and that the ledger resumes."""
    if isinstance(error, Maintenance):
        return Maintenance(
            f"the portal is still down for maintenance (系统维护) after waiting {settings.unavailable_wait:.0f} s "
            "(unavailable_wait); stopping, the next run resumes"
        )
    return PortalUnavailable(f"the portal stays unavailable ({error}); stopping, the next run resumes")


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    seconds = state.next_action.sleep if state.next_action else 0.0
    log.info("asking the portal again in %.1f s: %s", seconds, error)


def retrying(settings: Settings, gate: Gate) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(PortalUnavailable),
        stop=_StopPolicy(settings.retries, settings.unavailable_wait),
        wait=_WaitPolicy(gate, settings.backoff_max),
        before_sleep=_log_retry,
        reraise=True,
    )
