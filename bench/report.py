"""The benchmark's results as JSON, a markdown table (with the issue's targets) and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

TARGET_SIZE = 2000  # the size the throughput and rerun targets are set at
MEMORY_SIZES = (2000, 10000)


def machine_facts(repo: Path) -> dict[str, Any]:
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cpu": _cpu_model(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "playwright": version("playwright"),
        "pypdfium2": version("pypdfium2"),
        "git": _git_describe(repo),
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def _git_describe(repo: Path) -> str:
    result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=repo, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def derived(size: dict[str, Any]) -> dict[str, Any]:
    """Rates and ratios of one size's measurements; rates are verified files per second."""
    files = size["files"]
    agent_rate = files / size["agent"]["wall_s"]
    limit = size["limit"][size["limit"]["best"]]
    limit_rate = files / limit["wall_s"]
    clicks_for_month = size["clicks"]["per_invoice_s"] * files
    return {
        "agent_files_per_s": round(agent_rate, 1),
        "limit_files_per_s": round(limit_rate, 1),
        "agent_vs_limit": round(agent_rate / limit_rate, 3),
        "clicks_for_month_s": round(clicks_for_month, 1),
        "agent_vs_clicks": round(clicks_for_month / size["agent"]["wall_s"], 1),
    }


def markdown(results: dict[str, Any]) -> str:
    rows = [
        (
            "| N invoices (files) | agent s | agent files/s | limit s (shape) | limit files/s | agent / limit "
            "| clicks s/invoice | clicks for N, s | agent × clicks | rerun s | peak RSS MiB (rerun) | agent CPU s "
            "| others' CPU s (agent, limit) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in results["sizes"]:
        d, agent, rerun, limit = size["derived"], size["agent"], size["rerun"], size["limit"]
        rows.append(
            f"| {size['invoices']:,} ({size['files']:,}) | {agent['wall_s']:.1f} | {d['agent_files_per_s']} "
            f"| {limit[limit['best']]['wall_s']:.1f} ({limit['best']}) | {d['limit_files_per_s']} | {d['agent_vs_limit']:.2f} "
            f"| {size['clicks']['per_invoice_s']:.3f} | {d['clicks_for_month_s']:,.0f} | {d['agent_vs_clicks']:.0f} "
            f"| {rerun['wall_s']:.2f} | {agent['peak_rss_mib']:.0f} ({rerun['peak_rss_mib']:.0f}) | {agent['cpu_s']:.0f} "
            f"| {agent['foreign_cpu_s']:.0f}, {limit[limit['best']]['foreign_cpu_s']:.0f} |"
        )
    return "\n".join([*rows, "", *_target_lines(results), "", *_cpu_lines(results), "", *_machine_lines(results)]) + "\n"


def _cpu_lines(results: dict[str, Any]) -> list[str]:
    """Where the CPU went: the agent's process tree by kind of process, beside the limit's total."""
    lines = ["CPU seconds by process, agent run (limit run, all of it):"]
    for size in results["sizes"]:
        kinds = sorted(size["agent"].get("cpu_s_by_kind", {}).items(), key=lambda item: -item[1])
        limit = size["limit"][size["limit"]["best"]]
        spent = ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in kinds)
        lines.append(f"- N = {size['invoices']:,}: {spent} ({limit.get('cpu_s', 0):.1f})")
    return lines


def _target_lines(results: dict[str, Any]) -> list[str]:
    by_size = {size["invoices"]: size for size in results["sizes"]}
    lines = ["Targets (issue 9: the agent on the realistic mock, the limit on the plain one; issue 5's before them):"]
    if TARGET_SIZE in by_size:
        size = by_size[TARGET_SIZE]
        ratio, rerun = size["derived"]["agent_vs_limit"], size["rerun"]["wall_s"]
        lines.append(f"- agent >= 0.5 x limit at N = {TARGET_SIZE:,} (issue 5: 0.8): {ratio:.2f} {_mark(ratio >= 0.5)}")
        lines.append(f"- rerun of a finished {TARGET_SIZE:,}-invoice month < 3 s: {rerun:.2f} s {_mark(rerun < 3)}")
    speedups = [size["derived"]["agent_vs_clicks"] for size in results["sizes"]]
    lines.append(f"- agent >= 30 x clicks: {', '.join(f'{s:.0f}' for s in speedups)} {_mark(min(speedups) >= 30)}")
    if all(n in by_size for n in MEMORY_SIZES):
        small, big = (by_size[n]["agent"]["peak_rss_mib"] for n in MEMORY_SIZES)
        growth = big / small - 1
        lines.append(f"- peak memory at 10,000 within 15 % of 2,000: {growth:+.0%} {_mark(growth <= 0.15)}")
    return lines


def _mark(ok: bool) -> str:
    return "(met)" if ok else "(NOT met)"


def _machine_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    return [
        (
            f"Machine: {m['cores_logical']} cores ({m['cores_physical']} physical), {m['cpu']}, {m['ram_gib']} GiB; "
            f"Python {m['python']}; Chromium {m.get('chromium', '?')}; Playwright {m['playwright']}; "
            f"pypdfium2 {m['pypdfium2']}; {m['platform']}; code {m['git']}."
        ),
        f"Run {results['started']} ({results['label']}); load average before each size: "
        + ", ".join(f"{size['load_before']:.2f}" for size in results["sizes"])
        + ". Others' CPU: seconds other programs used while the agent or the limit ran (bench/cpu.py); "
        "more than a few means the row is disturbed.",
    ]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    n = [size["invoices"] for size in sizes]
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    speed.plot(n, [s["derived"]["limit_files_per_s"] for s in sizes], "o--", label="limit (httpx + process pool)")
    speed.plot(n, [s["derived"]["agent_files_per_s"] for s in sizes], "o-", label="agent end to end")
    speed.plot(n, [1 / s["clicks"]["per_invoice_s"] for s in sizes], "o:", label="one click per invoice")
    speed.set(xscale="log", yscale="log", xlabel="invoices in the month", ylabel="verified files per second")
    speed.set_title("Throughput")
    speed.legend()
    memory.plot(n, [s["agent"]["peak_rss_mib"] for s in sizes], "o-", label="agent run")
    memory.plot(n, [s["rerun"]["peak_rss_mib"] for s in sizes], "o:", label="rerun (nothing to do)")
    memory.set(xscale="log", xlabel="invoices in the month", ylabel="peak RSS of the process tree, MiB", ylim=(0, None))
    memory.set_title("Peak memory")
    memory.legend()
    figure.suptitle(f"fapiao-agent on the mock portal ({results['label']}, {results['machine']['cores_logical']} cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(results: dict[str, Any], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    label = results["label"]
    (folder / f"{label}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table = markdown(results)
    (folder / f"{label}.md").write_text(f"# Benchmark: {label}\n\n{table}", encoding="utf-8")
    chart(results, folder / f"{label}.png")
    return table
