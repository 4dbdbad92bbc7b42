"""`fapiao enqueue`, `fapiao worker` and `fapiao login --person` as a user runs them (a process each), on the
embedded queue; the parked task is run by a worker with the fake archive on a thread of the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from queuekit import COMPANY, FakeArchive, read_log, wait_for, worker_thread

from agent.config import load_settings
from agent.parsers.ids import uscc_check_char
from agent.queue import FirmQueue

OTHER = "91440300MA5F00000" + uscc_check_char("91440300MA5F00000")
SHARED = "91310115MA1H00000" + uscc_check_char("91310115MA1H00000")


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "fapiao.toml"
    config.write_text(f"""
out = "{tmp_path / 'archive'}"
state_dir = "{tmp_path / 'state'}"
human_timeout = 30

[persons.ann]
login = "13900000001"
password = "pw-ann"
companies = ["{COMPANY}", "{SHARED}"]

[persons.dee]
login = "13900000005"
password = "pw-dee"
companies = ["{SHARED}"]

[persons.zoe]
login = "13900000009"
password = "pw-zoe"
companies = "all"
login_company = "{OTHER}"
""", encoding="utf-8")
    return config


def fapiao(*args: str, cwd: Path, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], input=stdin, capture_output=True, text=True, cwd=cwd, check=False,
        env={**clean, "PYTHONPATH": str(Path(__file__).parents[2])}, timeout=timeout,
    )


def test_enqueue_by_person_and_by_company(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = fapiao("enqueue", "--config", "fapiao.toml", "--person", "ann", "--month", "2025-10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("queued ") and result.stdout.rstrip().endswith("ann 2025-10 (their companies)")
    result = fapiao(
        "enqueue", "--config", "fapiao.toml", "--company", SHARED, "--company", OTHER, "--company", COMPANY,
        "--from", "2025-10-01", "--to", "2025-10-15", "--direction", "received", "--json", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    tasks = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(t["person"], t["companies"], t["directions"]) for t in tasks] == [
        ("ann", [SHARED, COMPANY], ["received"]),  # the first person naming the company
        ("zoe", [OTHER], ["received"]),  # named by nobody: the one person with companies = "all"
    ]
    queued = FirmQueue(load_settings(tmp_path / "fapiao.toml")).overview().queued
    assert [(q.person, q.date_from.isoformat(), q.date_to.isoformat()) for q in queued] == [
        ("ann", "2025-10-01", "2025-10-31"), ("ann", "2025-10-01", "2025-10-15"), ("zoe", "2025-10-01", "2025-10-15"),
    ]


def test_enqueue_refuses_what_it_cannot_place(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = fapiao("enqueue", "--config", "fapiao.toml", "--person", "bob", "--month", "2025-10", cwd=tmp_path)
    assert result.returncode == 2 and "unknown person 'bob'" in result.stderr
    result = fapiao("enqueue", "--config", "fapiao.toml", "--person", "dee", "--company", OTHER, "--month", "2025-10", cwd=tmp_path)
    assert result.returncode == 2 and f"no configured person archives company {OTHER}" in result.stderr
    result = fapiao("enqueue", "--config", "fapiao.toml", "--month", "2099-10", cwd=tmp_path)
    assert result.returncode == 2 and "in the future" in result.stderr


def test_a_worker_with_nothing_to_do_stops_when_empty_and_on_sigterm(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = fapiao("worker", "--config", "fapiao.toml", "--until-empty", "-w", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "worker: 2 at once on" in result.stderr
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "worker", "--config", "fapiao.toml"], cwd=tmp_path, stderr=subprocess.PIPE,
        text=True, env={**clean, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert process.stderr is not None and "worker:" in process.stderr.readline()
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_login_person_hands_the_code_to_the_parked_task(tmp_path: Path) -> None:
    write_config(tmp_path)
    result = fapiao("login", "--config", "fapiao.toml", "--person", "dee", cwd=tmp_path)
    assert result.returncode == 2 and "no task waits for dee's code" in result.stderr
    settings = load_settings(tmp_path / "fapiao.toml")
    queue = FirmQueue(settings, FakeArchive(tmp_path / "calls.jsonl", {"dee": ["sms"]}))
    result = fapiao("enqueue", "--config", "fapiao.toml", "--person", "dee", "--month", "2025-10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with worker_thread(queue, workers=1):
        wait_for(queue.waiting_people, what="dee's task to wait")
        result = fapiao("login", "--config", "fapiao.toml", "--person", "dee", cwd=tmp_path, stdin="246810\n")
        assert result.returncode == 0, result.stderr
        assert "dee's task waits for the SMS code sent to 138****0001" in result.stderr
        assert "handed to the waiting task" in result.stderr
        wait_for(lambda: [o for o in queue.overview().recent if o.outcome == "complete"], what="dee's task to finish")
    assert [line.get("code") for line in read_log(tmp_path / "calls.jsonl") if line["event"] == "end"] == ["246810"]
