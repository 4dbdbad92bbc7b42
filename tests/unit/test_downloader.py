"""agent.flows.download.Downloader on scripted portal answers: chances per file, session renewal, the task feed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from agentkit import run_async
from rowkit import COMPANY, make_row

from agent import errors
from agent.archive import Archive
from agent.config import Settings
from agent.flows.download import Downloader, DownloadTask, Outcome, State, TaskFeed
from agent.flows.session import SharedPage, SharedSession
from agent.records import FileFormat, InvoiceRow
from agent.retry import Gate

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


# -- the file page: reloaded once for all on an anti-bot answer


class FakePage:
    def __init__(self, number: int) -> None:
        self.number = number

    async def close(self) -> None:
        pass


class Opener:
    """Opens or reloads the file page, slowly enough that other tasks arrive meanwhile."""

    def __init__(self) -> None:
        self.opened = self.reloaded = 0

    async def __call__(self, page: object | None) -> object:
        await asyncio.sleep(0.01)
        if page is None:
            self.opened += 1
        else:
            self.reloaded += 1
        return FakePage(self.opened + self.reloaded)


def test_an_anti_bot_answer_to_many_tasks_reloads_the_page_once_while_they_wait() -> None:
    opener = Opener()
    shared = SharedPage(opener, most_reloads_in_a_row=3)

    async def task() -> int:
        _, seen = await shared.current()
        await asyncio.sleep(0)  # all tasks' requests in flight on the same page
        await shared.reload(seen, "412 challenge")  # each was refused
        _, now = await shared.current()
        return now

    generations = run_async(_gather(task() for _ in range(6)))
    assert (opener.opened, opener.reloaded) == (1, 1)
    assert generations == [2] * 6


def test_a_page_the_portal_keeps_refusing_stops_the_run() -> None:
    shared = SharedPage(Opener(), most_reloads_in_a_row=2)

    async def refused_again_and_again() -> None:
        for _ in range(3):
            _, seen = await shared.current()
            await shared.reload(seen, "Y: false")

    with pytest.raises(errors.AntiBot, match="keeps refusing"):
        run_async(refused_again_and_again())


def test_a_good_answer_forgives_the_reloads_before_it() -> None:
    shared = SharedPage(Opener(), most_reloads_in_a_row=1)

    async def refused_then_answered() -> int:
        for _ in range(4):
            _, seen = await shared.current()
            await shared.reload(seen, "412 challenge")
            shared.answered()
        return shared.reloads

    assert run_async(refused_then_answered()) == 4


def test_the_page_is_loaded_afresh_after_the_session_was_renewed() -> None:
    opener = Opener()
    shared = SharedPage(opener, most_reloads_in_a_row=1)

    async def across_a_renewal() -> list[int]:
        return [(await shared.current(session))[1] for session in (0, 0, 1, 1)]

    assert run_async(across_a_renewal()) == [1, 1, 2, 2]
    assert (opener.opened, opener.reloaded) == (1, 1)


async def _gather(work: Iterable[Any]) -> list[Any]:
    return list(await asyncio.gather(*work))


# -- the politeness gate


def test_the_gate_spaces_requests_by_a_random_pause_within_its_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    clock = iter(float(n) * 1e-6 for n in range(100))
    monkeypatch.setattr("agent.retry.asyncio.sleep", sleep)
    monkeypatch.setattr("agent.retry.time.monotonic", lambda: next(clock))
    gate = Gate.of(Settings(pause=0.5, pause_jitter=0.5))

    async def five_requests() -> None:
        for _ in range(5):
            await gate.wait()

    run_async(five_requests())
    assert len(slept) == 4  # the first request goes at once; the clock stands still, so each waits for its slot
    gaps = [later - earlier for earlier, later in itertools.pairwise([0.0, *slept])]
    assert all(0.5 - 1e-3 <= gap <= 1.0 + 1e-3 for gap in gaps), slept
    assert len(set(slept)) > 1  # jittered, not a fixed beat


def test_the_polite_defaults_are_one_call_at_a_time_half_a_second_to_a_second_apart() -> None:
    settings = Settings()
    assert (settings.concurrency, settings.pause, settings.pause + settings.pause_jitter) == (1, 0.5, 1.0)
