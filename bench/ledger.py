"""How long the ledger takes over one run's entries in bulk: list N invoices, list them again, read them back.

    python -m bench.ledger [--rows 10000] [--repeat 3] [--database-url postgresql+psycopg://...]

Each repeat starts from an empty ledger (a fresh temporary folder; on PostgreSQL, fresh tables) and times
`record_listed` of N rows (one format), `record_listed` of the same rows again (a rerun: every row an
upsert of an existing one), `get_many` and `states_of` of all N keys. The fastest of the repeats counts,
since other programs on a shared machine can only slow a repeat down; CPU seconds are given too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from agent.ledger import EntryKey, Ledger
from agent.records import Direction, FileFormat, InvoiceRow

COMPANY = "91110108MA01ABCDEX"
STEPS = ("record_listed", "record_listed again", "get_many", "states_of")


def rows(count: int) -> list[InvoiceRow]:
    start = datetime(2025, 10, 1, 9, 0, 0)
    return [
        InvoiceRow(
            direction=Direction.received if n % 2 else Direction.issued,
            number=f"25112000{n:012d}",
            kind="82",
            status="01",
            seller_tax_id="91110000600012345X",
            seller_name="北京某某科技有限公司",
            buyer_tax_id=COMPANY,
            buyer_name="上海买方贸易有限公司",
            issued_at=start + timedelta(minutes=n),
            amount=Decimal("1165.57"),
            tax=Decimal("68.93"),
            total=Decimal("1234.50"),
        )
        for n in range(count)
    ]


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of `action` (CPU time is steadier when other programs share the cores)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - started, time.process_time() - cpu_started


def open_ledger(root: Path, database_url: str | None) -> Ledger:
    if database_url is None:
        return Ledger.open(root)  # also the ledger before it took database_url
    return Ledger.open(root, database_url=database_url)


@contextlib.contextmanager
def empty_database(database_url: str | None) -> Iterator[str | None]:
    """A URL whose tables live in a new PostgreSQL schema of their own, dropped afterwards."""
    if database_url is None:
        yield None
        return
    from sqlalchemy import create_engine

    from agent.ledger import database_location

    url, schema = database_location(database_url), f"bench_ledger_{os.getpid()}_{time.monotonic_ns()}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def one_repeat(listed: list[InvoiceRow], database_url: str | None) -> dict[str, tuple[float, float]]:
    keys = [EntryKey.of(COMPANY, row, FileFormat.pdf) for row in listed]
    with (
        tempfile.TemporaryDirectory() as folder,
        empty_database(database_url) as url,
        open_ledger(Path(folder), url) as ledger,
    ):
        run_id = ledger.start_run({"command": "bench"})
        times = {
            "record_listed": timed(lambda: ledger.record_listed(run_id, COMPANY, listed, [FileFormat.pdf])),
            "record_listed again": timed(lambda: ledger.record_listed(run_id, COMPANY, listed, [FileFormat.pdf])),
            "get_many": timed(lambda: ledger.get_many(keys)),
            "states_of": timed(lambda: ledger.states_of(keys)),
        }
        assert len(ledger.get_many(keys)) == len(keys)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (its tables are dropped!)")
    options = parser.parse_args()
    listed = rows(options.rows)
    repeats = [one_repeat(listed, options.database_url) for _ in range(options.repeat)]
    figures: dict[str, Any] = {"engine": "postgresql" if options.database_url else "sqlite", "rows": options.rows}
    for name, index in (("best_s", 0), ("best_cpu_s", 1)):
        best = {step: min(repeat[step][index] for repeat in repeats) for step in STEPS}
        figures[name] = {step: round(seconds, 3) for step, seconds in (best | {"total": sum(best.values())}).items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
