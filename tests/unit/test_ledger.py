"""agent.ledger: states, upserts, runs without secrets, two writers at once, a writer killed mid-way; on SQLite
and, when FAPIAO_TEST_DATABASE_URL names a server, on PostgreSQL (each test in a schema of its own)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sqlite3
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pgkit import engine_for, own_schema, server_url
from rowkit import COMPANY, make_row
from sqlalchemy import event

from agent.config import load_settings, redact
from agent.errors import ArchiveError, SettingsError
from agent.ledger import (
    LEDGER_NAME,
    LOCK_ATTEMPTS,
    SCHEMA_VERSION,
    CompanyMonth,
    EntryKey,
    EntryState,
    Ledger,
)
from agent.records import Direction, FileFormat, InvoiceRow, RunSummary

PDF_ONLY = [FileFormat.pdf]
OTHER_COMPANY = "91110000600012345X"
# spawn, not fork: a child must not inherit the parent's SQLite handles (and fork warns in threaded processes)
SPAWN = multiprocessing.get_context("spawn")


def key_of(row: InvoiceRow, fmt: FileFormat = FileFormat.pdf) -> EntryKey:
    return EntryKey.of(COMPANY, row, fmt)


def sql(root: Path, statement: str) -> object:
    """Run one statement on the ledger file directly, as another tool would."""
    with contextlib.closing(sqlite3.connect(root / LEDGER_NAME, isolation_level=None)) as connection:
        return connection.execute(statement).fetchone()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the SQLite file in the archive; else a PostgreSQL URL with a schema of its own."""
    if request.param == "sqlite":
        yield None
    else:
        with own_schema(server_url()) as url:
            yield url


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    with own_schema(server_url()) as url:
        yield url


@pytest.fixture
def ledger(tmp_path: Path, database_url: str | None) -> Iterator[Ledger]:
    with Ledger.open(tmp_path, database_url) as opened:
        yield opened


@pytest.fixture
def run_id(ledger: Ledger) -> int:
    return ledger.start_run({"command": "download"})


# -- the file


def test_ledger_and_its_wal_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        with Ledger.open(tmp_path) as ledger:
            ledger.start_run({})
            modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in os.listdir(tmp_path)}
    finally:
        os.umask(previous)
    assert modes == {LEDGER_NAME: 0o600, f"{LEDGER_NAME}-wal": 0o600, f"{LEDGER_NAME}-shm": 0o600}


def test_existing_world_readable_ledger_is_made_private(tmp_path: Path) -> None:
    Ledger.open(tmp_path).close()
    (tmp_path / LEDGER_NAME).chmod(0o644)
    Ledger.open(tmp_path).close()
    assert stat.S_IMODE((tmp_path / LEDGER_NAME).stat().st_mode) == 0o600


def test_ledger_opens_in_wal_mode(tmp_path: Path) -> None:
    Ledger.open(tmp_path).close()
    assert sql(tmp_path, "PRAGMA journal_mode") == ("wal",)


def test_postgresql_ledger_leaves_no_file_in_the_archive(tmp_path: Path, postgresql_url: str) -> None:
    with Ledger.open(tmp_path / "archive", postgresql_url) as ledger:
        ledger.record_listed(ledger.start_run({}), COMPANY, [make_row()], PDF_ONLY)
    assert list((tmp_path / "archive").iterdir()) == []


# -- listing


def test_record_listed_creates_one_listed_entry_per_format(ledger: Ledger, run_id: int) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], [FileFormat.pdf, FileFormat.xml])
    entry = ledger.get(key_of(row, FileFormat.xml))
    assert entry is not None
    assert (entry.state, entry.month, entry.row, entry.attempts, entry.run_id) == (
        EntryState.listed, "2025-10", row, 0, run_id
    )  # fmt: skip
    assert (entry.path, entry.sha256, entry.size, entry.last_error) == (None, None, None, "")
    assert ledger.counts()[EntryState.listed] == 2


def test_get_many_reads_exactly_the_keys_that_exist_across_companies_and_query_chunks(ledger: Ledger, run_id: int) -> None:
    rows = [make_row(f"2511200000{n:010d}") for n in range(1, 1203)]  # more numbers than one query takes
    ledger.record_listed(run_id, COMPANY, rows, [FileFormat.pdf, FileFormat.xml])
    ledger.record_listed(run_id, OTHER_COMPANY, rows[:3], PDF_ONLY)
    wanted = {key_of(row) for row in rows[::2]} | {EntryKey.of(OTHER_COMPANY, rows[0], FileFormat.pdf)}
    missing = {EntryKey.of(COMPANY, make_row("25112000009999999999"), FileFormat.pdf)}
    found = ledger.get_many(wanted | missing)
    assert sorted((entry.key for entry in found), key=repr) == sorted(wanted, key=repr)
    ledger.mark_failed(run_id, key_of(rows[0]), "cut short")
    states = ledger.states_of(wanted | missing)
    assert states == {entry.key: entry.state for entry in ledger.get_many(wanted)}
    assert states[key_of(rows[0])] is EntryState.failed and set(states.values()) == {EntryState.failed, EntryState.listed}



def test_apply_writes_every_kind_of_change_of_many_files_in_one_go(ledger: Ledger, run_id: int, tmp_path: Path) -> None:
    rows = [make_row(f"2511200000{n:010d}") for n in range(1, 8)]
    ledger.record_listed(run_id, COMPANY, rows, PDF_ONLY)
    later = ledger.start_run({})
    changes = [
        ledger.verified(key_of(rows[0]), tmp_path / "a.pdf", "ab" * 32, 10),
        ledger.failed(key_of(rows[1]), "not a PDF"),
        ledger.verified(key_of(rows[2]), tmp_path / "c.pdf", "cd" * 32, 30),
        ledger.pending(key_of(rows[3]), "not ready"),
        ledger.quarantined(key_of(rows[4]), tmp_path / "q" / "e.pdf", "amount differs"),
    ]
    ledger.apply(later, changes)
    found = {entry.number: entry for entry in ledger.get_many(key_of(row) for row in rows)}
    seen = [(e.state, e.path, e.sha256, e.size, e.last_error, e.run_id) for e in (found[row.number] for row in rows)]
    assert seen == [
        (EntryState.verified, "a.pdf", "ab" * 32, 10, "", later),
        (EntryState.failed, None, None, None, "not a PDF", later),
        (EntryState.verified, "c.pdf", "cd" * 32, 30, "", later),
        (EntryState.pending, None, None, None, "not ready", later),
        (EntryState.quarantined, "q/e.pdf", None, None, "amount differs", later),
        (EntryState.listed, None, None, None, "", run_id),
        (EntryState.listed, None, None, None, "", run_id),
    ]


def test_apply_refuses_a_change_of_a_file_the_ledger_does_not_hold_and_writes_none_of_the_batch(
    ledger: Ledger, run_id: int
) -> None:
    listed, unknown = make_row("25112000000000000001"), make_row("25112000000000000002")
    ledger.record_listed(run_id, COMPANY, [listed], PDF_ONLY)
    with pytest.raises(LookupError, match="not in the ledger"):
        ledger.apply(run_id, [ledger.failed(key_of(listed), "x"), ledger.failed(key_of(unknown), "y")])
    entry = ledger.get(key_of(listed))
    assert entry is not None and entry.state is EntryState.listed


@pytest.mark.parametrize("kind", ["01", "04"])
def test_paper_invoice_is_recorded_as_paper_and_never_to_do(ledger: Ledger, run_id: int, kind: str) -> None:
    row = make_row(kind=kind)
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    entry = ledger.get(key_of(row))
    assert entry is not None and entry.state is EntryState.paper
    assert ledger.to_do(COMPANY, PDF_ONLY) == []


def test_listing_again_never_downgrades_a_verified_entry(ledger: Ledger, run_id: int, tmp_path: Path) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    ledger.mark_verified(run_id, key_of(row), tmp_path / "a.pdf", "ab" * 32, 1234)
    red = make_row(status="03")
    second_run = ledger.start_run({})
    ledger.record_listed(second_run, COMPANY, [red], PDF_ONLY)
    entry = ledger.get(key_of(row))
    assert entry is not None
    assert (entry.state, entry.path, entry.sha256, entry.size) == (
        EntryState.verified,
        "a.pdf",
        "ab" * 32,
        1234,
    )
    assert (entry.row.status, entry.run_id) == ("03", second_run)


def test_listing_again_keeps_a_failure_to_do_with_its_error(ledger: Ledger, run_id: int) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    ledger.mark_failed(run_id, key_of(row), "not a PDF")
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    assert [(e.state, e.last_error) for e in ledger.to_do(COMPANY, PDF_ONLY)] == [
        (EntryState.failed, "not a PDF")
    ]


def test_same_number_issued_and_received_are_two_entries(ledger: Ledger, run_id: int) -> None:
    issued, received = make_row(direction=Direction.issued), make_row(direction=Direction.received)
    ledger.record_listed(run_id, COMPANY, [issued, received], PDF_ONLY)
    assert [entry.direction for entry in ledger.entries()] == [Direction.issued, Direction.received]


# -- what is left to do


def test_to_do_filters_by_month_direction_numbers_and_format(
    ledger: Ledger, run_id: int, tmp_path: Path
) -> None:
    october = make_row("25112000000000000001")
    done = make_row("25112000000000000002")
    issued = make_row("25112000000000000003", direction=Direction.issued)
    november = make_row("25112000000000000004", issued_at=datetime(2025, 11, 1, 9, 0, 0))
    ledger.record_listed(run_id, COMPANY, [october, done, issued, november], [FileFormat.pdf, FileFormat.ofd])
    ledger.mark_verified(run_id, key_of(done), tmp_path / "done.pdf", "00" * 32, 10)

    def numbers(**filters: Any) -> list[tuple[str, str]]:
        return [(e.number[-1], e.format.value) for e in ledger.to_do(COMPANY, PDF_ONLY, **filters)]

    assert numbers() == [("1", "pdf"), ("3", "pdf"), ("4", "pdf")]
    assert numbers(month="2025-10") == [("1", "pdf"), ("3", "pdf")]
    assert numbers(month="2025-10", direction=Direction.received) == [("1", "pdf")]
    assert numbers(numbers=[done.number, november.number]) == [("4", "pdf")]
    assert len(ledger.to_do(COMPANY, [FileFormat.pdf, FileFormat.ofd])) == 7
    assert ledger.to_do("91110000000000000X", PDF_ONLY) == []


@pytest.mark.parametrize("state", ["downloaded", "failed", "pending", "quarantined"])
def test_every_state_but_verified_and_paper_is_to_do(
    ledger: Ledger, run_id: int, tmp_path: Path, state: str
) -> None:
    row, key = make_row(), key_of(make_row())
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    marks = {
        "downloaded": lambda: ledger.mark_downloaded(run_id, key, tmp_path / "a.pdf", "11" * 32, 5),
        "failed": lambda: ledger.mark_failed(run_id, key, "truncated"),
        "pending": lambda: ledger.mark_pending(run_id, key, "文件生成中"),
        "quarantined": lambda: ledger.mark_quarantined(
            run_id, key, tmp_path / "_quarantine" / "a.pdf", "wrong total"
        ),
    }
    marks[state]()
    assert [entry.state.value for entry in ledger.to_do(COMPANY, PDF_ONLY)] == [state]


# -- state changes


def test_mark_verified_stores_path_relative_to_root(ledger: Ledger, run_id: int, tmp_path: Path) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    ledger.mark_failed(run_id, key_of(row), "truncated")
    ledger.mark_verified(run_id, key_of(row), tmp_path / COMPANY / "2025-10" / "a.pdf", "ab" * 32, 1234)
    entry = ledger.get(key_of(row))
    assert entry is not None
    assert (entry.state, entry.path, entry.last_error) == (
        EntryState.verified,
        f"{COMPANY}/2025-10/a.pdf",
        "",
    )


def test_mark_quarantined_points_at_the_quarantined_file(ledger: Ledger, run_id: int, tmp_path: Path) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    ledger.mark_downloaded(run_id, key_of(row), Path("a.pdf"), "ab" * 32, 1234)
    ledger.mark_quarantined(run_id, key_of(row), tmp_path / "_quarantine" / "a.pdf", "total differs")
    entry = ledger.get(key_of(row))
    assert entry is not None
    assert (entry.state, entry.path, entry.sha256, entry.size, entry.last_error) == (
        EntryState.quarantined, "_quarantine/a.pdf", None, None, "total differs"
    )  # fmt: skip


def test_marking_an_unlisted_invoice_is_a_lookup_error(ledger: Ledger, run_id: int) -> None:
    with pytest.raises(LookupError, match="not in the ledger"):
        ledger.mark_failed(run_id, key_of(make_row()), "boom")
    with pytest.raises(LookupError, match="not in the ledger"):
        ledger.bump_attempts(key_of(make_row()))


def test_bump_attempts_returns_the_new_count(ledger: Ledger, run_id: int) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    assert [ledger.bump_attempts(key_of(row)) for _ in range(3)] == [1, 2, 3]


def test_counts_every_state_of_one_company_and_month(ledger: Ledger, run_id: int, tmp_path: Path) -> None:
    rows = [make_row(f"2511200000000000000{i}") for i in range(4)]
    ledger.record_listed(run_id, COMPANY, rows, PDF_ONLY)
    ledger.record_listed(run_id, COMPANY, [make_row("25112000000000000009", kind="04")], PDF_ONLY)
    ledger.record_listed(run_id, "91110000000000000X", [make_row("25112000000000000008")], PDF_ONLY)
    ledger.mark_verified(run_id, key_of(rows[0]), tmp_path / "0.pdf", "00" * 32, 1)
    ledger.mark_pending(run_id, key_of(rows[1]), "文件生成中")
    assert ledger.counts(COMPANY, "2025-10") == {
        EntryState.listed: 2,
        EntryState.downloaded: 0,
        EntryState.verified: 1,
        EntryState.failed: 0,
        EntryState.pending: 1,
        EntryState.quarantined: 0,
        EntryState.paper: 1,
    }
    assert sum(ledger.counts(COMPANY, "2025-11").values()) == 0
    assert sum(ledger.counts().values()) == 6


def test_find_by_path_takes_absolute_or_relative_paths(ledger: Ledger, run_id: int, tmp_path: Path) -> None:
    row = make_row()
    ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
    ledger.mark_verified(run_id, key_of(row), tmp_path / COMPANY / "a.pdf", "ab" * 32, 1234)
    by_absolute = ledger.find_by_path(tmp_path / COMPANY / "a.pdf")
    by_relative = ledger.find_by_path(Path(COMPANY) / "a.pdf")
    assert by_absolute is not None and by_absolute.key == key_of(row)
    assert by_relative == by_absolute
    assert ledger.find_by_path(tmp_path / COMPANY / "b.pdf") is None
    assert ledger.find_by_path(tmp_path.parent / "elsewhere.pdf") is None


# -- runs


def test_run_args_never_keep_a_secret(ledger: Ledger, tmp_path: Path, database_url: Any) -> None:
    args = {
        "command": "download",
        "password": "hunter2-pw",
        "sms_token": "hunter2-tok",
        "Client_Secret": "hunter2-sec",
        "login": {"user": "13800000000", "Password": "hunter2-nested"},
        "out": tmp_path,
    }
    run_id = ledger.start_run(args)
    run = ledger.get_run(run_id)
    assert run is not None
    assert run.args == {"command": "download", "login": {"user": "13800000000"}, "out": str(tmp_path)}
    if ledger.dialect == "sqlite":
        stored = b"".join(path.read_bytes() for path in tmp_path.glob(f"{LEDGER_NAME}*"))
    else:
        with engine_for(database_url).connect() as connection:
            stored = repr(connection.exec_driver_sql("SELECT * FROM runs").all()).encode()
    assert b"hunter2" not in stored


def test_finish_run_stores_summary_and_exit_code(ledger: Ledger) -> None:
    run_id = ledger.start_run({"command": "download"})
    summary = RunSummary(
        listed=3, verified=2, failed=1, count_mismatches=["received 2025-10: portal Total 3"]
    )
    ledger.finish_run(run_id, summary, 1)
    run = ledger.get_run(run_id)
    assert run is not None and run.finished_at is not None
    assert (run.summary, run.exit_code) == (summary, 1)
    assert ledger.get_run(run_id + 1) is None


# -- what the status page reads


def test_company_months_count_each_state_per_company_and_month_with_the_last_run(
    ledger: Ledger, run_id: int, tmp_path: Path
) -> None:
    october = [make_row(f"2511200000000000000{i}") for i in range(5)]
    november = make_row("25112000000000000009", issued_at=datetime(2025, 11, 3, 9, 0, 0))
    ledger.record_listed(run_id, COMPANY, [*october, make_row("25112000000000000007", kind="04")], PDF_ONLY)
    ledger.mark_verified(run_id, key_of(october[0]), tmp_path / "0.pdf", "00" * 32, 1)
    ledger.mark_pending(run_id, key_of(october[1]), "文件生成中")
    ledger.mark_failed(run_id, key_of(october[2]), "truncated")
    ledger.mark_quarantined(run_id, key_of(october[3]), tmp_path / "_quarantine" / "3.pdf", "total differs")
    second_run = ledger.start_run({})
    ledger.record_listed(second_run, COMPANY, [november], PDF_ONLY)
    ledger.record_listed(second_run, OTHER_COMPANY, [november], PDF_ONLY)
    ledger.mark_verified(second_run, EntryKey.of(OTHER_COMPANY, november, FileFormat.pdf), tmp_path / "9.pdf", "11" * 32, 1)
    first, second = ledger.get_run(run_id), ledger.get_run(second_run)
    assert first is not None and second is not None
    zero = {"verified": 0, "pending": 0, "failed": 0, "quarantined": 0, "paper": 0, "untried": 0}
    assert ledger.company_months() == [  # by company id, then month
        CompanyMonth(company_id=OTHER_COMPANY, month="2025-11", listed=1, **zero | {"verified": 1},
                     last_run_id=second_run, last_run_at=second.started_at),
        CompanyMonth(company_id=COMPANY, month="2025-10", listed=6, **zero | {"verified": 1, "pending": 1, "failed": 1,
                     "quarantined": 1, "paper": 1, "untried": 1}, last_run_id=run_id, last_run_at=first.started_at),
        CompanyMonth(company_id=COMPANY, month="2025-11", listed=1, **zero | {"untried": 1}, last_run_id=second_run,
                     last_run_at=second.started_at),
    ]  # fmt: skip
    assert [month.complete for month in ledger.company_months()] == [True, False, False]


def test_company_months_of_an_empty_ledger_is_empty(ledger: Ledger) -> None:
    assert ledger.company_months() == []


def test_entry_by_id_is_the_entry_and_ids_stay_when_listed_again(ledger: Ledger, run_id: int) -> None:
    rows = [make_row(f"2511200000000000000{i}") for i in range(3)]
    ledger.record_listed(run_id, COMPANY, rows, [FileFormat.pdf, FileFormat.xml])
    entries = list(ledger.entries())
    assert len({entry.id for entry in entries}) == 6
    ledger.record_listed(ledger.start_run({}), COMPANY, rows, [FileFormat.pdf, FileFormat.xml])
    for entry in entries:
        again = ledger.entry(entry.id)
        assert again is not None and again.key == entry.key and again.id == entry.id
    assert ledger.entry(max(entry.id for entry in entries) + 1000) is None


def test_the_last_listing_of_a_row_given_twice_wins(ledger: Ledger, run_id: int) -> None:
    ledger.record_listed(run_id, COMPANY, [make_row(status="01"), make_row(status="03")], PDF_ONLY)
    entry = ledger.get(key_of(make_row()))
    assert entry is not None and entry.row.status == "03"
    ledger.record_listed(run_id, COMPANY, [], PDF_ONLY)  # nothing listed: nothing written


def test_both_engines_order_entries_alike(ledger: Ledger, run_id: int) -> None:
    """PostgreSQL compares the ledger's text bytewise (collation C), as SQLite does, whatever the database's."""
    numbers = ["2511200000000000000a", "2511200000000000000B", "25112000000000000001", "2511200000000000000_"]
    ledger.record_listed(run_id, COMPANY, [make_row(number) for number in numbers], PDF_ONLY)
    assert [entry.number for entry in ledger.entries()] == sorted(numbers)


# -- foreign errors


def test_disk_full_is_an_archive_error_naming_folder_and_fix(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        run_id = ledger.start_run({})
        pages = sql(tmp_path, "PRAGMA page_count")[0]  # type: ignore[index]

        @event.listens_for(ledger._engine, "checkout")
        def cap(connection: sqlite3.Connection, *args: object) -> None:
            # Cap the file at its current size: SQLite then fails exactly as on a full disk (SQLITE_FULL).
            connection.execute(f"PRAGMA max_page_count = {pages}")

        rows = [make_row(f"{i:020d}", seller_name="名" * 200) for i in range(200)]
        with pytest.raises(ArchiveError) as caught:
            ledger.record_listed(run_id, COMPANY, rows, PDF_ONLY)
        message = str(caught.value)
        assert message.startswith(f"cannot use the ledger in {tmp_path.resolve()}: the disk is full")
        assert message.endswith("; free some space or choose another output folder")
        assert sum(ledger.counts().values()) == 0  # the failed transaction left nothing behind


def test_file_that_is_not_a_ledger_is_an_archive_error(tmp_path: Path) -> None:
    (tmp_path / LEDGER_NAME).write_bytes(b"this is not a database, it is a text file" * 100)
    with pytest.raises(ArchiveError, match=f"move {LEDGER_NAME} aside and run again"):
        Ledger.open(tmp_path)


def test_ledger_from_a_newer_version_is_refused(tmp_path: Path, database_url: str | None) -> None:
    Ledger.open(tmp_path, database_url).close()
    statement = "UPDATE ledger_meta SET value = '99' WHERE name = 'schema_version'"
    if database_url is None:
        sql(tmp_path, statement)
    else:
        with engine_for(database_url).begin() as connection:
            connection.exec_driver_sql(statement)
    with pytest.raises(ArchiveError, match="written by a newer fapiao-agent"):
        Ledger.open(tmp_path, database_url)


def test_sqlite_ledger_from_a_newer_version_is_refused_by_its_user_version_too(tmp_path: Path) -> None:
    """Versions before the PostgreSQL ledger read only PRAGMA user_version: it says the version as well."""
    Ledger.open(tmp_path).close()
    assert sql(tmp_path, "PRAGMA user_version") == (SCHEMA_VERSION,)
    sql(tmp_path, "PRAGMA user_version = 99")
    with pytest.raises(ArchiveError, match="written by a newer fapiao-agent"):
        Ledger.open(tmp_path)


V1_SCHEMA = """
    CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT,
        args TEXT NOT NULL, summary TEXT, exit_code INTEGER);
    CREATE TABLE invoices (company_id TEXT NOT NULL, direction TEXT NOT NULL, number TEXT NOT NULL,
        format TEXT NOT NULL, month TEXT NOT NULL, issued_at TEXT NOT NULL, total_fen INTEGER NOT NULL,
        row TEXT NOT NULL, state TEXT NOT NULL, path TEXT, sha256 TEXT, size INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', first_seen TEXT NOT NULL,
        updated_at TEXT NOT NULL, run_id INTEGER, PRIMARY KEY (company_id, direction, number, format));
    CREATE INDEX invoices_by_month ON invoices (company_id, month, state);
    CREATE INDEX invoices_by_path ON invoices (path);
    PRAGMA user_version = 1;
"""


def test_ledger_of_version_1_is_upgraded_keeping_every_entry(tmp_path: Path) -> None:
    """Version 1 had no entry ids: the first open gives each entry one, in the order they were first listed."""
    with contextlib.closing(sqlite3.connect(tmp_path / LEDGER_NAME)) as connection:
        connection.executescript(V1_SCHEMA)
        connection.execute("INSERT INTO runs (started_at, args) VALUES ('2025-11-01T02:00:00.000+08:00', '{}')")
        for number, state, path in (("25112000000000000002", "verified", "a.pdf"), ("25112000000000000001", "failed", None)):
            row = make_row(number)
            connection.execute(
                "INSERT INTO invoices VALUES (?, 'received', ?, 'pdf', '2025-10', ?, 123450, ?, ?, ?, NULL, NULL, 2,"
                " 'e', '2025-11-01T02:00:00.000+08:00', '2025-11-01T02:00:00.000+08:00', 1)",
                (COMPANY, number, row.issued_at.isoformat(), row.model_dump_json(), state, path),
            )
        connection.commit()
    with Ledger.open(tmp_path) as ledger:
        entries = {entry.number[-1]: entry for entry in ledger.entries()}
        assert {number: (entry.id, entry.state, entry.path, entry.attempts) for number, entry in entries.items()} == {
            "2": (1, EntryState.verified, "a.pdf", 2), "1": (2, EntryState.failed, None, 2)
        }  # fmt: skip
        assert entries["1"].row == make_row("25112000000000000001")
        ledger.record_listed(ledger.start_run({}), COMPANY, [make_row("25112000000000000002")], PDF_ONLY)
        assert ledger.counts()[EntryState.verified] == 1 and ledger.get_run(1) is not None
    assert sql(tmp_path, "PRAGMA user_version") == (SCHEMA_VERSION,)
    assert sql(tmp_path, "SELECT count(*) FROM sqlite_master WHERE name = 'invoices_v1'") == (0,)


def test_unwritable_folder_is_an_archive_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ArchiveError, match=f"cannot write to {tmp_path.resolve()}: permission denied"):
        Ledger.open(tmp_path)


@pytest.mark.parametrize(
    "database_url", ["sqlite:///elsewhere.db", "mysql://u:p@host/db", "not a url", "redis://127.0.0.1:6379/0"]
)
def test_database_url_other_than_postgresql_is_a_settings_error(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(SettingsError, match="database_url must be a PostgreSQL URL"):
        Ledger.open(tmp_path, database_url)


def test_database_url_setting_takes_postgresql_urls_and_hides_their_password() -> None:
    url = "postgresql+psycopg://fapiao:hunter2-url@db.example:5432/fapiao"
    assert load_settings(None, database_url=url).database_url == url
    assert "hunter2" not in redact(f"could not use {url}")
    assert load_settings(None).database_url is None  # the SQLite ledger in the archive
    with pytest.raises(SettingsError, match="setting database_url: must be a PostgreSQL URL"):
        load_settings(None, database_url="sqlite:///elsewhere.db")


def test_database_that_cannot_be_reached_is_an_archive_error_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError) as caught:  # port 1: nothing listens there
        Ledger.open(tmp_path, "postgresql://fapiao:hunter2-db@127.0.0.1:1/fapiao")
    message = str(caught.value)
    assert message.startswith("cannot use the ledger at postgresql+psycopg://fapiao:***@127.0.0.1:1/fapiao: ")
    assert "cannot connect to the database (" in message and message.endswith("that PostgreSQL is running")
    assert "hunter2" not in message


def test_wrong_database_password_is_an_archive_error_saying_so(tmp_path: Path, postgresql_url: str) -> None:
    wrong = engine_for(postgresql_url).url.set(password="hunter2-wrong").render_as_string(hide_password=False)
    with pytest.raises(ArchiveError, match="password") as caught:
        Ledger.open(tmp_path, wrong)
    assert "hunter2" not in str(caught.value)


# -- several processes, and a crash


SHARED = make_row("25112000000099999999")
ROWS_PER_WRITER = 100


def write_many(root: Path, database_url: str | None, writer: int, start: Any) -> None:
    """One process's share: list and verify its own invoices, and bump one invoice both processes share."""
    start.wait()
    with Ledger.open(root, database_url) as ledger:
        run_id = ledger.start_run({"writer": writer})
        for i in range(ROWS_PER_WRITER):
            row = make_row(f"2511200000{writer:02d}{i:08d}")
            ledger.record_listed(run_id, COMPANY, [row, SHARED], PDF_ONLY)
            ledger.bump_attempts(key_of(SHARED))
            ledger.mark_verified(run_id, key_of(row), root / f"{row.number}.pdf", "ab" * 32, i)
        ledger.finish_run(run_id, RunSummary(verified=ROWS_PER_WRITER), 0)


def test_two_processes_writing_at_once_keep_the_ledger_whole_and_exact(
    tmp_path: Path, database_url: str | None
) -> None:
    start = SPAWN.Barrier(2)  # both open a ledger not yet created, at once: one creates it, the other waits
    writers = [SPAWN.Process(target=write_many, args=(tmp_path, database_url, n, start)) for n in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join()
    assert [process.exitcode for process in writers] == [0, 0]
    if database_url is None:
        assert sql(tmp_path, "PRAGMA integrity_check") == ("ok",)
    with Ledger.open(tmp_path, database_url) as ledger:
        assert ledger.counts()[EntryState.verified] == 2 * ROWS_PER_WRITER
        assert ledger.counts()[EntryState.listed] == 1
        shared = ledger.get(key_of(SHARED))
        assert shared is not None and shared.attempts == 2 * ROWS_PER_WRITER
        assert len({entry.id for entry in ledger.entries()}) == 2 * ROWS_PER_WRITER + 1


def update_until_killed(root: Path, database_url: str | None, started: Any) -> None:
    """List and verify invoices one by one, forever; tell the parent once a good number are committed."""
    with Ledger.open(root, database_url) as ledger:
        run_id = ledger.start_run({})
        for i in range(10**9):
            row = make_row(f"{i:020d}")
            ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
            ledger.mark_verified(run_id, key_of(row), root / f"{i}.pdf", "ab" * 32, i)
            if i == 50:
                started.set()


def test_writer_killed_mid_way_leaves_a_ledger_that_opens_and_is_whole(
    tmp_path: Path, database_url: str | None
) -> None:
    started = SPAWN.Event()
    child = SPAWN.Process(target=update_until_killed, args=(tmp_path, database_url, started))
    child.start()
    try:
        assert started.wait(timeout=120), "the child never got going"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
    assert child.exitcode == -signal.SIGKILL
    if database_url is None:
        assert sql(tmp_path, "PRAGMA integrity_check") == ("ok",)
    with Ledger.open(tmp_path, database_url) as ledger:
        counts = ledger.counts()
        # Each invoice is listed then verified in two transactions: all but possibly the last are verified.
        assert counts[EntryState.verified] > 50
        assert counts[EntryState.listed] in (0, 1)
        assert sum(counts.values()) == counts[EntryState.verified] + counts[EntryState.listed]


def test_lock_held_by_another_run_is_retried_then_an_archive_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("agent.ledger.BUSY_TIMEOUT_SECONDS", 0.01)
    with (
        Ledger.open(tmp_path) as ledger,
        contextlib.closing(sqlite3.connect(tmp_path / LEDGER_NAME)) as other,
    ):
        other.execute("BEGIN IMMEDIATE")  # another run holds the write lock throughout
        with pytest.raises(
            ArchiveError,
            match=r"another run keeps the ledger locked \(database is locked\); let the other run finish",
        ):
            ledger.start_run({})
    retries = [record for record in caplog.records if record.name == "agent.ledger"]
    assert len(retries) == LOCK_ATTEMPTS - 1


def test_row_locked_by_another_worker_on_postgresql_is_retried_then_an_archive_error(
    tmp_path: Path, postgresql_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("agent.ledger.BUSY_TIMEOUT_SECONDS", 0.05)
    with Ledger.open(tmp_path, postgresql_url) as ledger:
        run_id = ledger.start_run({})
        ledger.record_listed(run_id, COMPANY, [make_row()], PDF_ONLY)
        with engine_for(postgresql_url).begin() as other:
            other.exec_driver_sql("SELECT * FROM invoices FOR UPDATE")  # another worker holds the row throughout
            with pytest.raises(ArchiveError, match=r"another run keeps the ledger locked \(.*lock timeout"):
                ledger.mark_failed(run_id, key_of(make_row()), "truncated")
        ledger.mark_failed(run_id, key_of(make_row()), "truncated")  # free again
    retries = [record for record in caplog.records if record.name == "agent.ledger"]
    assert len(retries) == LOCK_ATTEMPTS - 1


def test_connection_cut_by_the_postgresql_server_is_replaced(tmp_path: Path, postgresql_url: str) -> None:
    """A server restart or an idle timeout kills the pooled connection: the next statement gets a new one."""
    with Ledger.open(tmp_path, postgresql_url) as ledger:
        run_id = ledger.start_run({})
        with ledger._engine.connect() as connection:
            backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with engine_for(postgresql_url).begin() as other:
            assert other.exec_driver_sql(f"SELECT pg_terminate_backend({backend})").scalar_one() is True
        ledger.record_listed(run_id, COMPANY, [make_row()], PDF_ONLY)
        assert ledger.counts()[EntryState.listed] == 1


def _open_and_close_elsewhere(root: str) -> None:
    """Another process: one connection opened and closed, as a run that ends does (its close checkpoints)."""
    connection = sqlite3.connect(Path(root) / "ledger.sqlite3")
    connection.execute("SELECT count(*) FROM invoices").fetchone()
    connection.close()


def test_opening_the_ledger_again_in_a_process_keeps_that_process_s_locks(tmp_path: Path) -> None:
    """POSIX drops every lock a process holds on a file when it closes any descriptor of it. A queue worker opens
    the ledger once per task while its other tasks have it open: if opening touched the file with open()/close(),
    another process ending its connection would think itself the last one and fold the WAL away under them
    (CI saw "database disk image is malformed")."""
    with Ledger.open(tmp_path) as first:
        first.start_run({})
        with first._engine.connect() as reading:  # a connection held open, as a running task's
            reading.exec_driver_sql("SELECT count(*) FROM invoices").all()  # a read transaction, begun by the engine
            with Ledger.open(tmp_path):  # the next task of the same worker
                pass
            process = multiprocessing.get_context("spawn").Process(target=_open_and_close_elsewhere, args=(str(tmp_path),))
            process.start()
            process.join(60)
            assert process.exitcode == 0
            assert (tmp_path / "ledger.sqlite3-wal").exists(), "another process folded the WAL away under an open one"
