"""What fetching files inside the page costs: the same month's PDFs fetched by `window.fetch` run in a page of
the session (agent.flows.download.PageFiles, what the agent does) and by the browser context's request client
outside the page (what it did before issue 9), on the same mock, session and concurrency, alternately.

    python -m bench.page_fetch --invoices 500 [--concurrency 8] [--repeat 2] [--realistic]

Fetch only (no verification): files/s of each, best of `repeat`. With --realistic the mock signs and checks
every request, so the request client outside the page is refused (its count of PDFs says so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext

from agent import errors
from agent.browser import BrowserSession, find_chromium
from agent.config import load_settings
from agent.flows.download import PageFiles
from agent.job import Job, JobRequest, job_args, profile_for
from agent.parsers.listing import parse_query_response
from agent.records import Direction, FileFormat, InvoiceRow
from agent.retry import Gate
from bench.mock import MockPortalProcess

MONTH = "2025-10"


def rows_of(portal_url: str, company: str) -> list[InvoiceRow]:
    """The month's invoices that have a file, as listing rows (from the mock's truth)."""
    import httpx

    rows: list[InvoiceRow] = []
    for direction in Direction:
        params = {"month": MONTH, "direction": direction.value, "company": company}
        truth = httpx.get(f"{portal_url}/__mock__/truth", params=params, timeout=3600, trust_env=False).json()
        listed = [invoice for invoice in truth["invoices"] if invoice["has_file"]]
        body = json.dumps({"Response": {"Data": {"PageNumber": 1, "PageSize": 0, "Total": 0, "List": listed}}})
        rows += parse_query_response(body, direction).rows
    return rows


async def fetch_all(fetch: Callable[[InvoiceRow], Awaitable[bytes | None]], rows: list[InvoiceRow], concurrency: int) -> dict[str, Any]:
    queue: asyncio.Queue[InvoiceRow] = asyncio.Queue()
    for row in rows:
        queue.put_nowait(row)
    pdfs = 0

    async def worker() -> None:
        nonlocal pdfs
        while not queue.empty():
            body = await fetch(queue.get_nowait())
            pdfs += bool(body and body.startswith(b"%PDF-"))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return {"files": len(rows), "pdfs": pdfs, "wall_s": round(seconds, 3), "files_per_s": round(len(rows) / seconds, 1)}


def outside_the_page(context: BrowserContext, url_of: Callable[[InvoiceRow], str], timeout: float) -> Callable[[InvoiceRow], Awaitable[bytes | None]]:
    async def fetch(row: InvoiceRow) -> bytes | None:
        response = await context.request.get(url_of(row), timeout=timeout * 1000, max_redirects=0, fail_on_status_code=False)
        body = await response.body()
        await response.dispose()
        return body

    return fetch


def inside_the_page(files: PageFiles) -> Callable[[InvoiceRow], Awaitable[bytes | None]]:
    async def fetch(row: InvoiceRow) -> bytes | None:
        try:
            return await files.fetch(row, FileFormat.pdf)
        except errors.FapiaoError:
            return None

    return fetch


async def measure(settings: Any, rows: list[InvoiceRow], repeat: int) -> dict[str, Any]:
    profile = profile_for(settings)
    url_of = lambda row: profile.file_url(row.number, row.issued_at.strftime("%Y%m%d%H%M%S"), FileFormat.pdf)
    results: dict[str, list[dict[str, Any]]] = {"inside the page (window.fetch)": [], "outside (context.request)": []}
    async with BrowserSession(find_chromium(), settings.state_dir) as browser:
        context = await browser.new_context("bench")
        files = PageFiles(context, profile, settings, Gate(0))
        await files.page.current()  # the page is opened once, as in a run
        for _ in range(repeat):
            results["inside the page (window.fetch)"].append(await fetch_all(inside_the_page(files), rows, settings.concurrency))
            results["outside (context.request)"].append(await fetch_all(outside_the_page(context, url_of, settings.timeout), rows, settings.concurrency))
        await context.close()
    return {name: max(runs, key=lambda run: run["files_per_s"]) for name, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=500, help="invoices in the month, both directions together")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--realistic", action="store_true", help="the mock signs and checks requests (realistic mode)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        with MockPortalProcess(args.invoices, workdir, env=dict(os.environ), realistic=args.realistic) as mock:
            account = mock.account()
            mock.warm(MONTH, account.company_id)
            settings = load_settings(
                None, portal_url=mock.url, out=workdir / "archive", state_dir=workdir / "state", rate_limit=0.0, pause=0.0,
                pause_jitter=0.0, concurrency=args.concurrency, retries=1,
            ).model_copy(update={"accounts": {"bench": account}})
            request = JobRequest(accounts=["bench"], date_from=datetime(2025, 10, 1).date(), date_to=datetime(2025, 10, 31).date(), login_only=True)
            asyncio.run(Job(settings, request).run(job_args(request, settings)))
            rows = rows_of(mock.url, account.company_id)
            result = asyncio.run(measure(settings, rows, args.repeat))
    print(json.dumps({"invoices": args.invoices, "concurrency": args.concurrency, "realistic": args.realistic, **result}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
