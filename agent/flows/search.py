"""Search the 全量发票查询 page and collect every row of a period, checked against the portal's own Total.

The real portal encrypts and signs its API calls, so the agent drives the page and reads the JSON responses
as the page receives them, with the rendered table as a fallback. Ranges longer than the portal accepts are
split, and so is a range of more than a few pages, so that every walk is short; every page is walked at the
largest page size; rows are de-duplicated by number. A page whose query fails is asked for again (the
caller's retry policy) on the query page loaded afresh, the walk resuming at that page. If the rows collected
do not add up to Total (rows shifted while paging), the range is walked once more; a mismatch that remains is
reported, never ignored.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, Response
from playwright.async_api import TimeoutError as PlaywrightTimeout
from pydantic import BaseModel, Field
from tenacity import AsyncRetrying

from agent import errors
from agent.browser import navigation_error
from agent.parsers.listing import QueryPage, parse_query_response, parse_table
from agent.portal import DIRECTION_CODE, PAGE_SIZES, PortalProfile
from agent.records import Direction, InvoiceRow

log = logging.getLogger(__name__)

RESPONSE_TIMEOUT_MS = 30_000
LARGEST_PAGE = max(PAGE_SIZES)
SPLIT_ABOVE_PAGES = 10  # a range with more pages of rows is listed in parts (by 开票日期), down to single days
PART_FILL = 0.8  # parts aim at 80 % of that: invoices are not spread evenly over the days, and a part too full is cut again


class SearchQuery(BaseModel):
    direction: Direction
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


async def _press(target: Locator) -> None:
    """Click as the page's own handlers see it (a click event on the element), without Playwright's
    actionability waits: they count animation frames, which Chromium gives the page in the background (the
    other direction's, listed at once) about once a second, and they scroll and aim the mouse, which costs a
    third of the listing's time. What those waits guard against is checked instead: the pager's next button
    is enabled, and every click must bring the query answer it is for, or it is asked again."""
    await target.dispatch_event("click")


async def _fill_filters(page: Page, profile: PortalProfile, query: SearchQuery, start: date, end: date) -> None:
    selectors = profile.query
    await _press(page.locator(selectors.direction_tab[query.direction]))
    await page.fill(selectors.date_from, start.isoformat())
    await page.fill(selectors.date_to, end.isoformat())
    await page.select_option(selectors.kinds, query.kinds)
    await page.select_option(selectors.statuses, query.statuses)
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
        _check_status(profile, response, await response.text())


class _QueryForm:
    """The query page's form, shared by the walks of one search. It is loaded afresh before it is filled when
    it may not be what the last walk left: a failed query can leave the page on the maintenance page (the page
    reloads itself on a 503), on an error, or on its way to the login page."""

    def __init__(self, page: Page, profile: PortalProfile, stale: bool) -> None:
        self.page, self.profile, self.stale = page, profile, stale

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


def _check_status(profile: PortalProfile, response: Response, text: str) -> None:
    if response.status == 429:
        retry_after = response.headers.get("retry-after")
        raise errors.RateLimited("the portal is rate limiting queries", float(retry_after) if retry_after else None)
    if response.status >= 500:
        if any(m in text for m in profile.messages.maintenance):
            raise errors.Maintenance("the portal is down for maintenance (系统维护)")
        raise errors.PortalUnavailable(f"the portal answered HTTP {response.status}")


async def _query(
    page: Page, profile: PortalProfile, direction: Direction, action: Callable[[], Awaitable[object]],
    period: tuple[date, date] | None = None,
) -> QueryPage:
    """Run a page action that queries, and return the page of rows the portal answered with (for `period`,
    when given: an answer to a query the page sent with other dates or direction is refused)."""
    try:
        async with page.expect_response(
            lambda r: profile.paths.query_api in r.url and r.request.method == "POST", timeout=RESPONSE_TIMEOUT_MS
        ) as info:
            await action()
        response = await info.value
    except PlaywrightTimeout as exc:
        raise errors.PortalUnavailable("the query page did not answer in time") from exc
    if period is not None:
        _check_sent(response, direction, period)
    text = await _body_text(response)
    _check_status(profile, response, text)
    try:
        return parse_query_response(text, direction)
    except ValueError:
        log.info("query response not readable as JSON; reading the rendered table instead")
        return await _read_table(page, profile, direction)


def _check_sent(response: Response, direction: Direction, period: tuple[date, date]) -> None:
    """The page sends what its form holds; a form reset by a reload sends its default dates instead."""
    try:
        sent = response.request.post_data_json or {}
    except ValueError:
        sent = {}
    wanted = {"Gjbq": DIRECTION_CODE[direction], "Kprqq": period[0].isoformat(), "Kprqz": period[1].isoformat()}
    if any(str(sent.get(key, "")) != value for key, value in wanted.items()):
        raise errors.PortalUnavailable(f"the query page sent another query than asked ({sent}); asking again")


async def _body_text(response: Response) -> str:
    """The answer's text; "" when the page navigated away first (it reloads on a 503 page), which leaves the
    status to say what happened."""
    try:
        return await response.text()
    except PlaywrightError as exc:
        if response.status < 400:
            raise errors.PortalUnavailable("the query answer was lost: the page navigated away") from exc
        return ""


async def _next_enabled(page: Page, profile: PortalProfile) -> bool:
    button = page.locator(profile.query.next_page)
    classes = await button.get_attribute("class") or ""
    return await button.count() > 0 and profile.query.disabled_class not in classes


Retry = Callable[[], AsyncRetrying]  # a fresh retry policy for each page (agent.retry.retrying)


class _Walker:
    """Pages through one range. A page whose query fails is asked for again under the retry policy, resuming
    where the walk was: the filters are set again and the pager jumps back, so a failure late in a long listing
    does not start it over. Every answer is checked to be for this range, so a page that reloaded and lost its
    filters never brings in another range's rows."""

    def __init__(self, form: _QueryForm, query: SearchQuery, start: date, end: date) -> None:
        self.form, self.query, self.start, self.end = form, query, start, end
        self.page, self.profile = form.page, form.profile
        self.rows: dict[str, InvoiceRow] = {}
        self.shown = 0  # the page number on screen; 0 when unknown (never queried, failed, reloaded)

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
                return await self._step(number, lambda: _press(self.page.locator(self.profile.query.next_page)))
            return await self._query_again(number)
        except BaseException:
            self.form.stale = True
            raise

    async def _query_again(self, number: int) -> QueryPage:
        """Set the filters, query, and page on to `number`."""
        selectors = self.profile.query
        await self.form.fill(self.query, self.start, self.end)
        answer = await self._step(1, lambda: _press(self.page.locator(selectors.submit)))
        if answer.total > answer.page_size and answer.page_size != LARGEST_PAGE:
            answer = await self._step(1, lambda: self.page.select_option(selectors.page_size, str(LARGEST_PAGE)))
        while self.shown < number:
            answer = await self._jump(await self._nearest_page_number(number))
        return answer

    async def _jump(self, target: int) -> QueryPage:
        number = self.page.locator(self.profile.query.page_numbers).filter(has_text=re.compile(rf"^{target}$"))
        return await self._step(target, lambda: _press(number.first))

    async def _nearest_page_number(self, number: int) -> int:
        """The furthest page number the pager shows on the way to `number` (it shows the current one ± 2)."""
        texts = await self.page.locator(self.profile.query.page_numbers).all_inner_texts()
        shown = [int(text) for text in (t.strip() for t in texts) if text.isdigit()]
        ahead = [page for page in shown if self.shown < page <= number]
        if not ahead:
            raise errors.PortalChanged(f"the pager offers no page between {self.shown} and {number}: {texts}")
        return max(ahead)

    async def _step(self, number: int, action: Callable[[], Awaitable[object]]) -> QueryPage:
        self.shown = 0  # unknown until the answer is in
        answer = await _query(self.page, self.profile, self.query.direction, action, (self.start, self.end))
        self.rows.update((row.number, row) for row in answer.rows)
        self.shown = number
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
    page: Page, profile: PortalProfile, query: SearchQuery, retry: Retry | None = None, reload: bool = False
) -> Listing:
    """All rows of the query's period; the page must be on (or able to reach) the query page, and is loaded
    afresh first with `reload` (after a lost session: it may still be on its way to the login page). With
    `retry`, each page's query is retried under that policy, the walk resuming where it failed."""
    ranges = split_range(query.date_from, query.date_to, profile.max_range_days)
    form = _QueryForm(page, profile, stale=reload)
    rows, total, mismatches = await _list_each(form, query, ranges, retry)
    ordered = sorted(rows.values(), key=lambda row: (row.issued_at, row.number))
    return Listing(query=query, rows=ordered, portal_total=total, count_mismatches=mismatches)
