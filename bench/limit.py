"""The limit: the fastest a correct tool could fetch and verify the same files on this machine.

A plain async HTTP client (httpx) with a session on a plain mock of the same month (a realistic one refuses any
client outside the page) and the agent's concurrency downloads every
file the agent verified, and agent.verify.check_pdf (with the agent's check_qr) checks each one in a process
pool of one worker per core, started before the clock starts. Two shapes are timed and the faster is the limit:
`sequential` (all downloads, then all checks in batches) and `pipelined` (each file checked as it arrives),
each as often as the agent is run, keeping its fastest time (other programs only ever slow a run down).
Nothing is written to disk: the limit leaves out the archive and ledger work the agent must do.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx

from agent.errors import FileRejected
from agent.portal import PortalProfile
from agent.records import FileFormat, InvoiceRow
from agent.verify import check_pdf
from bench.cpu import machine_busy_s, tree_cpu_s

BATCH = 32  # files per pool task in the sequential shape: fewer round trips to the workers


def verify_batch(files: list[tuple[bytes, InvoiceRow]], check_qr: bool) -> list[str]:
    """Runs in a worker: the error of each file that fails the check (none, when the tool is correct)."""
    errors = []
    for data, row in files:
        try:
            check_pdf(data, row, check_qr=check_qr)
        except FileRejected as exc:
            errors.append(f"{row.number}: {exc}")
    return errors


class Limit:
    """Times both shapes over the same rows, same cookie, same concurrency."""

    def __init__(
        self, portal_url: str, cookies: httpx.Cookies, concurrency: int, check_qr: bool, portal_cpu: Callable[[], float]
    ) -> None:
        self.profile, self.portal_cpu = PortalProfile(portal_url=portal_url), portal_cpu
        self.cookies, self.concurrency, self.check_qr = cookies, concurrency, check_qr
        self.workers = os.cpu_count() or 1

    def measure(self, rows: list[InvoiceRow], repeat: int) -> dict[str, Any]:
        """Each shape timed `repeat` times, alternately; the fastest time of each is kept."""
        context = multiprocessing.get_context("forkserver")
        times: dict[str, list[dict[str, Any]]] = {"sequential": [], "pipelined": []}
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            list(pool.map(verify_batch, [[]] * self.workers, [self.check_qr] * self.workers))  # start every worker
            for _ in range(repeat):
                times["sequential"].append(asyncio.run(self._timed(self._sequential, pool, rows)))
                times["pipelined"].append(asyncio.run(self._timed(self._pipelined, pool, rows)))
        shapes = {
            name: {**min(runs, key=lambda run: run["wall_s"]), "runs_s": [run["wall_s"] for run in runs]}
            for name, runs in times.items()
        }
        best = min(shapes, key=lambda name: shapes[name]["wall_s"])
        return {"workers": self.workers, "concurrency": self.concurrency, "best": best, **shapes}

    async def _timed(
        self, shape: Callable[[httpx.AsyncClient, ProcessPoolExecutor, list[InvoiceRow]], Awaitable[list[str]]],
        pool: ProcessPoolExecutor, rows: list[InvoiceRow],
    ) -> dict[str, Any]:  # fmt: skip
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(cookies=self.cookies, limits=limits, timeout=60, trust_env=False) as client:
            cpu_before = (machine_busy_s(), tree_cpu_s(os.getpid()), self.portal_cpu())
            started = time.perf_counter()
            failures = await shape(client, pool, rows)
            wall = time.perf_counter() - started
            machine, ours, portal = (after - before for after, before in zip(
                (machine_busy_s(), tree_cpu_s(os.getpid()), self.portal_cpu()), cpu_before, strict=True
            ))  # fmt: skip
        return {
            "wall_s": round(wall, 3), "files": len(rows), "failures": len(failures), "first_failures": failures[:3],
            "cpu_s": round(ours, 1), "foreign_cpu_s": round(machine - ours - portal, 1),
        }  # fmt: skip

    async def _fetch(self, client: httpx.AsyncClient, row: InvoiceRow) -> bytes:
        url = self.profile.file_url(row.number, row.issued_at.strftime("%Y%m%d%H%M%S"), FileFormat.pdf)
        response = await client.get(url)
        response.raise_for_status()
        return response.content

    async def _each(self, rows: list[InvoiceRow], work: Callable[[InvoiceRow], Awaitable[None]]) -> None:
        """`work` on every row, `concurrency` at a time."""
        queue = iter(rows)

        async def worker() -> None:
            for row in queue:
                await work(row)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def _sequential(self, client: httpx.AsyncClient, pool: ProcessPoolExecutor, rows: list[InvoiceRow]) -> list[str]:
        files: list[tuple[bytes, InvoiceRow]] = []

        async def download(row: InvoiceRow) -> None:
            files.append((await self._fetch(client, row), row))

        await self._each(rows, download)
        batches = [files[start : start + BATCH] for start in range(0, len(files), BATCH)]
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(*(loop.run_in_executor(pool, verify_batch, batch, self.check_qr) for batch in batches))
        return [error for errors in results for error in errors]

    async def _pipelined(self, client: httpx.AsyncClient, pool: ProcessPoolExecutor, rows: list[InvoiceRow]) -> list[str]:
        loop = asyncio.get_running_loop()
        checks: list[asyncio.Future[list[str]]] = []

        async def download(row: InvoiceRow) -> None:
            data = await self._fetch(client, row)
            checks.append(loop.run_in_executor(pool, verify_batch, [(data, row)], self.check_qr))

        await self._each(rows, download)
        return [error for errors in await asyncio.gather(*checks) for error in errors]
