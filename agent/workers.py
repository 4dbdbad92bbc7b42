"""Worker processes for the file checks, each under limits, so that one hostile or broken file costs only itself.

Each worker runs under an address-space limit (RLIMIT_AS, MEMORY_LIMIT: a real invoice's check needs about
110 MiB) and, for each file, a CPU-time limit (RLIMIT_CPU, CPU_SECONDS_PER_FILE: a real invoice takes 10-20 ms).
Past the memory limit a check fails with MemoryError, which becomes FileCorrupt, or the PDF reader aborts and
the worker dies; past the CPU limit the kernel ends the worker (SIGXCPU). A dead worker breaks the whole pool
(BrokenProcessPool for every file in it), so the pool is replaced, once for all, and each file that was in it
is checked again alone in a process of its own under the same limits: the file that killed the worker is
judged corrupt with the reason, the others get their normal verdicts, and the run goes on. Workers leave no core
file (RLIMIT_CORE 0).
"""

from __future__ import annotations

import asyncio
import math
import resource
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

from agent.errors import FileCorrupt

MiB = 1 << 20
MEMORY_LIMIT = 1024 * MiB  # address space of one worker
CPU_SECONDS_PER_FILE = 20
T = TypeVar("T")


def limit_worker(memory: int, then: Callable[[], None] | None = None) -> None:
    """A worker's initializer: its address space bounded, no core file; then the caller's own initializer."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _lower(resource.RLIMIT_AS, memory)
    if then is not None:
        then()


def _lower(which: int, soft: int) -> None:
    """Set a soft limit, never above the hard one (an unprivileged process cannot raise that)."""
    _, hard = resource.getrlimit(which)
    resource.setrlimit(which, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def run_bounded(cpu_seconds: int, function: Callable[..., T], *args: Any) -> T:
    """Runs in a worker: `function(*args)` with at most `cpu_seconds` more CPU time; out of memory is corrupt."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _lower(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds)
    try:
        return function(*args)
    except MemoryError:
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        raise FileCorrupt(f"the check needs more than the worker's {limit // MiB} MiB of memory") from None


class CheckPool:
    """A process pool for file checks with the limits above, replaced when a worker dies (see the module)."""

    def __init__(
        self,
        workers: int,
        context: BaseContext,
        initializer: Callable[[], None] | None = None,
        memory: int = MEMORY_LIMIT,
        cpu_seconds: int = CPU_SECONDS_PER_FILE,
    ) -> None:
        self.workers, self.context, self.initializer = workers, context, initializer
        self.memory, self.cpu_seconds = memory, cpu_seconds
        self._pool = self._new_pool()
        self._generation = 0  # bumped at each replacement, so that concurrent failures replace it once

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.context,
            initializer=limit_worker,
            initargs=(self.memory, self.initializer),
        )

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """As ProcessPoolExecutor.submit, with the CPU limit (used to start the workers ahead of time)."""
        return self._pool.submit(run_bounded, self.cpu_seconds, function, *args)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker; a worker that died under it or beside it never fails the caller."""
        generation = self._generation
        try:
            return await asyncio.wrap_future(self.submit(function, *args))
        except BrokenProcessPool:
            self._replace(generation)
        return await asyncio.to_thread(self._alone, function, args)

    def _replace(self, generation: int) -> None:
        if generation == self._generation:
            broken, self._pool = self._pool, self._new_pool()
            self._generation += 1
            broken.shutdown(wait=False, cancel_futures=True)

    def _alone(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        """The check again, in a process of its own: a worker death is now this file's doing."""
        receiving, sending = self.context.Pipe(duplex=False)
        process = self.context.Process(  # type: ignore[attr-defined]  # BaseContext's stubs lack Process
            target=_alone_main,
            args=(sending, self.memory, self.initializer, self.cpu_seconds, function, args),
        )
        process.start()
        sending.close()
        try:
            outcome, value = receiving.recv()
        except EOFError:  # it died before answering
            process.join()
            raise FileCorrupt(self._death_reason(process.exitcode)) from None
        finally:
            receiving.close()
        process.join()
        if outcome == "raised":
            raise value
        return value  # type: ignore[no-any-return]

    def _death_reason(self, exitcode: int | None) -> str:
        if exitcode == -signal.SIGXCPU:
            return f"the check took more than {self.cpu_seconds} s of CPU time; stopped"
        return f"the PDF reader crashed on this file, or it needs more than {self.memory // MiB} MiB ({_ending(exitcode)})"

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _ending(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit {exitcode}"
    try:
        return f"signal {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"signal {-exitcode}"


def _alone_main(
    answer: Connection,
    memory: int,
    initializer: Callable[[], None] | None,
    cpu_seconds: int,
    function: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    limit_worker(memory, initializer)
    try:
        answer.send(("returned", run_bounded(cpu_seconds, function, *args)))
    except Exception as exc:  # noqa: BLE001 - the caller re-raises it as it is
        answer.send(("raised", exc))
    finally:
        answer.close()
