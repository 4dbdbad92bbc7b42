"""Human inputs: a source that needs a person says so before the login types anything, and a wait that lasts
says what it waits for at the default verbosity."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import pytest
from agentkit import run_async

from agent import human
from agent.human import FileSms, make_captcha_solver, make_sms_source


def test_only_a_prompt_without_a_terminal_needs_a_person(tmp_path: Path) -> None:
    assert make_sms_source("prompt", False, "138", 5).needs_person
    assert not make_sms_source("prompt", True, "138", 5).needs_person
    assert not make_sms_source(f"file:{tmp_path}/sms.txt", False, "138", 5).needs_person
    assert not make_sms_source("command:cat", False, "138", 5).needs_person
    assert make_captcha_solver("prompt", False, tmp_path, 5).needs_person
    assert not make_captcha_solver("command:cat", False, tmp_path, 5).needs_person


def test_waiting_for_an_sms_file_says_so_at_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(human, "ANNOUNCE_AFTER", 0.3)
    monkeypatch.setattr(human, "POLL_SECONDS", 0.05)
    inbox = tmp_path / "sms.txt"

    async def arrives_late() -> str:
        reading = asyncio.create_task(FileSms(inbox, timeout=10).code("138****0001", time.time()))
        await asyncio.sleep(0.6)
        inbox.write_text("【电子税务局】验证码 123456")
        return await reading

    with caplog.at_level(logging.WARNING, logger="agent.human"):
        assert run_async(arrives_late()) == "123456"
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1 and "the SMS code sent to 138****0001" in said[0] and str(inbox) in said[0]


def test_a_slow_sms_command_is_said_and_a_quick_one_is_not(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(human, "ANNOUNCE_AFTER", 0.3)
    slow = make_sms_source(f"command:{sys.executable} -c 'import time; time.sleep(0.8); print(654321)'", False, "138", 10)
    quick = make_sms_source(f"command:{sys.executable} -c 'print(111222)'", False, "138", 10)
    with caplog.at_level(logging.WARNING, logger="agent.human"):
        assert run_async(quick.code("138****0001", time.time())) == "111222"
        assert not caplog.records
        assert run_async(slow.code("138****0001", time.time())) == "654321"
    assert "waiting up to" in caplog.records[0].getMessage() and "SMS code" in caplog.records[0].getMessage()
