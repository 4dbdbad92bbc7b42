"""A person's politeness gate shared by the queue's workers, on both stores: slots of one person taken from two
store connections (threads, then real processes) are spaced by the pace, whoever takes them; other persons are
not held back; a Retry-After hold set by one worker holds the others; a failing or silent store leaves the run
on its own pace with one warning; queue tasks get the shared gate.

Spacing is asserted on the slots the store handed out (its own clock), never on how long anything took, so a
loaded machine cannot fail these tests.

`python test_shared_gate.py <json>` is one of the processes of the process test: it takes slots of one pace
once told to go, and prints their start times."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agentkit import run_async
from queuekit import BACKENDS, COMPANY, FakeSummary, fresh_redis, queue_settings, task

from agent import gates
from agent.config import Settings
from agent.events import RunEvents
from agent.gates import SharedGate
from agent.leases import SharedState, Slot
from agent.queue import FirmQueue, build_huey, build_state, lease_name
from agent.records import RunSummary

HERE = Path(__file__).parent
ANN, BOB = "person:host:ann", "person:host:bob"
PACE = {"rate_limit": 10.0, "pause": 0.15, "pause_jitter": 0.1}  # slots 0.15-0.25 s apart
EPSILON = 1e-5  # Redis keeps microseconds


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "redis":
        fresh_redis()
    return queue_settings(tmp_path, request.param)


def store(settings: Settings) -> SharedState:
    """A store object of its own: its own SQLite connection or Redis client, as another worker would have."""
    return build_state(settings, build_huey(settings))


def recording(state: SharedState, slots: list[Slot]) -> Callable[[str, float], Slot]:
    """`state.take_slot`, appending each slot it hands out to `slots`."""
    take = state.take_slot

    def take_slot(pace: str, spacing: float) -> Slot:
        slots.append(take(pace, spacing))
        return slots[-1]

    return take_slot


def recorded(state: SharedState, monkeypatch: pytest.MonkeyPatch) -> list[Slot]:
    """Every slot `state` hands out from now on, in order."""
    slots: list[Slot] = []
    monkeypatch.setattr(state, "take_slot", recording(state, slots))
    return slots


def gate(state: SharedState, pace: str = ANN, **pace_settings: float) -> SharedGate:
    return SharedGate(state, pace, **{**PACE, **pace_settings})


def assert_spaced(starts: list[float], spacing: float) -> None:
    starts = sorted(starts)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= spacing - EPSILON, gaps


async def waits(gate: SharedGate, count: int) -> None:
    async with asyncio.timeout(60):
        for _ in range(count):
            await gate.wait()


def test_two_workers_of_one_person_keep_one_pace(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = store(settings), store(settings)
    slots = recorded(one, monkeypatch), recorded(two, monkeypatch)
    runs = [threading.Thread(target=run_async, args=(waits(gate(state), 6),)) for state in (one, two)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)
    assert [len(taken) for taken in slots] == [6, 6]
    assert_spaced([slot.at for slot in slots[0] + slots[1]], PACE["pause"])


def test_task_after_task_keeps_the_pace_on_another_worker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = store(settings), store(settings)
    slots = recorded(one, monkeypatch), recorded(two, monkeypatch)
    run_async(waits(gate(one), 2))  # task k on one worker, then task k+1 on the other, each in a run of its own
    run_async(waits(gate(two), 2))
    assert_spaced([slot.at for slot in slots[0] + slots[1]], PACE["pause"])
    assert slots[1][0].wait > 0  # the second worker waited for the pace the first one left


def test_other_persons_and_regions_are_not_held_back(settings: Settings) -> None:
    one, two = store(settings), store(settings)
    first, second = one.take_slot(ANN, 30), one.take_slot(ANN, 30)
    assert first.wait == 0 and second.wait > 20
    assert two.take_slot(BOB, 30).wait == 0
    assert two.take_slot("person:other-region:ann", 30).wait == 0


def test_a_hold_set_by_one_worker_holds_the_others(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = store(settings), store(settings)
    slots = recorded(two, monkeypatch)

    async def hold_on_one_then_wait_on_two() -> None:
        held = gate(one)
        held.hold(30)  # a Retry-After of 30 s seen by the first worker
        while not await asyncio.to_thread(lambda: one.take_slot(ANN, 0).wait > 20):  # the hold reaches the store
            await asyncio.sleep(0.05)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate(two).wait(), 1.0)

    run_async(asyncio.wait_for(hold_on_one_then_wait_on_two(), 10))
    assert len(slots) == 1 and slots[0].wait > 20
    assert two.take_slot(BOB, 0).wait == 0  # another person goes on


def test_real_processes_of_one_person_keep_one_pace(settings: Settings, tmp_path: Path) -> None:
    spec = json.dumps({"settings": {"out": str(settings.out), "queue_url": settings.queue_url}, "pace": ANN, "count": 5})
    processes = [
        subprocess.Popen([sys.executable, str(Path(__file__)), spec], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, cwd=HERE.parents[1], env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        for _ in range(2)
    ]
    try:
        for process in processes:  # both ready (imports done, store open) before either takes a slot
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    starts = [json.loads(output) for output in outputs]
    assert [len(taken) for taken in starts] == [5, 5]
    assert_spaced(starts[0] + starts[1], PACE["pause"])


def test_a_failing_store_leaves_the_run_on_its_own_pace_with_one_warning(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = store(settings)
    recorded(state, monkeypatch)
    failing = gate(state, pause=0.3, pause_jitter=0.0)

    def unreachable(*_: Any) -> Slot:
        raise ConnectionError("the store is gone (test)")

    async def shared_then_failing() -> float:
        start = time.monotonic()
        await failing.wait()  # a slot from the store
        monkeypatch.setattr(state, "take_slot", unreachable)
        monkeypatch.setattr(state, "hold_pace", unreachable)
        await asyncio.gather(failing.wait(), failing.wait())  # both ask the store; the local pace goes on
        failing.hold(0.01)  # local only from now on
        return time.monotonic() - start

    with caplog.at_level(logging.WARNING, logger="agent.gates"):
        elapsed = run_async(shared_then_failing())
    assert not failing.shared
    assert [record.getMessage() for record in caplog.records if record.name == "agent.gates"] == [
        f"the shared pace of {ANN} is out of reach (ConnectionError: the store is gone (test)): this run keeps its own pace"
    ]
    assert elapsed >= 2 * 0.3  # a lower bound: a slow machine only adds to it


def test_a_store_that_does_not_answer_is_given_up_in_time(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    state = store(settings)
    stuck = threading.Event()

    def silent(pace: str, spacing: float) -> Slot:
        stuck.wait(5)
        raise ConnectionError("too late")

    monkeypatch.setattr(state, "take_slot", silent)
    monkeypatch.setattr(gates, "STORE_WAIT", 0.2)
    slow = gate(state, pause=0.0, pause_jitter=0.0, rate_limit=0.0)
    try:
        run_async(asyncio.wait_for(waits(slow, 2), 3))
    finally:
        stuck.set()
    assert not slow.shared


def test_queue_tasks_get_the_shared_gate_of_their_person(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[SharedGate] = []

    async def archive_person(
        settings: Settings, person_task: Any, events: RunEvents, human: Any, gate_for: Callable[[str, str], Any]
    ) -> FakeSummary:
        made.append(gate_for(settings.region_of(settings.person(person_task.person)[1]), person_task.person))
        await made[-1].wait()
        summary = RunSummary(listed=1, verified=1)
        events.company_finished(COMPANY, summary)
        return FakeSummary(person=person_task.person, companies={COMPANY: summary}, totals=summary)

    monkeypatch.setattr("agent.queue.archive_person", archive_person)
    settings = settings.model_copy(update={"pause": 30.0, "pause_jitter": 0.0})
    queue = FirmQueue(settings)
    queue.enqueue(task("ann"))
    queue.work(workers=1, until_empty=True)
    assert [outcome.outcome for outcome in queue.outcomes] == ["complete"]
    assert [(type(made_gate), made_gate.pace) for made_gate in made] == [(SharedGate, lease_name(settings, "ann"))]
    assert store(settings).take_slot(lease_name(settings, "ann"), 0).wait > 20  # the next task keeps the pace


def main() -> None:
    """One process of the process test: slots of one pace, taken once the test says go; their starts as JSON."""
    spec = json.loads(sys.argv[1])
    shared = store(queue_settings(Path(spec["settings"]["out"]).parent, "sqlite", **spec["settings"]))
    starts: list[float] = []
    take = shared.take_slot

    def take_slot(pace: str, spacing: float) -> Slot:
        slot = take(pace, spacing)
        starts.append(slot.at)
        return slot

    shared.take_slot = take_slot  # type: ignore[method-assign]
    print("ready", flush=True)
    sys.stdin.readline()
    asyncio.run(waits(gate(shared, spec["pace"]), spec["count"]))
    print(json.dumps(starts), flush=True)


if __name__ == "__main__":
    main()
