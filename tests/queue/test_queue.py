"""The queue on the embedded SqliteHuey and on a real Redis: tasks run once, outages are retried with backoff and
refusals never, no two workers drive one person at once, a SIGKILLed worker's lease comes free and its task is
run again, a parked task goes on with the code handed in, schedules fire once per matching minute."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from queuekit import (
    BACKENDS,
    FakeArchive,
    calls,
    fresh_redis,
    queue_settings,
    read_log,
    task,
    wait_for,
    worker_thread,
)

from agent.config import Schedule
from agent.errors import SettingsError
from agent.firm import PersonTask
from agent.queue import FirmQueue, lease_name, month_of, next_run

HERE = Path(__file__).parent


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        fresh_redis()
    return str(request.param)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


def outcomes(queue: FirmQueue) -> dict[str, str]:
    return {outcome.person: outcome.outcome for outcome in queue.overview().recent}


def test_each_task_runs_once_and_leaves_its_outcome(backend: str, tmp_path: Path, log_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, backend), FakeArchive(log_path, {"bob": ["gaps"]}))
    ids = [queue.enqueue(task("ann")), queue.enqueue(task("bob"))]
    assert [q.task_id for q in queue.overview().queued] == ids
    queue.work(workers=2, until_empty=True)
    assert len(calls(log_path, "ann")) == len(calls(log_path, "bob")) == 1
    assert outcomes(queue) == {"ann": "complete", "bob": "gaps"}
    overview = queue.overview()
    assert overview.running == overview.waiting == overview.queued == []
    assert queue.state.leases() == [] and queue.state.records("inflight") == {}


def test_outages_are_retried_with_growing_waits_and_a_refused_login_never(backend: str, tmp_path: Path, log_path: Path) -> None:
    script = {"bob": ["down", "down", "ok"], "cy": ["refused"], "dan": ["down", "down", "down", "down"]}
    queue = FirmQueue(queue_settings(tmp_path, backend, queue_retries=2, queue_retry_wait=0.5), FakeArchive(log_path, script))
    for person in ("bob", "cy", "dan"):
        queue.enqueue(task(person))
    queue.work(workers=3, until_empty=True)
    assert len(calls(log_path, "cy")) == 1  # a refused login: once, never again
    assert len(calls(log_path, "bob")) == 3  # two outages, then done
    assert len(calls(log_path, "dan")) == 3  # the first attempt and queue_retries=2 more, then it gives up
    starts = [line["t"] for line in calls(log_path, "bob")]
    assert starts[1] - starts[0] >= 0.5 and starts[2] - starts[1] >= 1.0  # 0.5 s, then doubled
    assert outcomes(queue) == {"bob": "complete", "cy": "login refused", "dan": "portal down"}


def test_a_task_retried_later_is_listed_with_its_time(backend: str, tmp_path: Path, log_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, backend, queue_retry_wait=60), FakeArchive(log_path, {"bob": ["down"]}))
    queue.enqueue(task("bob"))
    with worker_thread(queue):
        queued = wait_for(lambda: [q for q in queue.overview().queued if q.eta], what="the retry to be scheduled")
    assert queued[0].person == "bob" and queued[0].retries_left == 1
    assert (queued[0].eta - datetime.now()).total_seconds() > 50
    assert outcomes(queue) == {"bob": "retrying"}


def start_worker(tmp_path: Path, backend: str, log_path: Path, name: str, **spec: Any) -> subprocess.Popen[str]:
    settings = {key: (str(value) if isinstance(value, Path) else value)
                for key, value in queue_settings(tmp_path, backend).model_dump(include=SPEC_SETTINGS).items()}
    payload = {"settings": settings, "log": str(log_path), **spec}
    out = (tmp_path / f"{name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(HERE / "workerproc.py"), json.dumps(payload)], stdout=subprocess.PIPE, stderr=out, text=True,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


SPEC_SETTINGS = {"out", "state_dir", "queue_url", "queue_lease_seconds", "queue_retries", "queue_retry_wait", "human_timeout"}
# persons come back from queue_settings in the worker's process


def test_no_two_workers_ever_drive_one_person_at_once(backend: str, tmp_path: Path, log_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, backend), FakeArchive(log_path))
    workers = [start_worker(tmp_path, backend, log_path, f"w{n}", workers=2, seconds=0.3) for n in (1, 2)]
    for month in ("2025-08", "2025-09", "2025-10"):
        for person in ("ann", "bob", "cy"):
            queue.enqueue(task(person, month))
    wait_for(lambda: len([line for line in read_log(log_path) if line["event"] == "end"]) == 9, timeout=60, what="9 tasks")
    for process in workers:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    lines = read_log(log_path)
    spans = {person: sorted(span(lines, person)) for person in ("ann", "bob", "cy")}
    for person, intervals in spans.items():
        assert len(intervals) == 3, f"{person} ran {len(intervals)} times"
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(intervals)), person
    assert len({line["pid"] for line in lines}) == 2  # both processes took work
    everyone = sorted(interval for intervals in spans.values() for interval in intervals)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(everyone))  # persons in parallel


def span(lines: list[dict[str, Any]], person: str) -> list[tuple[float, float]]:
    """(start, end) of each call of `person`: start and end lines follow each other, as the lease serialises them."""
    mine = [line for line in lines if line["person"] == person]
    return [(a["t"], b["t"]) for a, b in zip(mine[::2], mine[1::2], strict=True)]


def test_a_killed_workers_lease_comes_free_and_its_task_runs_again(backend: str, tmp_path: Path, log_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, backend), FakeArchive(log_path))
    queue.enqueue(task("ann"))
    victim = start_worker(tmp_path, backend, log_path, "victim", workers=1, script={"ann": ["hang"]})
    wait_for(lambda: calls(log_path, "ann"), what="the first worker to start ann's task")
    lease = lease_name(queue.settings, "ann")
    assert queue.state.holder(lease) is not None
    assert [running.person for running in queue.overview().running] == ["ann"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    wait_for(lambda: queue.state.holder(lease) is None, timeout=5, what="the dead worker's lease to run out")
    assert time.monotonic() - killed_at <= queue.settings.queue_lease_seconds + 0.5
    queue.work(workers=1, until_empty=True)  # finds the task in flight without a lease: puts it back, runs it
    assert [line["action"] for line in calls(log_path, "ann")] == ["hang", "ok"]
    assert outcomes(queue) == {"ann": "complete"}
    assert queue.state.leases() == [] and queue.state.records("inflight") == {}


def test_a_worker_stopped_puts_its_running_task_back(backend: str, tmp_path: Path, log_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, backend), FakeArchive(log_path, {"ann": ["hang"]}))
    queue.enqueue(task("ann"))
    worker = start_worker(tmp_path, backend, log_path, "stopped", workers=1, script={"ann": ["hang"]})
    wait_for(lambda: calls(log_path, "ann"), what="ann's task to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert [line.get("error") for line in read_log(log_path) if line["event"] == "end"] == ["CancelledError"]
    assert queue.state.leases() == []  # released at once, not left to run out
    assert [queued.person for queued in queue.overview().queued] == ["ann"]


def test_a_parked_task_goes_on_with_the_code_handed_in_while_others_run(backend: str, tmp_path: Path, log_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, backend), FakeArchive(log_path, {"dee": ["sms"], "ann": ["sleep:0.5"]}))
    assert not queue.submit_code("dee", "123456")  # nobody waits yet
    queue.enqueue(task("dee"))
    with worker_thread(queue, workers=2):
        waiting = wait_for(queue.waiting_people, what="dee's task to wait for a code")
        assert [(w.person, w.kind) for w in waiting] == [("dee", "sms")]
        assert "138****0001" in waiting[0].detail and waiting[0].until is not None
        queue.enqueue(task("ann"))  # another person's task runs meanwhile, on the other worker
        wait_for(lambda: outcomes(queue).get("ann") == "complete", what="ann's task to finish while dee waits")
        assert queue.waiting_people()  # dee still waits
        assert queue.submit_code("dee", " 123456 ")
        wait_for(lambda: outcomes(queue).get("dee") == "complete", what="dee's task to go on")
    assert [line.get("code") for line in read_log(log_path) if line["event"] == "end" and line["person"] == "dee"] == ["123456"]
    assert queue.waiting_people() == [] and not queue.submit_code("dee", "654321")


def test_a_wait_that_runs_out_holds_the_task_until_someone_starts_it_again(backend: str, tmp_path: Path, log_path: Path) -> None:
    settings = queue_settings(tmp_path, backend, human_timeout=1.0)
    queue = FirmQueue(settings, FakeArchive(log_path, {"dee": ["sms", "sms"]}))
    queue.enqueue(task("dee"))
    queue.work(workers=1, until_empty=True)
    held = queue.waiting_people()
    assert [(w.person, w.until) for w in held] == [("dee", None)]
    assert outcomes(queue) == {"dee": "needs person"}
    assert "fapiao login --person dee" in queue.overview().recent[0].message
    queue.settings = settings.model_copy(update={"human_timeout": 10.0})
    with worker_thread(queue, workers=1):
        assert len(queue.restart_held("dee")) == 1
        wait_for(lambda: [w for w in queue.waiting_people() if w.until], what="the restarted task to wait again")
        assert queue.submit_code("dee", "222333")
        wait_for(lambda: outcomes(queue).get("dee") == "complete", what="the restarted task to finish")
    assert queue.waiting_people() == []


def test_schedules_fire_once_per_matching_minute_for_their_persons(backend: str, tmp_path: Path, log_path: Path) -> None:
    schedule = Schedule(cron="0 2 3 * *", persons=["ann", "bob"], period="last-month")
    queue = FirmQueue(queue_settings(tmp_path, backend, schedules=[schedule]), FakeArchive(log_path))
    assert queue.huey.read_periodic(datetime(2026, 12, 3, 2, 1)) == []
    (fire,) = queue.huey.read_periodic(datetime(2026, 12, 3, 2, 0))  # what the scheduler would enqueue then
    fire.execute()
    fire.execute()  # a second worker's scheduler in the same minute: claimed already
    queued = queue.overview().queued
    first, last = month_of("last-month")
    assert [(q.person, q.date_from, q.date_to) for q in queued] == [("ann", first, last), ("bob", first, last)]
    assert queue.overview().schedules[0].next_run is not None


def test_schedule_times_and_periods() -> None:
    assert next_run("0 2 3 * *", datetime(2026, 11, 30, 10, 0)) == datetime(2026, 12, 3, 2, 0)
    assert next_run("30 1 * * *", datetime(2026, 11, 30, 1, 29)) == datetime(2026, 11, 30, 1, 30)
    assert next_run("30 1 * * *", datetime(2026, 11, 30, 1, 30)) == datetime(2026, 12, 1, 1, 30)
    assert next_run("0 0 29 2 *", datetime(2026, 3, 1)) == datetime(2028, 2, 29, 0, 0)
    assert month_of("last-month", date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert month_of("this-month", date(2026, 1, 15)) == (date(2026, 1, 1), date(2026, 1, 15))


def test_a_bad_schedule_or_queue_url_is_refused_with_its_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="schedules.0.cron"):
        queue_settings(tmp_path, "sqlite", schedules=[{"cron": "0 2 32 * *"}])
    with pytest.raises(SettingsError, match="5 fields"):
        queue_settings(tmp_path, "sqlite", schedules=[{"cron": "0 2 3 *"}])
    with pytest.raises(SettingsError, match="schedules.0.persons: unknown person 'zed'"):
        FirmQueue(queue_settings(tmp_path, "sqlite", schedules=[{"cron": "0 2 3 * *", "persons": ["ann", "zed"]}]))
    with pytest.raises(SettingsError, match="queue_url"):
        FirmQueue(queue_settings(tmp_path, "sqlite", queue_url="amqp://localhost"))
    with pytest.raises(SettingsError, match="cannot reach Redis"):
        FirmQueue(queue_settings(tmp_path, "sqlite", queue_url="redis://127.0.0.1:1/0"))


def test_the_lease_is_named_after_the_person_and_region(tmp_path: Path) -> None:
    settings = queue_settings(tmp_path, "sqlite", portal_url="https://dppt.shanghai.chinatax.gov.cn:8443")
    assert lease_name(settings, "ann") == "person:dppt.shanghai.chinatax.gov.cn:ann"
    settings.persons["bob"].region = "guangdong"
    assert lease_name(settings, "bob") == "person:guangdong:bob"


def test_a_person_not_configured_is_refused_at_once(tmp_path: Path) -> None:
    queue = FirmQueue(queue_settings(tmp_path, "sqlite"))
    with pytest.raises(SettingsError, match="unknown person 'zed'"):
        queue.enqueue(PersonTask(person="zed", date_from=date(2025, 10, 1), date_to=date(2025, 10, 31)))
    assert queue.overview().queued == []
