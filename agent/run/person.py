"""One person's run: log in once, then archive each of the person's companies in turn, switching between them.

A person (an accountant who is 办税员 for several companies) has one portal session, on a browser context of
their own: the saved session is reused when it is still alive, else the person logs in (password, SMS code)
once. The companies are the configured ones, or every company the portal links to the person ("all"); the
session switches to each in turn (agent.flows.switch) and the company's run archives it. A session that dies
is renewed once for the person, not per company (SharedSession, bounded per run), and switched back to the
company being archived. An [accounts.x] entry is a person of one company, typed at login: no switch at all.

What stops the person (a refused login, a person needed, the portal down past its bound) is told to the run
events, then raised; a configured company the login does not list is skipped, the others are archived, and
CompanyNotLinked is raised at the end.
"""

from __future__ import annotations

import logging
import time

from playwright.async_api import BrowserContext, Page
from pydantic import BaseModel

from agent import errors
from agent.config import Account, Person
from agent.events import NeededFor
from agent.flows.login import LoginInput, check_origin, login
from agent.flows.search import open_query_page
from agent.flows.session import SharedSession
from agent.flows.switch import linked_companies, switch_company
from agent.human import HumanInputs, make_captcha_solver, make_sms_source
from agent.login_memory import LoginMemory
from agent.records import RunSummary
from agent.retry import retrying
from agent.run.company import CompanyRun
from agent.run.context import RunContext, Scope, add_summaries

log = logging.getLogger(__name__)

MAX_RELOGINS = 2  # per person and run: a session that keeps dying stops the person instead of looping


class PersonSummary(BaseModel):
    """One person's run: each company's summary, and their totals."""

    person: str
    companies: dict[str, RunSummary] = {}
    totals: RunSummary = RunSummary()


class PersonRun:
    """One person's share of a run, on their own browser context."""

    def __init__(
        self, run: RunContext, name: str, person: Person, scope: Scope, *, companies: list[str] | None = None,
        human: HumanInputs | None = None, interactive: bool = False, login_only: bool = False,
    ) -> None:
        self.run_context, self.name, self.person, self.scope = run, name, person, scope
        self.wanted = companies or person.companies
        self.human, self.interactive, self.login_only = human, interactive, login_only
        self.account: Account = person.login_account()
        self.gate = run.gate(run.settings.region_of(person), name)
        self.session = SharedSession(self._login_again, MAX_RELOGINS)  # one per person: renewals bounded per person
        self.company: str | None = None  # the company being archived: a renewed session switches back to it
        self.context: BrowserContext | None = None
        self.page: Page | None = None

    async def run(self) -> PersonSummary:
        """The person's companies archived; what stopped them is told to the run events, then raised."""
        try:
            return await self._run()
        except errors.LoginRefused as refused:
            self.run_context.events.login_refused(self.name, refused)
            raise
        except errors.NeedsPerson as needed:
            self.run_context.events.person_needed(self.name, needed_for(needed), str(needed))
            raise
        except errors.PortalUnavailable as down:
            self.run_context.events.portal_down(self.name, down)
            raise

    async def _run(self) -> PersonSummary:
        self.context = await self.run_context.browser.new_context(self.name)
        try:
            self.page = await self.context.new_page()
            await self._ensure_session(self.page)
            if self.login_only:
                return PersonSummary(person=self.name)
            await self.context.tracing.start()  # after the login: a trace records what is typed
            try:
                summary = await self._archive_companies()
            except Exception:  # not on Ctrl-C / SIGTERM (CancelledError): nothing failed, and Chromium may be gone
                await self._keep_evidence()
                raise
            await self.context.tracing.stop()
            return summary
        finally:
            await self.context.close()

    # -- the session

    async def _ensure_session(self, page: Page) -> None:
        """Leaves `page` on the query page, logged in; the session is saved for the next run."""
        assert self.context is not None
        profile = self.run_context.profile
        await self._open_portal(page)
        check_origin(page.url, profile)  # a redirect elsewhere gets no credential and is not listed
        if profile.paths.query_page not in page.url:
            await login(page, profile, self._login_input())
        own = (profile.portal_url, profile.sso_url)  # cookies of any other host are not saved
        await self.run_context.browser.save_session(self.context, self.name, own)

    async def _open_portal(self, page: Page) -> None:
        async for attempt in retrying(self.run_context.settings, self.gate):
            with attempt:
                await open_query_page(page, self.run_context.profile)

    def _login_input(self) -> LoginInput:
        settings = self.run_context.settings
        human = self.human or HumanInputs(
            sms=make_sms_source(self.account.sms, self.interactive, self.account.login, settings.human_timeout),
            captcha=make_captcha_solver(
                self.person.captcha or settings.captcha, self.interactive, self.run_context.debug_dir, settings.human_timeout
            ),
        )
        return LoginInput(
            account_name=self.name, account=self.account, password=self.account.resolve_password(self.name),
            captcha=human.captcha, sms=human.sms, interactive=self.interactive,
            memory=LoginMemory(settings.state_dir, self.name),
        )

    async def _login_again(self) -> None:
        """A new session for the person, acting for the company being archived (on a page of its own, as the
        listing pages are busy)."""
        assert self.context is not None
        await self.context.tracing.stop()  # a trace records what is typed: it must never hold a login
        page = await self.context.new_page()
        try:
            await page.bring_to_front()  # a page in the background is slow to click
            await self._ensure_session(page)
            if self.company is not None and self._switches:
                await switch_company(page, self.run_context.profile, self.company)
        finally:
            await page.close()
            await self.context.tracing.start()

    # -- the companies

    @property
    def _switches(self) -> bool:
        """False for a person of one company, the one typed at login (an [accounts.x] entry)."""
        return self.wanted != [self.account.company_id]

    async def _companies(self) -> list[str]:
        assert self.page is not None
        if self.wanted == "all":
            return [company.tax_id for company in await linked_companies(self.page, self.run_context.profile)]
        return list(self.wanted)

    async def _archive_companies(self) -> PersonSummary:
        summary, not_linked = PersonSummary(person=self.name), list[str]()
        for company in await self._companies():
            holder = self.run_context.claim(company, self.name)
            if holder is not None:
                log.info("company %s is archived by %s in this run; %s skips it", company, holder, self.name)
                continue
            try:
                await self._act_for(company)
            except errors.CompanyNotLinked as exc:
                log.error("person %s: %s; going on with the other companies", self.name, exc)
                not_linked.append(company)
                continue
            summary.companies[company] = await self._archive(company)
            summary.totals = add_summaries(summary.totals, summary.companies[company])
        self.run_context.events.person_finished(self.name, summary.totals)
        if not_linked:
            raise errors.CompanyNotLinked(
                f"person {self.name!r} is not linked to {', '.join(not_linked)} (the portal lists the companies of "
                f"the login {self.account.login}); fix `companies` of [persons.{self.name}], the others were archived"
            )
        return summary

    async def _act_for(self, company: str) -> None:
        """Have the session act for `company`, the person's page left on its query page."""
        assert self.page is not None
        self.company = company
        if not self._switches:
            return
        while True:
            seen = self.session.generation
            try:
                await self._open_portal(self.page)
                if self.run_context.profile.paths.query_page not in self.page.url:
                    raise errors.SessionLost("the portal sent the query page to its login")
                await switch_company(self.page, self.run_context.profile, company)
                return
            except errors.SessionLost:
                await self.session.renew(seen)  # the new session acts for `company`: the page is loaded again

    async def _archive(self, company: str) -> RunSummary:
        assert self.context is not None and self.page is not None
        await self.context.tracing.stop()  # one trace per company: a failed run keeps the failed company's only
        await self.context.tracing.start()
        self.run_context.events.started(self.name, company)
        work = CompanyRun(self.run_context, company, self.scope, self.context, self.page, self.session, self.gate)
        summary = await work.archive()
        self.run_context.events.company_finished(company, summary)
        return summary

    async def _keep_evidence(self) -> None:
        """Trace and a screenshot of each open page of a failed run (the password field was cleared after login)."""
        assert self.context is not None
        folder = self.run_context.debug_dir
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            await self.context.tracing.stop(path=folder / f"trace-{self.name}-{stamp}.zip")
            for number, page in enumerate(self.context.pages, start=1):
                await page.screenshot(path=folder / f"page-{self.name}-{stamp}-{number}.png")
        except Exception as exc:  # evidence is best effort; the original error matters more  # noqa: BLE001
            log.info("could not save failure evidence: %s", exc)


def needed_for(needed: errors.NeedsPerson) -> NeededFor:
    """What a NeedsPerson stop waits for, from its message: an SMS code, a captcha answer or a role."""
    text = str(needed)
    if "SMS" in text:
        return "sms"
    if "role" in text:
        return "role"
    return "captcha"
