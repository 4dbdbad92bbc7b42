"""RunContext.record: file outcomes reach the ledger in batches, and none waits past RECORD_WAIT."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from agentkit import run_async
from rowkit import COMPANY, make_row

from agent.config import load_settings
from agent.events import RunEvents
from agent.flows.download import DownloadTask, Outcome, State
from agent.ledger import EntryKey, EntryState, Ledger
from agent.records import FileFormat
from agent.run.context import RECORD_BATCH, RECORD_WAIT, RunContext


class Heard:
    def __init__(self) -> None:
        self.done: list[str] = []

    def file_done(self, outcome: Outcome) -> None:
        self.done.append(outcome.task.row.number)


def failed(number: str, tmp_path: Path) -> Outcome:
    task = DownloadTask(company_id=COMPANY, row=make_row(number), fmt=FileFormat.pdf, target=tmp_path / f"{number}.pdf")
    return Outcome(task=task, state=State.failed, error="not a PDF", attempts=3)


def state_of(ledger: Ledger, number: str) -> EntryState | None:
    entry = ledger.get(EntryKey.of(COMPANY, make_row(number), FileFormat.pdf))
    return entry.state if entry else None


def test_a_lone_outcome_is_written_within_record_wait_though_no_other_follows(tmp_path: Path) -> None:
    numbers = [f"2511200000{n:010d}" for n in range(1, RECORD_BATCH + 3)]
    with Ledger.open(tmp_path) as ledger:
        run_id = ledger.start_run({})
        ledger.record_listed(run_id, COMPANY, [make_row(number) for number in numbers], [FileFormat.pdf])
        heard = Heard()
        context = RunContext(load_settings(None, out=tmp_path), ledger, run_id, cast(Any, None), cast(Any, None), RunEvents(heard))

        async def scenario() -> tuple[list[EntryState | None], list[EntryState | None], int]:
            for number in numbers[:RECORD_BATCH]:  # a full batch is written at once
                context.record(failed(number, tmp_path))
            full = [state_of(ledger, number) for number in numbers[:RECORD_BATCH]]
            context.record(failed(numbers[RECORD_BATCH], tmp_path))
            waiting = [state_of(ledger, numbers[RECORD_BATCH])]
            await asyncio.sleep(RECORD_WAIT + 0.3)  # then nothing more comes: a long retry wait, say
            return full, waiting + [state_of(ledger, numbers[RECORD_BATCH])], len(heard.done)

        full, lone, told = run_async(scenario())
    assert set(full) == {EntryState.failed}
    assert lone == [EntryState.listed, EntryState.failed]  # taken, then written by the timer
    assert told == RECORD_BATCH + 1  # listeners hear of a file once it is in the ledger
