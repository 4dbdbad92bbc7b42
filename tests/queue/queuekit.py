"""The queue tests' kit: settings on either store, a fake `archive_person` that follows a script per person and
logs each call to a file (so that calls in several worker processes can be compared), and a worker on a thread.

The fake stands in for agent.firm.archive_person, which the queue receives injected: these tests are about
the queue (leases, retries, parking, schedules), not about the portal.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent import errors
from agent.config import Settings, load_settings
from agent.events import RunEvents
from agent.firm import PersonTask
from agent.parsers.ids import uscc_check_char
from agent.period import parse_month
from agent.queue import FirmQueue
from agent.records import RunSummary

REDIS_URL = os.environ.get("FAPIAO_TEST_REDIS_URL")
BACKENDS = [
    "sqlite",
    pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="FAPIAO_TEST_REDIS_URL is not set (.ci/run sets it)")),
]
COMPANY = "91110108MA01ABCDE" + uscc_check_char("91110108MA01ABCDE")
PERSONS = ("ann", "bob", "cy", "dan", "dee")  # configured, SMS codes typed by a person (`prompt`)


def persons(sms: str = "prompt") -> dict[str, dict[str, Any]]:
    return {name: {"login": f"1390000000{n}", "password": f"pw-{name}-secret", "sms": sms, "companies": [COMPANY]}
            for n, name in enumerate(PERSONS, start=1)}


def queue_settings(tmp_path: Path, backend: str, **overrides: Any) -> Settings:
    """Short leases and waits so that the tests see expiry, retries and parking in seconds."""
    values: dict[str, Any] = {
        "out": tmp_path / "archive", "state_dir": tmp_path / "state", "queue_lease_seconds": 2.0,
        "queue_retries": 2, "queue_retry_wait": 0.3, "human_timeout": 10.0,
        "queue_url": REDIS_URL if backend == "redis" else None, "persons": persons(), **overrides,
    }
    return load_settings(None, **values)


def fresh_redis() -> None:
    """An empty Redis database for the test (FAPIAO_TEST_REDIS_URL must name a throwaway one)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL or "")
    client.flushdb()
    client.close()


class FakeSummary(BaseModel):
    person: str
    companies: dict[str, RunSummary]
    totals: RunSummary


class FakeArchive:
    """archive_person's stand-in. `script[person]` lists what successive calls of that person do:
    ok | gaps | down (PortalUnavailable) | refused (WrongCredentials) | sms (waits for a code) | sleep:<s> | hang
    (sleeps until killed, the first time only). Calls past the script's end are `ok`. Each call sleeps
    `seconds` first and logs a start and an end line (time, pid, action) to `log_path`."""

    def __init__(self, log_path: Path, script: dict[str, list[str]] | None = None, seconds: float = 0.0) -> None:
        self.log_path, self.script, self.seconds = log_path, script or {}, seconds

    async def __call__(self, settings: Settings, task: Any, events: RunEvents, human: Any) -> FakeSummary:
        action = self._action(task.person)
        self._log("start", task.person, action)
        try:
            result = await self._act(action, task, events, human)
        except BaseException as exc:
            self._log("end", task.person, action, error=type(exc).__name__)
            raise
        self._log("end", task.person, action, code=result.get("code", ""))
        return self._summary(task.person, events, failed=1 if action == "gaps" else 0)

    def _action(self, person: str) -> str:
        done = sum(1 for line in read_log(self.log_path) if line["person"] == person and line["event"] == "start")
        steps = self.script.get(person, [])
        return steps[done] if done < len(steps) else "ok"

    async def _act(self, action: str, task: Any, events: RunEvents, human: Any) -> dict[str, str]:
        await asyncio.sleep(self.seconds)
        if action == "down":
            raise errors.PortalUnavailable("the portal answered 503 (test)")
        if action == "refused":
            raise errors.WrongCredentials("密码错误", "2035")
        if action == "sms":
            return {"code": await human.sms.code("138****0001", time.time())}
        if action.startswith("sleep:"):
            await asyncio.sleep(float(action.partition(":")[2]))
        if action == "hang":
            await asyncio.sleep(3600)
        return {}

    def _summary(self, person: str, events: RunEvents, failed: int) -> FakeSummary:
        summary = RunSummary(listed=3, verified=3 - failed, failed=failed)
        events.company_finished(COMPANY, summary)
        return FakeSummary(person=person, companies={COMPANY: summary}, totals=summary)

    def _log(self, event: str, person: str, action: str, **extra: str) -> None:
        line = {"event": event, "person": person, "action": action, "pid": os.getpid(), "t": time.time(), **extra}
        with self.log_path.open("a") as log:  # O_APPEND: lines of several processes do not mix
            log.write(json.dumps(line) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def calls(path: Path, person: str) -> list[dict[str, Any]]:
    return [line for line in read_log(path) if line["person"] == person and line["event"] == "start"]


def task(person: str, month: str = "2025-10") -> PersonTask:
    start, end = parse_month(month)
    return PersonTask(person=person, date_from=start, date_to=end)


@contextmanager
def worker_thread(queue: FirmQueue, workers: int = 2, until_empty: bool = False) -> Iterator[threading.Thread]:
    """`queue.work` on a thread of the test process, stopped (and joined) when the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=queue.work, args=(workers, until_empty, stop), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"


def wait_for(probe: Any, what: str = "condition", timeout: float = 20.0) -> Any:
    """agentkit.wait_for, imported when called: workerproc.py imports this kit where tests/ is not on the path."""
    from agentkit import wait_for as bounded

    return bounded(probe, what, timeout)
