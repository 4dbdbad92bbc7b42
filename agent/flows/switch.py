"""One person, many companies: the companies linked to the logged-in person, and the switch to another of
them, through the query page's 切换企业 (portal-reference.md, "One person, many companies").

The agent clicks as a person would and reads each answer as the page receives it; it never sends these calls
itself (the page's own scripts send them, signed where the portal signs). 切换企业 opens a dialog that the page
fills from selectRelationList's answer; a click on a company asks changeUser to switch the same session to it
(no password, no SMS), and the page then loads the query page again, now acting for that company. Answers are
judged by agent.answers: the SSO envelope (`{"code": 1000, ...}`) by login_answer, a dead session's platform
answer (`Response.Error`) by api_json.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Page, Route
from pydantic import BaseModel

from agent import answers, errors
from agent.portal import CURRENT_COMPANY_MARK, RELATION_FIELDS, PortalProfile

log = logging.getLogger(__name__)

STEP_TIMEOUT_MS = 30_000


class LinkedCompany(BaseModel):
    """One company the person's login may act for, as selectRelationList lists it."""

    tax_id: str
    name: str
    role: str
    current: bool  # the company the session acts for now


def linked_companies_of(answer: dict[str, Any]) -> list[LinkedCompany]:
    """The companies in a selectRelationList answer (its `data.list`); PortalChanged if it holds none."""
    data = answer.get("data")
    items = data.get("list") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.PortalChanged(f"the company list answer has no data.list: {json.dumps(answer)[:120]}")
    return [_linked(item) for item in items if isinstance(item, dict)]


def _linked(item: dict[str, Any]) -> LinkedCompany:
    values = {field: str(item.get(key, "")).strip() for key, field in RELATION_FIELDS.items()}
    if not values["tax_id"]:
        raise errors.PortalChanged(f"a company in the company list has no tax id: {json.dumps(item)[:120]}")
    return LinkedCompany(
        tax_id=values["tax_id"].upper(), name=values["name"], role=values["role"],
        current=values["current"] == CURRENT_COMPANY_MARK,
    )


def sso_answer(status: int, headers: dict[str, str], body: bytes, url: str) -> dict[str, Any]:
    """A /sys-api/ answer for a logged-in person: its JSON when the code says success, the typed error
    otherwise. An answer without `code` is the platform's way of saying the session is gone (or the portal is
    down): agent.answers reads it as it reads any platform answer."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "code" in parsed:
        answer = answers.login_answer(status, body)
        if not answers.login_succeeded(answer):
            raise errors.PortalChanged(f"the portal answered {answer.get('code')}: {str(answer.get('msg', ''))[:80]}")
        return answer
    answers.api_json(status, headers, body, url)  # raises what a platform answer means
    raise errors.PortalChanged(f"an answer of {urlsplit(url).path} in a shape this agent does not know: {body[:80]!r}")


async def _answer_to(page: Page, path: str, action: Callable[[], Awaitable[Any]], what: str) -> dict[str, Any]:
    """Run a page action and judge the answer the page received from `path` (a call that leaves the page where
    it is: the body is read once the page has it)."""
    with answers.playwright_errors(what):
        async with page.expect_response(lambda r: urlsplit(r.url).path.endswith(path), timeout=STEP_TIMEOUT_MS) as info:
            await action()
        response = await info.value
        body = await response.body()
    return sso_answer(response.status, await response.all_headers(), body, response.url)


async def _answer_passing_through(
    page: Page, path: str, action: Callable[[], Awaitable[Any]], what: str
) -> dict[str, Any]:
    """Run a page action and judge the answer the page received from `path`, read on its way to the page (a
    route that hands it on unchanged): the page navigates the moment it has the answer, after which the browser
    no longer holds its body."""
    answered: asyncio.Future[tuple[int, dict[str, str], bytes, str]] = asyncio.get_running_loop().create_future()

    async def pass_through(route: Route) -> None:
        response = await route.fetch()
        body = await response.body()
        if not answered.done():
            answered.set_result((response.status, response.headers, body, response.url))
        await route.fulfill(response=response, body=body)

    def is_step(url: str) -> bool:
        return urlsplit(url).path.endswith(path)

    await page.route(is_step, pass_through)
    try:
        with answers.playwright_errors(what):
            await action()
            status, headers, body, url = await asyncio.wait_for(answered, STEP_TIMEOUT_MS / 1000)
    except TimeoutError:
        raise errors.PortalUnavailable(f"{what}: the portal did not answer") from None
    finally:
        await page.unroute(is_step, pass_through)
    return sso_answer(status, headers, body, url)


async def current_company(page: Page, profile: PortalProfile) -> str:
    """The tax id the query page acts for (its header's 切换企业 control)."""
    selectors = profile.company_switch
    with answers.playwright_errors("reading the current company"):
        shown = page.locator(selectors.current)
        await shown.wait_for(timeout=STEP_TIMEOUT_MS)
        return (await shown.get_attribute(selectors.tax_id_attribute) or "").strip().upper()


async def _open_dialog(page: Page, profile: PortalProfile) -> list[LinkedCompany]:
    selectors = profile.company_switch
    answer = await _answer_to(
        page, profile.paths.sso_relations_api, lambda: page.click(selectors.open), "listing the person's companies"
    )
    with answers.playwright_errors("the company dialog"):
        await page.locator(selectors.dialog).wait_for(timeout=STEP_TIMEOUT_MS)
    return linked_companies_of(answer)


async def _close_dialog(page: Page, profile: PortalProfile) -> None:
    with answers.playwright_errors("closing the company dialog"):
        await page.click(profile.company_switch.close)
        await page.locator(profile.company_switch.dialog).wait_for(state="detached", timeout=STEP_TIMEOUT_MS)


async def linked_companies(page: Page, profile: PortalProfile) -> list[LinkedCompany]:
    """Every company linked to the logged-in person, as the page's 切换企业 dialog receives them."""
    companies = await _open_dialog(page, profile)
    await _close_dialog(page, profile)
    log.info("the person is linked to %d companies", len(companies))
    return companies


async def switch_company(page: Page, profile: PortalProfile, tax_id: str) -> None:
    """Have the session act for `tax_id`; leaves `page` on the query page for that company. CompanyNotLinked
    when the person's list does not hold it or the portal refuses the switch; SessionLost when the session died."""
    if await current_company(page, profile) == tax_id:
        return
    companies = await _open_dialog(page, profile)
    if tax_id not in {company.tax_id for company in companies}:
        await _close_dialog(page, profile)
        raise errors.CompanyNotLinked(f"company {tax_id} is not among the companies linked to this login")
    log.info("switching to company %s", tax_id)
    try:
        await _answer_passing_through(
            page, profile.paths.sso_change_user_api,
            lambda: page.click(profile.company_switch.item.format(tax_id=tax_id)), f"switching to company {tax_id}",
        )
    except errors.NotLinked as refused:
        raise errors.CompanyNotLinked(f"the portal refused the switch to company {tax_id}: {refused.portal_message}") from None
    await _arrived(page, profile, tax_id)


async def _arrived(page: Page, profile: PortalProfile, tax_id: str) -> None:
    """The page loads the query page again after the switch: it must act for `tax_id` now (the page before it
    showed another company), unless the portal sent it to its login page."""
    acting_for = page.locator(profile.company_switch.current_of.format(tax_id=tax_id))
    with answers.playwright_errors(f"the query page for company {tax_id}"):
        await acting_for.or_(page.locator(profile.login.company_id)).first.wait_for(timeout=STEP_TIMEOUT_MS)
    if profile.paths.query_page not in page.url or not await acting_for.count():
        raise errors.SessionLost(f"the portal sent the page to its login instead of company {tax_id}'s query page")
