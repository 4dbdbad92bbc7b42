"""Helpers for running the real agent against the mock portal (importable from any test folder as `agentkit`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import SecretStr

from agent.cli import wait_until
from agent.config import Account, Settings
from agent.job import Job, JobRequest, job_args
from agent.records import Direction, RunSummary
from fixtures.pytest_plugin import MockPortal

T = TypeVar("T")

MONTH = "2025-10"
DEMO_MOBILE = "13800000001"

SettingsFactory = Callable[..., Settings]


def mock_account(portal: MockPortal, mobile: str = DEMO_MOBILE, company: str | None = None, **fields: Any) -> Account:
    accounts = portal.accounts()
    person = next((a for a in accounts["accounts"] if a["mobile"] == mobile), None)
    password = person["password"] if person else "Fapiao#2025"
    company = company or (next(iter(person["roles"]), None) if person else None) or accounts["companies"][0]["tax_id"]
    values: dict[str, Any] = {"company_id": company, "login": mobile, "password": SecretStr(password)}
    values["sms"] = f"mock-outbox:{portal.url}"
    return Account(**{**values, **fields})


def run_job(settings: Settings, month: str = MONTH, *, login_only: bool = False, interactive: bool = False,
            directions: list[Direction] | None = None, **request: Any) -> RunSummary:
    from agent.cli import parse_month

    start, end = parse_month(month)
    job_request = JobRequest(
        accounts=["acct"], date_from=start, date_to=end, interactive=interactive, login_only=login_only,
        directions=directions or list(Direction), **request,
    )
    return run_async(Job(settings, job_request).run(job_args(job_request, settings)))


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own: pytest-playwright's sync fixtures keep a loop running in the main
    thread for the rest of the session once a browser test has used them."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def login_record(portal: MockPortal, mobile: str) -> dict[str, Any]:
    """{"attempts": n, "wrong_passwords": n, "locked": bool} as the mock counted them."""
    empty = {"attempts": 0, "wrong_passwords": 0, "locked": False}
    return dict(portal.counters()["logins"].get(mobile, empty))


def wait_for(probe: Callable[[], T], what: str = "condition", timeout: float = 20.0) -> T:
    """What `probe()` gives once it is truthy (asked every 0.05 s); the test fails when `timeout` passes first."""
    found: T | None = wait_until(probe, timeout, every=0.05)
    if not found:
        raise AssertionError(f"timed out waiting for {what}")
    return found
