"""One archiving job: for each account, log in, list the period, download and verify what is missing.

The ledger is the memory between runs: what is verified (and whose file still has its recorded hash) is
skipped, everything else is tried again. Every state change is written as it happens, so a run killed at
any point leaves a ledger the next run resumes from.

Within an account the directions are listed at once, each on a page of its own, and a direction's files
start downloading as soon as its listing is complete (and counted against the portal's Total), while the
other is still being listed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from datetime import date
from typing import Any

from playwright.async_api import BrowserContext, Page
from pydantic import BaseModel, Field

from agent import errors
from agent.archive import Archive, ArchiveLock
from agent.browser import BrowserSession, find_chromium
from agent.config import Account, Settings
from agent.flows.download import Downloader, DownloadTask, Outcome, PageFiles, State, TaskFeed, Verifier
from agent.flows.login import LoginInput, check_origin, login
from agent.flows.search import Listing, SearchQuery, open_query_page, search
from agent.flows.session import SharedSession
from agent.human import make_captcha_solver, make_sms_source
from agent.ledger import DONE_STATES, EntryKey, EntryState, Ledger, LedgerEntry
from agent.login_memory import LoginMemory
from agent.manifest import write_manifests
from agent.portal import PortalProfile
from agent.records import Direction, RunSummary
from agent.retry import Gate, gave_up, retrying

log = logging.getLogger(__name__)

MAX_RELOGINS = 2  # per account and run: a session that keeps dying stops the run instead of looping


class JobRequest(BaseModel):
    accounts: list[str | None] = [None]  # None: the only configured account (pydantic copies the default)
    date_from: date
    date_to: date
    directions: list[Direction] = Field(default_factory=lambda: [Direction.issued, Direction.received])
    kinds: list[str] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)
    interactive: bool = False
    login_only: bool = False
    wait_for_archive: bool = False  # another run holds the archive: wait for it to end (else ArchiveBusy at once)


class ProgressSink:
    """What a job tells the person watching; the CLI draws it as bars or plain lines."""

    def listed(self, account: str, direction: Direction, count: int) -> None: ...

    def queued(self, count: int) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...


def profile_for(settings: Settings) -> PortalProfile:
    return PortalProfile(portal_url=settings.portal_url, sso_url=settings.sso_url, max_range_days=settings.max_range_days)


class AccountRun:
    """One account's share of a job, on its own browser context."""

    def __init__(self, job: Job, name: str, account: Account) -> None:
        self.job, self.name, self.account = job, name, account
        self.settings, self.profile = job.settings, job.profile
        # renewed on a page of its own, as the listing pages are busy
        self.session = SharedSession(self._login_again, MAX_RELOGINS)
        self.context: BrowserContext | None = None
        self.page: Page | None = None

    async def run(self) -> RunSummary:
        self.context = await self.job.browser_session.new_context(self.name)
        try:
            self.page = await self.context.new_page()
            await self._ensure_session(self.page)
            if self.job.request.login_only:
                return RunSummary()
            await self._start_tracing()
            try:
                summary = await self._archive()
            except Exception:  # not on Ctrl-C / SIGTERM (CancelledError): nothing failed, and Chromium may be gone
                await self._keep_evidence()
                raise
            await self.context.tracing.stop()
            return summary
        finally:
            await self.context.close()

    async def _start_tracing(self) -> None:
        assert self.context is not None
        # Actions and network only: DOM snapshots doubled the time to list a month, and the screencast kept
        # Chromium busy while both directions list at once. A failed run gets a screenshot of each page instead.
        await self.context.tracing.start()

    async def _ensure_session(self, page: Page) -> None:
        """Leaves `page` on the query page, logged in; the session is saved for the next run."""
        assert self.context is not None
        await self._open_portal(page)
        check_origin(page.url, self.profile)  # a redirect elsewhere gets no credential and is not listed
        if self.profile.paths.query_page not in page.url:
            await login(page, self.profile, self._login_input())
        own = (self.profile.portal_url, self.profile.sso_url)  # cookies of any other host are not saved
        await self.job.browser_session.save_session(self.context, self.name, own)

    async def _open_portal(self, page: Page) -> None:
        async for attempt in retrying(self.settings, self.job.gate):
            with attempt:
                await open_query_page(page, self.profile)

    def _login_input(self) -> LoginInput:
        settings, interactive = self.settings, self.job.request.interactive
        image_dir = self.job.debug_dir
        return LoginInput(
            account_name=self.name,
            account=self.account,
            password=self.account.resolve_password(self.name),
            captcha=make_captcha_solver(settings.captcha, interactive, image_dir, settings.human_timeout),
            sms=make_sms_source(self.account.sms, interactive, self.account.login, settings.human_timeout),
            interactive=interactive,
            memory=LoginMemory(settings.state_dir, self.name),
        )

    async def _login_again(self) -> None:
        assert self.context is not None
        await self.context.tracing.stop()  # a trace records what is typed: it must never hold a login
        page = await self.context.new_page()
        try:
            await page.bring_to_front()  # a page in the background is slow to click
            await self._ensure_session(page)
        finally:
            await page.close()
            await self._start_tracing()

    async def _list(self, page: Page, direction: Direction) -> Listing:
        request = self.job.request
        query = SearchQuery(
            direction=direction, date_from=request.date_from, date_to=request.date_to,
            kinds=request.kinds, statuses=request.statuses, company_id=self.account.company_id,
        )
        reload = False
        while True:
            seen = self.session.generation
            try:
                policy = functools.partial(retrying, self.settings, self.job.gate)
                return await search(page, self.profile, query, policy, reload, pace=self.job.gate.wait)
            except errors.SessionLost:
                await self.session.renew(seen)
                reload = True
            except errors.PortalUnavailable as exc:  # each page was retried to its bound already
                raise gave_up(exc, self.settings) from exc

    async def _archive(self) -> RunSummary:
        assert self.context is not None
        files = PageFiles(self.context, self.profile, self.settings, self.job.gate, self.session)
        downloader = Downloader(files, self.job.verifier, self.job.archive, self.settings, self.job.record, self.session)
        feed = TaskFeed()
        shares, _ = await run_together(self._list_all(feed), downloader.run(feed))
        keys, skipped, mismatches = set[EntryKey](), set[EntryKey](), list[str]()
        for share in shares:
            keys |= share.keys
            skipped |= share.skipped
            mismatches += share.count_mismatches
        return self.job.summarize(keys, skipped, mismatches)

    async def _list_all(self, feed: TaskFeed) -> list[DirectionShare]:
        """Every direction listed at once, the first on the session's page, the others on pages of their own."""
        assert self.page is not None and self.context is not None
        directions = self.job.request.directions
        pages = [self.page] + [await self.context.new_page() for _ in directions[1:]]
        try:
            shares = await run_together(*(self._list_into(page, d, feed) for page, d in zip(pages, directions, strict=True)))
        finally:
            feed.close()
        for page in pages[1:]:  # left open after a failure, for its screenshot (_keep_evidence)
            await page.close()
        return shares

    async def _list_into(self, page: Page, direction: Direction, feed: TaskFeed) -> DirectionShare:
        """List one direction, record it, and hand what is left to do to the downloads."""
        ledger, company_id = self.job.ledger, self.account.company_id
        listing = await self._list(page, direction)
        ledger.record_listed(self.job.run_id, company_id, listing.rows, self.settings.formats)
        self.job.progress.listed(self.name, direction, len(listing.rows))
        keys = {EntryKey.of(company_id, row, fmt) for row in listing.rows for fmt in self.settings.formats}
        entries = ledger.get_many(keys)
        skipped = await self._recheck_verified(entries)
        tasks = [
            self._task(entry) for entry in entries
            if entry.key not in skipped and entry.state is not EntryState.paper
        ]
        self.job.progress.queued(len(tasks))
        feed.add(tasks)
        return DirectionShare(keys=keys, skipped=skipped, count_mismatches=listing.count_mismatches)

    async def _recheck_verified(self, entries: list[LedgerEntry]) -> set[EntryKey]:
        """Verified entries whose file still has its hash are skipped; the others are done again."""
        verified = [entry for entry in entries if entry.state is EntryState.verified]
        intact = await asyncio.to_thread(lambda: [self._file_intact(entry) for entry in verified])
        for entry, ok in zip(verified, intact, strict=True):
            if not ok:
                self.job.ledger.mark_failed(self.job.run_id, entry.key, "file missing or changed since it was verified")
        return {entry.key for entry, ok in zip(verified, intact, strict=True) if ok}

    def _file_intact(self, entry: LedgerEntry) -> bool:
        path = self.job.archive.root / (entry.path or "")
        return bool(entry.path) and path.is_file() and Archive.sha256_of(path) == entry.sha256

    def _task(self, entry: LedgerEntry) -> DownloadTask:
        target = self.job.archive.path_for(entry.row, entry.format, entry.company_id)
        return DownloadTask(company_id=entry.company_id, row=entry.row, fmt=entry.format, target=target)

    async def _keep_evidence(self) -> None:
        """Trace and a screenshot of each open page of a failed run (the password field was cleared after login)."""
        assert self.context is not None
        folder = self.job.debug_dir
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            await self.context.tracing.stop(path=folder / f"trace-{self.name}-{stamp}.zip")
            for number, page in enumerate(self.context.pages, start=1):
                await page.screenshot(path=folder / f"page-{self.name}-{stamp}-{number}.png")
        except Exception as exc:  # evidence is best effort; the original error matters more  # noqa: BLE001
            log.info("could not save failure evidence: %s", exc)


class DirectionShare(BaseModel):
    """What listing one direction found: its ledger keys, those already verified, any count mismatch."""

    keys: set[EntryKey]
    skipped: set[EntryKey]
    count_mismatches: list[str]


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


class Job:
    """Runs a JobRequest: shared ledger, archive, verifier pool and politeness gate for all accounts."""

    def __init__(self, settings: Settings, request: JobRequest, progress: ProgressSink | None = None) -> None:
        self.settings, self.request = settings, request
        self.progress = progress or ProgressSink()
        self.profile = profile_for(settings)
        self.gate = Gate.of(settings)
        self.archive = Archive(settings.out, settings.layout)
        self.debug_dir = settings.debug_dir or settings.out / "_debug"

    async def run(self, args: dict[str, Any]) -> RunSummary:
        """The whole job, holding the archive's lock: one run per archive (ArchiveBusy, or wait with the request)."""
        async with ArchiveLock(self.archive.root).held(wait=self.request.wait_for_archive):
            return await self._run(args)

    async def _run(self, args: dict[str, Any]) -> RunSummary:
        self.archive.check_writable()
        self.archive.sweep_partials()
        accounts = [self.settings.account(name) for name in self.request.accounts]
        with Ledger.open(self.settings.out) as self.ledger:
            self.run_id = self.ledger.start_run(args)
            summary, exit_code = RunSummary(), errors.EXIT_INCOMPLETE
            try:
                summary = await self._run_accounts(accounts)
                exit_code = errors.EXIT_OK if summary.complete else errors.EXIT_INCOMPLETE
                return summary
            except errors.FapiaoError as exc:
                exit_code = exc.exit_code
                raise
            finally:
                self.ledger.finish_run(self.run_id, summary, exit_code)
                if not self.request.login_only:
                    write_manifests(self.ledger, self.settings.out)

    async def _run_accounts(self, accounts: list[tuple[str, Account]]) -> RunSummary:
        chromium = find_chromium(self.settings.browser_path, self.settings.headless)
        self.verifier = Verifier(self.settings.workers, self.settings.verify_qr, self.settings.max_file_mb << 20)
        try:
            async with BrowserSession(chromium, self.settings.state_dir, self.settings.headless, self.settings.insecure) as self.browser_session:
                total = RunSummary()
                for name, account in accounts:
                    summary = await AccountRun(self, name, account).run()
                    total = add_summaries(total, summary)
                return total
        finally:
            self.verifier.close()

    def record(self, outcome: Outcome) -> None:
        """Write one file's outcome to the ledger the moment it is known."""
        task, key = outcome.task, EntryKey.of(outcome.task.company_id, outcome.task.row, outcome.task.fmt)
        if outcome.state is State.verified and outcome.path is not None:
            self.ledger.mark_verified(self.run_id, key, outcome.path, outcome.sha256, outcome.size)
        elif outcome.state is State.quarantined and outcome.path is not None:
            self.ledger.mark_quarantined(self.run_id, key, outcome.path, outcome.error)
        elif outcome.state is State.pending:
            self.ledger.mark_pending(self.run_id, key, outcome.error)
        else:
            self.ledger.mark_failed(self.run_id, key, outcome.error)
        log.debug("%s %s %s", task.row.number, task.fmt, outcome.state)
        self.progress.outcome(outcome)

    def summarize(self, keys: set[EntryKey], skipped: set[EntryKey], mismatches: list[str]) -> RunSummary:
        states = self.ledger.states_of(keys)  # counting needs no rows: reading 2,000 cost a rerun 0.1 s
        count = Counter(states.values())
        left = self.ledger.get_many(key for key, state in states.items() if state not in DONE_STATES)
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


def add_summaries(a: RunSummary, b: RunSummary) -> RunSummary:
    numbers = {field: getattr(a, field) + getattr(b, field) for field in RunSummary.model_fields if field != "count_mismatches"}
    return RunSummary(**numbers, count_mismatches=a.count_mismatches + b.count_mismatches)


def job_args(request: JobRequest, settings: Settings) -> dict[str, Any]:
    """What a run records about itself: never a password."""
    return {
        "request": request.model_dump(mode="json"),
        "portal_url": settings.portal_url,
        "out": str(settings.out),
        "formats": [fmt.value for fmt in settings.formats],
    }

