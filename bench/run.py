"""`python -m bench.run [--sizes 500,2000,10000] [--quick] [--repeat 1] [--label latest]`: the throughput benchmark.

For each size N (invoices in the month, both directions together), on a mock portal in its own process with
its file cache warmed: (a) the agent end to end as a subprocess, (d) the same command again on the finished
archive, (b) the limit (bench.limit), (c) one click per invoice (bench.clicks), (e) peak memory of (a) and (d).
With --repeat R, (a)+(d) and (b) run R times each and the fastest counts.
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
from agent.config import Account, Settings
from agent.ledger import EntryState, Ledger
from agent.records import Direction, FileFormat, InvoiceRow
from bench.agent_run import AgentRun, run_agent, write_config
from bench.clicks import click_baseline
from bench.limit import Limit
from bench.mock import MockPortalProcess
from bench.report import derived, machine_facts, write_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MONTH = "2025-10"
BENCH_CONCURRENCY = 8  # the mock is ours to load: the pace the agent ran at before the polite defaults


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="comma-separated invoice counts (default 500,2000,10000; --quick: 500)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N = 500 and 10 clicks")
    parser.add_argument("--clicks", type=int, help="invoices clicked through the dialog (default 50; --quick: 10)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of the agent and of the limit per size; the fastest counts (for a busy machine)")  # fmt: skip
    parser.add_argument("--label", default="latest", help="results file name: bench/results/<label>.{json,md,png}")
    parser.add_argument("--concurrency", type=int, default=BENCH_CONCURRENCY,
                        help=f"downloads in flight, for the agent and the limit alike (default {BENCH_CONCURRENCY}; "
                             "the agent's own default, 1, is the polite pace for the real portal)")  # fmt: skip
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
    """The agent, its rerun and the clicks on the realistic mock (the page signs every request, as the real
    portal's does); the limit on a plain mock of the same month, since a client outside the page is refused
    by a realistic one."""
    workdir = Path(tempfile.mkdtemp(prefix=f"fapiao-bench-{invoices}-"))
    env, load_before = child_env(), os.getloadavg()[0]
    with MockPortalProcess(invoices, workdir, env, realistic=True) as mock:
        account = mock.account()
        say(f"N={invoices}: realistic mock portal at {mock.url}; warming its files")
        counts = mock.warm(MONTH, account.company_id)
        runs = [_agent_and_rerun(mock, account, counts["files"], workdir / f"run-{n}", args) for n in range(args.repeat)]
        agent, rerun = min(runs, key=lambda run: run[0].wall_s)[0], min(runs, key=lambda run: run[1].wall_s)[1]
        last = workdir / f"run-{args.repeat - 1}"  # its session is the one still live on the portal
        rows = month_rows(last / "archive", account.company_id)
        say(f"N={invoices}: {args.clicks} clicks")
        received = {row.number for row in rows if row.direction is Direction.received}
        (workdir / "clicks").mkdir()
        clicks = asyncio.run(
            click_baseline(mock.url, last / "state", parse_month(MONTH), received, args.clicks, workdir / "clicks")
        )
    limit = _limit_on_plain(invoices, rows, workdir, env, args)
    machine["chromium"] = clicks.pop("chromium")
    shutil.rmtree(workdir)
    size = {
        "invoices": counts["invoices"], "files": counts["files"], "load_before": load_before,
        "agent": {**agent.as_dict(), "runs_s": [run[0].wall_s for run in runs]},
        "rerun": {**rerun.as_dict(), "runs_s": [run[1].wall_s for run in runs]},
        "limit": limit, "clicks": clicks,
    }  # fmt: skip
    return {**size, "derived": derived(size)}


def _limit_on_plain(
    invoices: int, rows: list[InvoiceRow], workdir: Path, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    (workdir / "plain").mkdir()
    with MockPortalProcess(invoices, workdir / "plain", env, realistic=False) as plain:
        plain.warm(MONTH, plain.account().company_id)
        cookies = plain.http_session(plain.account())
        check_qr = Settings.model_fields["verify_qr"].default
        limit = Limit(plain.url, cookies, args.concurrency, check_qr, plain.cpu_s).measure(rows, args.repeat)
    say(f"N={invoices}: limit on the plain mock {limit[limit['best']]['wall_s']:.1f} s")
    return limit


def _agent_and_rerun(
    mock: MockPortalProcess, account: Account, files: int, rundir: Path, args: argparse.Namespace
) -> tuple[AgentRun, AgentRun]:
    """One end-to-end run from nothing (new archive, new login), then the same command on its archive."""
    rundir.mkdir()
    config = write_config(rundir / "agent.toml", mock.url, account, rundir, args.concurrency)
    say(f"N={mock.invoices}: the agent, end to end ({files} files)")
    agent = run_agent(config, MONTH, rundir / "agent.log", child_env(), mock.cpu_s)
    _check_complete(agent.summary, files, rundir)
    say(f"N={mock.invoices}: agent {agent.wall_s:.1f} s {agent.phases} (others' CPU {agent.foreign_cpu_s:.0f} s); the rerun")
    rerun = run_agent(config, MONTH, rundir / "rerun.log", child_env(), mock.cpu_s)
    say(f"N={mock.invoices}: rerun {rerun.wall_s:.2f} s")
    return agent, rerun


def _check_complete(summary: dict[str, Any], files: int, workdir: Path) -> None:
    """A fast run that missed files measures nothing: stop, keeping the logs."""
    if summary.get("verified") != files or summary.get("failed"):
        raise SystemExit(f"the agent did not verify all {files} files ({summary}); logs in {workdir}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "label": args.label, "started": datetime.now().isoformat(timespec="seconds"), "month": MONTH,
        "concurrency": args.concurrency, "clicks_timed": args.clicks, "repeat": args.repeat, "machine": machine_facts(REPO), "sizes": [],
    }  # fmt: skip
    for invoices in args.sizes:
        results["sizes"].append(measure_size(invoices, args, results["machine"]))
    print(write_results(results, RESULTS), end="")


if __name__ == "__main__":
    main()
