"""One company's run: its period listed, what is missing downloaded and verified, and its own summary counted.

It runs on the person's browser context and session, once the session acts for the company. The directions
are listed at once, each on a page of its own (the first on the person's page), and a direction's files start
downloading as soon as its listing is complete (and counted against the portal's Total), while the other is
still being listed. What is verified (and whose file still has its recorded hash) is skipped; file outcomes
are written to the ledger in batches within half a second (RunContext.record), and all of them before the
company's summary is counted.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from playwright.async_api import BrowserContext, Page
from pydantic import BaseModel

from agent import errors
from agent.archive import Archive
from agent.flows.download import Downloader, DownloadTask, PageFiles, TaskFeed
from agent.flows.search import Listing, SearchQuery, search
from agent.flows.session import SharedSession
from agent.ledger import DONE_STATES, EntryKey, EntryState, LedgerEntry
from agent.records import Direction, RunSummary
from agent.retry import Gate, gave_up, retrying
from agent.run.context import RunContext, Scope


class DirectionShare(BaseModel):
    """What listing one direction found: its ledger keys, those already verified, any count mismatch."""

    keys: set[EntryKey]
    skipped: set[EntryKey]
    count_mismatches: list[str]


class CompanyRun:
    """One company of a person's run, on the person's context, page, session and gate."""

    def __init__(
        self, run: RunContext, company_id: str, scope: Scope, browser_context: BrowserContext, page: Page,
        session: SharedSession, gate: Gate,
    ) -> None:
        self.run, self.company_id, self.scope = run, company_id, scope
        self.context, self.page, self.session, self.gate = browser_context, page, session, gate

    async def archive(self) -> RunSummary:
        files = PageFiles(self.context, self.run.profile, self.run.settings, self.gate, self.session)
        downloader = Downloader(files, self.run.verifier, self.run.archive, self.run.settings, self.run.record, self.session)
        feed = TaskFeed()
        try:
            shares, _ = await run_together(self._list_all(feed), downloader.run(feed))
        finally:  # the summary is counted from the ledger, and a company tried again reads what this try did
            self.run.write_outcomes()
        await files.close()  # left open after a failure, for its screenshot
        return self.summarize(shares)

    async def _list_all(self, feed: TaskFeed) -> list[DirectionShare]:
        """Every direction listed at once, the first on the person's page, the others on pages of their own."""
        directions = self.scope.directions
        pages = [self.page] + [await self.context.new_page() for _ in directions[1:]]
        try:
            shares = await run_together(*(self._list_into(page, d, feed) for page, d in zip(pages, directions, strict=True)))
        finally:
            feed.close()
        for page in pages[1:]:  # left open after a failure, for its screenshot (PersonRun keeps the evidence)
            await page.close()
        return shares

    async def _list(self, page: Page, direction: Direction) -> Listing:
        query = SearchQuery(
            direction=direction, date_from=self.scope.date_from, date_to=self.scope.date_to,
            kinds=self.scope.kinds, statuses=self.scope.statuses, company_id=self.company_id,
        )
        reload = False
        while True:
            seen = self.session.generation
            try:
                policy = functools.partial(retrying, self.run.settings, self.gate)
                return await search(page, self.run.profile, query, policy, reload, pace=self.gate.wait)
            except errors.SessionLost:
                await self.session.renew(seen)
                reload = True
            except errors.PortalUnavailable as exc:  # each page was retried to its bound already
                raise gave_up(exc, self.run.settings) from exc

    async def _list_into(self, page: Page, direction: Direction, feed: TaskFeed) -> DirectionShare:
        """List one direction, record it, and hand what is left to do to the downloads."""
        ledger, settings = self.run.ledger, self.run.settings
        listing = await self._list(page, direction)
        ledger.record_listed(self.run.run_id, self.company_id, listing.rows, settings.formats)
        self.run.events.listed(self.company_id, direction, len(listing.rows))
        keys = {EntryKey.of(self.company_id, row, fmt) for row in listing.rows for fmt in settings.formats}
        entries = ledger.get_many(keys)
        skipped = await self._recheck_verified(entries)
        tasks = [
            self._task(entry) for entry in entries
            if entry.key not in skipped and entry.state is not EntryState.paper
        ]
        self.run.events.queued(self.company_id, len(tasks))
        feed.add(tasks)
        return DirectionShare(keys=keys, skipped=skipped, count_mismatches=listing.count_mismatches)

    async def _recheck_verified(self, entries: list[LedgerEntry]) -> set[EntryKey]:
        """Verified entries whose file still has its hash are skipped; the others are done again."""
        verified = [entry for entry in entries if entry.state is EntryState.verified]
        intact = await asyncio.to_thread(lambda: [self._file_intact(entry) for entry in verified])
        for entry, ok in zip(verified, intact, strict=True):
            if not ok:
                self.run.ledger.mark_failed(self.run.run_id, entry.key, "file missing or changed since it was verified")
        return {entry.key for entry, ok in zip(verified, intact, strict=True) if ok}

    def _file_intact(self, entry: LedgerEntry) -> bool:
        path = self.run.archive.root / (entry.path or "")
        return bool(entry.path) and path.is_file() and Archive.sha256_of(path) == entry.sha256

    def _task(self, entry: LedgerEntry) -> DownloadTask:
        target = self.run.archive.path_for(entry.row, entry.format, entry.company_id)
        return DownloadTask(company_id=entry.company_id, row=entry.row, fmt=entry.format, target=target)

    def summarize(self, shares: list[DirectionShare]) -> RunSummary:
        """This company's summary, from the ledger's states of what its listings found."""
        keys, skipped, mismatches = set[EntryKey](), set[EntryKey](), list[str]()
        for share in shares:
            keys |= share.keys
            skipped |= share.skipped
            mismatches += share.count_mismatches
        states = self.run.ledger.states_of(keys)  # counting needs no rows: reading 2,000 cost a rerun 0.1 s
        count = Counter(states.values())
        left = self.run.ledger.get_many(key for key, state in states.items() if state not in DONE_STATES)
        return RunSummary(
            listed=len(keys),
            verified=count[EntryState.verified],
            downloaded=count[EntryState.verified] - len(skipped),
            skipped=len(skipped),
            failed=count[EntryState.failed] + count[EntryState.listed] + count[EntryState.downloaded],
            pending=count[EntryState.pending],
            quarantined=count[EntryState.quarantined],
            paper=count[EntryState.paper],
            count_mismatches=mismatches,
            not_verified=sorted(not_verified_line(entry) for entry in left),
        )


def not_verified_line(entry: LedgerEntry) -> str:
    """One file the run leaves to do, with the reason, as the summary lists it."""
    state = EntryState.failed if entry.state in (EntryState.listed, EntryState.downloaded) else entry.state
    reason = entry.last_error or "not downloaded in this run"
    return f"{entry.direction.value} {entry.number} {entry.format.value} {state.value}: {reason}"


async def run_together(*work: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run coroutines at once and return their results; the first to fail stops the others, and its own
    error (not a group of them) is raised, so the exit code stays the one that error maps to."""
    tasks = [asyncio.ensure_future(each) for each in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
