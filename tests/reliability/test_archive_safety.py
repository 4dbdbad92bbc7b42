"""An output folder that cannot be written, or a disk that fills up mid-run: a clear message, exit 2, and nothing
already in the archive lost or overwritten. (Bad flags and config files: tests/cli/test_bad_input.py.)"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from agentkit import DEMO_MOBILE, MONTH, SettingsFactory, login_record
from reliakit import FAST, QUICK_SMS, audit, cli_env, file_requests, run_agent, truth_files, verified_keys

import agent.archive
from agent.archive import LOCK_NAME, Archive
from agent.checks import archive_report
from agent.cli import main
from agent.config import Settings
from agent.errors import EXIT_OK, EXIT_USAGE
from agent.ledger import EntryState, Ledger
from agent.records import Direction
from fixtures.pytest_plugin import MockPortal

pytestmark = pytest.mark.mock_portal(invoices_per_month=12, **QUICK_SMS)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the archive but the ledger's and the run lock's, by relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(("ledger.sqlite3", LOCK_NAME)) and "_debug" not in path.parts
    }


def fapiao_here(
    portal: MockPortal, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str]:
    """`fapiao download --month ...` in this process (so the test's monkeypatches apply): exit code, stderr."""
    for name, value in cli_env(portal, settings).items():
        if name.startswith("FAPIAO_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["fapiao", "download", "--month", MONTH, *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        in_own_thread(main)
    return int(exited.value.code or 0), capsys.readouterr().err


def in_own_thread(function: Callable[[], None]) -> None:
    """Call `function` on a thread of its own, where its asyncio.run finds no loop already running."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(function).result()


def refuse_writes(monkeypatch: pytest.MonkeyPatch, error: int, after: int = 0) -> None:
    """Archive writes fail with `error` (as a chmod or a full disk would make them) after `after` succeeded."""
    original = agent.archive._write_new_file
    allowed = [after]

    def write(path: Path, data: bytes) -> None:
        if allowed[0] <= 0:
            raise OSError(error, f"[Errno {error}] {errno.errorcode[error]}", str(path))
        allowed[0] -= 1
        original(path, data)

    monkeypatch.setattr(agent.archive, "_write_new_file", write)


def test_unwritable_output_folder_is_exit_2_before_the_portal_and_keeps_the_archive(
    mock_portal: MockPortal, fast_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = fast_settings()
    assert run_agent(settings).exit_code == EXIT_OK
    before, logins = snapshot(settings.out), login_record(mock_portal, DEMO_MOBILE)["attempts"]
    refuse_writes(monkeypatch, errno.EACCES)
    code, stderr = fapiao_here(mock_portal, settings, monkeypatch, capsys)
    assert code == EXIT_USAGE
    assert f"cannot write to {settings.out.resolve()}: permission denied; make the folder writable" in stderr
    assert snapshot(settings.out) == before
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == logins  # stopped before touching the portal


def test_disk_full_mid_run_stops_with_exit_2_keeps_every_file_and_the_next_run_resumes(
    mock_portal: MockPortal, fast_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = fast_settings()
    assert run_agent(settings, directions=[Direction.issued]).exit_code == EXIT_OK
    before, issued, requested = snapshot(settings.out), verified_keys(settings.out), file_requests(mock_portal)

    refuse_writes(monkeypatch, errno.ENOSPC, after=1 + 3)  # the start-up write probe, then 3 invoice files
    code, stderr = fapiao_here(mock_portal, settings, monkeypatch, capsys)
    assert code == EXIT_USAGE
    assert "the disk is full; free some space or choose another output folder" in stderr
    after = snapshot(settings.out)
    assert {path: after.get(path) for path in before} == before  # nothing lost, nothing overwritten
    assert len(after) == len(before) + 3
    assert sum((file_requests(mock_portal) - requested).values()) <= 3 + 1 + FAST["concurrency"]  # it stopped
    with Ledger.open(settings.out) as ledger:
        received = [entry for entry in ledger.entries() if entry.direction is Direction.received]
    assert sum(entry.state is EntryState.verified for entry in received) == 3
    assert audit(mock_portal, settings, stopped=True).problems == []

    monkeypatch.undo()
    done, requested = verified_keys(settings.out), file_requests(mock_portal)
    assert issued < done
    assert run_agent(settings).exit_code == EXIT_OK
    fetched = file_requests(mock_portal) - requested
    assert {(number, fmt.value.upper()) for _, number, fmt in done} & set(fetched) == set()
    assert audit(mock_portal, settings).problems == []


def test_a_verified_file_deleted_or_changed_is_reported_and_fetched_again(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    assert run_agent(settings, directions=[Direction.issued]).exit_code == EXIT_OK
    assert archive_report(settings.out, MONTH)["complete"]
    with Ledger.open(settings.out) as ledger:
        deleted, changed = [entry for entry in ledger.entries() if entry.state is EntryState.verified][:2]
    (settings.out / str(deleted.path)).unlink()
    (settings.out / str(changed.path)).write_bytes(b"%PDF-1.7 touched by hand")

    report = archive_report(settings.out, MONTH)
    assert not report["complete"]
    named = {(problem["number"], problem["state"]) for problem in report["not_verified"]}
    assert named == {(deleted.number, "missing"), (changed.number, "changed")}

    requested = file_requests(mock_portal)
    assert run_agent(settings, directions=[Direction.issued]).exit_code == EXIT_OK
    fetched = file_requests(mock_portal) - requested
    assert set(fetched) == {(deleted.number, "PDF"), (changed.number, "PDF")}
    company = settings.accounts["acct"].company_id
    truth = truth_files(mock_portal, company, settings.formats, [Direction.issued])
    assert Archive.sha256_of(settings.out / str(changed.path)) == truth[(Direction.issued, changed.number, changed.format)]
    assert archive_report(settings.out, MONTH)["complete"]
    assert audit(mock_portal, settings, [Direction.issued]).problems == []
