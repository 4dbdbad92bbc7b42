"""The search flow against the mock: every row of a period, equal to the portal's truth."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from agentkit import MONTH, SettingsFactory, run_async, run_job
from playwright.async_api import Page, Route
from rowkit import COMPANY, make_row

from agent.browser import BrowserSession, find_chromium
from agent.config import Settings
from agent.errors import PortalUnavailable, SessionLost
from agent.flows.search import Listing, SearchQuery, check_answer, search, split_range
from agent.job import profile_for
from agent.parsers.listing import QueryPage
from agent.portal import PortalProfile
from agent.records import Direction, InvoiceRow
from agent.retry import Gate, retrying
from fixtures.portal.pages import static_text
from fixtures.pytest_plugin import MockPortal

Prepare = Callable[[Page, PortalProfile], Awaitable[None]]


async def nothing(page: Page, profile: PortalProfile) -> None:
    pass


def listing(settings: Settings, query: SearchQuery, prepare: Prepare = nothing) -> Listing:
    """Log in (through a job), then run the search flow on a page with the saved session, once `prepare` has
    left that page as a test wants it."""
    run_job(settings, login_only=True)

    async def go() -> Listing:
        async with BrowserSession(find_chromium(), settings.state_dir) as browser:
            context = await browser.new_context("acct")
            page = await context.new_page()
            try:
                profile = profile_for(settings)
                await prepare(page, profile)
                company = settings.accounts["acct"].company_id
                own = query.model_copy(update={"company_id": query.company_id or company})
                return await search(page, profile, own, lambda: retrying(settings, Gate(settings.rate_limit)))
            finally:
                await context.close()

    return run_async(go())


def october(direction: Direction, **filters: object) -> SearchQuery:
    return SearchQuery(direction=direction, date_from=date(2025, 10, 1), date_to=date(2025, 10, 31), **filters)


def truth_numbers(portal: MockPortal, direction: Direction, keep: object = None) -> set[str]:
    invoices = portal.truth(MONTH, direction.value)["invoices"]
    return {i["Fphm"] for i in invoices if keep is None or keep(i)}  # type: ignore[operator]


@pytest.mark.mock_portal(invoices_per_month=230)
def test_month_listing_walks_every_page_and_equals_truth(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    found = listing(agent_settings(), october(Direction.received))
    assert {row.number for row in found.rows} == truth_numbers(mock_portal, Direction.received)
    assert found.portal_total == 230 and not found.count_mismatches
    truth = {i["Fphm"]: i for i in mock_portal.truth(MONTH, "received")["invoices"]}
    for row in found.rows:
        assert row.total == Decimal(str(truth[row.number]["Jshj"])).quantize(Decimal("0.01"))
        assert row.amount + row.tax == row.total


@pytest.mark.mock_portal(invoices_per_month=40, max_range_days=10)
def test_range_over_the_portal_limit_is_split(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    found = listing(agent_settings(max_range_days=10), october(Direction.issued))
    assert {row.number for row in found.rows} == truth_numbers(mock_portal, Direction.issued)
    assert mock_portal.counters()["query_calls"] >= 4  # 1-10, 11-20, 21-30, 31


@pytest.mark.mock_portal(invoices_per_month=60)
def test_status_filter_is_applied_by_the_portal(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    found = listing(agent_settings(), october(Direction.issued, statuses=["01"]))
    expected = truth_numbers(mock_portal, Direction.issued, lambda i: i["FpztDm"] == "01")
    assert {row.number for row in found.rows} == expected
    assert 0 < len(expected) < 60


@pytest.mark.mock_portal(invoices_per_month=5)
def test_empty_period_lists_nothing(agent_settings: SettingsFactory) -> None:
    empty = SearchQuery(direction=Direction.issued, date_from=date(2019, 1, 1), date_to=date(2019, 1, 1), number="00000000000000000000")
    found = listing(agent_settings(), empty)
    assert found.rows == [] and found.portal_total == 0


@pytest.mark.mock_portal(scenario="shifting", invoices_per_month=150)
def test_rows_shifting_while_paging_are_all_collected(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    found = listing(agent_settings(), october(Direction.received))
    assert {row.number for row in found.rows} == truth_numbers(mock_portal, Direction.received)
    assert len(found.rows) > 150


def test_split_range_covers_each_day_once() -> None:
    chunks = split_range(date(2025, 1, 30), date(2025, 3, 5), 31)
    assert chunks == [(date(2025, 1, 30), date(2025, 3, 1)), (date(2025, 3, 2), date(2025, 3, 5))]


@pytest.mark.mock_portal(invoices_per_month=25)
def test_table_fallback_reads_the_same_rows_as_the_json(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    from agent.flows import search as search_flow

    settings = agent_settings()
    run_job(settings, login_only=True)
    profile = profile_for(settings)

    async def both() -> tuple[list[object], list[object]]:
        async with BrowserSession(find_chromium(), settings.state_dir) as browser:
            context = await browser.new_context("acct")
            page = await context.new_page()
            await page.goto(profile.url(profile.paths.query_page))
            await search_flow._fill_filters(page, profile, october(Direction.received), date(2025, 10, 1), date(2025, 10, 31))
            from_json = await search_flow._query(page, profile, Direction.received, lambda: page.click(profile.query.submit))
            from_table = await search_flow._read_table(page, profile, Direction.received)
            await context.close()
            return [from_json.total, from_json.rows], [from_table.total, from_table.rows]

    json_view, table_view = run_async(both())
    assert table_view == json_view


async def left_on_the_maintenance_page(page: Page, profile: PortalProfile) -> None:
    """The query page as a query answered 503 leaves it: reloaded into the maintenance page, at its own URL."""
    url = profile.url(profile.paths.query_page)

    async def maintenance(route: Route) -> None:
        await route.fulfill(status=503, content_type="text/html; charset=utf-8", body=static_text("maintenance.html"))

    await page.route(url, maintenance)
    await page.goto(url)
    await page.unroute(url, maintenance)


@pytest.mark.mock_portal(invoices_per_month=25)
def test_a_page_left_on_the_maintenance_page_is_loaded_afresh(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    result = listing(agent_settings(), october(Direction.received), left_on_the_maintenance_page)
    assert {row.number for row in result.rows} == truth_numbers(mock_portal, Direction.received)


@pytest.mark.mock_portal(invoices_per_month=25)
def test_a_dead_session_is_said_at_once(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    async def session_dies(page: Page, profile: PortalProfile) -> None:
        mock_portal.advance_clock(mock_portal.scenario()["portal"]["session_idle_seconds"] + 1)

    with pytest.raises(SessionLost, match="login page"):  # not a timeout waiting for a form the page lacks
        listing(agent_settings(), october(Direction.issued), session_dies)


def tamper_once(change: Callable[[dict[str, Any]], None], page_number: int = 1) -> Prepare:
    """The first query answer for page `page_number` reaches the page changed by `change`, as an answer to
    another query would (the real page's requests are encrypted: only the answer can be checked)."""

    async def prepare(page: Page, profile: PortalProfile) -> None:
        done: list[bool] = []

        async def once(route: Route) -> None:
            response = await route.fetch()
            answer = await response.json()
            data = answer["Response"].get("Data") or {}
            if not done and data.get("PageNumber") == page_number and data.get("List"):
                done.append(True)
                change(data)
            await route.fulfill(response=response, json=answer)

        await page.route(f"**{profile.paths.query_api}*", once)

    return prepare


def _dated_elsewhere(data: dict[str, Any]) -> None:
    data["List"][0]["Kprq"] = "2025-09-30 23:59:59"


def _other_direction(data: dict[str, Any]) -> None:
    row = data["List"][0]
    row["Xsfnsrsbh"], row["Gmfnsrsbh"] = row["Gmfnsrsbh"], row["Xsfnsrsbh"]


def _total_moved(data: dict[str, Any]) -> None:
    data["Total"] += 1


@pytest.mark.parametrize(
    ("change", "page_number", "says"),
    [
        (_dated_elsewhere, 1, "rows outside 2025-10-01..2025-10-31"),
        (_other_direction, 1, "buyer_tax_id is not"),
        (_total_moved, 2, "Total changed from 230 to 231"),
    ],
)
@pytest.mark.mock_portal(invoices_per_month=230)
def test_an_answer_to_another_query_is_asked_again(
    mock_portal: MockPortal, agent_settings: SettingsFactory, caplog: pytest.LogCaptureFixture,
    change: Callable[[dict[str, Any]], None], page_number: int, says: str,
) -> None:
    caplog.set_level(logging.INFO, logger="agent")
    found = listing(agent_settings(), october(Direction.received), tamper_once(change, page_number))
    assert {row.number for row in found.rows} == truth_numbers(mock_portal, Direction.received)
    assert found.portal_total == 230 and not found.count_mismatches
    assert any(says in record.getMessage() for record in caplog.records)


@pytest.mark.mock_portal(invoices_per_month=60)
def test_kind_and_status_filters_are_picked_in_their_popups(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    kinds = ["81", "82"]
    found = listing(agent_settings(), october(Direction.issued, kinds=kinds, statuses=["01"]))
    expected = truth_numbers(mock_portal, Direction.issued, lambda i: i["FplxDm"] in kinds and i["FpztDm"] == "01")
    assert {row.number for row in found.rows} == expected
    assert 0 < len(expected) < 60


def answer_of(*rows: InvoiceRow, total: int | None = None) -> QueryPage:
    return QueryPage(page_number=1, page_size=20, total=len(rows) if total is None else total, rows=list(rows))


RECEIVED_OCTOBER = SearchQuery(
    direction=Direction.received, company_id=COMPANY, date_from=date(2025, 10, 1), date_to=date(2025, 10, 31)
)


@pytest.mark.parametrize(
    ("answer", "walk_total", "says"),
    [
        (answer_of(make_row(issued_at=datetime(2025, 9, 30, 23, 59, 59))), None, "outside 2025-10-01..2025-10-31"),
        (answer_of(make_row(issued_at=datetime(2025, 11, 1))), None, "outside"),
        (answer_of(make_row(buyer_tax_id="91110000600012345X", seller_tax_id=COMPANY)), None, "buyer_tax_id is not"),
        (answer_of(make_row(), total=21), 20, "Total changed from 20 to 21"),
    ],
)
def test_an_answer_for_another_query_is_refused(answer: QueryPage, walk_total: int | None, says: str) -> None:
    with pytest.raises(PortalUnavailable, match=says):
        check_answer(answer, RECEIVED_OCTOBER, date(2025, 10, 1), date(2025, 10, 31), walk_total)


@pytest.mark.parametrize(
    "answer",
    [
        answer_of(make_row(issued_at=datetime(2025, 10, 1)), make_row("2", issued_at=datetime(2025, 10, 31, 23, 59, 59))),
        answer_of(make_row(buyer_tax_id="")),  # nothing to contradict
        answer_of(),
    ],
)
def test_an_answer_for_this_query_is_taken(answer: QueryPage) -> None:
    check_answer(answer, RECEIVED_OCTOBER, date(2025, 10, 1), date(2025, 10, 31), answer.total)
