"""How busy the machine was while something was timed: other programs share these cores and slow it down.

`foreign` CPU is what the whole machine used (hypervisor steal included) minus what the measured processes
and the mock portal used; more than a few seconds of it means the figure is disturbed and worth a rerun.
"""

from __future__ import annotations

import psutil


def machine_busy_s() -> float:
    """Non-idle CPU seconds of all cores since boot, time stolen by the hypervisor included."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # ended between listing and reading
        total += times.user + times.system
    return total
