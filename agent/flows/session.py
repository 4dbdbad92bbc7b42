"""One portal session shared by an account's listing pages and download workers, renewed once for all; and
the page files are fetched through, reloaded once for all (SharedPage).

Whoever finds the session gone asks for a renewal, naming the session it used (its generation). The first
asker logs in again; everyone else who used that same session, including a request that went out on it
and came back only after the renewal, goes on with the new one instead of logging in once more. Renewals
are bounded per run: a session that keeps dying stops the run rather than looping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from playwright.async_api import Page

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


class SharedPage:
    """A page of the session that the account's files are fetched through, reloaded once for all.

    The page's own scripts sign each request it sends (portal-reference.md, "What the page does"), so a file
    is fetched by running `fetch` inside this page. When the portal's anti-bot check refuses one, the first
    task to say so reloads the page (its scripts run again, with a fresh key) while the others wait, then all
    retry; a task whose answer was for the page before a reload goes on without reloading again. Reloads in a
    row without one good answer between them are bounded: a page the portal keeps refusing stops the run.
    """

    def __init__(self, open_page: Callable[[Page | None], Awaitable[Page]], most_reloads_in_a_row: int) -> None:
        self._open_page = open_page  # None: a new page on the query page; a page: loads it afresh
        self._most = most_reloads_in_a_row
        self._lock = asyncio.Lock()
        self._page: Page | None = None
        self._session = -1  # the SharedSession generation the page was loaded under
        self.generation = 0  # loads of the page so far: read it before using the page
        self._in_a_row = 0
        self.reloads = 0

    async def current(self, session: int = 0) -> tuple[Page, int]:
        """The page and its generation; waits while a reload is under way. The page is opened on first use, and
        loaded afresh once the portal session it was loaded under (SharedSession.generation) was renewed."""
        if self._page is None or self._session != session or self._lock.locked():
            async with self._lock:
                if self._page is None or self._session != session:
                    self._page = await self._open_page(self._page)
                    self._session = session
                    self.generation += 1
        return self._page, self.generation

    def answered(self) -> None:
        """A good answer came through the page: the reloads before it are forgiven."""
        self._in_a_row = 0

    async def reload(self, seen: int, why: str) -> None:
        """Load page `seen` afresh, unless that was done already."""
        async with self._lock:
            if self.generation != seen or self._page is None:
                return
            self._in_a_row += 1
            if self._in_a_row > self._most:
                raise errors.AntiBot(
                    f"the portal's anti-bot check keeps refusing the page ({self._most} reloads in a row, last: {why}); "
                    "stopping: the ledger resumes where this run stopped"
                )
            self.reloads += 1
            log.warning("anti-bot answer (%s); reloading the file page (%d in a row)", why, self._in_a_row)
            self._page = await self._open_page(self._page)
            self.generation += 1

    async def close(self) -> None:
        if self._page is not None:
            await self._page.close()
