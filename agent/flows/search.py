"""Search the 全量发票查询 page and collect every row of a period, checked against the portal's own Total.

The real portal encrypts and signs its API calls, so the agent drives the page (its widgets as a person does,
agent.flows.widgets) and reads the JSON answers as the page receives them, judged by agent.answers, with the
rendered table as a fallback. What the page sent is never read (on the real portal it is encrypted): each
answer is checked instead to be for the query asked, by what it holds: every row's 开票日期 inside the range,
every row of the asked direction by the company's own tax id, and the same Total on every page of a walk. Ranges longer than the portal accepts are
split, and so is a range of more than a few pages, so that every walk is short; every page is walked at the
largest page size; rows are de-duplicated by number. A page whose query fails is asked for again (the
caller's retry policy) on the query page loaded afresh, the walk resuming at that page. If the rows collected
do not add up to Total (rows shifted while paging), the range is walked once more; a mismatch that remains is
reported, never ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Response
from pydantic import BaseModel, Field
from tenacity import AsyncRetrying

from agent import answers, errors
from agent.browser import navigation_error
from agent.flows.widgets import pick_dates, pick_options, pick_page_size, press
from agent.parsers.listing import QueryPage, parse_query_response, parse_table
from agent.portal import PAGE_SIZES, PortalProfile
from agent.records import Direction, InvoiceRow

log = logging.getLogger(__name__)

RESPONSE_TIMEOUT_MS = 30_000
UNREAD_BODY_WAIT = 2.0  # seconds for the body of an answer the page's script may never read (not JSON)
LARGEST_PAGE = max(PAGE_SIZES)
SPLIT_ABOVE_PAGES = 10  # a range with more pages of rows is listed in parts (by 开票日期), down to single days
PART_FILL = 0.8  # parts aim at 80 % of that: invoices are not spread evenly over the days, and a part too full is cut again


class SearchQuery(BaseModel):
    direction: Direction
    company_id: str = ""  # the company's own tax id: seller of every issued row, buyer of every received one
    date_from: date
    date_to: date
    kinds: list[str] = Field(default_factory=list)  # FplxDm codes; empty = all
    statuses: list[str] = Field(default_factory=list)  # FpztDm codes; empty = all
    number: str = ""
    counterpart_id: str = ""
    counterpart_name: str = ""


class Listing(BaseModel):
    query: SearchQuery
    rows: list[InvoiceRow]
    portal_total: int
    count_mismatches: list[str] = Field(default_factory=list)


def split_days(start: date, end: date, parts: int) -> list[tuple[date, date]]:
    """[start, end] cut into `parts` consecutive ranges of (nearly) equal numbers of days, at most one per day."""
    days = (end - start).days + 1
    parts = max(1, min(parts, days))
    bounds = [start + timedelta(days=days * index // parts) for index in range(parts + 1)]
    return [(first, following - timedelta(days=1)) for first, following in itertools.pairwise(bounds)]


def split_range(start: date, end: date, max_days: int) -> list[tuple[date, date]]:
    """[start, end] cut into consecutive ranges of at most max_days days each."""
    if end < start:
        raise errors.SettingsError(f"the range ends ({end}) before it starts ({start}); swap --from and --to")
    chunks = []
    while start <= end:
        chunk_end = min(end, start + timedelta(days=max_days - 1))
        chunks.append((start, chunk_end))
        start = chunk_end + timedelta(days=1)
    return chunks


async def _fill_filters(page: Page, profile: PortalProfile, query: SearchQuery, start: date, end: date) -> None:
    selectors = profile.query
    await press(page.locator(selectors.direction_tab[query.direction]))
    await pick_dates(page, profile, start, end)
    await pick_options(page, profile, selectors.kinds_field, query.kinds)
    await pick_options(page, profile, selectors.statuses_field, query.statuses)
    await page.fill(selectors.number, query.number)
    await page.fill(selectors.counterpart_id, query.counterpart_id)
    await page.fill(selectors.counterpart_name, query.counterpart_name)


async def open_query_page(page: Page, profile: PortalProfile) -> None:
    """Load the query page; the portal being down or under maintenance is said as such (retryable). Where it
    lands is the caller's to judge: the login page, when the session is gone."""
    url = profile.url(profile.paths.query_page)
    try:
        response = await page.goto(url)
    except PlaywrightError as exc:
        raise navigation_error(exc, url) from None
    if response is not None and response.status >= 400:
        answers.judge(response.status, response.headers, await _body(response) or b"", url, answers.PAGE)


Pace = Callable[[], Awaitable[None]]  # waits for the politeness gate before a query (agent.retry.Gate.wait)


async def _no_pause() -> None:
    pass


class _QueryForm:
    """The query page's form, shared by the walks of one search. It is loaded afresh before it is filled when
    it may not be what the last walk left: a failed query can leave the page on the maintenance page (the page
    reloads itself on a 503), on an error, or on its way to the login page."""

    def __init__(self, page: Page, profile: PortalProfile, stale: bool, pace: Pace) -> None:
        self.page, self.profile, self.stale, self.pace = page, profile, stale, pace

    async def fill(self, query: SearchQuery, start: date, end: date) -> None:
        if self.stale or not await self._shown(query.direction):
            await self._reload(query.direction)
        self.stale = False
        await _fill_filters(self.page, self.profile, query, start, end)

    async def _shown(self, direction: Direction) -> bool:
        tab = self.page.locator(self.profile.query.direction_tab[direction])
        return self.profile.paths.query_page in self.page.url and await tab.count() > 0

    async def _reload(self, direction: Direction) -> None:
        await open_query_page(self.page, self.profile)
        if self.profile.paths.query_page not in self.page.url:
            raise errors.SessionLost("the portal sent the query page to its login page")
        if not await self._shown(direction):
            raise errors.PortalChanged(f"the query page has no {direction} tab ({self.profile.query.direction_tab[direction]})")


async def _read_table(page: Page, profile: PortalProfile, direction: Direction) -> QueryPage:
    """Fallback when the API body cannot be read: the rows and Total as the page rendered them."""
    selectors = profile.query
    await page.locator(f"{selectors.body_rows}, {selectors.empty}").first.wait_for(timeout=RESPONSE_TIMEOUT_MS)
    headers = [text.strip() for text in await page.locator(selectors.header_cells).all_inner_texts()]
    cells = [
        [text.strip() for text in await row.locator("td").all_inner_texts()]
        for row in await page.locator(selectors.body_rows).all()
    ]
    rows = parse_table(headers, cells, direction)
    total_text = await page.locator(selectors.total).inner_text() if await page.locator(selectors.total).count() else ""
    total = int(re.sub(r"\D", "", total_text) or len(rows))
    return QueryPage(page_number=0, page_size=len(rows), total=total, rows=rows)


async def _query(page: Page, profile: PortalProfile, direction: Direction, action: Callable[[], Awaitable[object]], pace: Pace = _no_pause) -> QueryPage:
    """Run a page action that queries, and return the page of rows the portal answered with, as judged by
    agent.answers (a session gone, an anti-bot answer, an outage are raised as such)."""
    await pace()
    with answers.playwright_errors("the query page"):
        async with page.expect_response(
            lambda r: profile.paths.query_api in r.url and r.request.method == "POST", timeout=RESPONSE_TIMEOUT_MS
        ) as info:
            await action()
        response = await info.value
    body = await _body(response)
    if body is None and response.status < 300:
        # the page would not read it: not JSON (a script, a page) where JSON was due; the page is reloaded
        raise errors.AntiBot(f"the query answer ({response.headers.get('content-type', 'no type')}) is not one the page reads; reloading the page")
    body = body or b""
    answers.api_json(response.status, response.headers, body, response.url)
    try:
        return parse_query_response(body.decode("utf-8", "replace"), direction)
    except ValueError:
        log.info("query response not readable as JSON; reading the rendered table instead")
        return await _read_table(page, profile, direction)


async def _body(response: Response) -> bytes | None:
    """The answer's bytes; None when they cannot be had, which leaves the status to say what happened: the page
    navigated away first (it reloads on a 503 page; a redirect has no body), or the page never reads them (its
    script reads JSON answers only, and the browser holds an unread body open), so an answer that is not JSON
    is waited for briefly."""
    readable = "json" in response.headers.get("content-type", "") and response.status < 400
    try:
        return await asyncio.wait_for(response.body(), RESPONSE_TIMEOUT_MS / 1000 if readable else UNREAD_BODY_WAIT)
    except (PlaywrightError, TimeoutError):
        return None


def check_answer(answer: QueryPage, query: SearchQuery, start: date, end: date, total: int | None) -> None:
    """The answer is for this query: rows inside [start, end], of the asked direction by the company's own tax
    id (seller of an issued row, buyer of a received one; a row that leaves it empty has nothing to contradict),
    and (when `total` is the Total of the walk's first page) the same Total. Else it is asked for again."""
    outside = [row for row in answer.rows if not start <= row.issued_at.date() <= end]
    if outside:
        row = outside[0]
        raise errors.PortalUnavailable(
            f"the portal answered rows outside {start}..{end} (e.g. {row.number} of {row.issued_at:%Y-%m-%d}): "
            "an answer to another query; asking again"
        )
    own = "seller_tax_id" if query.direction is Direction.issued else "buyer_tax_id"
    others = [row for row in answer.rows if query.company_id and getattr(row, own) not in (query.company_id, "")]
    if others:
        raise errors.PortalUnavailable(
            f"the portal answered {query.direction} rows whose {own} is not {query.company_id} "
            f"(e.g. {others[0].number}): an answer to another query; asking again"
        )
    if total is not None and answer.total != total:
        raise errors.PortalUnavailable(f"the portal's Total changed from {total} to {answer.total} while paging; asking again")


async def _next_enabled(page: Page, profile: PortalProfile) -> bool:
    button = page.locator(profile.query.next_page)
    classes = await button.get_attribute("class") or ""
    return await button.count() > 0 and profile.query.disabled_class not in classes


Retry = Callable[[], AsyncRetrying]  # a fresh retry policy for each page (agent.retry.retrying)


class _Walker:
    """Pages through one range. A page whose query fails is asked for again under the retry policy, resuming
    where the walk was: the filters are set again and the pager jumps back, so a failure late in a long listing
    does not start it over. Every answer is checked to be for this query (check_answer), so a page that
    reloaded and lost its filters never brings in another range's rows, and a Total that moves while paging
    (rows added or removed meanwhile) starts the walk's pages again from the first."""

    def __init__(self, form: _QueryForm, query: SearchQuery, start: date, end: date) -> None:
        self.form, self.query, self.start, self.end = form, query, start, end
        self.page, self.profile = form.page, form.profile
        self.rows: dict[str, InvoiceRow] = {}
        self.shown = 0  # the page number on screen; 0 when unknown (never queried, failed, reloaded)
        self.total: int | None = None  # the Total of the walk's last first page

    async def fetch(self, number: int, retry: Retry | None) -> QueryPage:
        if retry is None:
            return await self._show(number)
        async for attempt in retry():
            with attempt:
                return await self._show(number)
        raise AssertionError("unreachable: retrying re-raises the last error")

    async def _show(self, number: int) -> QueryPage:
        try:
            if number > 1 and self.shown == number - 1:
                return await self._step(number, lambda: press(self.page.locator(self.profile.query.next_page)))
            return await self._query_again(number)
        except BaseException:
            self.form.stale = True
            raise

    async def _query_again(self, number: int) -> QueryPage:
        """Set the filters, query, and page on to `number`."""
        selectors = self.profile.query
        await self.form.fill(self.query, self.start, self.end)
        answer = await self._step(1, lambda: press(self.page.locator(selectors.submit)))
        if answer.total > answer.page_size and answer.page_size != LARGEST_PAGE:
            answer = await self._step(1, lambda: pick_page_size(self.page, self.profile, LARGEST_PAGE))
        while self.shown < number:
            answer = await self._jump(await self._nearest_page_number(number))
        return answer

    async def _jump(self, target: int) -> QueryPage:
        number = self.page.locator(self.profile.query.page_numbers).filter(has_text=re.compile(rf"^{target}$"))
        return await self._step(target, lambda: press(number.first))

    async def _nearest_page_number(self, number: int) -> int:
        """The furthest page number the pager shows on the way to `number` (it shows the current one ± 2)."""
        texts = await self.page.locator(self.profile.query.page_numbers).all_inner_texts()
        shown = [int(text) for text in (t.strip() for t in texts) if text.isdigit()]
        ahead = [page for page in shown if self.shown < page <= number]
        if not ahead:
            raise errors.PortalChanged(f"the pager offers no page between {self.shown} and {number}: {texts}")
        return max(ahead)

    async def _step(self, number: int, action: Callable[[], Awaitable[object]]) -> QueryPage:
        """One query of page `number`; a first page sets the Total every later page of the walk must show."""
        self.shown = 0  # unknown until the answer is in
        answer = await _query(self.page, self.profile, self.query.direction, action, self.form.pace)
        check_answer(answer, self.query, self.start, self.end, self.total if number > 1 else None)
        self.rows.update((row.number, row) for row in answer.rows)
        self.shown = number
        if number == 1:
            self.total = answer.total
        return answer


async def _walk_on(walker: _Walker, answer: QueryPage, retry: Retry | None) -> tuple[dict[str, InvoiceRow], int]:
    """The rest of a walk whose first page is `answer`: the rows by number, and the Total the portal gave last."""
    number = 1
    while len(walker.rows) < answer.total and answer.rows and await _next_enabled(walker.page, walker.profile):
        number += 1
        answer = await walker.fetch(number, retry)
    query = walker.query
    log.info("listed %s %s..%s: %d rows, portal Total %d", query.direction, walker.start, walker.end, len(walker.rows), answer.total)
    return walker.rows, answer.total


async def _walk(
    form: _QueryForm, query: SearchQuery, start: date, end: date, retry: Retry | None
) -> tuple[dict[str, InvoiceRow], int]:
    walker = _Walker(form, query, start, end)
    return await _walk_on(walker, await walker.fetch(1, retry), retry)


async def _list_range(
    form: _QueryForm, query: SearchQuery, start: date, end: date, retry: Retry | None
) -> tuple[dict[str, InvoiceRow], int, list[str]]:
    """Rows, Total and count mismatches of one range. A range of many pages is listed in as many parts as its
    Total calls for (fewer queries than halving again and again), whose short walks are cheap to resume when
    a page fails; a part that still holds too many rows is cut again."""
    walker = _Walker(form, query, start, end)
    first = await walker.fetch(1, retry)
    if first.total > LARGEST_PAGE * SPLIT_ABOVE_PAGES and start < end:
        parts = math.ceil(first.total / (LARGEST_PAGE * SPLIT_ABOVE_PAGES * PART_FILL))
        log.info("%s %s..%s has more than %d pages; listing it in %d parts", query.direction, start, end, SPLIT_ABOVE_PAGES, parts)
        return await _list_each(form, query, split_days(start, end, parts), retry)
    rows, total = await _walk_on(walker, first, retry)
    if len(rows) == total:
        return rows, total, []
    log.warning("%s %s..%s: collected %d rows, portal Total %d; walking again", query.direction, start, end, len(rows), total)
    again, total = await _walk(form, query, start, end, retry)
    rows.update(again)
    mismatch = f"{query.direction} {start}..{end}: portal Total {total}, collected {len(again)}"
    return rows, total, [] if len(again) == total else [mismatch]


async def _list_each(
    form: _QueryForm, query: SearchQuery, ranges: list[tuple[date, date]], retry: Retry | None
) -> tuple[dict[str, InvoiceRow], int, list[str]]:
    """Rows, Total and count mismatches of consecutive ranges, listed one after another."""
    rows: dict[str, InvoiceRow] = {}
    total, mismatches = 0, []
    for part_start, part_end in ranges:
        part_rows, part_total, part_mismatches = await _list_range(form, query, part_start, part_end, retry)
        rows.update(part_rows)
        total += part_total
        mismatches += part_mismatches
    return rows, total, mismatches


async def search(
    page: Page, profile: PortalProfile, query: SearchQuery, retry: Retry | None = None, reload: bool = False,
    pace: Pace = _no_pause,
) -> Listing:
    """All rows of the query's period; the page must be on (or able to reach) the query page, and is loaded
    afresh first with `reload` (after a lost session: it may still be on its way to the login page). With
    `retry`, each page's query is retried under that policy, the walk resuming where it failed; `pace` is
    awaited before each query (the politeness gate)."""
    ranges = split_range(query.date_from, query.date_to, profile.max_range_days)
    form = _QueryForm(page, profile, stale=reload, pace=pace)
    rows, total, mismatches = await _list_each(form, query, ranges, retry)
    ordered = sorted(rows.values(), key=lambda row: (row.issued_at, row.number))
    return Listing(query=query, rows=ordered, portal_total=total, count_mismatches=mismatches)
