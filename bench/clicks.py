"""Today's way: a person's clicks, one invoice after another, through the 下载/交付 dialog of the query page.

For each row: click its button.row-download, click the dialog's PDF button, wait for the download, save it,
close the dialog. The browser starts from the agent's saved session (no second login); the clock runs from
the first click to the last save, and the time per invoice is extrapolated to the month. Nothing is verified.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page

from agent.browser import BrowserSession, find_chromium
from agent.flows.widgets import pick_dates, pick_page_size
from agent.portal import PortalProfile
from agent.records import Direction

CLOSE_DIALOG = ".t-dialog.download-dialog .t-dialog__close"
NUMBER_COLUMN = 1  # 数电发票号码
LARGEST_PAGE = 100


async def click_baseline(
    portal_url: str, state_dir: Path, period: tuple[date, date], received: set[str], clicks: int, save_dir: Path
) -> dict[str, Any]:
    """`received`: the numbers of the month's received invoices that have a file (paper ones have none)."""
    profile = PortalProfile(portal_url=portal_url)
    async with BrowserSession(find_chromium(None), state_dir) as browser:
        context = await browser.new_context("demo")
        page = await context.new_page()
        await _show_month(page, profile, period, shown=min(len(received), LARGEST_PAGE))
        assert context.browser is not None
        started = time.perf_counter()
        done = await _click_rows(page, profile, received, clicks, save_dir)
        seconds = time.perf_counter() - started
        version = context.browser.version
        await context.close()
    return {"clicks": done, "seconds": round(seconds, 2), "per_invoice_s": round(seconds / done, 4), "chromium": version}


async def _show_month(page: Page, profile: PortalProfile, period: tuple[date, date], shown: int) -> None:
    selectors = profile.query
    await page.goto(profile.url(profile.paths.query_page))
    await page.click(selectors.direction_tab[Direction.received])
    await pick_dates(page, profile, *period)  # the date-range picker: its inputs are read-only
    await page.click(selectors.submit)
    await page.locator(selectors.body_rows).first.wait_for()
    await pick_page_size(page, profile, LARGEST_PAGE)  # a popup of options, not a <select>
    await page.locator(selectors.body_rows).nth(shown - 1).wait_for()  # the page of 100 is drawn


async def _click_rows(page: Page, profile: PortalProfile, received: set[str], clicks: int, save_dir: Path) -> int:
    done = 0
    for row in await page.locator(profile.query.body_rows).all():
        if done == clicks:
            break
        if (await row.locator("td").nth(NUMBER_COLUMN).inner_text()).strip() in received:
            await _download(page, profile, row, save_dir)
            done += 1
    return done


async def _download(page: Page, profile: PortalProfile, row: Locator, save_dir: Path) -> None:
    await row.locator(profile.query.row_action).click()
    async with page.expect_download() as info:
        await page.click(profile.query.download_button.format(fmt="PDF"))
    download = await info.value
    await download.save_as(save_dir / download.suggested_filename)
    await page.click(CLOSE_DIALOG)
