"""Maintenance and rate limits: the run waits within its bounds and resumes, or stops with exit 5 and a ledger the
next run resumes from; meanwhile it asks the portal at a bounded pace, counted on the mock."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import date
from typing import Any

import pytest
from agentkit import MONTH, SettingsFactory, mock_account, run_async, run_job
from reliakit import (
    QUICK_SMS,
    audit,
    cli_command,
    cli_env,
    file_requests,
    on_downloads,
    run_agent,
    run_cli,
    truth_files,
    verified_keys,
    wait_for,
)

from agent.browser import BrowserSession, find_chromium
from agent.config import Settings
from agent.errors import EXIT_OK, EXIT_PORTAL_UNAVAILABLE
from agent.flows.search import Listing, SearchQuery, search
from agent.job import profile_for
from agent.ledger import EntryState, Ledger
from agent.records import Direction
from agent.retry import Gate, retrying
from fixtures.portal.faults import FaultSpec, Injection
from fixtures.portal.scenario import Scenario
from fixtures.pytest_plugin import MockPortal, start_mock_portal

CONCURRENCY = 4
BACKOFF_MAX = 1.0
# Maintenance starts when the test moves the portal's clock to 1000 s, and ends when it moves it past 2000 s.
MAINTENANCE = Scenario(name="maintenance", faults=[FaultSpec(kind="maintenance", window=(1000, 2000))])
RATE_LIMITED = Scenario(name="429", faults=[FaultSpec(kind="rate_limit", rate=1.0, retry_after=1)])
ONE_429 = Scenario(name="one 429", faults=[FaultSpec(kind="rate_limit", rate=1.0, count=1, retry_after=3)])


def maintenance_hits(portal: MockPortal) -> int:
    return int(portal.counters()["faults"].get("maintenance", 0))


LISTING_PAGES = len(Direction)  # both directions list at once, each on its page


def most_requests(seconds: float) -> float:
    """Requests a polite agent may send to a portal under maintenance in `seconds`: each download worker and
    each listing page asks once per `backoff_max`, plus the one it had in flight and one at the edge; a
    listing page also reloads itself once on its first 503."""
    return (CONCURRENCY + LISTING_PAGES) * (seconds / BACKOFF_MAX + 2) + LISTING_PAGES


@pytest.mark.mock_portal(MAINTENANCE, invoices_per_month=12, **QUICK_SMS)
def test_maintenance_shorter_than_the_bound_is_waited_out_asking_at_a_bounded_pace(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings(unavailable_wait=60.0, backoff_max=BACKOFF_MAX, concurrency=CONCURRENCY)
    window: list[float] = []

    def three_seconds_of_maintenance() -> None:
        mock_portal.advance_clock(1000)
        window.append(time.monotonic())
        time.sleep(3)
        mock_portal.advance_clock(1000)
        window.append(time.monotonic())

    with on_downloads(mock_portal, 4, three_seconds_of_maintenance):
        result = run_agent(settings)
    checked = audit(mock_portal, settings)
    assert result.exit_code == EXIT_OK, result.error
    assert (checked.problems, checked.unknown) == ([], [])
    assert 1 <= maintenance_hits(mock_portal) <= most_requests(window[1] - window[0])


@pytest.mark.mock_portal(MAINTENANCE, invoices_per_month=12, **QUICK_SMS)
def test_maintenance_longer_than_the_bound_exits_5_and_the_next_run_resumes(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    env = cli_env(mock_portal, settings, FAPIAO_UNAVAILABLE_WAIT="2", FAPIAO_BACKOFF_MAX=str(BACKOFF_MAX),
                  FAPIAO_CONCURRENCY=str(CONCURRENCY))
    process = subprocess.Popen(cli_command("download", "--month", MONTH), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: mock_portal.counters()["downloads_total"] >= 4, process)
    mock_portal.advance_clock(1000)  # and it never ends
    _, stderr = process.communicate(timeout=180)

    assert process.returncode == EXIT_PORTAL_UNAVAILABLE, stderr
    assert "maintenance" in stderr and "the next run resumes" in stderr
    assert maintenance_hits(mock_portal) <= most_requests(2)
    done = verified_keys(settings.out)
    with Ledger.open(settings.out) as ledger:
        to_do = [entry for entry in ledger.entries() if entry.state is not EntryState.verified]
    assert len(done) >= 4 and to_do

    later = start_mock_portal("default", invoices_per_month=12)  # the same portal, maintenance over
    try:
        rerun = run_cli(["download", "--month", MONTH], cli_env(later, settings))
        assert rerun.returncode == EXIT_OK, rerun.stderr
        company = settings.accounts["acct"].company_id
        expected = {key for key, sha in truth_files(later, company, settings.formats, Direction).items() if sha}
        assert set(file_requests(later)) == {(number, fmt.value.upper()) for _, number, fmt in expected - done}
        resumed = settings.model_copy(update={"accounts": {"acct": mock_account(later)}})
        assert audit(later, resumed).problems == []
    finally:
        later.stop()


@pytest.mark.mock_portal(RATE_LIMITED, invoices_per_month=12, **QUICK_SMS)
def test_a_portal_that_keeps_answering_429_gets_few_requests_then_exit_5(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings(retries=3, concurrency=CONCURRENCY)
    result = run_agent(settings)
    assert result.exit_code == EXIT_PORTAL_UNAVAILABLE
    assert "HTTP 429" in result.error and "the next run resumes" in result.error
    assert 1 <= sum(file_requests(mock_portal).values()) <= CONCURRENCY * settings.retries
    with Ledger.open(settings.out) as ledger:
        states = {entry.state for entry in ledger.entries()}
    assert states - {EntryState.paper} <= {EntryState.listed, EntryState.failed} and states  # all still to do, for the next run


def record_file_requests(portal: MockPortal, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str | None]]:
    """(arrival time, fault kind or None) of every file request the portal answers from now on."""
    engine = portal.server.portal.faults
    original = engine.on_request
    arrivals: list[tuple[float, str | None]] = []

    def recording(target: Any, number: str | None, fmt: str | None = None) -> Injection:
        injection = original(target, number, fmt)
        if target == "file":
            arrivals.append((time.monotonic(), injection.fault.kind if injection.fault else None))
        return injection

    monkeypatch.setattr(engine, "on_request", recording)
    return arrivals


@pytest.mark.mock_portal(ONE_429, invoices_per_month=12, **QUICK_SMS)
def test_retry_after_holds_every_worker_back(
    mock_portal: MockPortal, fast_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrivals = record_file_requests(mock_portal, monkeypatch)
    settings = fast_settings(concurrency=CONCURRENCY)
    result = run_agent(settings)
    assert result.exit_code == EXIT_OK, result.error
    limited = [at for at, kind in arrivals if kind == "rate_limit"]
    assert len(limited) == 1
    # Retry-After 3: after a second's grace for answers already on their way, nobody asks for 2 s
    assert [at for at, _ in arrivals if limited[0] + 1 < at < limited[0] + 3] == []
    company = settings.accounts["acct"].company_id
    files = [sha for sha in truth_files(mock_portal, company, settings.formats, Direction).values() if sha]
    assert len(arrivals) == len(files) + 1  # every file once, the one answered 429 twice


FLAKY_LISTING = Scenario(name="flaky listing", faults=[FaultSpec(kind="server_error", target="query", rate=0.15)])


async def list_received(settings: Settings) -> Listing:
    """The search flow, as the job runs it (retry policy and all), on a page with the saved session."""
    async with BrowserSession(find_chromium(), settings.state_dir) as browser:
        context = await browser.new_context("acct")
        try:
            page = await context.new_page()
            query = SearchQuery(direction=Direction.received, date_from=date(2025, 10, 1), date_to=date(2025, 10, 31))
            return await search(page, profile_for(settings), query, retry=lambda: retrying(settings, Gate(0)))
        finally:
            await context.close()


@pytest.mark.mock_portal(FLAKY_LISTING, invoices_per_month=1200, **QUICK_SMS)
def test_a_long_listing_with_failing_pages_resumes_and_lists_every_row(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    run_job(settings, login_only=True)
    listing = run_async(list_received(settings))
    company = settings.accounts["acct"].company_id
    portal_rows = mock_portal.server.portal.listings.month(company, MONTH, "received")
    assert sorted(row.number for row in listing.rows) == sorted(invoice.number for invoice in portal_rows)
    assert listing.count_mismatches == []
    # 12 pages of 100, each query failing 15 % of the time: walking all of them again after each failure
    # would need 14 good answers in a row (1 chance in 10); short walks that resume need a few
    assert mock_portal.counters()["faults"]["server_error"] >= 3


LISTING_DOWN = Scenario(name="listing down", faults=[FaultSpec(kind="server_error", target="query", rate=1.0)])


@pytest.mark.mock_portal(LISTING_DOWN, invoices_per_month=12, **QUICK_SMS)
def test_a_listing_that_keeps_failing_stops_with_exit_5_saying_the_next_run_resumes(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    result = run_agent(fast_settings(retries=2))
    assert result.exit_code == EXIT_PORTAL_UNAVAILABLE
    assert result.error is not None and "the portal stays unavailable" in result.error
    assert result.error.endswith("stopping, the next run resumes")


def test_unreachable_portal_is_exit_5_with_a_clear_message(mock_portal: MockPortal, fast_settings: SettingsFactory) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # free, and nobody listens on it once closed
    url = f"http://127.0.0.1:{port}"
    env = {**cli_env(mock_portal, fast_settings()), "FAPIAO_PORTAL_URL": url, "FAPIAO_RETRIES": "2"}
    result = run_cli(["download", "--month", MONTH], env)
    assert result.returncode == EXIT_PORTAL_UNAVAILABLE, result.stderr
    assert f"error: cannot reach the portal at {url}/invoice-query/invoice-query: net::ERR_CONNECTION_REFUSED" in result.stderr
    assert "Traceback" not in result.stderr
