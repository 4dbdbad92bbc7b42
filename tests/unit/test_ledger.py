"""agent.ledger: states, upserts, runs without secrets, two writers at once, a writer killed mid-way."""

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
from rowkit import COMPANY, make_row

from agent.errors import ArchiveError
from agent.ledger import LEDGER_NAME, LOCK_ATTEMPTS, EntryKey, EntryState, Ledger
from agent.records import Direction, FileFormat, InvoiceRow, RunSummary

PDF_ONLY = [FileFormat.pdf]
# spawn, not fork: a child must not inherit the parent's SQLite handles (and fork warns in threaded processes)
SPAWN = multiprocessing.get_context("spawn")


def key_of(row: InvoiceRow, fmt: FileFormat = FileFormat.pdf) -> EntryKey:
    return EntryKey.of(COMPANY, row, fmt)


def sql(root: Path, statement: str) -> object:
    """Run one statement on the ledger file directly, as another tool would."""
    with contextlib.closing(sqlite3.connect(root / LEDGER_NAME)) as connection:
        return connection.execute(statement).fetchone()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path) as opened:
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


def test_ledger_opens_in_wal_mode(ledger: Ledger, tmp_path: Path) -> None:
    assert sql(tmp_path, "PRAGMA journal_mode") == ("wal",)


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
    ledger.record_listed(run_id, "91110000600012345X", rows[:3], PDF_ONLY)
    wanted = {key_of(row) for row in rows[::2]} | {EntryKey.of("91110000600012345X", rows[0], FileFormat.pdf)}
    missing = {EntryKey.of(COMPANY, make_row("25112000009999999999"), FileFormat.pdf)}
    found = ledger.get_many(wanted | missing)
    assert sorted((entry.key for entry in found), key=repr) == sorted(wanted, key=repr)
    ledger.mark_failed(run_id, key_of(rows[0]), "cut short")
    states = ledger.states_of(wanted | missing)
    assert states == {entry.key: entry.state for entry in ledger.get_many(wanted)}
    assert states[key_of(rows[0])] is EntryState.failed and set(states.values()) == {EntryState.failed, EntryState.listed}



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


def test_run_args_never_keep_a_secret(ledger: Ledger, tmp_path: Path) -> None:
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
    stored = b"".join(path.read_bytes() for path in tmp_path.glob(f"{LEDGER_NAME}*"))
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


# -- foreign errors


def test_disk_full_is_an_archive_error_naming_folder_and_fix(
    ledger: Ledger, run_id: int, tmp_path: Path
) -> None:
    # Cap the file at its current size: SQLite then fails exactly as on a full disk (SQLITE_FULL).
    pages = ledger._connection.execute("PRAGMA page_count").fetchone()[0]
    ledger._connection.execute(f"PRAGMA max_page_count = {pages}")
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


def test_ledger_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Ledger.open(tmp_path).close()
    sql(tmp_path, "PRAGMA user_version = 99")
    with pytest.raises(ArchiveError, match="written by a newer fapiao-agent"):
        Ledger.open(tmp_path)


def test_unwritable_folder_is_an_archive_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ArchiveError, match=f"cannot write to {tmp_path.resolve()}: permission denied"):
        Ledger.open(tmp_path)


# -- two processes, and a crash


SHARED = make_row("25112000000099999999")
ROWS_PER_WRITER = 100


def write_many(root: Path, writer: int, start: Any) -> None:
    """One process's share: list and verify its own invoices, and bump one invoice both processes share."""
    start.wait()
    with Ledger.open(root) as ledger:
        run_id = ledger.start_run({"writer": writer})
        for i in range(ROWS_PER_WRITER):
            row = make_row(f"2511200000{writer:02d}{i:08d}")
            ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
            ledger.bump_attempts(key_of(SHARED))
            ledger.mark_verified(run_id, key_of(row), root / f"{row.number}.pdf", "ab" * 32, i)
        ledger.finish_run(run_id, RunSummary(verified=ROWS_PER_WRITER), 0)


def test_two_processes_writing_at_once_keep_the_ledger_whole_and_exact(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as ledger:
        ledger.record_listed(ledger.start_run({}), COMPANY, [SHARED], PDF_ONLY)
    start = SPAWN.Barrier(2)
    writers = [SPAWN.Process(target=write_many, args=(tmp_path, writer, start)) for writer in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join()
    assert [process.exitcode for process in writers] == [0, 0]
    assert sql(tmp_path, "PRAGMA integrity_check") == ("ok",)
    with Ledger.open(tmp_path) as ledger:
        assert ledger.counts()[EntryState.verified] == 2 * ROWS_PER_WRITER
        assert ledger.counts()[EntryState.listed] == 1
        shared = ledger.get(key_of(SHARED))
        assert shared is not None and shared.attempts == 2 * ROWS_PER_WRITER


def update_until_killed(root: Path, started: Any) -> None:
    """List and verify invoices one by one, forever; tell the parent once a good number are committed."""
    with Ledger.open(root) as ledger:
        run_id = ledger.start_run({})
        for i in range(10**9):
            row = make_row(f"{i:020d}")
            ledger.record_listed(run_id, COMPANY, [row], PDF_ONLY)
            ledger.mark_verified(run_id, key_of(row), root / f"{i}.pdf", "ab" * 32, i)
            if i == 50:
                started.set()


def test_writer_killed_mid_way_leaves_a_ledger_that_opens_and_is_whole(tmp_path: Path) -> None:
    started = SPAWN.Event()
    child = SPAWN.Process(target=update_until_killed, args=(tmp_path, started))
    child.start()
    try:
        assert started.wait(timeout=120), "the child never got going"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
    assert child.exitcode == -signal.SIGKILL
    assert sql(tmp_path, "PRAGMA integrity_check") == ("ok",)
    with Ledger.open(tmp_path) as ledger:
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
