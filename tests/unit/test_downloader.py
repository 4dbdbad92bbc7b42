"""agent.flows.download.Downloader on scripted portal answers: chances per file, session renewal, the task feed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from agentkit import run_async
from rowkit import COMPANY, make_row

from agent import errors
from agent.archive import Archive
from agent.config import Settings
from agent.flows.download import Downloader, DownloadTask, Outcome, State, TaskFeed
from agent.flows.session import SharedSession
from agent.records import FileFormat, InvoiceRow

GOOD, CUT, OTHER = b"%PDF- good", b"%PDF- cut", b"%PDF- another invoice"


class LogIns:
    """The account's log-in, counted; `done` is set once one has happened."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()

    async def __call__(self) -> None:
        self.count += 1
        await asyncio.sleep(0)
        self.done.set()


class LostLate(Exception):
    """An answer that comes back only after someone logged in again: a request sent on the old session."""


class ScriptedFiles:
    """The portal's answers to each invoice's downloads, in order: bytes or an exception."""

    def __init__(self, answers: dict[str, list[bytes | Exception]], log_ins: LogIns | None = None) -> None:
        self.answers = {number: list(script) for number, script in answers.items()}
        self.log_ins = log_ins
        self.requests = 0

    async def fetch(self, row: InvoiceRow, fmt: FileFormat) -> bytes:
        self.requests += 1
        script = self.answers[row.number]
        answer = script.pop(0) if len(script) > 1 else script[0]  # the last answer repeats
        if isinstance(answer, LostLate) and self.log_ins is not None:
            await self.log_ins.done.wait()
            raise errors.SessionLost("sent on the old session")
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


def downloader(
    tmp_path: Path, files: ScriptedFiles, log_ins: LogIns, on_outcome: Callable[[Outcome], None], concurrency: int = 2
) -> Downloader:
    settings = Settings(out=tmp_path, concurrency=concurrency, not_ready_rounds=0, corrupt_retries=3)
    session = SharedSession(log_ins, most_renewals=2)
    return Downloader(files, BytesVerifier(), Archive(tmp_path), settings, on_outcome, session)  # type: ignore[arg-type]


def run(tmp_path: Path, answers: dict[str, list[bytes | Exception]], feed: TaskFeed | None = None) -> tuple[list[Outcome], LogIns]:
    outcomes, log_ins = list[Outcome](), LogIns()
    files = ScriptedFiles(answers, log_ins)
    run_async(downloader(tmp_path, files, log_ins, outcomes.append).run(feed or TaskFeed(tasks(Archive(tmp_path), answers), closed=True)))
    return outcomes, log_ins


def tasks(archive: Archive, numbers: Iterable[str]) -> list[DownloadTask]:
    rows = [make_row(number) for number in numbers]
    return [
        DownloadTask(company_id=COMPANY, row=row, fmt=FileFormat.pdf, target=archive.path_for(row, FileFormat.pdf, COMPANY))
        for row in rows
    ]


def test_a_lost_session_between_two_corrupt_downloads_costs_the_file_no_chance(tmp_path: Path) -> None:
    lost = errors.SessionLost("kicked out")
    outcomes, log_ins = run(tmp_path, {"1": [CUT, lost, CUT, GOOD]})
    assert [(outcome.state, outcome.attempts) for outcome in outcomes] == [(State.verified, 4)]
    assert log_ins.count == 1
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
    files = ScriptedFiles({number: [GOOD] for number in numbers})
    pipeline = downloader(tmp_path, files, LogIns(), outcomes.append, concurrency=3)

    async def both() -> None:
        feed = TaskFeed()
        work = [pipeline.run(feed), feed_later(feed)]
        await asyncio.gather(*(work if workers_first else reversed(work)))

    run_async(both())
    assert sorted(outcome.task.row.number for outcome in outcomes) == numbers
    assert {outcome.state for outcome in outcomes} == {State.verified} and files.requests == len(numbers)


def test_a_request_sent_on_the_old_session_that_fails_after_the_renewal_does_not_log_in_again(tmp_path: Path) -> None:
    outcomes, log_ins = run(tmp_path, {"1": [LostLate(), GOOD], "2": [errors.SessionLost("kicked out"), GOOD]})
    assert sorted((outcome.task.row.number, outcome.state) for outcome in outcomes) == [("1", State.verified), ("2", State.verified)]
    assert log_ins.count == 1


def test_a_session_that_keeps_dying_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(errors.SessionLost, match="keeps dying"):
        run(tmp_path, {"1": [errors.SessionLost("kicked out")]})
