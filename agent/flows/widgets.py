"""The query page's TDesign widgets, driven as a person drives them: open the popup, pick, close.

Popup selects (票种, 发票状态, the page size) are lists of `li` options, not a native <select>; the 开票日期 range
is a picker whose inputs are read-only: it is opened, moved month by month (or year by year) and two day cells
are clicked. Every selector is in agent.portal.QueryPage.

Clicks are dispatched to the element (a click event, as the page's handlers see it) without Playwright's
actionability waits, which count animation frames that Chromium gives a page in the background about once a
second; each step checks instead that the widget did what was asked.
"""

from __future__ import annotations

from datetime import date

from playwright.async_api import Locator, Page

from agent import errors
from agent.portal import PortalProfile

WIDGET_TIMEOUT_MS = 10_000
MONTHS_PER_YEAR = 12


async def press(target: Locator) -> None:
    """Click as the page's own handlers see it: a click event on the element."""
    await target.dispatch_event("click")


async def pick_options(page: Page, profile: PortalProfile, field: str, wanted: list[str]) -> None:
    """Leave exactly `wanted` selected in the multi-select `field` (none = all): open it, click each option
    whose state differs, close it. A select already empty that should stay empty is left alone."""
    selectors = profile.query
    select = page.locator(selectors.select.format(field=field))
    if not wanted and await select.locator(selectors.select_empty).count():
        return
    await press(select)
    options = page.locator(selectors.popup_option.format(field=field))
    await options.first.wait_for(timeout=WIDGET_TIMEOUT_MS)
    shown = await _option_states(options, selectors.option_value, selectors.selected_class)
    unknown = set(wanted) - set(shown)
    if unknown:
        await press(select)
        raise errors.SettingsError(f"the portal offers no {field} {', '.join(sorted(unknown))}; it offers {', '.join(shown)}")
    for value, selected in shown.items():
        if selected != (value in wanted):
            await press(page.locator(_option(profile, field, value)))
    after = await _option_states(options, selectors.option_value, selectors.selected_class)
    await press(select)  # closes the popup
    chosen = {value for value, selected in after.items() if selected}
    if chosen != set(wanted):
        raise errors.PortalChanged(f"the {field} select holds {sorted(chosen)} after picking {sorted(wanted)}")


def _option(profile: PortalProfile, field: str, value: str) -> str:
    return f'{profile.query.popup_option.format(field=field)}[{profile.query.option_value}="{value}"]'


async def _option_states(options: Locator, value_attribute: str, selected_class: str) -> dict[str, bool]:
    states = await options.evaluate_all(
        "(items, [attr, cls]) => items.map(item => [item.getAttribute(attr), item.classList.contains(cls)])",
        [value_attribute, selected_class],
    )
    return {str(value): bool(selected) for value, selected in states}


async def pick_page_size(page: Page, profile: PortalProfile, size: int) -> None:
    """Open the page-size chooser and pick `size` (the page then queries again at page 1)."""
    field = profile.query.page_size_field
    await press(page.locator(profile.query.select.format(field=field)))
    option = page.locator(_option(profile, field, str(size)))
    await option.wait_for(timeout=WIDGET_TIMEOUT_MS)
    await press(option)


async def pick_dates(page: Page, profile: PortalProfile, start: date, end: date) -> None:
    """Set the 开票日期 range with its picker: open it, click the first day, then the last, moving the
    panel to each one's month. A range already shown is left as it is."""
    selectors = profile.query
    if await _dates_shown(page, profile) == (start.isoformat(), end.isoformat()):
        return
    await press(page.locator(selectors.date_from))
    await page.locator(selectors.date_panel).wait_for(timeout=WIDGET_TIMEOUT_MS)
    for day in (start, end):
        await _show_month(page, profile, day)
        await press(page.locator(selectors.date_cell.format(day=day.isoformat())))
    shown = await _dates_shown(page, profile)
    if shown != (start.isoformat(), end.isoformat()):
        raise errors.PortalChanged(f"the date-range picker shows {shown} after picking {start}..{end}")


async def _dates_shown(page: Page, profile: PortalProfile) -> tuple[str, str]:
    return (await page.input_value(profile.query.date_from)).strip(), (await page.input_value(profile.query.date_to)).strip()


async def _show_month(page: Page, profile: PortalProfile, day: date) -> None:
    """Move the open panel to `day`'s month: whole years first, then months."""
    selectors = profile.query
    title = page.locator(selectors.date_title)
    year, month = _year_month(await title.inner_text())
    months = (day.year - year) * MONTHS_PER_YEAR + day.month - month
    years, rest = divmod(abs(months), MONTHS_PER_YEAR)
    ahead = months > 0
    for move, times in (("next-year" if ahead else "prev-year", years), ("next" if ahead else "prev", rest)):
        for _ in range(times):
            await press(page.locator(selectors.date_move.format(move=move)))
    if months and _year_month(await title.inner_text()) != (day.year, day.month):
        raise errors.PortalChanged(f"the date-range picker did not move to {day:%Y-%m}")


def _year_month(title: str) -> tuple[int, int]:
    try:
        year, month = title.strip().split("-")[:2]
        return int(year), int(month)
    except ValueError:
        raise errors.PortalChanged(f"the date-range picker's title {title!r} is not YYYY-MM") from None
