"""A person's politeness gate shared by every worker that drives the person (the queue's; a one-shot run keeps
agent.retry's Gate, in its own process).

The rules are agent.retry.Gate's: each request starts max(1/rate_limit, pause + a random share of pause_jitter)
after the one before, and none while the portal has asked us to wait. Here the next free slot and the hold live
in the queue's shared state (agent/leases.py), under the person's lease name (`person:<region>:<person>`): task
k+1 of a person keeps the pace task k left, whichever worker runs it, and a Retry-After seen by one worker holds
them all. A slot is taken atomically in the store (a script on the Redis server's clock, a `BEGIN IMMEDIATE`
transaction in SQLite) on a thread, then waited for in asyncio. A store that fails or does not answer within
STORE_WAIT seconds leaves the gate on the local pace for the rest of the run, with one warning: a run never
stops for its gate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from agent.config import Settings
from agent.leases import SharedState
from agent.retry import Gate

log = logging.getLogger(__name__)

STORE_WAIT = 10.0  # seconds a slot or a hold may take in the store before the gate goes local

T = TypeVar("T")


class SharedGate(Gate):
    """A Gate whose next free slot and hold are kept in the shared state, under `pace`."""

    def __init__(self, state: SharedState, pace: str, rate_limit: float, pause: float = 0.0, pause_jitter: float = 0.0) -> None:
        super().__init__(rate_limit, pause, pause_jitter)
        self.state, self.pace = state, pace
        self.shared = True  # False once the store failed: the local pace from then on
        self._holds: set[asyncio.Task[None]] = set()  # holds on their way to the store

    @classmethod
    def shared_by(cls, state: SharedState, pace: str, settings: Settings) -> SharedGate:
        return cls(state, pace, settings.rate_limit, settings.pause, settings.pause_jitter)

    def hold(self, seconds: float) -> None:
        """Hold this process at once; the others once the store has it (written on a thread, not to stall the loop)."""
        super().hold(seconds)
        if self.shared:
            task = asyncio.get_running_loop().create_task(self._store(self.state.hold_pace, self.pace, seconds))
            self._holds.add(task)
            task.add_done_callback(self._holds.discard)

    async def wait(self) -> None:
        if self._holds:  # a hold set here comes before any slot taken after it
            await asyncio.gather(*self._holds)
        spacing = self._spacing()
        slot = await self._store(self.state.take_slot, self.pace, spacing) if self.shared else None
        if slot is None:
            await super().wait()
            return
        now = time.monotonic()
        start = max(now + slot.wait, self._held_until)
        self._next_slot = max(self._next_slot, start + spacing)  # where the local pace resumes if the store fails
        if start > now:
            await asyncio.sleep(start - now)

    async def _store(self, call: Callable[[str, float], T], pace: str, seconds: float) -> T | None:
        """The store's answer; None (and the gate local from now on) when it failed or did not come in time."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, pace, seconds), STORE_WAIT)
        except Exception as exc:  # any store's errors (redis, sqlite3, a timeout): the pace goes on here  # noqa: BLE001
            if self.shared:
                self.shared = False
                log.warning("the shared pace of %s is out of reach (%s: %s): this run keeps its own pace",
                            self.pace, type(exc).__name__, exc)
            return None
