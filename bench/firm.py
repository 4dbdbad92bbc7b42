"""The firm's month against one big company: `python -m bench.firm [--companies 40] [--invoices 250] [--label firm]`.

Two runs of the same number of invoices, each a queue task run by one worker (agent.queue.FirmQueue, the
embedded queue) in this process, on the built-in mock portal (a process of its own, its files rendered before
anything is timed):
  firm    one person linked to `companies` companies of `invoices` invoices each (both directions together):
          one login, then a switch to each company in turn;
  single  one company of companies × invoices invoices (the mock's demo account).
Measured: each run's wall time (worker start to queue empty) and their ratio (issue 11's goal: firm / single
<= 1.3); the worker's peak memory (this process's RSS, and the RSS summed over its whole tree: Chromium,
Playwright's driver, verification workers) after the 4th company and after the last, sampled every 50 ms
(goal: last / 4th <= 1.1). Both runs must verify every file, or the benchmark stops.

Results: bench/results/<label>.json and .md (printed too). On a shared machine, compare runs whose load
average (recorded) was low; `--companies 40 --invoices 25` is a quick smoke run of the same shape.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import SecretStr

from agent.config import Person, Settings, load_settings
from agent.demo import demo_account
from agent.events import RunEvents
from agent.firm import PersonSummary, PersonTask, archive_person
from agent.human import HumanInputs
from agent.period import parse_month
from agent.queue import FirmQueue
from agent.records import RunSummary

MONTH = "2025-10"
SEED = 2025
CONCURRENCY = 8  # as bench.run: the mock is ours to load
SAMPLE_SECONDS = 0.05
MIB = 1024 * 1024
RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.firm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=40, help="companies of the firm's person (default 40)")
    parser.add_argument("--invoices", type=int, default=250, help="invoices per company, both directions (default 250)")
    parser.add_argument("--label", default="firm", help="results file name (default firm)")
    return parser.parse_args(argv)


@contextmanager
def mock_portal(workdir: Path, name: str, portal: dict[str, Any]) -> Iterator[str]:
    """`python -m agent mock-portal` on a scenario of these [portal] fields; yields its URL."""
    scenario = workdir / f"{name}.toml"
    fields = "\n".join(f"{key} = {json.dumps(value)}" for key, value in portal.items())
    scenario.write_text(f'name = "{name}"\n\n[portal]\n{fields}\nsms_resend_seconds = 0\n', encoding="utf-8")
    command = [sys.executable, "-m", "agent", "mock-portal", "--scenario", str(scenario), "--seed", str(SEED)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the mock portal did not start (said {url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def warm(url: str, companies: list[str]) -> int:
    """Render (or load from the mock's disk cache) every file of the month; the number of files."""
    files = 0
    with httpx.Client(base_url=url, timeout=3600, trust_env=False) as client:
        for company in companies:
            for direction in ("issued", "received"):
                params = {"month": MONTH, "direction": direction, "company": company}
                truth = client.get("/__mock__/truth", params=params).raise_for_status().json()
                files += sum(1 for invoice in truth["invoices"] if invoice["has_file"])
    return files


class Sampler(threading.Thread):
    """Peak RSS of this process and of its whole tree, every 50 ms; `mark()` keeps the peaks so far under a name."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peak_self = self.peak_tree = 0
        self.marks: dict[str, dict[str, float]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        own = self.me.memory_info().rss
        tree = own
        for child in self.me.children(recursive=True):
            try:
                tree += child.memory_info().rss
            except psutil.Error:
                continue
        self.peak_self, self.peak_tree = max(self.peak_self, own), max(self.peak_tree, tree)

    def mark(self, name: str) -> None:
        self.sample()
        self.marks[name] = {
            "peak_rss_mib": round(self.peak_self / MIB, 1), "peak_tree_rss_mib": round(self.peak_tree / MIB, 1),
            "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


class CompanyClock:
    """A run listener: each company's end, in seconds since the run started, with the memory peaks then."""

    def __init__(self, sampler: Sampler, started: float) -> None:
        self.sampler, self.t0, self.done = sampler, started, list[dict[str, Any]]()

    def company_finished(self, company: str, summary: RunSummary) -> None:
        number = len(self.done) + 1
        self.sampler.mark(f"company {number}")
        self.done.append({"company": company, "at_s": round(time.monotonic() - self.t0, 2),
                          "verified": summary.verified, **self.sampler.marks[f"company {number}"]})


def run_once(settings: Settings, person: str, sampler: Sampler) -> dict[str, Any]:
    """One task of `person` for the month, one worker until the queue is empty: wall time, companies, summary."""
    started = time.monotonic()
    clock = CompanyClock(sampler, started)
    summaries: list[PersonSummary] = []

    async def measured(settings: Settings, task: PersonTask, events: RunEvents, human: HumanInputs | None) -> PersonSummary:
        events.connect(clock)
        summary = await archive_person(settings, task, events, human)
        summaries.append(summary)
        return summary

    queue = FirmQueue(settings, measured)
    start, end = parse_month(MONTH)
    queue.enqueue(PersonTask(person=person, date_from=start, date_to=end))
    queue.work(workers=1, until_empty=True)
    queue.close()
    wall = time.monotonic() - started
    if not summaries or [o.outcome for o in queue.outcomes][-1:] != ["complete"]:
        raise RuntimeError(f"the {person} run did not end complete: {[o.model_dump() for o in queue.outcomes]}")
    return {"wall_s": round(wall, 2), "companies": clock.done, "totals": summaries[-1].totals.model_dump()}


def settings_for(root: Path, url: str, persons: dict[str, Person]) -> Settings:
    return load_settings(
        None, portal_url=url, out=root / "archive", state_dir=root / "state", rate_limit=0.0, pause=0.0,
        pause_jitter=0.0, concurrency=CONCURRENCY, not_ready_wait=0.5, persons=persons, queue_retries=0,
    )


def firm_run(workdir: Path, args: argparse.Namespace, sampler: Sampler) -> dict[str, Any]:
    portal = {"firm_persons": 1, "firm_companies": args.companies, "invoices_per_month": args.invoices // 2}
    with mock_portal(workdir, "bench-firm", portal) as url:
        person = httpx.get(f"{url}/__mock__/accounts", trust_env=False).json()["persons"][0]
        companies = [company["tax_id"] for company in person["companies"]]
        files = warm(url, companies)
        accountant = Person(login=person["mobile"], password=SecretStr(person["password"]),
                            sms=f"mock-outbox:{url}", companies=companies)
        result = run_once(settings_for(workdir / "firm", url, {"accountant": accountant}), "accountant", sampler)
    return {**result, "files": files}


def single_run(workdir: Path, args: argparse.Namespace, sampler: Sampler) -> dict[str, Any]:
    portal = {"invoices_per_month": args.companies * args.invoices // 2}
    with mock_portal(workdir, "bench-single", portal) as url:
        account = demo_account(url)
        files = warm(url, [account.company_id])
        result = run_once(settings_for(workdir / "single", url, {"company": Person.of_account(account)}), "company", sampler)
    return {**result, "files": files}


def report(args: argparse.Namespace, firm: dict[str, Any], single: dict[str, Any]) -> dict[str, Any]:
    ratio = firm["wall_s"] / single["wall_s"]
    companies = firm["companies"]
    fourth, last = companies[min(3, len(companies) - 1)], companies[-1]
    memory = {key: round(last[key] / fourth[key], 3) for key in ("peak_rss_mib", "peak_tree_rss_mib")}
    return {
        "companies": args.companies, "invoices_per_company": args.invoices, "month": MONTH,
        "firm": firm, "single": single, "wall_ratio": round(ratio, 3), "memory_ratio_last_vs_4th": memory,
        "goals": {"wall_ratio <= 1.3": ratio <= 1.3, "memory last/4th <= 1.1": memory["peak_rss_mib"] <= 1.1},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip(),
    }


def markdown(result: dict[str, Any]) -> str:
    firm, single = result["firm"], result["single"]
    fourth, last = firm["companies"][min(3, len(firm["companies"]) - 1)], firm["companies"][-1]
    return "\n".join([
        (f"# {result['companies']} companies of {result['invoices_per_company']} invoices against one company of "
        f"{result['companies'] * result['invoices_per_company']:,} (month {result['month']}, git {result['git']})"),
        "",
        "| run | files | verified | wall s | files/s |",
        "|---|---|---|---|---|",
        (f"| firm (1 login, {len(firm['companies'])} switches) | {firm['files']} | {firm['totals']['verified']} | "
        f"{firm['wall_s']} | {firm['files'] / firm['wall_s']:.1f} |"),
        (f"| single company | {single['files']} | {single['totals']['verified']} | {single['wall_s']} | "
        f"{single['files'] / single['wall_s']:.1f} |"),
        "",
        (f"wall time firm / single: **{result['wall_ratio']}** (goal <= 1.3: "
        f"{'met' if result['goals']['wall_ratio <= 1.3'] else 'not met'})"),
        "",
        "| worker peak RSS, MiB | after company 4 | after the last | last / 4th |",
        "|---|---|---|---|",
        f"| this process | {fourth['peak_rss_mib']} | {last['peak_rss_mib']} | {result['memory_ratio_last_vs_4th']['peak_rss_mib']} |",
        (f"| its whole tree | {fourth['peak_tree_rss_mib']} | {last['peak_tree_rss_mib']} | "
        f"{result['memory_ratio_last_vs_4th']['peak_tree_rss_mib']} |"),
        "",
        (f"goal last / 4th <= 1.1 (this process): {'met' if result['goals']['memory last/4th <= 1.1'] else 'not met'}; "
        f"load average before: {', '.join(f'{x:.1f}' for x in result['machine']['load_before'])} on {result['machine']['cpus']} cores"),
    ])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sampler = Sampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="fapiao-bench-firm-") as folder:
        workdir = Path(folder)
        firm = firm_run(workdir, args, sampler)
        single = single_run(workdir, args, sampler)
    sampler.stopped.set()
    result = report(args, firm, single)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.label}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = markdown(result)
    (RESULTS / f"{args.label}.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
