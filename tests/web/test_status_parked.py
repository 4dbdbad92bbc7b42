"""End to end: a queue worker archiving a firm's person on the mock portal parks at the SMS code; the code,
read from the mock's outbox, is typed into the status page in Chromium; the waiting task goes on and the month
turns complete on the home grid. The real FirmQueue (embedded SQLite), archive_person and login flow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from agentkit import wait_for
from playwright.sync_api import Page, expect

from agent.config import Settings, load_settings
from agent.ledger import Ledger
from agent.period import parse_month
from agent.queue import FirmQueue, PersonTask
from agent.web.server import StatusServer
from agent.web.status import Sources
from fixtures.pytest_plugin import MockPortal

pytestmark = [pytest.mark.browser, pytest.mark.mock_portal(scenario="firm", invoices_per_month=4)]

MONTH = "2025-10"
MOBILE = "13900000001"  # a person of the firm preset, linked to six companies


def firm_settings(portal: MockPortal, tmp_path: Path) -> tuple[Settings, list[str]]:
    person = next(p for p in portal.accounts()["accounts"] if p["mobile"] == MOBILE)
    companies = list(person["roles"])[:2]
    zhou = {"login": MOBILE, "password": person["password"], "sms": "prompt", "companies": companies}
    settings = load_settings(
        None, portal_url=portal.url, out=tmp_path / "archive", state_dir=tmp_path / "state", persons={"zhou": zhou},
        rate_limit=0.0, pause=0.0, pause_jitter=0.0, concurrency=8, not_ready_wait=0.5, backoff_max=2.0,
        human_timeout=120.0, queue_lease_seconds=30.0,
    )
    return settings, companies


@contextmanager
def worker(queue: FirmQueue) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=queue.work, args=(1, False, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def outcome(queue: FirmQueue) -> Any:
    return next(iter(queue.overview().recent), None)


def test_a_parked_task_goes_on_with_the_sms_code_typed_into_the_page(
    page: Page, mock_portal: MockPortal, tmp_path: Path
) -> None:
    settings, companies = firm_settings(mock_portal, tmp_path)
    queue = FirmQueue(settings)
    start, end = parse_month(MONTH)
    queue.enqueue(PersonTask(person="zhou", date_from=start, date_to=end))
    with Ledger.open(settings.out) as ledger, StatusServer(Sources(ledger, queue, settings), "parked-task-token-0123") as server, worker(queue):
        page.goto(server.login_url)
        wait_for(queue.waiting_people, "the task to park at the SMS code", timeout=120)
        page.goto(f"{server.url}/?to={MONTH}")
        for company in companies:
            expect(page.locator(f'td.cell[data-company="{company}"][data-month="{MONTH}"]')).to_have_attribute("data-state", "waiting")
        page.click("nav a.people-link")
        person = page.locator("article.person[data-person=zhou]")
        expect(person).to_contain_text("139****0001")
        person.locator("input[name=code]").fill(mock_portal.latest_sms_code(MOBILE))
        person.locator("button:has-text('Hand in')").click()
        expect(page.locator(".message.ok")).to_contain_text("The code went to zhou's waiting task")
        done = wait_for(lambda: outcome(queue), "the task to finish", timeout=120)
        assert done.outcome == "complete", done
        page.goto(f"{server.url}/?to={MONTH}")
        for company in companies:
            expect(page.locator(f'td.cell[data-company="{company}"][data-month="{MONTH}"]')).to_have_attribute("data-state", "complete")
        page.goto(f"{server.url}/people")
        expect(page.locator(".nobody")).to_be_visible()
        months = {(cm.company_id, cm.month): cm for cm in ledger.company_months()}
        for company in companies:
            listed = sum(mock_portal.truth(MONTH, direction, company)["total"] for direction in ("issued", "received"))
            assert months[company, MONTH].complete and months[company, MONTH].listed == listed > 0
    assert mock_portal.counters()["persons"][MOBILE]["password_logins"] == 1
    queue.close()
