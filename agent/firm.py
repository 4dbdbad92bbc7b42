"""The accounting firm: persons archived side by side, each logging in once for all their companies.

    archive_person(settings, task, events, human)   one person's companies for a period, in a run of its own
                                                     (what a queue worker runs: agent/queue.py)
    run_persons(run, persons, scope, ...)            several persons at once within one run, at most
                                                     `max_persons` at a time, each on its own browser context

Errors are agent.errors' (LoginRefused, NeedsPerson, PortalUnavailable, ...), told to the run events first.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from agent.config import Person, Settings
from agent.events import RunEvents
from agent.human import HumanInputs
from agent.records import Direction
from agent.run.context import GateFor, RunContext, Scope, opened_run
from agent.run.person import PersonRun, PersonSummary

__all__ = ["PersonSummary", "PersonTask", "archive_person", "run_persons", "task_args"]


class PersonTask(BaseModel):
    """What one queue task archives: a person's companies (None: those configured) for a period."""

    person: str
    date_from: date
    date_to: date
    directions: list[Direction] = Field(default_factory=lambda: [Direction.issued, Direction.received])
    companies: list[str] | None = None


async def archive_person(
    settings: Settings, task: PersonTask, events: RunEvents, human: HumanInputs | None = None,
    gate_for: GateFor | None = None,
) -> PersonSummary:
    """One person's companies for the task's period, in a run of its own (recorded in the ledger). `human`:
    where the SMS code and captcha answer come from (None: the person's configured sources); `gate_for`: who
    makes the person's politeness gate (None: one in this process; the queue's is shared by its workers)."""
    name, person = settings.person(task.person)
    scope = Scope(date_from=task.date_from, date_to=task.date_to, directions=task.directions)
    async with opened_run(settings, events, task_args(task, settings), gate_for=gate_for) as run:
        return await PersonRun(run, name, person, scope, companies=task.companies, human=human).run()


async def run_persons(
    run: RunContext, persons: list[tuple[str, Person]], scope: Scope, *, interactive: bool = False,
    login_only: bool = False,
) -> list[PersonSummary]:
    """Each person on their own browser context, at most `max_persons` at once (one when a person at the
    terminal may be asked something). Every person runs to their end; then the first error, in the persons'
    order, is raised (the ledger and run events hold what the others did)."""
    limit = asyncio.Semaphore(1 if interactive else run.settings.max_persons)

    async def one(name: str, person: Person) -> PersonSummary:
        async with limit:
            return await PersonRun(run, name, person, scope, interactive=interactive, login_only=login_only).run()

    results = await asyncio.gather(*(one(name, person) for name, person in persons), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if isinstance(result, PersonSummary)]


def task_args(task: PersonTask, settings: Settings) -> dict[str, Any]:
    """What a person's run records about itself: never a password."""
    return {
        "task": task.model_dump(mode="json"),
        "portal_url": settings.portal_url,
        "out": str(settings.out),
        "formats": [fmt.value for fmt in settings.formats],
    }
