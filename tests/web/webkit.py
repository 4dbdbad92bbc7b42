"""The web tests' kit (importable from tests/web as `webkit`): a small seeded firm for the status page, a real
ledger with real files, and a fake queue.

Three companies, two persons (wang: A and B; li: C), months 2025-08..2025-10, today 2025-11-15:

    company   2025-08   2025-09    2025-10
    A         not run   complete   gaps (a failed file, a paper invoice, a count the portal disagrees with)
    B         not run   not run    waiting (wang's SMS code)
    C         queued    complete   running (li)

`FakeQueue` answers as agent.queue.FirmQueue does (its own models) and records what the page asked of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rowkit import make_row

from agent.config import Settings, load_settings
from agent.ledger import EntryKey, Ledger
from agent.parsers.ids import uscc_check_char
from agent.queue import Overview, QueuedTask, RunningTask, ScheduledRun, TaskOutcome, Waiting
from agent.records import Direction, FileFormat, InvoiceRow, RunSummary


def tax_id(first17: str) -> str:
    return first17 + uscc_check_char(first17)


A, B, C = tax_id("91110108MA01AAAAA"), tax_id("91310115MA1BBBBBB"), tax_id("91440300MA5CCCCCC")
TODAY = date(2025, 11, 15)
PASSWORD = "Wang-Secret#2025"
TOKEN = "status-page-token-0123456789"
NAMES = {A: "北京甲科技有限公司", B: "上海乙贸易有限公司", C: "深圳丙电子有限公司"}


def invoice(company: str, number: str, day: date, direction: Direction = Direction.received, **fields: Any) -> InvoiceRow:
    ours = {"buyer_tax_id": company, "buyer_name": NAMES[company]} if direction is Direction.received else {
        "seller_tax_id": company, "seller_name": NAMES[company], "buyer_name": "广州丁物流有限公司"}
    return make_row(number=number, direction=direction, issued_at=datetime(day.year, day.month, day.day, 10, 0), **(ours | fields))


@dataclass
class Seeded:
    root: Path
    settings: Settings
    files: dict[str, bytes] = field(default_factory=dict)  # invoice number -> file bytes


def verify(ledger: Ledger, run: int, company: str, row: InvoiceRow, root: Path) -> bytes:
    data = b"%PDF-1.7\n% the invoice " + row.number.encode() + b"\n%%EOF\n"
    path = root / company / f"{row.issued_at:%Y-%m}" / row.direction.value / f"{row.number}.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ledger.mark_verified(run, EntryKey.of(company, row, FileFormat.pdf), path, hashlib.sha256(data).hexdigest(), len(data))
    return data


def seed(root: Path) -> Seeded:
    persons = {
        "wang": {"login": "13900000001", "password": PASSWORD, "companies": [A, B]},
        "li": {"login": "13900000002", "password_command": "pass show li", "companies": [C]},
    }
    seeded = Seeded(root, load_settings(None, out=root, persons=persons))
    with Ledger.open(root) as ledger:
        run = ledger.start_run({"seeded": True})
        complete = {A: [invoice(A, "25112000000000000901", date(2025, 9, 3))],
                    C: [invoice(C, "25442000000000000901", date(2025, 9, 9), Direction.issued)]}
        october = [
            invoice(A, "25112000000000001001", date(2025, 10, 8), total=Decimal("1234.50")),
            invoice(A, "25112000000000001002", date(2025, 10, 9), Direction.issued, total=Decimal("88000.00")),
            invoice(A, "25112000000000001003", date(2025, 10, 20), total=Decimal("530.00")),
            invoice(A, "25112000000000001004", date(2025, 10, 21), kind="85", total=Decimal("99.00")),
        ]
        for company, rows in [*complete.items(), (A, october)]:
            ledger.record_listed(run, company, rows, [FileFormat.pdf])
        for company, rows in complete.items():
            for row in rows:
                seeded.files[row.number] = verify(ledger, run, company, row, root)
        for row in october[:2]:
            seeded.files[row.number] = verify(ledger, run, A, row, root)
        ledger.mark_failed(run, EntryKey.of(A, october[2], FileFormat.pdf), "HTTP 502 from the file server, 5 attempts")
        mismatch = ["received 2025-10-01..2025-10-31: portal Total 4, collected 3"]
        ledger.finish_run(run, RunSummary(listed=6, count_mismatches=mismatch), 1)
    return seeded


class FakeQueue:
    """The few methods of FirmQueue the page uses, over lists a test can change."""

    def __init__(self) -> None:
        now = datetime.now()
        october = {"date_from": date(2025, 10, 1), "date_to": date(2025, 10, 31)}
        self.waiting = [Waiting(person="wang", kind="sms", detail="the SMS code sent to 139****0001", task_id="t-wang",
                                companies=[B], since=now, until=now + timedelta(minutes=5), **october)]
        self.running = [RunningTask(task_id="t-li", person="li", lease="person:portal:li", worker="host-1:77", companies=None,
                                    started=now, lease_expires=now + timedelta(minutes=1), **october)]
        self.queued = [QueuedTask(task_id="t-li-08", person="li", companies=[C], date_from=date(2025, 8, 1),
                                  date_to=date(2025, 8, 31), eta=None, retries_left=3)]
        self.schedules = [ScheduledRun(name="last month, everyone", cron="0 2 3 * *", persons="all", period="last-month",
                                       next_run=datetime(2025, 12, 3, 2, 0))]
        self.recent: list[TaskOutcome] = []
        self.codes: list[tuple[str, str]] = []
        self.enqueued: list[Any] = []
        self.restarted: list[str] = []

    def overview(self) -> Overview:
        return Overview(running=self.running, waiting=self.waiting_people(), queued=self.queued,
                        schedules=self.schedules, recent=self.recent)

    def waiting_people(self) -> list[Waiting]:
        return list(self.waiting)

    def submit_code(self, person: str, code: str) -> bool:
        if not any(w.person == person and w.until is not None for w in self.waiting) or not code.strip():
            return False
        self.codes.append((person, code))
        self.waiting = [w for w in self.waiting if w.person != person]
        return True

    def enqueue(self, task: Any) -> str:
        self.enqueued.append(task)
        return f"task-{len(self.enqueued)}"

    def restart_held(self, person: str) -> list[str]:
        self.restarted.append(person)
        self.waiting = [w for w in self.waiting if w.person != person]
        return ["t-again"]
