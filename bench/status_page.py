"""How long the status page takes to answer over a large archive's ledger (no files: the pages read the ledger).

    python -m bench.status_page [--companies 100] [--months 12] [--invoices 250] [--repeat 5]

Seeds a ledger in a temporary folder with companies × months × invoices entries (one format; one in fifty left
failed, the rest verified), starts the status page on it with the embedded queue, and times each page over HTTP
(median of the repeats; the first request, which also reads each company's name, is given apart).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx

from agent.config import load_settings
from agent.ledger import Ledger
from agent.parsers.ids import uscc_check_char
from agent.records import Direction, FileFormat, InvoiceRow
from agent.web.server import StatusServer, open_queue
from agent.web.status import Sources

TOKEN = "bench-status-page-token"


def company(index: int) -> str:
    first17 = f"91110108MA{index:07d}"
    return first17 + uscc_check_char(first17)


def row(tax_id: str, number: str, issued_at: datetime) -> InvoiceRow:
    return InvoiceRow(
        direction=Direction.received, number=number, kind="82", status="01", seller_tax_id="91110000600012345X",
        seller_name="北京某某科技有限公司", buyer_tax_id=tax_id, buyer_name="上海买方贸易有限公司", issued_at=issued_at,
        amount=Decimal("1165.57"), tax=Decimal("68.93"), total=Decimal("1234.50"),
    )


def seed(root: Path, companies: int, months: int, invoices: int) -> list[str]:
    ids = [company(index) for index in range(companies)]
    with Ledger.open(root) as ledger:
        run = ledger.start_run({"bench": "status_page"})
        for c, tax_id in enumerate(ids):
            for month in range(1, months + 1):
                rows = [row(tax_id, f"25{c:04d}{month:02d}{i:012d}", datetime(2025, month, 1 + i % 28, 9)) for i in range(invoices)]
                ledger.record_listed(run, tax_id, rows, [FileFormat.pdf])
    with sqlite3.connect(root / "ledger.sqlite3") as db:  # states set in one statement: the bench is the pages
        db.execute("update invoices set state = 'verified', path = 'x.pdf' where id % 50 != 0")
        db.execute("update invoices set state = 'failed', last_error = 'HTTP 502' where id % 50 = 0")
    return ids


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        answer.raise_for_status()
        size = len(answer.content)
    return times[0], statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--invoices", type=int, default=250, help="per company and month")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-status-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        ids = seed(root, args.companies, min(args.months, 12), args.invoices)
        entries = args.companies * min(args.months, 12) * args.invoices
        print(f"{entries:,} entries ({args.companies} companies × {min(args.months, 12)} months), seeded in {time.perf_counter() - started:.1f} s")
        settings = load_settings(None, out=root)
        queue = open_queue(settings)
        with Ledger.open(root) as ledger, StatusServer(Sources(ledger, queue, settings), TOKEN) as server, \
                httpx.Client(base_url=server.url, trust_env=False, timeout=120) as client:
            client.get(f"/?token={TOKEN}")
            print("| page | first ms | median ms | bytes |\n|---|---|---|---|")
            for path in ("/", "/?months=12", f"/company/{ids[len(ids) // 2]}/2025-10", "/people"):
                first, median, size = timed(client, path, args.repeat)
                print(f"| {path} | {first * 1000:.0f} | {median * 1000:.0f} | {size:,} |")
        if queue is not None and hasattr(queue, "close"):
            queue.close()


if __name__ == "__main__":
    main()
