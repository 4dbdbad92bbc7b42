"""agent.flows.download.Downloader on scripted portal answers: chances per file, session renewal, the task feed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import pytest
from agentkit import run_async
from rowkit import COMPANY, make_row

from agent import errors
from agent.archive import Archive
from agent.config import Settings
from agent.flows.download import Downloader, DownloadTask, Outcome, State, TaskFeed
from agent.records import FileFormat, InvoiceRow

GOOD, CUT, OTHER = b"%PDF- good", b"%PDF- cut", b"%PDF- another invoice"


class ScriptedFiles:
    """The portal's answers to each invoice's downloads, in order: bytes or an exception."""

    def __init__(self, answers: dict[str, list[bytes | Exception]]) -> None:
        self.answers = {number: list(script) for number, script in answers.items()}
        self.requests = 0

    async def fetch(self, row: InvoiceRow, fmt: FileFormat) -> bytes:
        self.requests += 1
        script = self.answers[row.number]
        answer = script.pop(0) if len(script) > 1 else script[0]  # the last answer repeats
        if isinstance(answer, Exception):
            raise answer
        return answer


class BytesVerifier:
    def warm_up(self) -> None:
        pass

    async def verify(self, data: bytes, row: InvoiceRow, fmt: FileFormat) -> None:
        if data == CUT:
            raise errors.FileCorrupt("cut short")
        if data == OTHER:
            raise errors.ContentMismatch("number: listing 1, file 2")


class Renewals:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


def run(tmp_path: Path, answers: dict[str, list[bytes | Exception]], feed: TaskFeed | None = None) -> tuple[list[Outcome], Renewals]:
    archive, outcomes, renewals = Archive(tmp_path), list[Outcome](), Renewals()
    settings = Settings(out=tmp_path, concurrency=2, not_ready_rounds=0, corrupt_retries=3)
    downloader = Downloader(ScriptedFiles(answers), BytesVerifier(), archive, settings, outcomes.append, renewals)  # type: ignore[arg-type]
    run_async(downloader.run(feed or TaskFeed(tasks(archive, answers), closed=True)))
    return outcomes, renewals


def tasks(archive: Archive, numbers: Iterable[str]) -> list[DownloadTask]:
    rows = [make_row(number) for number in numbers]
    return [
        DownloadTask(company_id=COMPANY, row=row, fmt=FileFormat.pdf, target=archive.path_for(row, FileFormat.pdf, COMPANY))
        for row in rows
    ]


def test_a_lost_session_between_two_corrupt_downloads_costs_the_file_no_chance(tmp_path: Path) -> None:
    lost = errors.SessionLost("kicked out")
    outcomes, renewals = run(tmp_path, {"1": [CUT, lost, CUT, GOOD]})
    assert [(outcome.state, outcome.attempts) for outcome in outcomes] == [(State.verified, 4)]
    assert renewals.count == 1
    assert outcomes[0].path is not None and outcomes[0].path.read_bytes() == GOOD


def test_a_file_corrupt_on_every_chance_fails_after_corrupt_retries_downloads(tmp_path: Path) -> None:
    outcomes, _ = run(tmp_path, {"1": [CUT]})
    assert [(outcome.state, outcome.attempts) for outcome in outcomes] == [(State.failed, 3)]
    assert not list(tmp_path.rglob("*.pdf"))


def test_another_invoice_on_the_last_chance_is_quarantined_not_archived(tmp_path: Path) -> None:
    outcomes, _ = run(tmp_path, {"1": [CUT, OTHER]})
    assert [(outcome.state, outcome.attempts) for outcome in outcomes] == [(State.quarantined, 3)]
    assert outcomes[0].path is not None and "_quarantine" in outcomes[0].path.parts


@pytest.mark.parametrize("workers_first", [True, False])
def test_tasks_fed_while_downloading_are_all_done_once(tmp_path: Path, workers_first: bool) -> None:
    archive, numbers = Archive(tmp_path), [str(n) for n in range(1, 8)]

    async def feed_later(feed: TaskFeed) -> None:
        for task in tasks(archive, numbers):
            feed.add([task])
            await asyncio.sleep(0)
        feed.close()

    outcomes: list[Outcome] = []
    settings = Settings(out=tmp_path, concurrency=3, not_ready_rounds=0)
    files = ScriptedFiles({number: [GOOD] for number in numbers})
    downloader = Downloader(files, BytesVerifier(), archive, settings, outcomes.append, Renewals())  # type: ignore[arg-type]

    async def both() -> None:
        feed = TaskFeed()
        work = [downloader.run(feed), feed_later(feed)]
        await asyncio.gather(*(work if workers_first else reversed(work)))

    run_async(both())
    assert sorted(outcome.task.row.number for outcome in outcomes) == numbers
    assert {outcome.state for outcome in outcomes} == {State.verified} and files.requests == len(numbers)
