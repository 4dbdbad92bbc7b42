"""What each page of the status page shows, built from the ledger, the queue and the settings. No HTTP here.

A cell of the home grid is one company's month, in the first of these states that holds:

    waiting   a task that covers it waits for a person (an SMS code, a captcha), or was held for want of one
    running   a worker is archiving it now
    queued    a task for it is on the queue (a retry, a person busy elsewhere, a schedule's run)
    gaps      the ledger lists files not verified (failed, pending, quarantined, untried), or its last task failed
    complete  every listed file is verified or paper (or a task found nothing to list)
    not run   nothing is known of it yet

The queue is read through `StatusQueue`, the few methods of agent.queue.FirmQueue the page uses; a task
names its companies, or none for all those configured for its person.
"""

from __future__ import annotations

import base64
import calendar
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from agent.config import Settings
from agent.ledger import CompanyMonth, EntryState, Ledger, LedgerEntry, RunRecord
from agent.records import Direction

DEFAULT_MONTHS = 6  # columns of the home grid
MAX_MONTHS = 36
BASE64 = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")
FAILED_OUTCOMES = frozenset({"login refused", "portal down", "failed", "error", "needs person"})


class CellState(StrEnum):
    waiting = "waiting"
    running = "running"
    queued = "queued"
    gaps = "gaps"
    complete = "complete"
    not_run = "not-run"


CELL_NAMES: dict[CellState, tuple[str, str]] = {
    CellState.complete: ("已完成", "complete"),
    CellState.gaps: ("有缺口", "gaps"),
    CellState.waiting: ("等待人工", "waiting for a person"),
    CellState.running: ("运行中", "running"),
    CellState.queued: ("排队中", "queued"),
    CellState.not_run: ("未运行", "not run yet"),
}
STATE_NAMES: dict[EntryState, tuple[str, str]] = {
    EntryState.listed: ("已列出", "listed"),
    EntryState.downloaded: ("已下载", "downloaded"),
    EntryState.verified: ("已核验", "verified"),
    EntryState.failed: ("失败", "failed"),
    EntryState.pending: ("未生成", "not ready yet"),
    EntryState.quarantined: ("已隔离", "quarantined"),
    EntryState.paper: ("纸质发票", "paper, no file"),
}
DIRECTION_NAMES: dict[Direction, tuple[str, str]] = {
    Direction.issued: ("开具", "issued"),
    Direction.received: ("取得", "received"),
}
NEEDED_NAMES: dict[str, tuple[str, str]] = {
    "sms": ("短信验证码", "SMS code"),
    "captcha": ("图形验证码", "captcha"),
    "role": ("身份选择", "role"),
}
_PRIORITY = {state: rank for rank, state in enumerate(CellState)}


class TaskLike(Protocol):
    person: str
    companies: list[str] | None
    date_from: date
    date_to: date


class StatusQueue(Protocol):
    """What the page asks of the queue (agent.queue.FirmQueue has these)."""

    def overview(self) -> Any: ...  # .running .waiting .queued .schedules .recent

    def waiting_people(self) -> Sequence[Any]: ...

    def submit_code(self, person: str, code: str) -> bool: ...

    def enqueue(self, task: Any) -> str: ...

    def restart_held(self, person: str) -> list[str]: ...


@dataclass
class Sources:
    """Where the pages read from: the archive's ledger, the queue (None: no queue to show), the settings."""

    ledger: Ledger
    queue: StatusQueue | None
    settings: Settings
    today: Callable[[], date] = date.today  # a test's fixed day
    _names: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def persons(self) -> dict[str, list[str] | None]:
        """Each configured person (accounts too) and their companies; None = every company linked to them."""
        return {
            name: person.companies if isinstance(person.companies, list) else None
            for name, person in self.settings.all_persons().items()
        }

    def person_for(self, company_id: str) -> str | None:
        """Who archives this company: a person naming it, else one archiving every company linked to them."""
        persons = self.persons()
        named = [name for name, companies in persons.items() if companies and company_id in companies]
        linked = [name for name, companies in persons.items() if companies is None]
        return next(iter(named + linked), None)

    def names(self, companies: Iterable[str]) -> dict[str, str]:
        """Each company's name, where its invoices in the ledger give one."""
        wanted = set(companies)
        if not wanted:
            return {}
        latest: dict[str, str] = {}
        for counts in self.ledger.company_months():
            if counts.company_id in wanted:
                latest[counts.company_id] = max(counts.month, latest.get(counts.company_id, ""))
        return {company: self.name_of(company, month) for company, month in latest.items()}

    def name_of(self, company_id: str, month: str) -> str:
        """The company's name as its invoices give it (read once per company, then remembered)."""
        with self._lock:
            known = self._names.get(company_id)
        if known is None:
            known = next((company_name(entry) for entry in self.ledger.entries(company_id, month)), "")
            if known:
                with self._lock:
                    self._names[company_id] = known
        return known


# -- months


def month_of(day: date) -> str:
    return f"{day:%Y-%m}"


def shift(month: str, by: int) -> str:
    year, number = (int(part) for part in month.split("-"))
    index = year * 12 + number - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(start: date, end: date) -> list[str]:
    first, last = month_of(start), month_of(end)
    months = [first]
    while months[-1] < last:
        months.append(shift(months[-1], 1))
    return months


def month_range(month: str, today: date) -> tuple[date, date]:
    """The month's first and last day, the last no later than today."""
    year, number = (int(part) for part in month.split("-"))
    end = date(year, number, calendar.monthrange(year, number)[1])
    return date(year, number, 1), min(end, today)


# -- the home grid


class Cell(BaseModel):
    company_id: str
    month: str
    state: CellState
    counts: CompanyMonth | None
    note: str = ""

    @property
    def done(self) -> int:
        return 0 if self.counts is None else self.counts.verified + self.counts.paper

    @property
    def problems(self) -> list[str]:
        counts = self.counts
        if counts is None:
            return []
        found = [(counts.failed, "failed"), (counts.pending, "pending"), (counts.quarantined, "quarantined"), (counts.untried, "untried")]
        return [f"{number} {what}" for number, what in found if number]


class GridRow(BaseModel):
    company_id: str
    name: str
    cells: list[Cell]


class HomeView(BaseModel):
    months: list[str]
    rows: list[GridRow]
    persons: list[str]
    person: str
    company: str
    earlier: str
    later: str | None
    count: int
    overview: Any
    totals: dict[CellState, int]


Marks = dict[tuple[str, str], tuple[CellState, str]]


def covered(task: TaskLike, persons: dict[str, list[str] | None]) -> list[tuple[str, str]]:
    """The company-months a task archives (none known for a person archiving every linked company)."""
    companies = task.companies or persons.get(task.person) or []
    return [(company, month) for company in companies for month in months_between(task.date_from, task.date_to)]


def _mark(marks: Marks, keys: Iterable[tuple[str, str]], state: CellState, note: str) -> None:
    for key in keys:
        if key not in marks or _PRIORITY[state] < _PRIORITY[marks[key][0]]:
            marks[key] = (state, note)


def queue_marks(overview: Any, persons: dict[str, list[str] | None]) -> Marks:
    """What the queue says of each company-month it touches: waiting, running, queued."""
    marks: Marks = {}
    if overview is None:
        return marks
    for waiting in overview.waiting:
        kind = NEEDED_NAMES.get(waiting.kind, (waiting.kind, waiting.kind))[1]
        held = "" if waiting.until is not None else " (held: nobody came in time)"
        _mark(marks, covered(waiting, persons), CellState.waiting, f"{waiting.person}: {kind}{held}")
    for running in overview.running:
        _mark(marks, covered(running, persons), CellState.running, f"{running.person} on {running.worker}")
    for queued in overview.queued:
        when = f", not before {queued.eta:%H:%M}" if queued.eta else ""
        _mark(marks, covered(queued, persons), CellState.queued, f"{queued.person}{when}")
    return marks


def outcome_marks(overview: Any, persons: dict[str, list[str] | None]) -> Marks:
    """What the queue's recent outcomes say of months the ledger holds nothing of (newest first wins)."""
    marks: Marks = {}
    for outcome in [] if overview is None else overview.recent:
        if outcome.outcome == "complete":
            state, note = CellState.complete, "nothing listed"
        elif outcome.outcome in FAILED_OUTCOMES:
            state, note = CellState.gaps, f"{outcome.outcome}: {outcome.message}"
        else:
            continue
        for key in covered(outcome, persons):
            marks.setdefault(key, (state, note))
    return marks


def ledger_cell(counts: CompanyMonth) -> tuple[CellState, str]:
    if counts.listed and counts.complete:
        return CellState.complete, ""
    return CellState.gaps, ""


def make_cell(company: str, month: str, counts: CompanyMonth | None, marks: Marks, outcomes: Marks) -> Cell:
    if (company, month) in marks:
        state, note = marks[company, month]
    elif counts is not None:
        state, note = ledger_cell(counts)
    else:
        state, note = outcomes.get((company, month), (CellState.not_run, ""))
    return Cell(company_id=company, month=month, state=state, counts=counts, note=note)


def default_end(months: Iterable[str], today: date) -> str:
    """The grid's last column: the latest month anything is known of, else last month; never after this one."""
    latest = max(months, default=shift(month_of(today), -1))
    return min(latest, month_of(today))


def home(sources: Sources, person: str = "", company: str = "", end: str = "", count: int = DEFAULT_MONTHS) -> HomeView:
    today = sources.today()
    persons = sources.persons()
    overview = sources.queue.overview() if sources.queue is not None else None
    by_key = {(cm.company_id, cm.month): cm for cm in sources.ledger.company_months()}
    marks, outcomes = queue_marks(overview, persons), outcome_marks(overview, persons)
    count = max(1, min(count, MAX_MONTHS))
    end = end or default_end([month for _, month in [*by_key, *marks]], today)
    months = [shift(end, offset) for offset in range(1 - count, 1)]
    configured = [company for companies in persons.values() for company in companies or []]
    companies = sorted({*(key[0] for key in (*by_key, *marks, *outcomes)), *configured})
    companies = _filtered(companies, persons.get(person) if person in persons else None, company)
    rows = [
        GridRow(
            company_id=company_id,
            name=_latest_name(sources, company_id, by_key),
            cells=[make_cell(company_id, month, by_key.get((company_id, month)), marks, outcomes) for month in months],
        )
        for company_id in companies
    ]
    totals = {state: sum(cell.state is state for row in rows for cell in row.cells) for state in CellState}
    later = shift(end, count) if end < month_of(today) else None
    return HomeView(
        months=months, rows=rows, persons=sorted(persons), person=person if person in persons else "", company=company,
        earlier=shift(end, -count), later=min(later, month_of(today)) if later else None, count=count,
        overview=overview, totals=totals,
    )


def _filtered(companies: list[str], of_person: list[str] | None, text: str) -> list[str]:
    if of_person is not None:
        companies = [company for company in companies if company in of_person]
    needle = text.strip().upper()
    return [company for company in companies if needle in company] if needle else companies


def _latest_name(sources: Sources, company_id: str, by_key: dict[tuple[str, str], CompanyMonth]) -> str:
    months = sorted(month for company, month in by_key if company == company_id)
    return sources.name_of(company_id, months[-1]) if months else ""


# -- a company's month


class DirectionTotals(BaseModel):
    """One direction of the month: the portal's Total against what the archive holds."""

    direction: Direction
    name_cn: str
    name_en: str
    portal_total: int  # invoices the portal listed (its Total, unless the last run said otherwise below)
    archived: int  # invoices whose every file is verified, or which are paper
    said: list[str]  # what the last run said when its count differed from the portal's Total

    @property
    def missing(self) -> int:
        return max(0, self.portal_total - self.archived)


class InvoiceLine(BaseModel):
    entry_id: int
    number: str
    issued_at: datetime
    counterpart: str
    total: Decimal
    direction_cn: str
    format: str
    state: EntryState
    state_cn: str
    state_en: str
    reason: str
    has_file: bool


class MonthView(BaseModel):
    company_id: str
    name: str
    month: str
    cell: Cell
    totals: list[DirectionTotals]
    lines: list[InvoiceLine]
    person: str | None  # who "run again" enqueues for
    last_run_at: datetime | None


def company_name(entry: LedgerEntry) -> str:
    row = entry.row
    return row.seller_name if entry.direction is Direction.issued else row.buyer_name


def line_of(entry: LedgerEntry) -> InvoiceLine:
    state_cn, state_en = STATE_NAMES[entry.state]
    return InvoiceLine(
        entry_id=entry.id, number=entry.row.display_number, issued_at=entry.row.issued_at,
        counterpart=entry.row.counterpart_name, total=entry.row.total,
        direction_cn=DIRECTION_NAMES[entry.direction][0], format=entry.format.value, state=entry.state,
        state_cn=state_cn, state_en=state_en, reason=entry.last_error,
        has_file=entry.path is not None and entry.state in (EntryState.verified, EntryState.quarantined),
    )


def direction_totals(entries: list[LedgerEntry], month: str, last_said: list[str]) -> list[DirectionTotals]:
    totals = []
    for direction, (name_cn, name_en) in DIRECTION_NAMES.items():
        invoices: dict[str, bool] = {}
        for entry in entries:
            if entry.direction is direction:
                done = entry.state in (EntryState.verified, EntryState.paper)
                invoices[entry.number] = invoices.get(entry.number, True) and done
        said = [line for line in last_said if line.startswith(f"{direction.value} ") and _touches(line, month)]
        portal_total = _said_total(said, len(invoices))
        totals.append(DirectionTotals(
            direction=direction, name_cn=name_cn, name_en=name_en, portal_total=portal_total,
            archived=sum(invoices.values()), said=said,
        ))
    return totals


def _touches(line: str, month: str) -> bool:
    """A count mismatch line ("received 2025-10-01..2025-10-31: portal Total 120, collected 119") of this month."""
    span = line.split(" ", 2)[1].rstrip(":") if line.count(" ") >= 2 else ""
    start, _, end = span.partition("..")
    return bool(start and end) and start[:7] <= month <= end[:7]


def _said_total(said: list[str], listed: int) -> int:
    for line in said:
        _, _, rest = line.partition("portal Total ")
        number = rest.split(",", 1)[0].strip()
        if number.isdigit():
            return max(int(number), listed)
    return listed


def month_counts(entries: list[LedgerEntry], last_run: RunRecord | None) -> CompanyMonth | None:
    """One company-month's counts from its entries, as Ledger.company_months() counts them (that one reads the
    whole ledger: 0.3 s at 300,000 entries, too slow to find one month)."""
    if not entries:
        return None
    states = Counter(entry.state for entry in entries)
    return CompanyMonth(
        company_id=entries[0].company_id, month=entries[0].month, listed=len(entries),
        **{state.value: states[state] for state in (EntryState.verified, EntryState.pending, EntryState.failed,
                                                    EntryState.quarantined, EntryState.paper)},
        untried=states[EntryState.listed] + states[EntryState.downloaded],
        last_run_id=last_run.id if last_run else None, last_run_at=last_run.started_at if last_run else None,
    )


def company_month(sources: Sources, company_id: str, month: str) -> MonthView:
    entries = list(sources.ledger.entries(company_id, month))
    last_run_id = max((entry.run_id for entry in entries if entry.run_id is not None), default=None)
    run = sources.ledger.get_run(last_run_id) if last_run_id is not None else None
    counts = month_counts(entries, run)
    persons = sources.persons()
    overview = sources.queue.overview() if sources.queue is not None else None
    cell = make_cell(company_id, month, counts, queue_marks(overview, persons), outcome_marks(overview, persons))
    said = list(run.summary.count_mismatches) if run is not None and run.summary is not None else []
    return MonthView(
        company_id=company_id, name=next((company_name(entry) for entry in entries), ""), month=month, cell=cell,
        totals=direction_totals(entries, month, said), lines=[line_of(entry) for entry in entries],
        person=sources.person_for(company_id), last_run_at=counts.last_run_at if counts is not None else None,
    )


# -- the people needed


class PersonNeeded(BaseModel):
    person: str
    kind: str
    kind_cn: str
    kind_en: str
    detail: str
    since: datetime
    until: datetime | None  # None: the wait ran out and the task is held
    companies: list[str] | None  # None: every company linked to the person
    date_from: date
    date_to: date
    image: str | None  # a data: URL of the captcha
    names: dict[str, str] = {}  # the held-up companies' names, where known

    @property
    def held(self) -> bool:
        return self.until is None


def people(sources: Sources) -> list[PersonNeeded]:
    if sources.queue is None:
        return []
    persons = sources.persons()
    found = [needed(waiting, persons) for waiting in sources.queue.waiting_people()]
    names = sources.names(company for person in found for company in person.companies or [])
    return [person.model_copy(update={"names": names}) for person in found]


def needed(waiting: Any, persons: dict[str, list[str] | None]) -> PersonNeeded:
    kind_cn, kind_en = NEEDED_NAMES.get(waiting.kind, (waiting.kind, waiting.kind))
    image = _data_url(waiting.image) if getattr(waiting, "image", None) else None
    return PersonNeeded(
        person=waiting.person, kind=waiting.kind, kind_cn=kind_cn, kind_en=kind_en, detail=waiting.detail,
        since=waiting.since, until=waiting.until, companies=waiting.companies or persons.get(waiting.person),
        date_from=waiting.date_from, date_to=waiting.date_to, image=image,
    )


def _data_url(image: str) -> str | None:
    """The captcha as a data: URL, only when it is base64 of a PNG, JPEG or GIF (nothing else reaches the page)."""
    if not BASE64.fullmatch(image):
        return None
    try:
        head = base64.b64decode(image[:24], validate=True)
    except ValueError:
        return None
    for magic, kind in ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif")):
        if head.startswith(magic):
            return f"data:image/{kind};base64,{image}"
    return None
