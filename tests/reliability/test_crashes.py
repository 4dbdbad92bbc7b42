"""SIGKILL the agent CLI at six points of a run, then run it again: the rerun finishes, downloads exactly what
was not verified yet, and leaves a ledger and an archive that agree."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agentkit import DEMO_MOBILE, MONTH, SettingsFactory, login_record
from reliakit import (
    QUICK_SMS,
    audit,
    cli_command,
    cli_env,
    file_requests,
    run_cli,
    truth_files,
    verified_keys,
    wait_for,
)

from agent.archive import PARTIAL_MARK
from agent.config import Settings
from agent.errors import EXIT_OK
from agent.records import Direction
from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import Scenario
from fixtures.pytest_plugin import MockPortal

# Every file answer 0.1 s late: a run spends a couple of seconds downloading, long enough to be killed mid-way.
UNHURRIED = Scenario(name="unhurried", faults=[FaultSpec(kind="slow", rate=1.0, delay=0.1)])
pytestmark = pytest.mark.mock_portal(UNHURRIED, invoices_per_month=12, **QUICK_SMS)

Condition = Callable[[MockPortal], bool]


@dataclass(frozen=True)
class KillPoint:
    name: str
    when: Condition | None = None  # killed from outside once this holds
    crash_at: str = ""  # or it kills itself there (crashhook.py)
    # how many files the crash leaves verified, of how many files the portal lists
    verified: Callable[[int, int], bool] = lambda count, files: count == 0
    # a temp file is left half full: True / False; None for a kill from outside at a moment no hook pins down,
    # where a file may be half way through its write (downloads run side by side), or may not
    half_written: bool | None = False
    relogins: int = 0  # logins the rerun needs (at most; a kill during login may come just after it)


def sms_sent(portal: MockPortal) -> bool:
    return bool(portal.sms_outbox(DEMO_MOBILE))


def listing_started(portal: MockPortal) -> bool:
    return portal.counters()["query_calls"] >= 1


def files_out(count: int) -> Condition:
    return lambda portal: portal.counters()["downloads_total"] >= count


KILL_POINTS = [
    KillPoint("during login, waiting for the SMS code", when=sms_sent, relogins=1),
    KillPoint("during the listing", when=listing_started),
    KillPoint("after 6 files", when=files_out(6), verified=lambda count, files: count < files, half_written=None),
    KillPoint("half-way through writing the 5th file", crash_at="write:5", verified=lambda count, files: count <= 4,
              half_written=True),
    KillPoint("inside the ledger update of the 5th file, before COMMIT", crash_at="commit:5",
              verified=lambda count, files: count <= 4),  # files recorded in one batch with the 5th die with it
    KillPoint("half-way through writing the manifest, every file done", crash_at="manifest",
              verified=lambda count, files: count == files, half_written=True),
]


def kill_tree(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the agent, then whatever it started (Chromium, verifier processes): nothing gets to clean up."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def crashed_run(portal: MockPortal, settings: Settings, point: KillPoint) -> int:
    """Start `fapiao download` and kill it at `point`; its exit status (negative: the signal)."""
    env = cli_env(portal, settings, CRASH_AT=point.crash_at)
    command = cli_command("download", "--month", MONTH, hook=bool(point.crash_at))
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        if point.when is not None:
            assert wait_for(lambda: point.when(portal), process), f"the run ended before the kill point: {point.name}"
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=180)
    finally:
        kill_tree(process)
    return process.returncode


def partials(root: Path) -> list[Path]:
    return [path for path in root.rglob(f"*{PARTIAL_MARK}*") if path.is_file()]


@pytest.mark.parametrize("point", KILL_POINTS, ids=[point.name for point in KILL_POINTS])
def test_killed_run_resumes_downloading_only_what_was_not_verified(
    mock_portal: MockPortal, fast_settings: SettingsFactory, point: KillPoint
) -> None:
    # one file in flight: a hook then pins down which file is half written (with downloads side by side, another
    # file could be in the middle of its write when the 5th file's ledger update is killed)
    settings = fast_settings(concurrency=1)
    assert crashed_run(mock_portal, settings, point) == -signal.SIGKILL
    company = settings.accounts["acct"].company_id
    expected = {key for key, sha in truth_files(mock_portal, company, settings.formats, Direction).items() if sha}
    done = verified_keys(settings.out)
    assert len(expected) > 12  # both directions, less the paper invoices
    assert point.verified(len(done), len(expected)), f"{len(done)} files verified when killed {point.name}"
    if point.half_written is not None:
        assert bool(partials(settings.out)) == point.half_written
    logins, before = login_record(mock_portal, DEMO_MOBILE)["attempts"], file_requests(mock_portal)

    rerun = run_cli(["download", "--month", MONTH], cli_env(mock_portal, settings))

    assert rerun.returncode == EXIT_OK, rerun.stderr
    fetched = file_requests(mock_portal) - before
    assert set(fetched) == {(number, fmt.value.upper()) for _, number, fmt in expected - done}
    assert set(fetched.values()) <= {1}
    checked = audit(mock_portal, settings)
    assert (checked.problems, checked.unknown) == ([], [])
    assert partials(settings.out) == []
    assert 0 <= login_record(mock_portal, DEMO_MOBILE)["attempts"] - logins <= point.relogins
