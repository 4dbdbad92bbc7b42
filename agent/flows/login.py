"""Log in through the portal's SSO page: fields, slider, captcha, SMS code (when the province asks for one),
role, first-login confirmation.

The password is submitted at most once per call, and only on a page of the configured portal or login host
(portal_url, sso_url): a page anywhere else gets nothing typed (ForeignLoginHost, exit 3). A refusal (wrong
company id, wrong password, locked, not linked, not registered, no role) or an answer this agent does not
understand raises at once, nothing retries it, and the account's login memory records it, so that later
unattended runs make no attempt either (agent.login_memory): a retry loop that locks an accountant out of the
tax portal is the worst bug this tool could have. An unattended login that would need a person for the SMS code
stops before typing anything, so no SMS reaches a phone nobody watches. Only the human checks that are not the
password (slider, image captcha, SMS code typed by a person) are tried again, a few times.

Every answer of the SSO APIs is read by agent.answers.login_answer; the steps after the password are driven by
what the page shows (SMS panel, role panel, confirmation dialog), so a province without the SMS step, or with
other API names (portal.Paths), logs in through the same code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Page, Route
from pydantic import SecretStr

from agent import errors
from agent.answers import login_answer, login_succeeded, playwright_errors
from agent.browser import origin_of
from agent.config import Account
from agent.human import CaptchaSolver, SmsSource, ask_choice
from agent.login_memory import LoginMemory
from agent.portal import PortalProfile

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
    memory: LoginMemory


# -- where the page is


def own_origins(profile: PortalProfile) -> dict[str, str]:
    """The origins a credential may be typed on (portal and login host), each with the URL it came from."""
    return {origin_of(url): _shown(url) for url in (profile.portal_url, profile.sso_url)}


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_origin(url: str, profile: PortalProfile) -> None:
    """ForeignLoginHost unless `url` is on the portal's or the login host's origin (scheme, host, port)."""
    allowed = own_origins(profile)
    if origin_of(url) not in allowed:
        raise errors.ForeignLoginHost(_shown(url), sorted(allowed.values()))


def _on_query_page(page: Page, profile: PortalProfile) -> bool:
    if profile.paths.query_page not in page.url:
        return False
    check_origin(page.url, profile)  # the platform's page on another host: not ours to fill or list
    return True


async def _type(page: Page, profile: PortalProfile, selector: str, value: str) -> None:
    """Fill a field that takes a credential or a code, only on the portal's own origin."""
    check_origin(page.url, profile)
    await page.fill(selector, value)


# -- one SSO API call


async def _call(page: Page, paths: tuple[str, ...], action: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Run a page action and return the SSO answer it got, judged by agent.answers.login_answer.

    The answer is read while passing through (a route), because the page may navigate away the moment it
    receives it, after which the browser no longer holds the body. `paths` are the names the step may go by.
    """
    answered: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

    async def pass_through(route: Route) -> None:
        response = await route.fetch()
        body = await response.body()
        if not answered.done():
            answered.set_result((response.status, body))
        await route.fulfill(response=response, body=body)

    def is_step(url: str) -> bool:
        return urlsplit(url).path.endswith(paths)

    await page.route(is_step, pass_through)
    try:
        await action()
        status, body = await asyncio.wait_for(answered, STEP_TIMEOUT_MS / 1000)
    except TimeoutError:
        raise errors.PortalUnavailable(f"the login service did not answer ({paths[0].rsplit('/', 1)[-1]})") from None
    finally:
        await page.unroute(is_step, pass_through)
    return login_answer(status, body)


def _not_understood(step: str, answer: dict[str, Any]) -> errors.AnswerNotUnderstood:
    return errors.AnswerNotUnderstood(f"{step}: {answer.get('msg', '')!s:.80}", str(answer.get("code", "")))


# -- before anything is typed


def _before_typing(given: LoginInput) -> None:
    """A remembered refusal, or an SMS code nobody can give: stop before a credential leaves the machine."""
    given.memory.check(given.account, given.password, given.interactive)
    if given.sms.needs_person and given.memory.asks_sms() is not False:
        raise errors.NeedsPerson(
            f"account {given.account_name!r} has no live saved session, and the portal asks for an SMS code at login "
            "with nobody at the terminal (sms = \"prompt\"); nothing was typed and no SMS was sent. Run "
            "`fapiao login` once interactively (the saved session then serves scheduled runs), or configure an "
            "automatic SMS source (sms = \"file:...\" or \"command:...\", see README)"
        )


# -- the password step


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
    check_origin(page.url, profile)
    if given.captcha.needs_person and await _captcha_shown(page, profile):
        raise errors.NeedsPerson(
            "the login page shows an image captcha and nobody is at the terminal; nothing was typed. Run `fapiao "
            "login` once interactively, or configure a solver (captcha = \"command:...\" or \"ocr\", see README)"
        )
    await _type(page, profile, selectors.company_id, given.account.company_id)
    await _type(page, profile, selectors.user, given.account.login)
    await _type(page, profile, selectors.password, given.password.get_secret_value())


async def _captcha_shown(page: Page, profile: PortalProfile) -> bool:
    image = page.locator(profile.login.captcha_image)
    return bool(await image.count()) and await image.first.is_visible()


async def _answer_captcha(page: Page, profile: PortalProfile, solver: CaptchaSolver) -> None:
    if await _captcha_shown(page, profile):
        answer = await solver.solve(await page.locator(profile.login.captcha_image).first.screenshot())
        await _type(page, profile, profile.login.captcha_input, answer.strip())


async def _submit_password(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    """Submit the form; only a rejected human check (slider, captcha), never the password, earns another try."""
    messages = profile.messages
    for attempt in range(1, CAPTCHA_ATTEMPTS + 1):
        await _drag_slider(page, profile)
        await _answer_captcha(page, profile, given.captcha)
        check_origin(page.url, profile)
        answer = await _call(page, profile.paths.sso_login_apis, lambda: page.click(profile.login.submit))
        if login_succeeded(answer):
            log.info("password accepted for account %s", given.account_name)
            given.memory.forget_refusal()  # these credentials are good: a later refusal is recorded afresh
            return
        message = str(answer.get("msg", ""))
        if not any(m in message for m in messages.captcha_rejected + messages.slider_rejected):
            raise _not_understood("the password step", answer)
        if attempt == CAPTCHA_ATTEMPTS:
            raise errors.NeedsPerson(
                f"the portal rejected {CAPTCHA_ATTEMPTS} captcha answers ({message}): check the captcha solver, "
                "or run `fapiao login` once interactively"
            )
        log.info("captcha or slider rejected (%s), trying a new one", message)


# -- after the password: SMS code, role, confirmation


async def _send_sms(page: Page, profile: PortalProfile) -> float:
    """Have the portal send a code; when it throttles resends (a re-login soon after the last one, whose code
    is spent), wait out the countdown it names and ask once more, so the code read next is a fresh one."""
    for attempt in range(1, SMS_SEND_ATTEMPTS + 1):
        sent_at = time.time()
        answer = await _call(page, profile.paths.sso_send_sms_apis, lambda: page.click(profile.login.sms_send))
        if login_succeeded(answer):
            return sent_at
        message = str(answer.get("msg", ""))
        if not any(m in message for m in profile.messages.sms_throttled):
            raise _not_understood("sending the SMS code", answer)
        wait = _resend_wait(answer)
        if attempt == SMS_SEND_ATTEMPTS or wait > SMS_RESEND_WAIT_MAX:
            raise errors.RateLimited(f"the portal will not send another SMS code yet ({message}); run again later", wait)
        log.warning("waiting %.0f s for the portal's SMS resend countdown (%s), then asking for a fresh code", wait, message)
        await asyncio.sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _resend_wait(answer: dict[str, Any]) -> float:
    """Seconds until the portal sends another code: its countdown when it names one, else the usual minute."""
    data = answer.get("data")
    seconds = data.get("seconds") if isinstance(data, dict) else None
    return float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else SMS_RESEND_DEFAULT


async def _second_factor(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    selectors = profile.login
    given.memory.note_sms_step(True)  # known from now on: an unattended run without a source stops earlier
    if given.sms.needs_person:
        raise errors.NeedsPerson(
            "the portal asks for an SMS code and nobody is at the terminal; no SMS was sent. Run `fapiao login` "
            "once interactively (the saved session then serves scheduled runs), or configure an automatic SMS "
            "source (see README)"
        )
    masked = (await page.locator(selectors.sms_mobile).inner_text()).strip()
    sent_at = await _send_sms(page, profile)
    for attempt in range(1, SMS_CODE_ATTEMPTS + 1):
        code = await given.sms.code(masked, sent_at)
        await _type(page, profile, selectors.sms_input, code)
        answer = await _call(page, profile.paths.sso_sms_login_apis, lambda: page.click(selectors.sms_submit))
        if login_succeeded(answer):
            return
        if not given.interactive or attempt == SMS_CODE_ATTEMPTS:
            raise errors.NeedsPerson(f"the portal rejected the SMS code: {answer.get('msg', '')}")
        log.info("SMS code rejected (%s); asking again", answer.get("msg", ""))


async def _choose_role(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    items = page.locator(profile.login.role_item)
    names = [name.strip() for name in await items.all_inner_texts()]
    wanted = given.account.role
    if wanted is None and len(names) > 1:
        if not given.interactive:
            raise errors.NeedsPerson(f"the person has several roles ({', '.join(names)}): set `role` for the account")
        wanted = await ask_choice("Role", names)
    choice = names.index(wanted) if wanted in names else -1 if wanted else 0
    if choice < 0:
        raise errors.SettingsError(f"role {wanted!r} is not offered for this company; the portal offers: {', '.join(names)}")
    await items.nth(choice).click()
    answer = await _call(page, profile.paths.sso_role_apis, lambda: page.click(profile.login.role_submit))
    if not login_succeeded(answer):
        raise _not_understood("choosing the role", answer)


async def _after_password(page: Page, profile: PortalProfile, given: LoginInput) -> bool:
    """Each step the page shows, once (SMS code, role choice, confirmation), until the invoice platform's query
    page; True when the SMS step was among them. A page showing none of them is an answer not understood."""
    selectors, done = profile.login, set[str]()
    steps: dict[str, Callable[[], Awaitable[None]]] = {
        selectors.sms_panel: lambda: _second_factor(page, profile, given),
        selectors.role_panel: lambda: _choose_role(page, profile, given),
        selectors.confirm_dialog: lambda: _confirm(page, profile),
    }
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if _on_query_page(page, profile):
            return selectors.sms_panel in done
        for selector, step in steps.items():
            if selector not in done and await page.locator(selector).is_visible():
                done.add(selector)
                await step()
                deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000  # a person may have taken a while
                break
        await page.wait_for_timeout(100)
    raise await _stuck(page, profile)


async def _stuck(page: Page, profile: PortalProfile) -> errors.FapiaoError:
    """Why the login did not reach the platform: the login page showing no step this agent knows is an answer
    not understood (recorded, not tried again unattended); a page beyond it that is slow or down is transient."""
    where = f"{_shown(page.url)}{urlsplit(page.url).path}"
    if not await page.locator(profile.login.company_id).count():
        return errors.PortalUnavailable(f"the login went on to {where} but did not reach the invoice platform in time")
    toast = page.locator(profile.login.error_toast)
    said = (await toast.first.inner_text()).strip() if await toast.count() else ""
    return errors.AnswerNotUnderstood(
        f"after the password, the login page showed none of the steps this agent knows (at {where})"
        + (f" and said {said[:80]!r}" if said else ""), ""
    )


async def _confirm(page: Page, profile: PortalProfile) -> None:
    log.info("confirming the role on first login")
    await page.click(profile.login.confirm_dialog_ok)


# -- the whole login


async def login(page: Page, profile: PortalProfile, given: LoginInput) -> None:
    """One full login on a page that shows the SSO form; ends on the 全量发票查询 page."""
    _before_typing(given)
    log.info("logging in account %s (company %s)", given.account_name, given.account.company_id)
    try:
        with playwright_errors("the login page"):
            await _fill_form(page, profile, given)
            await _submit_password(page, profile, given)
            asked_sms = await _after_password(page, profile, given)
    except errors.LoginRefused as refused:
        given.memory.remember_refusal(refused, given.account, given.password)
        raise
    finally:
        await _clear_password(page, profile)
    given.memory.succeeded(asked_sms)
    log.info("logged in: account %s", given.account_name)


async def _clear_password(page: Page, profile: PortalProfile) -> None:
    """Nothing captured later (screenshot, trace, saved page) may show the password."""
    try:
        # set, not typed: the field is hidden once the SMS step shows, and typing would wait for it to show
        await page.locator(profile.login.password).evaluate_all("fields => fields.forEach(f => { f.value = ''; })")
    except Exception as exc:  # the page may have navigated away already  # noqa: BLE001
        log.debug("password field not cleared: %s", type(exc).__name__)
