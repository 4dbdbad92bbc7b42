"""Ctrl-C and SIGTERM end a run cleanly: the job is cancelled, not killed.

The first SIGINT or SIGTERM cancels the job's task, so every `finally` and `async with` on the way out runs:
files being written are finished and recorded, the run's ledger row is closed, the manifests written, the
verification workers shut down and the browser closed. Then `Interrupted(signum)` is raised, which the CLI
reports in one line with exit 128 + signum (130, 143). A second signal cancels again, for a clean-up that hangs.
Only the main thread can receive signals: elsewhere (tests run jobs on threads of their own) it is asyncio.run.
After a signal no thread is waited for (a prompt may be blocked on the terminal): the CLI ends the process with
os._exit once it has said so (cli.stop), when everything the run writes is already on disk.

A Ctrl-C at a terminal reaches every process of the foreground group, Chromium and the verification workers
included: Chromium may be gone before the clean-up closes it, so after a signal any error on the way out is
taken for the interruption it is.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from agent.errors import Interrupted

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_until_signal(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, turning the first SIGINT/SIGTERM into a cancellation, then Interrupted."""
    received: list[int] = []

    async def main() -> T:
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert task is not None  # main() runs as the loop's task

        def on_signal(signum: int) -> None:
            log.info("%s received: stopping after the files in hand are recorded", signal.Signals(signum).name)
            received.append(signum)
            task.cancel()

        handled = STOP_SIGNALS if threading.current_thread() is threading.main_thread() else ()  # tests' threads
        for signum in handled:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            return await work
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())  # a job that finished before a signal stopped it ends as it ended
    except BaseException as exc:
        if received:
            raise Interrupted(received[0]) from exc
        raise
    finally:
        _close(loop, wait_for_threads=not received)


def _close(loop: asyncio.AbstractEventLoop, wait_for_threads: bool) -> None:
    """What asyncio.run does at the end, except that after a signal it does not wait for threads: one may be
    blocked reading the terminal (an SMS code prompt) and would hold the stop until Enter is pressed."""
    try:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        if wait_for_threads:
            loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
