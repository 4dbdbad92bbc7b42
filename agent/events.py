"""Run events: what a run tells whoever listens (progress bars, manifests, notifications, the queue).

A run never calls those directly: it emits events on its `RunEvents`, and each listener receives the ones
it cares about, as scrapy's signals do (`crawler.signals.connect(..., signal=signals.spider_closed)`).

    events = RunEvents()
    events.connect(PlainProgress())          # any object with some of RunListener's methods
    events.started("alice", "91310000...")   # calls `started` on every listener that has it

Listeners are called synchronously, in the run's event loop, in the order they were connected; they must be
quick (a slow one, like a notification over the network, hands its work to a thread or a task). A listener
that raises is logged and skipped: telling someone never stops the archiving.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from agent import errors
from agent.records import Direction, RunSummary

if TYPE_CHECKING:
    from agent.flows.download import Outcome

log = logging.getLogger(__name__)

NeededFor = Literal["sms", "captcha", "role"]  # what a person must hand in before the run goes on


class RunListener:
    """Every event a run emits, each a no-op here: a listener overrides the ones it cares about."""

    def started(self, person: str, company: str) -> None:
        """A company's run begins (the person is logged in and acting for that company)."""

    def listed(self, company: str, direction: Direction, count: int) -> None:
        """One direction of a company is listed: `count` invoices in the period."""

    def queued(self, company: str, count: int) -> None:
        """`count` files of a company are left to download (the others are verified already)."""

    def file_done(self, outcome: Outcome) -> None:
        """One file's outcome, once it is written to the ledger."""

    def company_finished(self, company: str, summary: RunSummary) -> None:
        """A company's run ended, with its own summary."""

    def person_finished(self, person: str, totals: RunSummary) -> None:
        """Every company of a person is done; `totals` adds up their summaries."""

    def person_needed(self, person: str, kind: NeededFor, detail: str) -> None:
        """The run waits for (or stopped for want of) a person: an SMS code, a captcha answer, a role."""

    def login_refused(self, person: str, error: errors.LoginRefused) -> None:
        """The portal refused the person's login; nothing retries it."""

    def portal_down(self, person: str, error: errors.PortalUnavailable) -> None:
        """The portal stayed unavailable past the retry bound."""


EVENT_NAMES = tuple(name for name in vars(RunListener) if not name.startswith("_"))


class RunEvents(RunListener):
    """The registry: `connect` listeners, then emit an event by calling its method on this object."""

    def __init__(self, *listeners: object) -> None:
        self._listeners: list[object] = []
        for listener in listeners:
            self.connect(listener)

    def connect(self, listener: object) -> None:
        """Add a listener: any object with one or more of RunListener's method names."""
        if not any(callable(getattr(listener, name, None)) for name in EVENT_NAMES):
            raise TypeError(f"{type(listener).__name__} listens to no run event (one of {', '.join(EVENT_NAMES)})")
        self._listeners.append(listener)

    def disconnect(self, listener: object) -> None:
        self._listeners.remove(listener)

    def _emit(self, name: str, *args: object) -> None:
        for listener in list(self._listeners):
            handler = getattr(listener, name, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception:  # a listener's failure is its own; the run goes on
                log.warning("run event listener %s failed on %s", type(listener).__name__, name, exc_info=True)

    def started(self, person: str, company: str) -> None:
        self._emit("started", person, company)

    def listed(self, company: str, direction: Direction, count: int) -> None:
        self._emit("listed", company, direction, count)

    def queued(self, company: str, count: int) -> None:
        self._emit("queued", company, count)

    def file_done(self, outcome: Outcome) -> None:
        self._emit("file_done", outcome)

    def company_finished(self, company: str, summary: RunSummary) -> None:
        self._emit("company_finished", company, summary)

    def person_finished(self, person: str, totals: RunSummary) -> None:
        self._emit("person_finished", person, totals)

    def person_needed(self, person: str, kind: NeededFor, detail: str) -> None:
        self._emit("person_needed", person, kind, detail)

    def login_refused(self, person: str, error: errors.LoginRefused) -> None:
        self._emit("login_refused", person, error)

    def portal_down(self, person: str, error: errors.PortalUnavailable) -> None:
        self._emit("portal_down", person, error)
