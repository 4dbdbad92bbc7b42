"""`fapiao demo`: the whole job against the built-in mock portal, unattended, checked against the mock's truth.

`fapiao demo --firm`: the mock's accounting firm (several persons, each linked to several companies) archived
through the embedded queue: one task per person for the month, covering every company once, run by workers
until the queue is empty; then one JSON report of each company, the totals, and what the mock saw (password
logins and live sessions per person, the files it knows against the files archived).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from agent.config import Account, Person, Settings
from agent.ledger import EntryState, Ledger
from agent.records import Direction, FileFormat

DEMO_LOGIN = "13800000001"  # the mock's demo person: one role, no choice to make
DEMO_CONCURRENCY = 8  # downloads in flight against the built-in mock
FIRM_SCENARIO = "firm"  # the mock preset with persons linked to several companies
REPORTED = ("listed", "verified", "paper", "failed", "pending", "quarantined")  # per company and in all


def last_month(today: date | None = None) -> str:
    first_of_this_month = (today or date.today()).replace(day=1)
    return f"{first_of_this_month - timedelta(days=1):%Y-%m}"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)


def demo_account(portal_url: str) -> Account:
    accounts = _get_json(f"{portal_url}/__mock__/accounts")
    person = next(a for a in accounts["accounts"] if a["mobile"] == DEMO_LOGIN)
    return Account(
        company_id=next(iter(person["roles"])),
        login=person["mobile"],
        password=SecretStr(person["password"]),
        sms=f"mock-outbox:{portal_url}",
    )


def demo_settings(base: Settings, portal_url: str, out: Path) -> Settings:
    """The user's settings pointed at the mock: its URL, its demo account, no politeness delay needed."""
    return base.model_copy(
        update={
            "portal_url": portal_url,
            "sso_url": "",
            "accounts": {"demo": demo_account(portal_url)},
            "out": out,
            "rate_limit": 0.0,
            "pause": 0.0,  # the polite pace (0.5-1 s between requests, one at a time) is for the real portal
            "pause_jitter": 0.0,
            "concurrency": max(base.concurrency, DEMO_CONCURRENCY),
            "state_dir": out / "_state",
        }
    )


class TruthCheck(BaseModel):
    """The archive compared with what the mock knows it served."""

    files_expected: int = 0
    files_matching: int = 0
    missing: list[str] = []

    @property
    def ok(self) -> bool:
        return self.files_expected == self.files_matching


def check_against_truth(
    portal_url: str, out: Path, company_id: str, month: str, formats: list[FileFormat], database_url: str | None = None
) -> TruthCheck:
    """The company-month's verified files (the ledger in `out`, or at `database_url`) against the mock's sha256s."""
    with Ledger.open(out, database_url) as ledger:
        verified = {
            (entry.direction, entry.number, entry.format): entry.sha256
            for entry in ledger.entries(company_id, month)
            if entry.state is EntryState.verified
        }
    check = TruthCheck()
    for direction in Direction:
        truth = _get_json(f"{portal_url}/__mock__/truth?month={month}&direction={direction.value}&company={company_id}")
        for invoice in truth["invoices"]:
            if not invoice["has_file"]:
                continue
            for fmt in formats:
                check.files_expected += 1
                if verified.get((direction, invoice["Fphm"], fmt)) == invoice["sha256"][fmt.value.upper()]:
                    check.files_matching += 1
                else:
                    check.missing.append(f"{direction.value} {invoice['Fphm']} {fmt.value}")
    return check


# -- the firm demo


def firm_persons(portal_url: str) -> dict[str, Person]:
    """The mock firm's persons (person1, ...), each with the linked companies no person before them has: every
    company once (a company linked to two persons is archived by the first)."""
    persons, taken = {}, set[str]()
    for number, person in enumerate(_get_json(f"{portal_url}/__mock__/accounts")["persons"], start=1):
        companies = [company["tax_id"] for company in person["companies"] if company["tax_id"] not in taken]
        taken.update(companies)
        if companies:
            persons[f"person{number}"] = Person(
                login=person["mobile"], password=SecretStr(person["password"]), sms=f"mock-outbox:{portal_url}",
                companies=companies,
            )
    return persons


def firm_demo_settings(base: Settings, portal_url: str, out: Path) -> Settings:
    """demo_settings with the mock firm's persons instead of the demo account, all of them at once."""
    persons = firm_persons(portal_url)
    settings = demo_settings(base, portal_url, out)
    return settings.model_copy(update={"accounts": {}, "persons": persons, "max_persons": len(persons)})


def run_firm_month(settings: Settings, date_from: date, date_to: date) -> None:
    """One queue task per person for the period (their companies), and workers until the queue is empty."""
    from agent.firm import PersonTask
    from agent.queue import FirmQueue

    queue = FirmQueue(settings)
    try:
        for name, person in settings.persons.items():
            companies = person.companies if isinstance(person.companies, list) else None
            queue.enqueue(PersonTask(person=name, date_from=date_from, date_to=date_to, companies=companies))
        queue.work(workers=settings.max_persons, until_empty=True)
    finally:
        queue.close()


def firm_report(settings: Settings, portal_url: str, month: str) -> dict[str, Any]:
    """Each company of the month as the ledger holds it, the totals, and what the mock saw."""
    with Ledger.open(settings.out, settings.database_url) as ledger:
        rows = [row for row in ledger.company_months() if row.month == month]
    companies = [
        {"company_id": row.company_id, **{key: getattr(row, key) for key in REPORTED}, "failed": row.failed + row.untried}
        for row in rows
    ]
    totals = {key: sum(company[key] for company in companies) for key in REPORTED}
    checks = [
        check_against_truth(portal_url, settings.out, row.company_id, month, settings.formats, settings.database_url)
        for row in rows
    ]
    persons = _get_json(f"{portal_url}/__mock__/counters")["persons"]
    mobiles = {person.login: name for name, person in settings.persons.items()}
    counters = {mobiles[mobile]: seen for mobile, seen in persons.items() if mobile in mobiles}
    mock = {
        "password_logins": {name: seen["password_logins"] for name, seen in counters.items()},
        "max_live_sessions": {name: seen["max_live_sessions"] for name, seen in counters.items()},
        "switches": {name: seen["switches"] for name, seen in counters.items()},
        "truth_files": sum(check.files_expected for check in checks),
        "truth_matching": sum(check.files_matching for check in checks),
        "downloads": _get_json(f"{portal_url}/__mock__/counters")["downloads_total"],
    }
    complete = bool(rows) and all(row.complete for row in rows) and mock["truth_files"] == mock["truth_matching"]
    return {"month": month, "companies": companies, "totals": totals, "mock": mock, "complete": complete}
