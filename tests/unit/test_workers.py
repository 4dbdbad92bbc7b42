"""Check workers under limits: a file that eats memory or CPU, or kills its worker, is corrupt; the rest go on."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from agentkit import run_async
from hostilekit import flate_bomb_pdf, many_pages_pdf
from invoicekit import hand_made_invoice

from agent.errors import ContentMismatch, FileCorrupt
from agent.flows.download import Verifier
from agent.parsers.listing import parse_query_response
from agent.records import Direction, FileFormat, InvoiceRow
from agent.workers import CheckPool, MiB
from fixtures.data.render_pdf import render_pdf

SAMPLE = Path(__file__).parents[1] / "samples" / "real-sd" / "special-suwell-remark-payee.pdf"
MEMORY = 512 * MiB


def read_all_pages(data: bytes) -> int:
    """What the PDF reader does with a file when nothing bounds it first: every page's text."""
    with pdfium.PdfDocument(data) as pdf:
        return sum(len(pdf[index].get_textpage().get_text_range()) for index in range(len(pdf)))


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * MiB))


def spin() -> None:
    while True:
        pass


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def slow_echo(value: str) -> str:
    import time

    time.sleep(0.5)
    return value


def refuse() -> None:
    raise ContentMismatch("number: listing 1, file 2")


def own_limits() -> tuple[int, int]:
    return resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CORE)[0]


def peak_rss_kib() -> int:
    """The worker's own peak (VmHWM): ru_maxrss would carry pytest's, inherited across the forkserver's exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


@pytest.fixture
def pool() -> Iterator[CheckPool]:
    checks = CheckPool(2, multiprocessing.get_context("forkserver"), memory=MEMORY, cpu_seconds=1)
    yield checks
    checks.shutdown(wait=True, cancel_futures=True)


def run(pool: CheckPool, *calls: tuple[object, ...]) -> list[object]:
    async def all_of() -> list[object]:
        return await asyncio.gather(*(pool.run(*call) for call in calls), return_exceptions=True)  # type: ignore[arg-type]

    return run_async(all_of())


def test_workers_run_under_the_memory_limit_and_leave_no_core(pool: CheckPool) -> None:
    assert run(pool, (own_limits,)) == [(MEMORY, 0)]


def test_running_out_of_memory_is_corrupt_and_the_worker_lives_on(pool: CheckPool) -> None:
    outcome, after = run(pool, (allocate, 1024)), run(pool, (allocate, 16))
    assert isinstance(outcome[0], FileCorrupt) and str(outcome[0]) == (
        "the check needs more than the worker's 512 MiB of memory"
    )
    assert after == [16 * MiB]


def test_flate_bomb_read_without_bounds_is_corrupt_within_the_memory_limit(pool: CheckPool) -> None:
    """pdfium inflating 4 GiB of content in a worker: stopped at the worker's limit, judged corrupt."""
    outcome = run(pool, (read_all_pages, flate_bomb_pdf()))[0]
    assert isinstance(outcome, FileCorrupt), outcome
    assert str(outcome).startswith(
        "the PDF reader crashed on this file, or it needs more than 512 MiB (signal "
    )
    assert run(pool, (peak_rss_kib,))[0] < MEMORY // 1024  # type: ignore[operator]


def test_a_check_past_its_cpu_time_is_stopped_and_corrupt(pool: CheckPool) -> None:
    outcome = run(pool, (spin,))[0]
    assert isinstance(outcome, FileCorrupt)
    assert str(outcome) == "the check took more than 1 s of CPU time; stopped"


def test_a_dead_worker_costs_only_its_own_file(pool: CheckPool) -> None:
    """The pool breaks under every file in it; each is checked again alone: only the killer is corrupt."""
    outcomes = run(pool, (slow_echo, "first"), (die,), (slow_echo, "second"), (refuse,))
    assert outcomes[0] == "first" and outcomes[2] == "second"
    assert isinstance(outcomes[1], FileCorrupt) and "signal SIGKILL" in str(outcomes[1])
    assert isinstance(outcomes[3], ContentMismatch)  # a verdict raised alone comes back as it is
    sample = SAMPLE.read_bytes()
    assert run(pool, (slow_echo, "after"), (read_all_pages, sample)) == ["after", read_all_pages(sample)]


# --- the download's verifier: its pool is a CheckPool, files are held to the size limit ----------------------

WORKER_MEMORY_BOUND_KIB = 200 * 1024


def listed_row() -> InvoiceRow:
    body = {
        "Response": {
            "Data": {"PageNumber": 1, "PageSize": 20, "Total": 1, "List": [hand_made_invoice().listing_row()]}
        }
    }
    return parse_query_response(json.dumps(body), Direction.issued).rows[0]


def test_verifier_judges_hostile_files_corrupt_within_a_memory_bound_and_goes_on() -> None:
    """Unbounded, the flate bomb took a worker to 5.3 GB; now each file is corrupt with its reason, the worker
    stays small, and the next good file verifies."""
    row, good = listed_row(), render_pdf(hand_made_invoice())

    async def verdicts() -> tuple[list[str], int]:
        verifier = Verifier(1, True, max_file_bytes=8 << 20)
        try:
            reasons = []
            for data in (flate_bomb_pdf(), many_pages_pdf(), b"%PDF-1.7\n" + b" " * (9 << 20)):
                with pytest.raises(FileCorrupt) as raised:
                    await verifier.verify(data, row, FileFormat.pdf)
                reasons.append(str(raised.value))
            await verifier.verify(good, row, FileFormat.pdf)
            return reasons, await verifier._pool.run(peak_rss_kib)
        finally:
            verifier.close()

    reasons, peak = run_async(verdicts())
    assert reasons == [
        "content inflates to more than 64 MiB (a flate bomb?)",
        "10000 pages: more than an invoice file has (at most 100)",
        "9.0 MB: larger than an invoice file may be (8 MB)",
    ]
    assert peak < WORKER_MEMORY_BOUND_KIB
