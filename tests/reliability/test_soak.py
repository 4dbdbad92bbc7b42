"""Soak: 10,000 invoice files with about 10 % of file requests faulty; nothing is lost and memory stays flat.
Out of the default run (`-m soak`); its figures go to docs/reliability.md."""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass

import psutil
import pytest
from agentkit import MONTH, SettingsFactory
from reliakit import QUICK_SMS, REPORT, SOAK_END, SOAK_START, audit, cli_command, cli_env, replace_section

from agent.errors import EXIT_OK
from agent.ledger import EntryState
from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import Scenario
from fixtures.pytest_plugin import MockPortal

PER_MONTH = 5000  # per direction: 10,000 files
SAMPLE_EVERY = 2.0  # seconds between two memory samples
FAULTS = [  # about 10 % of file requests, all transient: the run must get every file in the end
    FaultSpec(kind="server_error", status=502, rate=0.035),
    FaultSpec(kind="drop_connection", rate=0.025),
    FaultSpec(kind="truncated_pdf", rate=0.02),
    FaultSpec(kind="not_ready", share=0.01, first_requests=1),
    FaultSpec(kind="slow", rate=0.01, delay=0.5),
    FaultSpec(kind="rate_limit", rate=0.005, retry_after=1),
    FaultSpec(kind="server_error", target="query", rate=0.05),
]
SOAK = Scenario(name="soak", faults=FAULTS)


@dataclass(frozen=True)
class Sample:
    files_out: int  # downloads the portal completed so far
    memory: int  # bytes (PSS), the agent and every process it started


def tree_memory(process: psutil.Process) -> int:
    """Proportional set size of the agent and every process it started (Chromium, verifiers): pages they share
    are counted once, unlike RSS."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def sample_until_done(portal: MockPortal, process: subprocess.Popen[bytes]) -> list[Sample]:
    agent = psutil.Process(process.pid)
    samples = []
    while process.poll() is None:
        samples.append(Sample(portal.counters()["downloads_total"], tree_memory(agent)))
        time.sleep(SAMPLE_EVERY)
    return samples


def memory_between(samples: list[Sample], low: float, high: float, total: int) -> list[int]:
    return [s.memory for s in samples if low * total <= s.files_out < high * total]


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


@pytest.mark.soak
@pytest.mark.mock_portal(SOAK, invoices_per_month=PER_MONTH, **QUICK_SMS)
def test_ten_thousand_files_with_ten_percent_faults_lose_nothing_and_memory_stays_flat(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    env = cli_env(mock_portal, settings, FAPIAO_CONCURRENCY="8", FAPIAO_WORKERS="0", FAPIAO_CORRUPT_RETRIES="5")
    started = time.monotonic()
    process = subprocess.Popen(cli_command("download", "--month", MONTH), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    samples = sample_until_done(mock_portal, process)
    elapsed = time.monotonic() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.returncode == EXIT_OK, stderr[-3000:]

    checked = audit(mock_portal, settings)
    files = len(checked.state_of) - checked.of_state(EntryState.paper)
    assert (checked.problems, checked.unknown) == ([], [])
    early, late = memory_between(samples, 0.25, 0.5, files), memory_between(samples, 0.75, 1.01, files)
    assert early and late
    growth = statistics.median(late) / statistics.median(early)
    assert growth < 1.25, f"memory grew {growth:.2f}x from the second quarter of the run to the last"

    counters = mock_portal.counters()
    requests = sum(sum(by_format.values()) for by_format in counters["file_requests"].values())
    faults = {kind: count for kind, count in sorted(counters["faults"].items())}
    replace_section(REPORT, SOAK_START, SOAK_END, "\n".join([
        (f"Measured on {time.strftime('%Y-%m-%d')} (2 shared cores): one `fapiao download --month {MONTH}` against "
         f"the mock with {PER_MONTH:,} issued and {PER_MONTH:,} received invoices, concurrency 8."),
        "",
        "| figure | value |",
        "|---|---|",
        f"| invoice files listed | {len(checked.state_of):,} ({checked.of_state(EntryState.paper):,} paper, no file) |",
        f"| verified, sha256 equal to the portal's | {checked.of_state(EntryState.verified):,} |",
        "| failed, pending, quarantined, lost | 0, 0, 0, 0 |",
        f"| file requests | {requests:,} ({requests - files:,} repeats after faults) |",
        f"| faults injected (files and queries) | {', '.join(f'{kind} {count:,}' for kind, count in faults.items())} |",
        f"| faults per file request | {sum(faults.values()) / requests:.1%} |",
        f"| wall time | {elapsed / 60:.1f} min ({files / elapsed:.1f} files/s) |",
        f"| memory (PSS) of the agent's process tree, 2nd quarter of the files (median) | {mib(statistics.median(early))} |",
        f"| memory, last quarter (median) | {mib(statistics.median(late))} ({growth:.2f}x) |",
        f"| memory peak | {mib(max(s.memory for s in samples))} |",
        f"| exit code | {process.returncode} |",
    ]))


