"""Search the 全量发票查询 page and collect every row of a period, checked against the portal's own Total.

The real portal encrypts and signs its API calls, so the agent drives the page and reads the JSON responses
as the page receives them, with the rendered table as a fallback. Ranges longer than the portal accepts are
split; every page is walked at the largest page size; rows are de-duplicated by number. If the rows collected
do not add up to Total (rows shifted while paging), the range is walked once more; a mismatch that remains is
reported, never ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Response
from playwright.async_api import TimeoutError as PlaywrightTimeout
from pydantic import BaseModel, Field

from agent import errors
from agent.parsers.listing import QueryPage, parse_query_response, parse_table
from agent.portal import PAGE_SIZES, PortalProfile
from agent.records import Direction, InvoiceRow

log = logging.getLogger(__name__)

RESPONSE_TIMEOUT_MS = 30_000
LARGEST_PAGE = max(PAGE_SIZES)


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
    await page.click(selectors.direction_tab[query.direction])
    await page.fill(selectors.date_from, start.isoformat())
    await page.fill(selectors.date_to, end.isoformat())
    await page.select_option(selectors.kinds, query.kinds)
    await page.select_option(selectors.statuses, query.statuses)
    await page.fill(selectors.number, query.number)
    await page.fill(selectors.counterpart_id, query.counterpart_id)
    await page.fill(selectors.counterpart_name, query.counterpart_name)


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
        raise errors.PortalUnavailable(f"the query service answered HTTP {response.status}")


async def _query(page: Page, profile: PortalProfile, direction: Direction, action: Callable[[], Awaitable[None]]) -> QueryPage:
    """Run a page action that queries, and return the page of rows the portal answered with."""
    try:
        async with page.expect_response(
            lambda r: profile.paths.query_api in r.url and r.request.method == "POST", timeout=RESPONSE_TIMEOUT_MS
        ) as info:
            await action()
        response = await info.value
    except PlaywrightTimeout as exc:
        raise errors.PortalUnavailable("the query page did not answer in time") from exc
    text = await _body_text(response)
    _check_status(profile, response, text)
    try:
        return parse_query_response(text, direction)
    except ValueError:
        log.info("query response not readable as JSON; reading the rendered table instead")
        return await _read_table(page, profile, direction)


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


async def _walk(page: Page, profile: PortalProfile, query: SearchQuery, start: date, end: date) -> tuple[dict[str, InvoiceRow], int]:
    """Every page of one range: the rows by number, and the Total the portal gave last."""
    await _fill_filters(page, profile, query, start, end)
    answer = await _query(page, profile, query.direction, lambda: page.click(profile.query.submit))
    if answer.total > answer.page_size and answer.page_size != LARGEST_PAGE:
        answer = await _query(
            page, profile, query.direction, lambda: page.select_option(profile.query.page_size, str(LARGEST_PAGE))
        )
    rows = {row.number: row for row in answer.rows}
    while len(rows) < answer.total and answer.rows and await _next_enabled(page, profile):
        answer = await _query(page, profile, query.direction, lambda: page.click(profile.query.next_page))
        rows.update((row.number, row) for row in answer.rows)
    log.info("listed %s %s..%s: %d rows, portal Total %d", query.direction, start, end, len(rows), answer.total)
    return rows, answer.total


async def _walk_checked(page: Page, profile: PortalProfile, query: SearchQuery, start: date, end: date) -> tuple[dict[str, InvoiceRow], int, str | None]:
    rows, total = await _walk(page, profile, query, start, end)
    if len(rows) != total:
        log.warning("%s %s..%s: collected %d rows, portal Total %d; walking again", query.direction, start, end, len(rows), total)
        again, total = await _walk(page, profile, query, start, end)
        rows.update(again)
        if len(again) != total:
            return rows, total, f"{query.direction} {start}..{end}: portal Total {total}, collected {len(again)}"
    return rows, total, None


async def search(page: Page, profile: PortalProfile, query: SearchQuery) -> Listing:
    """All rows of the query's period; the page must be on (or able to reach) the query page."""
    if profile.paths.query_page not in page.url:
        await page.goto(profile.url(profile.paths.query_page))
    rows: dict[str, InvoiceRow] = {}
    total, mismatches = 0, []
    for start, end in split_range(query.date_from, query.date_to, profile.max_range_days):
        chunk_rows, chunk_total, mismatch = await _walk_checked(page, profile, query, start, end)
        rows.update(chunk_rows)
        total += chunk_total
        if mismatch:
            mismatches.append(mismatch)
    ordered = sorted(rows.values(), key=lambda row: (row.issued_at, row.number))
    return Listing(query=query, rows=ordered, portal_total=total, count_mismatches=mismatches)
