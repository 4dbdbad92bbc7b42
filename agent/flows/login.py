"""Log in through the portal's SSO page: fields, slider, captcha, SMS code, role, first-login confirmation.

The password is submitted exactly once per call. A refusal (wrong company id, wrong password, locked, not
linked, not registered, no role) raises at once and nothing retries it: a retry loop that locks an accountant
out of the tax portal is the worst bug this tool could have. Only the human checks that are not the password
(slider, image captcha, SMS code typed by a person) are tried again, a few times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import click
from playwright.async_api import Page, Route
from playwright.async_api import TimeoutError as PlaywrightTimeout
from pydantic import SecretStr

from agent import errors
from agent.config import Account
from agent.human import CaptchaSolver, SmsSource
from agent.portal import LOGIN_ERROR_CODES, PortalProfile

log = logging.getLogger(__name__)

SLIDER_ATTEMPTS = 3
CAPTCHA_ATTEMPTS = 3
SMS_CODE_ATTEMPTS = 3
SMS_SEND_ATTEMPTS = 2  # a throttled send is tried once more, after the portal's countdown
SMS_RESEND_DEFAULT = 60.0  # seconds the portal usually makes a phone wait between two codes
SMS_RESEND_WAIT_MAX = 180.0  # a longer countdown stops the run (exit 5) instead of blocking it
STEP_TIMEOUT_MS = 30_000


@dataclass
class LoginInput:
    account_name: str
    account: Account
    password: SecretStr
    captcha: CaptchaSolver
    sms: SmsSource
    interactive: bool


def _json_of(status: int, body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:  # an HTML error page where JSON was due
        raise errors.PortalUnavailable(f"login service answered HTTP {status} without JSON") from None
    return answer if isinstance(answer, dict) else {}


async def _call(page: Page, path: str, action: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Run a page action and return the JSON the SSO API answered it with.

    The answer is read while passing through (a route), because the page may navigate away the moment it
    receives it, after which the browser no longer holds the body.
    """
    answered: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

    async def pass_through(route: Route) -> None:
        response = await route.fetch()
        body = await response.body()
        if not answered.done():
            answered.set_result((response.status, body))
        await route.fulfill(response=response, body=body)

    pattern = f"**{path}*"
    await page.route(pattern, pass_through)
    try:
        await action()
        status, body = await asyncio.wait_for(answered, STEP_TIMEOUT_MS / 1000)
    except TimeoutError:
        raise errors.PortalUnavailable(f"the login service did not answer ({path})") from None
    finally:
        await page.unroute(pattern, pass_through)
    return _json_of(status, body)


def refusal(profile: PortalProfile, body: dict[str, Any]) -> errors.LoginRefused:
    """The typed refusal for a login answer whose code is not success."""
    code, message = str(body.get("code", "")), str(body.get("msg", ""))
    if profile.messages.no_confirmed_role in message:
        return errors.NoConfirmedRole(message, code)
    exception_type = getattr(errors, LOGIN_ERROR_CODES.get(code, "LoginRefused"))
    return exception_type(message, code)


def _succeeded(profile: PortalProfile, body: dict[str, Any]) -> bool:
    return str(body.get("code")) == str(profile.messages.success_code)


async def _drag_slider(page: Page, profile: PortalProfile) -> None:
    selectors = profile.login
    for _ in range(SLIDER_ATTEMPTS):
        track = await page.locator(selectors.slider).bounding_box()
        handle = await page.locator(selectors.slider_handle).bounding_box()
        if track is None or handle is None:
            raise errors.PortalUnavailable("the login page has no slider where one was expected")
        y = handle["y"] + handle["height"] / 2
        await page.mouse.move(handle["x"] + handle["width"] / 2, y)
        await page.mouse.down()
        await page.mouse.move(track["x"] + track["width"] + 5, y, steps=12)
        await page.mouse.up()
        classes = await page.locator(selectors.slider_handle).get_attribute("class") or ""
        if selectors.slider_done_class in classes:
            return
    raise errors.NeedsPerson("the login slider did not accept the drag; log in once with `fapiao login --show`")


async def _fill_form(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    selectors = profile.login
    await page.locator(selectors.company_id).wait_for(timeout=STEP_TIMEOUT_MS)
    await page.fill(selectors.company_id, given.account.company_id)
    await page.fill(selectors.user, given.account.login)
    await page.fill(selectors.password, given.password.get_secret_value())


async def _answer_captcha(page: Page, profile: PortalProfile, solver: CaptchaSolver) -> None:
    image = page.locator(profile.login.captcha_image)
    if await image.count() and await image.first.is_visible():
        answer = await solver.solve(await image.first.screenshot())
        await page.fill(profile.login.captcha_input, answer.strip())


async def _submit_password(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    """Submit the form; only a rejected captcha answer (not the password) earns another try."""
    for attempt in range(1, CAPTCHA_ATTEMPTS + 1):
        await _drag_slider(page, profile)
        await _answer_captcha(page, profile, given.captcha)
        body = await _call(page, profile.paths.sso_login_api, lambda: page.click(profile.login.submit))
        if _succeeded(profile, body):
            log.info("password accepted for account %s", given.account_name)
            return
        message = str(body.get("msg", ""))
        captcha_only = any(m in message for m in profile.messages.captcha_rejected)
        if not captcha_only or str(body.get("code")) in LOGIN_ERROR_CODES:
            raise refusal(profile, body)
        if attempt == CAPTCHA_ATTEMPTS:
            raise errors.NeedsPerson(
                f"the portal rejected {CAPTCHA_ATTEMPTS} captcha answers ({message}): check the captcha solver, "
                "or run `fapiao login` once interactively"
            )
        log.info("captcha answer rejected (%s), trying a new one", message)


async def _send_sms(page: Page, profile: PortalProfile) -> float:
    """Have the portal send a code; when it throttles resends (a re-login soon after the last one, whose code
    is spent), wait out the countdown it names and ask once more, so the code read next is a fresh one."""
    for attempt in range(1, SMS_SEND_ATTEMPTS + 1):
        sent_at = time.time()
        body = await _call(page, profile.paths.sso_send_sms_api, lambda: page.click(profile.login.sms_send))
        if _succeeded(profile, body):
            return sent_at
        message = str(body.get("msg", ""))
        if not any(m in message for m in profile.messages.sms_throttled):
            raise refusal(profile, body)
        wait = _resend_wait(body)
        if attempt == SMS_SEND_ATTEMPTS or wait > SMS_RESEND_WAIT_MAX:
            raise errors.RateLimited(f"the portal will not send another SMS code yet ({message}); run again later", wait)
        log.info("SMS resend throttled (%s); sending again in %.0f s", message, wait)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _resend_wait(body: dict[str, Any]) -> float:
    """Seconds until the portal sends another code: its countdown when it names one, else the usual minute."""
    data = body.get("data")
    seconds = data.get("seconds") if isinstance(data, dict) else None
    return float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else SMS_RESEND_DEFAULT


async def _second_factor(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    selectors = profile.login
    await page.locator(selectors.sms_panel).wait_for(timeout=STEP_TIMEOUT_MS)
    masked = (await page.locator(selectors.sms_mobile).inner_text()).strip()
    sent_at = await _send_sms(page, profile)
    for attempt in range(1, SMS_CODE_ATTEMPTS + 1):
        code = await given.sms.code(masked, sent_at)
        await page.fill(selectors.sms_input, code)
        body = await _call(page, profile.paths.sso_sms_login_api, lambda: page.click(selectors.sms_submit))
        if _succeeded(profile, body):
            return
        if str(body.get("code")) in LOGIN_ERROR_CODES or profile.messages.no_confirmed_role in str(body.get("msg")):
            raise refusal(profile, body)
        if not given.interactive or attempt == SMS_CODE_ATTEMPTS:
            raise errors.NeedsPerson(f"the portal rejected the SMS code: {body.get('msg', '')}")
        log.info("SMS code rejected (%s); asking again", body.get("msg", ""))


async def _choose_role(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    items = page.locator(profile.login.role_item)
    names = [name.strip() for name in await items.all_inner_texts()]
    wanted = given.account.role
    if wanted is None and len(names) > 1:
        if not given.interactive:
            raise errors.NeedsPerson(f"the person has several roles ({', '.join(names)}): set `role` for the account")
        wanted = await _ask_role(names)
    choice = names.index(wanted) if wanted in names else -1 if wanted else 0
    if choice < 0:
        raise errors.SettingsError(f"role {wanted!r} is not offered for this company; the portal offers: {', '.join(names)}")
    await items.nth(choice).click()
    body = await _call(page, profile.paths.sso_role_api, lambda: page.click(profile.login.role_submit))
    if not _succeeded(profile, body):
        raise refusal(profile, body)


async def _ask_role(names: list[str]) -> str:
    choice = await asyncio.to_thread(click.prompt, "Role", type=click.Choice(names), err=True)
    return str(choice)


async def _finish(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    """After the SMS step: a role choice, a confirmation dialog, or straight to the invoice platform."""
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if profile.paths.query_page in page.url:
            return
        if await page.locator(profile.login.role_panel).is_visible():
            await _choose_role(page, profile, given)
        elif await page.locator(profile.login.confirm_dialog).is_visible():
            log.info("confirming the role on first login")
            await page.click(profile.login.confirm_dialog_ok)
        await page.wait_for_timeout(100)
    raise errors.PortalUnavailable("login did not reach the invoice platform in time")


async def login(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    """One full login on a page that shows the SSO form; ends on the 全量发票查询 page."""
    log.info("logging in account %s (company %s)", given.account_name, given.account.company_id)
    try:
        await _fill_form(page, profile, given)
        await _submit_password(page, profile, given)
        await _second_factor(page, profile, given)
        await _finish(page, profile, given)
    except PlaywrightTimeout as exc:
        raise errors.PortalUnavailable(f"the login page stopped responding ({exc.message.splitlines()[0]})") from None
    finally:
        await _clear_password(page, profile)
    log.info("logged in: account %s", given.account_name)


async def _clear_password(page: Page, profile: PortalProfile) -> None:
    """Nothing captured later (screenshot, trace, saved page) may show the password."""
    try:
        # set, not typed: the field is hidden once the SMS step shows, and typing would wait for it to show
        await page.locator(profile.login.password).evaluate_all("fields => fields.forEach(f => { f.value = ''; })")
    except Exception as exc:  # the page may have navigated away already  # noqa: BLE001
        log.debug("password field not cleared: %s", type(exc).__name__)
