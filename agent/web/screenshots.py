"""Takes the status page's documentation screenshots from a seeded firm: the home grid, one company-month and
the people needed, into docs/screenshots/status-*.png (1280 wide).

    python -m agent.web.screenshots [--out docs/screenshots] [--keep DIR]

The firm: ten of the mock portal's companies (its seeded universe: names, counterparts, amounts), three persons,
six months up to this one. Past months are archived in a real ledger, most of them complete, a few with gaps
(failed, quarantined, not ready yet, a count the portal's Total disagrees with); this month is running for one
person, waits for another's SMS code and a third's captcha, and a "run again" sits on the queue. The queue is
the real embedded one (agent.queue.FirmQueue), with its records written as a worker would leave them. Files of
the featured month are the mock's real PDFs; the others are small stand-ins (nobody opens them here).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize, sync_playwright

from agent.browser import find_chromium, launch_args
from agent.config import Settings, load_settings
from agent.ledger import EntryKey, Ledger
from agent.portal import PAPER_KINDS
from agent.records import Direction, FileFormat, InvoiceRow, RunSummary
from agent.web.server import StatusServer
from agent.web.status import Sources, month_of, month_range, shift

OUT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = ViewportSize(width=1280, height=800)
COMPANIES = 10
MONTHS = 6
INVOICES_PER_MONTH = 12  # each direction
SEED = 2025
PERSONS = {"wang": range(4), "li": range(4, 8), "zhao": range(7, 10)}  # company indexes; 7 is shared
STAND_IN = b"%PDF-1.4\n% a stand-in file of the seeded screenshot archive\n%%EOF\n"


@dataclass
class Firm:
    settings: Settings
    companies: list[str]
    months: list[str]  # oldest first; the last is this month
    featured: tuple[str, str]  # the company-month of status-company-month.png


def _row(invoice: Any) -> InvoiceRow:
    return InvoiceRow(
        direction=Direction(invoice.direction), number=invoice.number, legacy_code=invoice.legacy_code,
        legacy_number=invoice.legacy_number, kind=invoice.kind, status=invoice.status, source=invoice.source,
        seller_tax_id=invoice.seller.tax_id, seller_name=invoice.seller.name, buyer_tax_id=invoice.buyer.tax_id,
        buyer_name=invoice.buyer.name, issued_at=invoice.issued_at, amount=invoice.amount, tax=invoice.tax,
        total=invoice.total, clerk=invoice.clerk,
    )


def _firm_settings(root: Path, companies: list[str]) -> Settings:
    persons = {
        name: {"login": f"1390000000{index + 1}", "password_command": "pass show tax/" + name, "companies": [companies[i] for i in span]}
        for index, (name, span) in enumerate(PERSONS.items())
    }
    schedules = [
        {"name": "last month, everyone", "cron": "0 2 3 * *", "period": "last-month"},
        {"name": "this month's received, nightly", "cron": "30 1 * * *", "period": "this-month", "directions": ["received"]},
    ]
    return load_settings(None, out=root, persons=persons, schedules=schedules, queue_url=None)


class _Seeder:
    """Writes one company-month into the ledger and the archive, with the outcome the picture needs."""

    def __init__(self, ledger: Ledger, universe: Any, today: date) -> None:
        self.ledger, self.universe, self.today = ledger, universe, today

    def month(self, company: str, month: str, outcome: str = "complete", real_files: bool = False, upto: int | None = None) -> None:
        rows = [_row(i) for direction in Direction for i in self.universe.month(company, month, direction.value)]
        rows = rows if upto is None else [row for row in rows if row.issued_at.day <= upto]
        run = self.ledger.start_run({"seeded": True, "company": company, "month": month})
        self.ledger.record_listed(run, company, rows, [FileFormat.pdf])
        files = [row for row in rows if row.kind not in PAPER_KINDS]
        troubled = {row.number: outcome for row in files[3 : 3 + {"failed": 2, "quarantined": 1, "pending": 3}.get(outcome, 0)]}
        for row in files:
            self._file(run, company, month, row, troubled.get(row.number, "verified"), real_files)
        received = sum(row.direction is Direction.received for row in rows)
        said = f"received {month}-01..{month}-28: portal Total {received + 1}, collected {received}"
        mismatch = [said] if outcome == "failed" else []  # the portal counted one more than it listed
        self.ledger.finish_run(run, RunSummary(listed=len(rows), count_mismatches=mismatch), 0 if outcome == "complete" else 1)

    def _file(self, run: int, company: str, month: str, row: InvoiceRow, state: str, real: bool) -> None:
        key = EntryKey.of(company, row, FileFormat.pdf)
        if state == "failed":
            self.ledger.mark_failed(run, key, "HTTP 502 from the file server, 5 attempts")
        elif state == "pending":
            self.ledger.mark_pending(run, key, "the portal has not generated the file yet (3 rounds)")
        else:
            data = self._bytes(row) if real else STAND_IN
            folder = "_quarantine" if state == "quarantined" else f"{company}/{month}/{row.direction.value}"
            path = self.ledger.root / folder / f"{row.issued_at:%Y%m%d}_{row.number}.pdf"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if state == "quarantined":
                self.ledger.mark_quarantined(run, key, path, f"total: listing {row.total}, file {row.total + 9}")
            else:
                self.ledger.mark_verified(run, key, path, hashlib.sha256(data).hexdigest(), len(data))

    def _bytes(self, row: InvoiceRow) -> bytes:
        from fixtures.data.render_pdf import render_pdf

        invoice = self.universe.find(row.number)
        return render_pdf(invoice) if invoice is not None else STAND_IN


def seed_firm(root: Path, today: date | None = None) -> Firm:
    """The seeded archive (ledger and files) in `root`; the queue's records come with `plant_queue`."""
    from fixtures.data.generator import Universe

    today = today or date.today()
    universe = Universe(seed=SEED, companies=COMPANIES, invoices_per_month=INVOICES_PER_MONTH, today=lambda: today)
    companies = [party.tax_id for party in universe.companies]
    months = [shift(month_of(today), offset) for offset in range(1 - MONTHS, 1)]
    firm = Firm(_firm_settings(root, companies), companies, months, (companies[2], months[-2]))
    troubles = {(2, months[-2]): "failed", (5, months[-3]): "quarantined", (9, months[-2]): "pending"}
    with Ledger.open(root) as ledger:
        seeder = _Seeder(ledger, universe, today)
        for index, company in enumerate(companies):
            for month in months[:-1]:
                if index >= 8 and month < months[2]:
                    continue  # two clients joined the firm later: not run yet
                outcome = troubles.get((index, month), "complete")
                seeder.month(company, month, outcome, real_files=(company, month) == firm.featured)
        for index in (4, 5):  # this month, so far: li's worker has done two of its companies
            seeder.month(companies[index], months[-1], upto=today.day - 1)
    return firm


def plant_queue(queue: Any, firm: Firm, today: date) -> None:
    """The queue as workers leave it mid-month: li running, wang waiting for an SMS code, zhao for a captcha,
    one "run again" queued, a week of outcomes."""
    from agent.queue import OUTCOMES, WAITING, PersonTask, TaskOutcome, Waiting, lease_name
    from fixtures.portal.captcha import render_captcha

    now, start = datetime.now(), date.fromisoformat(firm.months[-1] + "-01")
    this_month = {"date_from": start.isoformat(), "date_to": today.isoformat(), "companies": None}
    info = {**this_month, "person": "li", "task_id": uuid.uuid4().hex, "worker": "archive-01:4711",
            "started": (now - timedelta(minutes=3)).isoformat()}
    queue.state.acquire(lease_name(firm.settings, "li"), uuid.uuid4().hex, info, 3600)
    image = render_captcha("K7PX", random.Random(SEED))
    for person, kind, detail, since, picture in (
        ("wang", "sms", "the SMS code sent to 139****0001", now - timedelta(minutes=2), None),
        ("zhao", "captcha", "the characters of an image captcha", now - timedelta(seconds=40), image),
    ):
        waiting = Waiting(person=person, kind=kind, detail=detail, task_id=uuid.uuid4().hex, companies=None,
                          date_from=start, date_to=today, since=since, until=since + timedelta(minutes=5))
        record = waiting.model_dump(mode="json") | {"nonce": uuid.uuid4().hex}
        if picture is not None:
            record["image"] = base64.b64encode(picture).decode()
        queue.state.put(WAITING, person, record, 3600)
    company, month = firm.featured
    first, last = month_range(month, today)
    queue.enqueue(PersonTask(person="wang", date_from=first, date_to=last, companies=[company]))
    for person, outcome, message, hours in (
        ("li", "complete", "listed 96 · verified 94 · failed 0 · pending 0 · quarantined 0 · paper 2", 20),
        ("wang", "gaps", "listed 98 · verified 93 · failed 2 · pending 0 · quarantined 0 · paper 3", 21),
        ("zhao", "gaps", "listed 74 · verified 68 · failed 0 · pending 3 · quarantined 0 · paper 3", 22),
    ):
        previous = date.fromisoformat(firm.months[-2] + "-01")
        done = TaskOutcome(task_id=uuid.uuid4().hex, person=person, companies=None, date_from=previous,
                           date_to=month_range(firm.months[-2], today)[1], outcome=outcome, message=message,
                           finished=now - timedelta(hours=hours))
        queue.state.put(OUTCOMES, done.task_id, done.model_dump(mode="json"), 7 * 24 * 3600)


def _shoot(page: Page, url: str, path: Path) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def take(out_dir: Path, root: Path) -> None:
    from agent.queue import FirmQueue

    today = date.today()
    firm = seed_firm(root, today)
    queue = FirmQueue(firm.settings)
    plant_queue(queue, firm, today)
    chromium = find_chromium()
    with (
        Ledger.open(root) as ledger,
        StatusServer(Sources(ledger, queue, firm.settings), uuid.uuid4().hex) as server,
        sync_playwright() as playwright,
    ):
        path = str(chromium.path) if chromium.path is not None else None
        browser = playwright.chromium.launch(executable_path=path, args=launch_args(), headless=True)
        page = browser.new_page(viewport=VIEWPORT, locale="zh-CN")
        page.goto(server.login_url)
        company, month = firm.featured
        _shoot(page, f"{server.url}/", out_dir / "status-home.png")
        _shoot(page, f"{server.url}/company/{company}/{month}", out_dir / "status-company-month.png")
        _shoot(page, f"{server.url}/people", out_dir / "status-people-needed.png")
        browser.close()
    queue.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the PNG files go")
    parser.add_argument("--keep", type=Path, help="seed the archive here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.keep is not None:
        take(args.out, args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="fapiao-status-") as folder:
        take(args.out, Path(folder) / "archive")


if __name__ == "__main__":
    main()
