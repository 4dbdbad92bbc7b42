"""Download invoice files in bulk through a page of the session, and verify each one.

No clicks: every file is one `fetch` of the portal's file endpoint run inside a page of the session (the
page's own scripts sign it, as the real portal requires), `concurrency` at a time, spaced by the politeness
gate. Each file is verified in a process pool (all cores) while the next ones download, and is written to its
final name only after it passed. What happens to each file is reported through `on_outcome`; the caller keeps
the ledger.

Per file: transient errors are retried by the policy in agent.retry; an anti-bot answer reloads the page once
for all tasks (SharedPage) before the retry; a corrupt or mismatching file is downloaded again, a bounded
number of times, then failed (corrupt) or quarantined (mismatch); a file not ready yet is set aside and tried
again at the end of the run, then reported pending. A dead session is renewed through the account's
SharedSession (once for all workers, a bounded number of times). Tasks arrive through a TaskFeed, so downloads
start while the rest of the month is still being listed.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import BrowserContext, Page
from pydantic import BaseModel, ConfigDict

from agent import answers, errors
from agent.archive import Archive
from agent.config import Settings
from agent.flows.search import open_query_page
from agent.flows.session import SharedPage, SharedSession
from agent.portal import PortalProfile
from agent.records import FileFormat, InvoiceRow
from agent.retry import Gate, gave_up, retrying
from agent.verify import MAX_FILE_BYTES, check_other_format, check_pdf, check_size
from agent.workers import CheckPool

log = logging.getLogger(__name__)

CONSECUTIVE_OUTAGES_TO_STOP = 5  # files failing in a row on an unavailable portal: stop, the rest stay to do
MOST_RELOADS_IN_A_ROW = 5  # anti-bot reloads of the file page without one good answer between: stop


class DownloadTask(BaseModel):
    model_config = ConfigDict(frozen=True)

    company_id: str
    row: InvoiceRow
    fmt: FileFormat
    target: Path


class State(StrEnum):
    verified = "verified"
    failed = "failed"
    pending = "pending"
    quarantined = "quarantined"


class Outcome(BaseModel):
    task: DownloadTask
    state: State
    path: Path | None = None
    sha256: str = ""
    size: int = 0
    error: str = ""
    attempts: int = 0


def verify_bytes(data: bytes, row: InvoiceRow, fmt: FileFormat, check_qr: bool) -> None:
    """Runs in a worker process: raises FileCorrupt or ContentMismatch, returns when the file is good."""
    if fmt is FileFormat.pdf:
        check_pdf(data, row, check_qr=check_qr)
    else:
        check_other_format(data, fmt, row)


def _worker_start(main_pid: int) -> None:
    """In each worker. A Ctrl-C at a terminal reaches the whole process group, and `docker stop` or systemd
    send SIGTERM to every process: the main process stops the run (agent/signals.py) and shuts the pool down
    itself, so a worker must not die mid-file (a traceback, a broken pool). And a worker ends with the main
    process however that ends (SIGKILL, the OOM killer): nothing else would end it, as the forkserver it comes
    from lives as long as its workers do."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _end_with(main_pid)


def _end_with(pid: int) -> None:
    """End this process when process `pid` ends: a thread waits on a pidfd (Linux 5.3+; elsewhere nothing)."""
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)  # already gone
    except (AttributeError, OSError):
        return

    def wait() -> None:
        select.select([watched], [], [])
        os._exit(1)

    threading.Thread(target=wait, name=f"ends-with-{pid}", daemon=True).start()


class Verifier:
    """A process pool sized to the machine. Its workers start with the first download (a run with nothing to
    download never pays for them: on 2 cores their start slowed a rerun's listing by a tenth), in a thread, as
    each takes a few tenths of a second to start and the event loop must go on meanwhile."""

    def __init__(self, workers: int, check_qr: bool, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        # forkserver: forking a process that runs threads (Playwright's, the mock's) is unsafe
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["agent.verify"])  # imported once, not once per worker
        self._count = workers or os.cpu_count() or 1
        # workers under memory and CPU limits; one killed by them costs only its file (agent/workers.py)
        self._pool = CheckPool(self._count, context, initializer=functools.partial(_worker_start, os.getpid()))
        self._started: asyncio.Future[None] | None = None
        self.check_qr = check_qr
        self.max_file_bytes = max_file_bytes

    def warm_up(self) -> asyncio.Future[None]:
        """Start every worker now, off the event loop, once; the future is done when they are up."""
        if self._started is None:
            self._started = asyncio.ensure_future(asyncio.to_thread(self._start_workers))
        return self._started

    def _start_workers(self) -> None:
        with contextlib.suppress(RuntimeError, CancelledError):  # closed meanwhile: the run is ending anyway
            for started in [self._pool.submit(int) for _ in range(self._count)]:  # a worker starts per task submitted
                started.result()

    async def verify(self, data: bytes, row: InvoiceRow, fmt: FileFormat) -> None:
        check_size(len(data), self.max_file_bytes)  # before the bytes travel to a worker
        await asyncio.shield(self.warm_up())  # submitting while the workers start would block the event loop
        await self._pool.run(verify_bytes, data, row, fmt, self.check_qr)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


FETCH_IN_PAGE = """async ([url, timeoutMs]) => {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const base64 = (bytes) => new Promise((done, failed) => {  // Chromium before 140 lacks Uint8Array.toBase64
    const reader = new FileReader();
    reader.onload = () => done(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => failed(reader.error);
    reader.readAsDataURL(new Blob([bytes]));
  });
  try {
    const response = await fetch(url, { credentials: "same-origin", redirect: "manual", signal: abort.signal });
    const headers = {};
    response.headers.forEach((value, name) => { headers[name] = value; });
    const bytes = new Uint8Array(await response.arrayBuffer());
    const body = bytes.toBase64 ? bytes.toBase64() : await base64(bytes);
    return { status: response.type === "opaqueredirect" ? 302 : response.status, headers, body };
  } catch (error) {
    return { error: error && error.name === "AbortError" ? `no answer in ${timeoutMs} ms` : String(error) };
  } finally {
    clearTimeout(timer);
  }
}"""


class PageFiles:
    """Each file fetched by `fetch` run inside a page of the session (a SharedPage on the query page), so the
    page's own scripts sign it as they sign the page's own requests; status, headers and bytes (base64: a
    list of numbers cost 60 times as much) come back to Python, where agent.answers judges them. Requests in
    flight at once share the page; an anti-bot answer reloads it once for all (SharedPage)."""

    def __init__(
        self, context: BrowserContext, profile: PortalProfile, settings: Settings, gate: Gate,
        session: SharedSession | None = None,
    ) -> None:
        self.context, self.profile, self.settings, self.gate, self.session = context, profile, settings, gate, session
        self.page = SharedPage(self._open, MOST_RELOADS_IN_A_ROW)

    async def fetch(self, row: InvoiceRow, fmt: FileFormat) -> bytes:
        url = self.profile.file_url(row.number, row.issued_at.strftime("%Y%m%d%H%M%S"), fmt)
        async for attempt in retrying(self.settings, self.gate):
            with attempt:
                return await self._fetch_once(url, fmt)
        raise AssertionError("unreachable: retrying re-raises the last error")

    async def close(self) -> None:
        await self.page.close()

    async def _fetch_once(self, url: str, fmt: FileFormat) -> bytes:
        antibot = 0
        while True:
            page, seen = await self.page.current(self.session.generation if self.session else 0)
            await self.gate.wait()
            try:
                data = await self._get(page, url, fmt)
            except errors.AntiBot as exc:
                await self.page.reload(seen, str(exc))  # once for every task that saw it, bounded in a row
                antibot += 1
                if antibot > MOST_RELOADS_IN_A_ROW:
                    raise
                continue  # the page was loaded afresh for it: not the file's fault, it keeps its retries
            except errors.PortalUnavailable:
                if self.page.generation != seen:
                    continue  # the page was reloaded under this request: not the file's fault
                raise
            self.page.answered()
            return data

    async def _get(self, page: Page, url: str, fmt: FileFormat) -> bytes:
        got = await self._fetch_in(page, url, fmt)
        headers = dict(got["headers"])
        if 300 <= got["status"] < 400:  # not followed, and the page may not see where it pointed
            got, headers["location"] = await self._with_location(page, url, fmt)
        body = base64.b64decode(got.get("body", ""))
        return answers.file_bytes(got["status"], headers, body, url, fmt, self.profile.hosts)

    async def _fetch_in(self, page: Page, url: str, fmt: FileFormat) -> dict[str, Any]:
        timeout_ms = int(self.settings.timeout * 1000)
        with answers.playwright_errors(f"fetching a {fmt.value.upper()} in the page"):
            got: dict[str, Any] = await asyncio.wait_for(page.evaluate(FETCH_IN_PAGE, [url, timeout_ms]), self.settings.timeout + 5)
        if "error" in got:  # reset, cut short, timed out
            raise errors.PortalUnavailable(f"download interrupted: {got['error']}")
        return got

    async def _with_location(self, page: Page, url: str, fmt: FileFormat) -> tuple[dict[str, Any], str]:
        """The file asked once more, its answer watched on the network, for the Location a redirect hides from
        the page (watching every file's answer cost a tenth of the fetch time; redirects are rare)."""
        key = _file_key(url)
        with answers.playwright_errors(f"fetching a {fmt.value.upper()} in the page"):
            async with page.expect_response(lambda response: _file_key(response.url) == key, timeout=self.settings.timeout * 1000) as seen:
                got = await self._fetch_in(page, url, fmt)
            response = await seen.value
        return got, response.headers.get("location", "") if 300 <= response.status < 400 else ""

    async def _open(self, page: Page | None) -> Page:
        """A page of the session on the query page (a new one, or `page` loaded afresh)."""
        if page is None:
            page = await self.context.new_page()
        await open_query_page(page, self.profile)
        if self.profile.paths.query_page not in page.url:
            raise errors.SessionLost("the portal sent the file page to its login page")
        return page


def _file_key(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query.get("Fphm", [""])[0], query.get("Wjgs", [""])[0]


class Files(Protocol):
    """Where the Downloader gets a file's bytes: PageFiles, or a scripted stand-in in tests."""

    async def fetch(self, row: InvoiceRow, fmt: FileFormat) -> bytes: ...


class TaskFeed:
    """Download tasks as the listings deliver them; workers take them until the feed is closed and empty."""

    def __init__(self, tasks: Iterable[DownloadTask] = (), *, closed: bool = False) -> None:
        self._queue: asyncio.Queue[DownloadTask | None] = asyncio.Queue()
        self.add(tasks)
        if closed:
            self.close()

    def add(self, tasks: Iterable[DownloadTask]) -> None:
        for task in tasks:
            self._queue.put_nowait(task)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def next(self) -> DownloadTask | None:
        """The next task, waiting for one; None once the feed is closed and drained."""
        task = await self._queue.get()
        if task is None:
            self._queue.put_nowait(None)  # the end mark stays for the other workers
        return task


class Downloader:
    """Fetch, verify, save: the pipeline for one account's files."""

    def __init__(
        self,
        files: Files,
        verifier: Verifier,
        archive: Archive,
        settings: Settings,
        on_outcome: Callable[[Outcome], None],
        session: SharedSession,
    ) -> None:
        self.files, self.verifier, self.archive, self.settings = files, verifier, archive, settings
        self.on_outcome = on_outcome
        self.session = session  # shared by every task of the account: it renews once for all
        self._outages_in_a_row = 0
        self.not_ready: list[DownloadTask] = []

    async def run(self, feed: TaskFeed) -> None:
        await self._drain(feed, final_round=self.settings.not_ready_rounds == 0)
        for round_number in range(1, self.settings.not_ready_rounds + 1):
            if not self.not_ready:
                break
            waiting, self.not_ready = self.not_ready, []
            log.info("%d files were not ready; trying them again in %.0f s", len(waiting), self.settings.not_ready_wait)
            await asyncio.sleep(self.settings.not_ready_wait)
            await self._drain(TaskFeed(waiting, closed=True), final_round=round_number == self.settings.not_ready_rounds)

    async def _drain(self, feed: TaskFeed, final_round: bool) -> None:
        async def worker() -> None:
            while (task := await feed.next()) is not None:  # each task goes to exactly one worker
                await self._one(task, final_round)

        workers = [asyncio.create_task(worker()) for _ in range(self.settings.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for running in workers:
                running.cancel()
            await asyncio.gather(*workers, return_exceptions=True)  # lets files being written be recorded

    async def _one(self, task: DownloadTask, final_round: bool) -> None:
        attempts = rejected = 0  # downloads of this file; of those, how many the check refused
        while True:
            attempts += 1
            last_chance = rejected + 1 >= self.settings.corrupt_retries
            seen = self.session.generation
            try:
                outcome = await self._attempt(task, attempts, last_chance)
            except errors.FileNotReady as exc:
                if final_round:
                    outcome = Outcome(task=task, state=State.pending, error=str(exc), attempts=attempts)
                else:
                    self.not_ready.append(task)
                    return
            except errors.SessionLost:
                await self.session.renew(seen)  # not the file's fault: it keeps its chances
                continue
            except errors.FileRejected as exc:
                rejected += 1
                if not last_chance:
                    log.warning("%s %s rejected (%s); downloading again", task.row.number, task.fmt, exc)
                    continue
                outcome = Outcome(task=task, state=State.failed, error=str(exc), attempts=attempts)
            except errors.PortalUnavailable as exc:
                outcome = self._outage(task, exc, attempts)
            except errors.ArchiveError:
                raise  # the disk is full or the folder unwritable: every next file would fail the same way
            except errors.FapiaoError as exc:
                outcome = Outcome(task=task, state=State.failed, error=str(exc), attempts=attempts)
            self.on_outcome(outcome)
            return

    async def _attempt(self, task: DownloadTask, attempts: int, last_chance: bool) -> Outcome:
        """One download and check; a mismatching file is quarantined on its last chance, else raised."""
        self.verifier.warm_up()  # while the first files are on their way
        data = await self.files.fetch(task.row, task.fmt)
        self._outages_in_a_row = 0
        try:
            await self.verifier.verify(data, task.row, task.fmt)
        except errors.ContentMismatch as exc:
            if not last_chance:
                raise
            return await self._quarantine(task, data, exc, attempts)
        return await self._save(task, data, attempts)

    async def _save(self, task: DownloadTask, data: bytes, attempts: int) -> Outcome:
        """Write a verified file into place. A run stopped meanwhile still lets the write finish and records
        it, so no file ever sits at its final name without its ledger row saying verified."""
        writing = asyncio.ensure_future(asyncio.to_thread(self.archive.write_atomic, task.target, data))
        try:
            sha256, size = await asyncio.shield(writing)
        except asyncio.CancelledError:
            while not writing.done():  # a stop cancels again from each layer it passes: wait the write out
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(writing)
            sha256, size = writing.result()
            self.on_outcome(self._verified(task, sha256, size, attempts))
            raise
        return self._verified(task, sha256, size, attempts)

    @staticmethod
    def _verified(task: DownloadTask, sha256: str, size: int, attempts: int) -> Outcome:
        return Outcome(task=task, state=State.verified, path=task.target, sha256=sha256, size=size, attempts=attempts)

    async def _quarantine(self, task: DownloadTask, data: bytes, error: errors.ContentMismatch, attempts: int) -> Outcome:
        """Keep the evidence where nobody takes it for the real invoice."""
        path = await asyncio.to_thread(self.archive.quarantine, data, task.row, task.fmt, task.company_id, str(error))
        log.warning("%s %s quarantined: %s", task.row.number, task.fmt, error)
        return Outcome(task=task, state=State.quarantined, path=path, error=str(error), attempts=attempts)

    def _outage(self, task: DownloadTask, error: errors.PortalUnavailable, attempts: int) -> Outcome:
        self._outages_in_a_row += 1
        # maintenance and rate limits are portal-wide, and were waited out to their bound already
        portal_wide = isinstance(error, (errors.Maintenance, errors.RateLimited))
        if portal_wide or self._outages_in_a_row >= CONSECUTIVE_OUTAGES_TO_STOP:
            raise gave_up(error, self.settings)
        return Outcome(task=task, state=State.failed, error=str(error), attempts=attempts)
