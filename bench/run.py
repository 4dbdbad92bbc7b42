"""`python -m bench.run [--sizes 500,2000,10000] [--quick] [--label latest]`: the bulk-throughput benchmark.

For each size N (invoices in the month, both directions together), on a mock portal in its own process with
its file cache warmed: (a) the agent end to end as a subprocess, (d) the same command again on the finished
archive, (b) the limit (bench.limit), (c) one click per invoice (bench.clicks), (e) peak memory of (a) and (d).
Results go to bench/results/<label>.json, .md and .png; the table is printed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.cli import parse_month
from agent.config import Settings
from agent.ledger import EntryState, Ledger
from agent.records import Direction, FileFormat, InvoiceRow
from bench.agent_run import run_agent, write_config
from bench.clicks import click_baseline
from bench.limit import Limit, session_cookies
from bench.mock import MockPortalProcess
from bench.report import derived, machine_facts, write_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MONTH = "2025-10"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="comma-separated invoice counts (default 500,2000,10000; --quick: 500)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N = 500 and 10 clicks")
    parser.add_argument("--clicks", type=int, help="invoices clicked through the dialog (default 50; --quick: 10)")
    parser.add_argument("--label", default="latest", help="results file name: bench/results/<label>.{json,md,png}")
    parser.add_argument("--concurrency", type=int, default=Settings.model_fields["concurrency"].default,
                        help="downloads in flight, for the agent and the limit alike (default: the agent's)")  # fmt: skip
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in (args.sizes or ("500" if args.quick else "500,2000,10000")).split(",")]
    args.clicks = args.clicks or (10 if args.quick else 50)
    return args


def child_env() -> dict[str, str]:
    """The subprocesses import agent and fixtures from this checkout."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def month_rows(archive: Path, company_id: str) -> list[InvoiceRow]:
    """The rows of every PDF the agent verified: the files the limit fetches again."""
    with Ledger.open(archive) as ledger:
        return [
            entry.row for entry in ledger.entries(company_id, MONTH)
            if entry.state is EntryState.verified and entry.format is FileFormat.pdf
        ]  # fmt: skip


def measure_size(invoices: int, args: argparse.Namespace, machine: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"fapiao-bench-{invoices}-"))
    env, load_before = child_env(), os.getloadavg()[0]
    with MockPortalProcess(invoices, workdir, env) as mock:
        account = mock.account()
        say(f"N={invoices}: mock portal at {mock.url}; warming its files")
        counts = mock.warm(MONTH, account.company_id)
        config = write_config(workdir / "agent.toml", mock.url, account, workdir, args.concurrency)
        say(f"N={invoices}: the agent, end to end ({counts['files']} files)")
        agent = run_agent(config, MONTH, workdir / "agent.log", env, mock.cpu_s)
        _check_complete(agent.summary, counts["files"], workdir)
        say(f"N={invoices}: agent {agent.wall_s:.1f} s; the rerun")
        rerun = run_agent(config, MONTH, workdir / "rerun.log", env, mock.cpu_s)
        rows = month_rows(workdir / "archive", account.company_id)
        say(f"N={invoices}: rerun {rerun.wall_s:.2f} s; the limit")
        check_qr = Settings.model_fields["verify_qr"].default
        cookies = session_cookies(workdir / "state" / "sessions" / "demo.json")
        limit = Limit(mock.url, cookies, args.concurrency, check_qr, mock.cpu_s)
        limit_result = limit.measure(rows)
        say(f"N={invoices}: limit {limit_result[limit_result['best']]['wall_s']:.1f} s; {args.clicks} clicks")
        received = {row.number for row in rows if row.direction is Direction.received}
        (workdir / "clicks").mkdir()
        clicks = asyncio.run(
            click_baseline(mock.url, workdir / "state", parse_month(MONTH), received, args.clicks, workdir / "clicks")
        )
    machine["chromium"] = clicks.pop("chromium")
    shutil.rmtree(workdir)
    size = {
        "invoices": counts["invoices"], "files": counts["files"], "load_before": load_before,
        "agent": agent.as_dict(), "rerun": rerun.as_dict(), "limit": limit_result, "clicks": clicks,
    }  # fmt: skip
    return {**size, "derived": derived(size)}


def _check_complete(summary: dict[str, Any], files: int, workdir: Path) -> None:
    """A fast run that missed files measures nothing: stop, keeping the logs."""
    if summary.get("verified") != files or summary.get("failed"):
        raise SystemExit(f"the agent did not verify all {files} files ({summary}); logs in {workdir}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "label": args.label, "started": datetime.now().isoformat(timespec="seconds"), "month": MONTH,
        "concurrency": args.concurrency, "clicks_timed": args.clicks, "machine": machine_facts(REPO), "sizes": [],
    }  # fmt: skip
    for invoices in args.sizes:
        results["sizes"].append(measure_size(invoices, args, results["machine"]))
    print(write_results(results, RESULTS), end="")


if __name__ == "__main__":
    main()
