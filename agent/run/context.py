"""The run context: what a company's run is handed, and nothing more (scrapy hands each component its crawler).

One context per run of the process (a one-shot `fapiao download`, one queue task): the ledger and this run's id
in it, the archive, the verifier pool, the browser, the run events, the settings and the portal profile, and the
politeness gates, one per person and region (each request a person's session makes waits for that person's
gate, whichever company it is for). `opened_run` opens them around the work and records the run's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent import errors
from agent.archive import Archive
from agent.browser import BrowserSession, find_chromium
from agent.config import Settings
from agent.events import RunEvents
from agent.flows.download import Outcome, State, Verifier
from agent.ledger import EntryKey, Ledger, StateChange
from agent.manifest import ManifestWriter
from agent.portal import PortalProfile
from agent.records import Direction, RunSummary
from agent.retry import Gate

log = logging.getLogger(__name__)

RECORD_BATCH = 100  # file outcomes written to the ledger in one transaction, at most
RECORD_WAIT = 0.5  # seconds an outcome may wait for the others of its batch


class Scope(BaseModel):
    """What is archived of each company: the period, the directions and the listing filters."""

    date_from: date
    date_to: date
    directions: list[Direction] = Field(default_factory=lambda: [Direction.issued, Direction.received])
    kinds: list[str] = Field(default_factory=list)  # FplxDm codes; empty = all
    statuses: list[str] = Field(default_factory=list)  # FpztDm codes; empty = all


GateFor = Callable[[str, str], Gate]  # (region, person) -> that person's politeness gate


class RunContext:
    """Shared by every person and company of one run."""

    def __init__(
        self, settings: Settings, ledger: Ledger, run_id: int, verifier: Verifier, browser: BrowserSession,
        events: RunEvents, gate_for: GateFor | None = None,
    ) -> None:
        self.settings, self.ledger, self.run_id = settings, ledger, run_id
        self.verifier, self.browser, self.events = verifier, browser, events
        self.profile = PortalProfile.of(settings)
        self.archive = Archive(settings.out, settings.layout)
        self.debug_dir: Path = settings.debug_dir or settings.out / "_debug"
        self._gate_for: GateFor = gate_for or (lambda _region, _person: Gate.of(settings))
        self._gates: dict[tuple[str, str], Gate] = {}
        self.totals = RunSummary()  # of the companies finished so far: what the ledger records as the run's end
        self._claimed: dict[str, str] = {}  # company -> the person archiving it in this run
        self._unwritten: list[Outcome] = []  # outcomes taken, not in the ledger yet (record)
        self._due: asyncio.TimerHandle | None = None  # when they are written at the latest

    def claim(self, company: str, person: str) -> str | None:
        """Take `company` for `person`; None when it is theirs, else the person who took it first (a company
        linked to two persons is archived once per run)."""
        holder = self._claimed.setdefault(company, person)
        return None if holder == person else holder

    def company_finished(self, company: str, summary: RunSummary) -> None:
        """A run event: the context listens to its own run, to count the totals."""
        self.totals = add_summaries(self.totals, summary)

    def gate(self, region: str, person: str) -> Gate:
        """The politeness gate of one person's session in one region: their requests, one pace."""
        if (region, person) not in self._gates:
            self._gates[region, person] = self._gate_for(region, person)
        return self._gates[region, person]

    def record(self, outcome: Outcome) -> None:
        """Take one file's outcome. Outcomes are written to the ledger together, once RECORD_BATCH of them are in
        or the first has waited RECORD_WAIT seconds (a timer: the next outcome may be minutes away, behind a
        maintenance wait), and at the end of each company and of the run (a write per file held the event loop
        for a sixth of a 2,000-file run); the listeners hear of each once it is written. A file is at its final
        name before its outcome comes here: a run killed meanwhile leaves files the ledger does not call verified
        yet, which the next run fetches again, never the other way round."""
        if not self._unwritten:
            self._due = asyncio.get_running_loop().call_later(RECORD_WAIT, self._write_due)
        self._unwritten.append(outcome)
        if len(self._unwritten) >= RECORD_BATCH:
            self.write_outcomes()

    def write_outcomes(self) -> None:
        """Write the outcomes taken so far to the ledger, then tell the listeners. A write that fails keeps them
        for the next one."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        outcomes = self._unwritten
        self.ledger.apply(self.run_id, [self._change(outcome) for outcome in outcomes])
        self._unwritten = []
        for outcome in outcomes:
            log.debug("%s %s %s", outcome.task.row.number, outcome.task.fmt, outcome.state)
            self.events.file_done(outcome)

    def _write_due(self) -> None:
        """The timer's write: a failure is said here and met again by the next write, which raises it."""
        self._due = None
        try:
            self.write_outcomes()
        except (errors.FapiaoError, LookupError) as exc:
            log.warning("writing %d file outcomes to the ledger failed (%s); trying again with the next", len(self._unwritten), exc)

    def _change(self, outcome: Outcome) -> StateChange:
        key = EntryKey.of(outcome.task.company_id, outcome.task.row, outcome.task.fmt)
        if outcome.state is State.verified and outcome.path is not None:
            return self.ledger.verified(key, outcome.path, outcome.sha256, outcome.size)
        if outcome.state is State.quarantined and outcome.path is not None:
            return self.ledger.quarantined(key, outcome.path, outcome.error)
        if outcome.state is State.pending:
            return self.ledger.pending(key, outcome.error)
        return self.ledger.failed(key, outcome.error)


@contextlib.asynccontextmanager
async def opened_run(
    settings: Settings, events: RunEvents, args: dict[str, Any], manifests: bool = True, gate_for: GateFor | None = None,
) -> AsyncIterator[RunContext]:
    """The run's context, open for the body; how the run ended (the totals of its finished companies, the exit
    code) is recorded in the ledger however it ended, and the manifests are written from the ledger (`manifests`).
    `gate_for` makes each person's politeness gate (default: one in this process)."""
    archive = Archive(settings.out, settings.layout)
    archive.check_writable()
    archive.sweep_partials()
    with Ledger.open(settings.out, settings.database_url) as ledger:
        run_id = ledger.start_run(args)
        writer = ManifestWriter(ledger, settings.out)
        if manifests:
            events.connect(writer)
        exit_code, totals = errors.EXIT_INCOMPLETE, RunSummary()
        try:
            async with _browser(settings) as (verifier, browser):
                context = RunContext(settings, ledger, run_id, verifier, browser, events, gate_for)
                events.connect(context)
                try:
                    yield context
                finally:
                    context.write_outcomes()
                    events.disconnect(context)
                    totals = context.totals
            exit_code = errors.EXIT_OK if totals.complete else errors.EXIT_INCOMPLETE
        except errors.FapiaoError as exc:
            exit_code = exc.exit_code
            raise
        finally:
            ledger.finish_run(run_id, totals, exit_code)
            if manifests:
                events.disconnect(writer)
                writer.finish()


@contextlib.asynccontextmanager
async def _browser(settings: Settings) -> AsyncIterator[tuple[Verifier, BrowserSession]]:
    chromium = find_chromium(settings.browser_path, settings.headless)
    verifier = Verifier(settings.workers, settings.verify_qr, settings.max_file_mb << 20)
    try:
        async with BrowserSession(chromium, settings.state_dir, settings.headless, settings.insecure) as browser:
            yield verifier, browser
    finally:
        verifier.close()


def add_summaries(a: RunSummary, b: RunSummary) -> RunSummary:
    numbers = {field: getattr(a, field) + getattr(b, field) for field in RunSummary.model_fields if field != "count_mismatches"}
    return RunSummary(**numbers, count_mismatches=a.count_mismatches + b.count_mismatches)
