"""Ctrl-C and SIGTERM stop a run cleanly (exit 130 / 143, one line, no process left, ledger and archive
consistent, the next run resumes), and a second run on the same archive refuses or waits: never both at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import psutil
import pytest
from agentkit import MONTH, SettingsFactory
from reliakit import QUICK_SMS, audit, cli_command, cli_env, file_requests, run_cli, wait_for
from test_crashes import UNHURRIED, files_out, kill_tree, partials, sms_sent

from agent.errors import EXIT_BUSY, EXIT_OK
from fixtures.pytest_plugin import MockPortal

pytestmark = pytest.mark.mock_portal(UNHURRIED, invoices_per_month=12, **QUICK_SMS)

INTERRUPTED = "interrupted — the next run resumes"
GRACE_SECONDS = 5  # processes the run started have this long to be gone after it exits


def start_download(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    command = cli_command("download", "--month", MONTH, *args)
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def descendants(pid: int) -> list[psutil.Process]:
    """Chromium and Playwright's driver, the verification workers, their forkserver and resource tracker."""
    return psutil.Process(pid).children(recursive=True)


def still_running(processes: list[psutil.Process]) -> list[str]:
    _, alive = psutil.wait_procs(processes, timeout=GRACE_SECONDS)
    return [f"{p.pid} {p.name()}" for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["ctrl-c at a terminal (the whole group)", "SIGINT to the agent", "SIGTERM to the agent",
         "SIGTERM to the whole group (systemd, docker stop)"],
)
def test_a_signal_mid_run_stops_cleanly_and_the_next_run_resumes(
    mock_portal: MockPortal, fast_settings: SettingsFactory, signum: int, whole_group: bool
) -> None:
    settings = fast_settings(workers=2)
    env = cli_env(mock_portal, settings)
    process = start_download(env)
    try:
        assert wait_for(lambda: files_out(6)(mock_portal), process), "the run ended before 6 files went out"
        started = descendants(process.pid)
        (os.killpg if whole_group else os.kill)(process.pid, signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        kill_tree(process)

    assert process.returncode == 128 + signum, stderr
    assert stderr.strip().splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert started, "the run had started no process of its own"
    assert still_running(started) == []
    checked = audit(mock_portal, settings, stopped=True)  # every file at a final name verified, nothing half done
    assert (checked.problems, checked.unknown) == ([], [])
    assert partials(settings.out) == []

    rerun = run_cli(["download", "--month", MONTH], env)
    assert rerun.returncode == EXIT_OK, rerun.stderr
    checked = audit(mock_portal, settings)
    assert (checked.problems, checked.unknown) == ([], [])


def test_a_second_run_on_the_same_archive_is_refused_with_the_first_runs_pid(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    env = cli_env(mock_portal, settings)
    first = start_download(env)
    try:
        assert wait_for(lambda: files_out(1)(mock_portal), first)
        second = run_cli(["download", "--month", MONTH], env, timeout=60)
        _, stderr = first.communicate(timeout=180)
    finally:
        kill_tree(first)
    assert second.returncode == EXIT_BUSY, second.stderr
    holder = f"pid {first.pid} on {socket.gethostname()}, started "
    assert f"another run works on the archive {settings.out.resolve()}: {holder}" in second.stderr
    assert "--wait" in second.stderr
    assert first.returncode == EXIT_OK, stderr
    assert set(file_requests(mock_portal).values()) == {1}  # each file fetched once: by the first run alone


def test_with_wait_the_second_run_starts_when_the_first_ends_and_fetches_nothing_again(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    env = cli_env(mock_portal, settings)
    first = start_download(env)
    try:
        assert wait_for(lambda: files_out(1)(mock_portal), first)
        second = start_download(env, "--wait")
        try:
            _, first_err = first.communicate(timeout=180)
            _, second_err = second.communicate(timeout=180)
        finally:
            kill_tree(second)
    finally:
        kill_tree(first)
    assert (first.returncode, second.returncode) == (EXIT_OK, EXIT_OK), first_err + second_err
    assert f"waiting for another run on the archive {settings.out.resolve()} to finish: pid {first.pid}" in second_err
    assert set(file_requests(mock_portal).values()) == {1}  # each file fetched once: by the first run


def test_a_run_killed_outright_leaves_no_process_and_no_lock_behind(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings(workers=2)
    env = cli_env(mock_portal, settings)
    first = start_download(env)
    try:
        assert wait_for(lambda: files_out(3)(mock_portal), first)
        started = descendants(first.pid)
        os.kill(first.pid, signal.SIGKILL)  # the OOM killer, kill -9: nothing runs in the agent any more
        first.wait(timeout=30)
        assert still_running(started) == []  # verify workers end with it; Playwright's driver ends Chromium
        rerun = run_cli(["download", "--month", MONTH], env)
    finally:
        kill_tree(first)
    assert rerun.returncode == EXIT_OK, rerun.stderr
    assert "another run" not in rerun.stderr
    checked = audit(mock_portal, settings)
    assert (checked.problems, checked.unknown) == ([], [])


def test_ctrl_c_while_a_prompt_waits_for_the_sms_code_stops_at_once(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    env = cli_env(mock_portal, settings)
    accounts = json.loads(env["FAPIAO_ACCOUNTS"])
    accounts["acct"]["sms"] = "prompt"  # a person types the code: the prompt blocks a thread on the terminal
    env["FAPIAO_ACCOUNTS"] = json.dumps(accounts)
    process = subprocess.Popen(
        cli_command("login"), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        assert wait_for(lambda: sms_sent(mock_portal), process), "the login ended before the SMS was sent"
        time.sleep(0.5)  # the prompt is up
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)  # stdin stays open: nobody answers the prompt
    finally:
        kill_tree(process)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == INTERRUPTED
