"""One portal session shared by an account's listing pages and download workers, renewed once for all.

Whoever finds the session gone asks for a renewal, naming the session it used (its generation). The first
asker logs in again; everyone else who used that same session, including a request that went out on it
and came back only after the renewal, goes on with the new one instead of logging in once more. Renewals
are bounded per run: a session that keeps dying stops the run rather than looping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agent import errors

log = logging.getLogger(__name__)


class SharedSession:
    def __init__(self, log_in_again: Callable[[], Awaitable[None]], most_renewals: int) -> None:
        self._log_in_again = log_in_again
        self._most_renewals = most_renewals
        self._lock = asyncio.Lock()
        self.generation = 0  # sessions started since the first: read it before using the session
        self.renewals = 0

    async def renew(self, seen: int) -> None:
        """Replace session `seen`, unless that was done already."""
        async with self._lock:
            if self.generation != seen:
                return
            self.renewals += 1
            if self.renewals > self._most_renewals:
                raise errors.SessionLost(
                    f"the portal session keeps dying ({self._most_renewals} re-logins this run); check that nobody "
                    "else logs in with this account, then run again: the ledger resumes where this run stopped"
                )
            log.warning("portal session lost; logging in again (%d of %d)", self.renewals, self._most_renewals)
            await self._log_in_again()
            self.generation += 1
