"""The agent as the user runs it: `python -m agent download` in a subprocess, timed, its memory sampled.

Peak memory is the RSS summed over the agent's whole process tree (Chromium and the verification workers
included), sampled every 50 ms, as is the CPU time the tree used. Phases come from the agent's -v log lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from agent.config import Account
from bench.cpu import machine_busy_s

SAMPLE_SECONDS = 0.05
RUN_TIMEOUT = 3600.0
MIB = 1024 * 1024


@dataclass
class AgentRun:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    portal_cpu_s: float  # used by the mock portal meanwhile
    foreign_cpu_s: float  # used by other programs meanwhile (bench.cpu)
    cpu_s_by_kind: dict[str, float]
    peak_rss_mib_by_kind: dict[str, float]  # each kind's own peak: they need not peak together
    exit_code: int
    summary: dict[str, Any]
    phases: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_config(path: Path, portal_url: str, account: Account, out: Path, concurrency: int) -> Path:
    """The agent's TOML config for the mock: its URL, its demo account, no politeness delay (no pause between
    requests, `concurrency` in flight: the polite defaults are for the real portal)."""
    password = account.password.get_secret_value() if account.password else ""
    text = "\n".join([
        f"portal_url = {json.dumps(portal_url)}",
        f"out = {json.dumps(str(out / 'archive'))}",
        f"state_dir = {json.dumps(str(out / 'state'))}",
        "rate_limit = 0.0",
        "pause = 0.0",
        "pause_jitter = 0.0",
        f"concurrency = {concurrency}",
        "",
        "[accounts.demo]",
        f"company_id = {json.dumps(account.company_id)}",
        f"login = {json.dumps(account.login)}",
        f"password = {json.dumps(password)}",
        f"sms = {json.dumps(account.sms)}",
        "",
    ])  # fmt: skip
    path.write_text(text, encoding="utf-8")
    return path


class TreeSampler(threading.Thread):
    """Polls a process and all its descendants: the largest RSS sum seen, and each process's CPU time.

    CPU is sampled too because the kernel's child accounting misses grandchildren that outlive the agent
    (the forkserver, Playwright's driver); a process's last 50 ms may go uncounted.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_rss = 0
        self.peak_rss_by_kind: dict[str, int] = {}
        self.cpu_by_pid: dict[int, tuple[str, float]] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self._sample()

    def stop(self) -> None:
        self._done.set()
        self.join()

    @property
    def cpu_s(self) -> float:
        return sum(seconds for _, seconds in self.cpu_by_pid.values())

    def cpu_by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for kind, seconds in self.cpu_by_pid.values():
            totals[kind] = totals.get(kind, 0.0) + seconds
        return totals

    def _kind(self, process: psutil.Process) -> str:
        """agent (the CLI's own process), verifier (forkserver and workers), driver (node), chromium."""
        if process.pid == self.root.pid:
            return "agent"
        name = process.name()  # comm: "python3", "node-MainThread", "chromium", "exe" (a Chromium helper)
        return "verifier" if name.startswith("python") else "driver" if name.startswith("node") else "chromium"

    def _sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return  # the agent has just exited
        rss_by_kind: dict[str, int] = {}
        for process in processes:
            try:
                with process.oneshot():
                    kind, rss, times = self._kind(process), process.memory_info().rss, process.cpu_times()
            except psutil.Error:
                continue  # a worker that ended between listing and reading
            rss_by_kind[kind] = rss_by_kind.get(kind, 0) + rss
            self.cpu_by_pid[process.pid] = (kind, times.user + times.system)
        self.peak_rss = max(self.peak_rss, sum(rss_by_kind.values()))
        for kind, rss in rss_by_kind.items():
            self.peak_rss_by_kind[kind] = max(self.peak_rss_by_kind.get(kind, 0), rss)


def run_agent(config: Path, month: str, log_path: Path, env: dict[str, str], portal_cpu: Callable[[], float]) -> AgentRun:
    command = [sys.executable, "-m", "agent", "download", "--config", str(config), "--month", month,
               "--json", "--no-interactive", "-v"]  # fmt: skip
    with log_path.open("w", encoding="utf-8") as log:
        cpu_before = (machine_busy_s(), portal_cpu())
        started_at, started = time.time(), time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        sampler = TreeSampler(process.pid)
        sampler.start()
        stdout, _ = process.communicate(timeout=RUN_TIMEOUT)
        wall = time.perf_counter() - started
        sampler.stop()
        machine, portal = (after - before for after, before in zip((machine_busy_s(), portal_cpu()), cpu_before, strict=True))
    summary = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    return AgentRun(
        wall_s=round(wall, 3),
        cpu_s=round(sampler.cpu_s, 1),
        peak_rss_mib=round(sampler.peak_rss / MIB, 1),
        portal_cpu_s=round(portal, 1),
        foreign_cpu_s=round(machine - sampler.cpu_s - portal, 1),
        cpu_s_by_kind={kind: round(seconds, 1) for kind, seconds in sampler.cpu_by_kind().items()},
        peak_rss_mib_by_kind={kind: round(rss / MIB, 1) for kind, rss in sampler.peak_rss_by_kind.items()},
        exit_code=process.returncode,
        summary=summary,
        phases=phases_from_log(log_path, started_at),
    )


def phases_from_log(log_path: Path, started_at: float) -> dict[str, float]:
    """Seconds after start at which the agent logged in and finished listing (from its -v lines)."""
    marks: dict[str, float] = {}
    for line in log_path.read_text(encoding="utf-8").splitlines():
        stamp = _log_time(line)
        if stamp is None:
            continue
        seconds = round(stamp - started_at, 2)
        if "launching Chromium" in line:
            marks["browser_launch_s"] = seconds
        elif " logged in: " in line:  # absent when the saved session was still good
            marks["logged_in_s"] = seconds
        elif " listed " in line:
            marks["listed_s"] = seconds  # the last one: every direction listed
    return marks


def _log_time(line: str) -> float | None:
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None
