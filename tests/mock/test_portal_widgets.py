"""The query page's TDesign-like widgets in Chromium: popup multi-selects (票种, 发票状态), the page-size
chooser and the date-range picker, driven by clicks as a person drives them; the query body is unchanged."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from fixtures.portal import drive
from fixtures.pytest_plugin import MockPortal

# plain: these tests read the query body the page sends, which realistic mode encrypts
pytestmark = [pytest.mark.browser, pytest.mark.mock_portal("plain", invoices_per_month=45)]

QUERY_API = "**/szzhzz/qlfpcx/v1/queryFpjcxx*"
PANEL = "div.t-date-range-picker__panel"
BODY_KEYS = {
    "Gjbq", "Kprqq", "Kprqz", "FplxDm", "FpztDm", "FplyDm", "Fphm", "Dfnsrsbh", "Dfnsrmc", "PageNumber", "PageSize",
}  # fmt: skip


def open_query_page(page: Page, portal: MockPortal) -> None:
    """Logged in over HTTP; the session's cookies handed to the browser."""
    client = portal.log_in(portal.client())
    page.context.add_cookies(
        [{"name": name, "value": value, "url": portal.url} for name, value in client.cookies.items()]
    )
    page.goto(portal.url + drive.QUERY_PAGE)


def sent_query(page: Page, action: Any) -> dict[str, Any]:
    with page.expect_request(QUERY_API) as request:
        action()
    body: dict[str, Any] = request.value.post_data_json or {}
    return body


def test_kind_select_opens_a_popup_and_toggles_options(page: Page, mock_portal: MockPortal) -> None:
    open_query_page(page, mock_portal)
    select, popup = (
        page.locator('div.t-select[data-field="FplxDm"]'),
        page.locator('div.t-popup[data-field="FplxDm"]'),
    )
    expect(popup).to_have_count(0)
    expect(select).to_have_text(re.compile("全部"))
    select.click()
    expect(popup.locator("li.t-select-option")).to_have_count(10)
    popup.locator('li.t-select-option[data-value="81"]').click()
    popup.locator('li.t-select-option[data-value="82"]').click()
    popup.locator('li.t-select-option[data-value="01"]').click()
    popup.locator('li.t-select-option[data-value="01"]').click()  # toggled off again
    expect(popup.locator("li.t-is-selected")).to_have_text(["数电票（增值税专用发票）", "数电票（普通发票）"])
    select.click()
    expect(popup).to_have_count(0)
    expect(select.locator(".t-tag")).to_have_text(["数电票（增值税专用发票）", "数电票（普通发票）"])
    drive.pick_dates(page, "2025-10-01", "2025-10-31")
    body = sent_query(page, lambda: page.click("button.query-btn"))
    assert body["FplxDm"] == ["81", "82"] and body["FpztDm"] == [] and set(body) == BODY_KEYS
    expect(page.locator(".t-table tbody tr.t-table__row").first).to_be_visible()
    kinds = page.locator(".t-table tbody tr.t-table__row td:nth-child(13)").all_inner_texts()
    assert kinds and set(kinds) <= {"数电票（增值税专用发票）", "数电票（普通发票）"}


def test_status_popup_closes_on_escape_and_on_a_click_elsewhere(page: Page, mock_portal: MockPortal) -> None:
    open_query_page(page, mock_portal)
    popup = page.locator('div.t-popup[data-field="FpztDm"]')
    page.click('div.t-select[data-field="FpztDm"]')
    popup.locator('li.t-select-option[data-value="01"]').click()
    expect(popup).to_be_visible()  # a multi-select stays open while picking
    page.keyboard.press("Escape")
    expect(popup).to_have_count(0)
    page.click('div.t-select[data-field="FpztDm"]')
    expect(popup.locator('li.t-select-option[data-value="01"]')).to_have_class(re.compile("t-is-selected"))
    page.click(".top-bar .crumbs")
    expect(popup).to_have_count(0)
    body = sent_query(page, lambda: page.click("button.query-btn"))
    assert body["FpztDm"] == ["01"] and body["FplyDm"] == "0"
    page.click("button.reset-btn")
    body = sent_query(page, lambda: page.click("button.query-btn"))
    assert (body["FplxDm"], body["FpztDm"]) == ([], [])


def test_page_size_chooser_requeries_at_page_one(page: Page, mock_portal: MockPortal) -> None:
    open_query_page(page, mock_portal)
    drive.query(page)
    expect(page.locator(".t-table tbody tr.t-table__row")).to_have_count(20)
    page.click(".t-pagination__btn-next")
    expect(page.locator(".t-pagination__number.t-is-current")).to_have_text("2")
    chooser = page.locator("div.t-pagination__select")
    expect(chooser).to_have_text(re.compile("20 条/页"))
    chooser.click()
    options = page.locator('div.t-popup[data-field="PageSize"] li.t-select-option')
    expect(options).to_have_text(["10 条/页", "20 条/页", "50 条/页", "100 条/页"])
    body = sent_query(page, lambda: page.click('div.t-popup[data-field="PageSize"] li[data-value="10"]'))
    assert (body["PageNumber"], body["PageSize"]) == (1, 10)
    expect(page.locator('div.t-popup[data-field="PageSize"]')).to_have_count(0)
    expect(chooser).to_have_text(re.compile("10 条/页"))
    expect(page.locator(".t-table tbody tr.t-table__row")).to_have_count(10)
    expect(page.locator(".t-pagination__number.t-is-current")).to_have_text("1")


def test_date_range_picker_is_clicked_not_typed(page: Page, mock_portal: MockPortal) -> None:
    open_query_page(page, mock_portal)
    start, end = (
        page.locator('input[placeholder="开票日期起"]'),
        page.locator('input[placeholder="开票日期止"]'),
    )
    expect(start).not_to_be_editable()
    expect(end).not_to_be_editable()
    expect(start).to_have_attribute("readonly", "")
    shown = start.input_value()[:7]
    end.click()
    panel = page.locator(PANEL)
    expect(panel.locator(".t-date-picker__header-title")).to_have_text(shown)
    year, month = map(int, shown.split("-"))
    panel.locator(".t-date-picker__header-btn--prev-year").click()
    expect(panel.locator(".t-date-picker__header-title")).to_have_text(f"{year - 1}-{month:02d}")
    panel.locator(".t-date-picker__header-btn--next").click()
    after = (year - 1, month + 1) if month < 12 else (year, 1)
    expect(panel.locator(".t-date-picker__header-title")).to_have_text(f"{after[0]}-{after[1]:02d}")
    panel.locator(".t-date-picker__header-btn--next-year").click()
    panel.locator(".t-date-picker__header-btn--prev").click()
    expect(panel.locator(".t-date-picker__header-title")).to_have_text(shown)
    page.keyboard.press("Escape")
    expect(panel).to_have_count(0)
    drive.pick_dates(page, "2025-10-20", "2025-10-05")  # the second day is earlier: they swap
    expect(panel).to_have_count(0)
    expect(start).to_have_value("2025-10-05")
    expect(end).to_have_value("2025-10-20")
    body = sent_query(page, lambda: page.click("button.query-btn"))
    assert (body["Kprqq"], body["Kprqz"]) == ("2025-10-05", "2025-10-20")


def test_a_day_cell_of_the_panel_names_its_date(page: Page, mock_portal: MockPortal) -> None:
    open_query_page(page, mock_portal)
    page.click('input[placeholder="开票日期起"]')
    drive.show_month(page, date(2024, 2, 1))
    cells = page.locator(f"{PANEL} td.t-date-picker__cell:not(.t-date-picker__cell--additional)")
    expect(cells).to_have_count(29)  # a leap February
    expect(cells.first).to_have_attribute("data-date", "2024-02-01")
    page.click(f'{PANEL} td.t-date-picker__cell[data-date="2024-02-29"]')
    expect(page.locator(PANEL)).to_be_visible()  # waiting for the end
    expect(page.locator(f'{PANEL} td[data-date="2024-02-29"]')).to_have_class(re.compile("t-is-active"))
    page.click(f'{PANEL} td.t-date-picker__cell[data-date="2024-02-29"]')
    expect(page.locator('input[placeholder="开票日期止"]')).to_have_value("2024-02-29")
