"""The one-shot job of `fapiao download` and `fapiao login`: the named accounts (or persons) for a period, in
one run that holds the archive's lock, built on agent.run's pieces (the queue's workers use the same ones,
through agent.firm).

The ledger is the memory between runs: what is verified (and whose file still has its recorded hash) is
skipped, everything else is tried again. Every state change is written within half a second of happening (file
outcomes in batches: RunContext.record), and only after its file is in place, so a run killed at any point
leaves a ledger the next run resumes from: at worst it fetches again files of the last half second.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from agent.archive import ArchiveLock
from agent.config import Person, Settings
from agent.events import RunEvents, RunListener
from agent.firm import run_persons
from agent.portal import PortalProfile
from agent.records import Direction, RunSummary
from agent.run.context import Scope, add_summaries, opened_run
from agent.run.person import MAX_RELOGINS

__all__ = ["MAX_RELOGINS", "Job", "JobRequest", "job_args", "profile_for"]

profile_for = PortalProfile.of  # imported by tests and bench


class JobRequest(BaseModel):
    accounts: list[str | None] = [None]  # None: the only configured account (pydantic copies the default)
    date_from: date
    date_to: date
    directions: list[Direction] = Field(default_factory=lambda: [Direction.issued, Direction.received])
    kinds: list[str] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)
    interactive: bool = False
    login_only: bool = False
    wait_for_archive: bool = False  # another run holds the archive: wait for it to end (else ArchiveBusy at once)

    def scope(self) -> Scope:
        return Scope(
            date_from=self.date_from, date_to=self.date_to, directions=self.directions, kinds=self.kinds,
            statuses=self.statuses,
        )


class Job:
    """Runs a JobRequest: its accounts (persons) side by side up to `max_persons`, in one run."""

    def __init__(self, settings: Settings, request: JobRequest, progress: RunListener | None = None) -> None:
        self.settings, self.request = settings, request
        self.events = RunEvents(*([progress] if progress is not None else []))

    async def run(self, args: dict[str, Any]) -> RunSummary:
        """The whole job, holding the archive's lock: one run per archive (ArchiveBusy, or wait with the request)."""
        async with ArchiveLock(self.settings.out.resolve()).held(wait=self.request.wait_for_archive):
            persons = [persons_entry(self.settings, name) for name in self.request.accounts]
            request = self.request
            async with opened_run(self.settings, self.events, args, manifests=not request.login_only) as run:
                done = await run_persons(
                    run, persons, request.scope(), interactive=request.interactive, login_only=request.login_only
                )
        total = RunSummary()
        for summary in done:
            total = add_summaries(total, summary.totals)
        return total


def persons_entry(settings: Settings, name: str | None) -> tuple[str, Person]:
    """A name of the request: a [persons.x] entry, else an account (a person of one company), as configured."""
    if name in settings.persons or (name is None and settings.persons and not settings.accounts):
        return settings.person(name)
    name, account = settings.account(name)
    return name, Person.of_account(account)


def job_args(request: JobRequest, settings: Settings) -> dict[str, Any]:
    """What a run records about itself: never a password."""
    return {
        "request": request.model_dump(mode="json"),
        "portal_url": settings.portal_url,
        "out": str(settings.out),
        "formats": [fmt.value for fmt in settings.formats],
    }
