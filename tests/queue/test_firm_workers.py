"""The firm's month on two worker processes sharing one queue, one archive folder and one ledger, against the
mock firm; one worker is killed (SIGKILL, with its Chromium: a machine gone) in the middle of a company. The
other worker finishes the month: every file verified against the mock's truth, nothing verified before the kill
downloaded again, the dead worker's lease free, never two live sessions of one person.

On the embedded SQLite queue and ledger, and on a real Redis with PostgreSQL (FAPIAO_TEST_REDIS_URL and
FAPIAO_TEST_DATABASE_URL, which .ci/run sets; without them that variant is skipped)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from queuekit import REDIS_URL, fresh_redis, wait_for

from agent.archive import Archive
from agent.config import Settings, load_settings
from agent.demo import firm_persons
from agent.ledger import EntryState, Ledger
from agent.period import parse_month
from agent.queue import FirmQueue, lease_name, tasks_for
from agent.records import Direction
from fixtures.pytest_plugin import MockPortal

MONTH = "2025-10"
pytestmark = pytest.mark.mock_portal("firm", invoices_per_month=20, sms_resend_seconds=0)


@contextlib.contextmanager
def stores(backend: str) -> Iterator[dict[str, Any]]:
    """queue_url and database_url for the variant: embedded SQLite both, or Redis and PostgreSQL."""
    if backend == "sqlite":
        yield {}
        return
    from pgkit import own_schema, server_url

    fresh_redis()
    with own_schema(server_url()) as database_url:
        yield {"queue_url": REDIS_URL, "database_url": database_url}


def write_config(path: Path, portal: MockPortal, root: Path, stores: dict[str, Any]) -> Path:
    """The workers' config: the mock firm's persons (each company once), no politeness delay, short leases."""
    lines = [
        f'portal_url = "{portal.url}"', f'out = "{root / "archive"}"', f'state_dir = "{root / "state"}"',
        "rate_limit = 0", "pause = 0", "pause_jitter = 0", "concurrency = 8", "not_ready_wait = 0.5",
        "backoff_max = 2", "queue_lease_seconds = 3", "max_persons = 2",
        *(f'{key} = "{value}"' for key, value in stores.items()),
    ]
    for name, person in firm_persons(portal.url).items():
        password = person.password.get_secret_value() if person.password else ""
        lines += ["", f"[persons.{name}]", f'login = "{person.login}"', f'password = "{password}"',
                  f'sms = "{person.sms}"', f"companies = {json.dumps(person.companies)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_worker(config: Path, name: str, root: Path) -> subprocess.Popen[str]:
    """`fapiao worker` in a session of its own, so that killing its group takes its Chromium with it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "worker", "--config", str(config), "-w", "2", "-v"], cwd=root, text=True,
        stdout=subprocess.DEVNULL, stderr=(root / f"{name}.log").open("w"), start_new_session=True,
        env={**clean, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def verified(settings: Settings) -> dict[str, str]:
    """Invoice number -> company of every verified entry in the ledger."""
    with Ledger.open(settings.out, settings.database_url) as ledger:
        return {entry.number: entry.company_id for entry in ledger.entries() if entry.state is EntryState.verified}


def not_matching(portal: MockPortal, settings: Settings, company: str) -> tuple[int, list[str]]:
    """How many files the mock served the company in the month, and those the archive lacks: verified in the
    ledger (on either engine) with the portal's sha256, and on disk with it."""
    with Ledger.open(settings.out, settings.database_url) as ledger:
        entries = {(e.direction.value, e.number): e for e in ledger.entries(company, MONTH) if e.state is EntryState.verified}
    expected, wrong = 0, []
    for direction in Direction:
        for invoice in portal.truth(MONTH, direction.value, company=company)["invoices"]:
            if not invoice["has_file"]:
                continue
            expected += 1
            entry, sha = entries.get((direction.value, invoice["Fphm"])), invoice["sha256"]["PDF"]
            on_disk = entry is not None and entry.path and Archive.sha256_of(settings.out / entry.path) == sha
            if entry is None or entry.sha256 != sha or not on_disk:
                wrong.append(f"{direction.value} {invoice['Fphm']}")
    return expected, wrong


def running_on(queue: FirmQueue, process: subprocess.Popen[str]) -> list[str]:
    return [task.person for task in queue.overview().running if task.worker.endswith(f":{process.pid}")]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param(
    "redis", marks=pytest.mark.skipif(not REDIS_URL, reason="FAPIAO_TEST_REDIS_URL is not set (.ci/run sets it)"))])
def test_a_worker_killed_mid_company_costs_nothing_the_other_finishes_the_month(
    backend: str, mock_portal: MockPortal, tmp_path: Path
) -> None:
    with stores(backend) as urls:
        config = write_config(tmp_path / "fapiao.toml", mock_portal, tmp_path, urls)
        settings = load_settings(config)
        queue = FirmQueue(settings)
        start, end = parse_month(MONTH)
        victim, survivor = start_worker(config, "victim", tmp_path), None
        try:
            for task in tasks_for(settings, [], [], start, end, list(Direction)):
                queue.enqueue(task)
            held = wait_for(lambda: running_on(queue, victim) and len(verified(settings)) >= 8, timeout=180,
                            what="the first worker to be archiving")
            assert held
            survivor = start_worker(config, "survivor", tmp_path)
            wait_for(lambda: len(verified(settings)) >= 16 and running_on(queue, victim), timeout=180,
                     what="a company in progress on the first worker")
            before_kill = verified(settings)
            dead_persons = running_on(queue, victim)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(10)
            for person in dead_persons:  # the dead worker's lease runs out by itself
                wait_for(lambda p=person: all(t.worker != f"{os.uname().nodename}:{victim.pid}"
                                              for t in queue.overview().running if t.person == p),
                         timeout=settings.queue_lease_seconds + 5, what=f"{person}'s lease to come free")
            wait_for(lambda: queue.is_idle() and len(queue.overview().recent) >= len(settings.persons), timeout=300,
                     what="the surviving worker to finish the month")
        finally:
            for process in (victim, survivor):
                if process is not None and process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(60)
        outcomes = {outcome.person: outcome.outcome for outcome in queue.overview().recent}
        assert outcomes == {name: "complete" for name in settings.persons}, outcomes
        companies = sorted({company for person in settings.persons.values() for company in person.companies})
        missing = {company: not_matching(mock_portal, settings, company) for company in companies}
        assert all(count > 0 and not wrong for count, wrong in missing.values()), missing
        downloads = mock_portal.counters()["downloads"]
        again = [number for number in before_kill if sum(downloads.get(number, {}).values()) != 1]
        assert again == [], f"{len(again)} files verified before the kill were downloaded again"
        assert queue.state.leases() == [] and queue.state.records("inflight") == {}
        assert not [lease_name(settings, name) for name in settings.persons if queue.state.holder(lease_name(settings, name))]
        for mobile, seen in mock_portal.counters()["persons"].items():
            assert seen["max_live_sessions"] <= 1, (mobile, seen)
