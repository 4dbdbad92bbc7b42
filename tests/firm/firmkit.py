"""Helpers for the firm tests: the mock firm's persons as configured persons, settings, a run events recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentkit import MONTH, run_async
from pydantic import SecretStr

from agent.config import Person, Settings, load_settings
from agent.demo import check_against_truth
from agent.events import RunEvents
from agent.firm import PersonSummary, PersonTask, archive_person
from agent.period import parse_month
from agent.records import Direction, RunSummary
from fixtures.pytest_plugin import MockPortal

NAMES = ("zhou", "wu", "zheng")  # the mock's 周会计, 吴会计, 郑会计 (13900000001-3)
FIRM = {"invoices_per_month": 4, "sms_resend_seconds": 0}  # the firm preset, small: 8 invoices per company-month


def mock_persons(portal: MockPortal, first: int | None = None, **fields: Any) -> dict[str, Person]:
    """Each person of the mock firm with their first `first` linked companies (all of them: None)."""
    persons = portal.accounts()["persons"]
    return {
        name: Person(
            login=person["mobile"], password=SecretStr(person["password"]), sms=f"mock-outbox:{portal.url}",
            companies=[company["tax_id"] for company in person["companies"]][:first], **fields,
        )
        for name, person in zip(NAMES, persons, strict=False)
    }


def linked(portal: MockPortal, name: str) -> list[str]:
    person = portal.accounts()["persons"][NAMES.index(name)]
    return [company["tax_id"] for company in person["companies"]]


def firm_settings(portal: MockPortal, root: Path, persons: dict[str, Person], **overrides: Any) -> Settings:
    """Settings pointed at the mock firm, no politeness delay (as the agent_settings fixture)."""
    base = load_settings(
        None, portal_url=portal.url, out=root / "archive", state_dir=root / "state", rate_limit=0.0,
        not_ready_wait=0.5, backoff_max=2.0, pause=0.0, pause_jitter=0.0, concurrency=8,
    )
    return base.model_copy(update={"persons": persons, **overrides})


class Recorder:
    """Every run event, in order, as (name, first argument) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def started(self, person: str, company: str) -> None:
        self.seen.append(("started", company))

    def company_finished(self, company: str, summary: RunSummary) -> None:
        self.seen.append(("company_finished", company))

    def person_finished(self, person: str, totals: RunSummary) -> None:
        self.seen.append(("person_finished", person))

    def login_refused(self, person: str, error: Exception) -> None:
        self.seen.append(("login_refused", person))

    def person_needed(self, person: str, kind: str, detail: str) -> None:
        self.seen.append(("person_needed", (person, kind)))

    def of(self, name: str) -> list[Any]:
        return [value for event, value in self.seen if event == name]


def archive(settings: Settings, person: str, recorder: Recorder | None = None, **task: Any) -> PersonSummary:
    start, end = parse_month(MONTH)
    person_task = PersonTask(person=person, date_from=start, date_to=end, directions=list(Direction), **task)
    events = RunEvents(*([recorder] if recorder else []))
    return run_async(archive_person(settings, person_task, events))


def all_match_truth(portal: MockPortal, settings: Settings, companies: list[str]) -> bool:
    checks = [check_against_truth(portal.url, settings.out, company, MONTH, settings.formats) for company in companies]
    return all(check.ok and check.files_expected > 0 for check in checks)


def person_counters(portal: MockPortal, name: str) -> dict[str, int]:
    mobile = portal.accounts()["persons"][NAMES.index(name)]["mobile"]
    counters: dict[str, int] = portal.counters()["persons"][mobile]
    return counters
