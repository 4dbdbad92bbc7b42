"""Answers a person would give: image captcha text and SMS codes, from pluggable sources.

Captcha solvers: `prompt` (save the image, ask on the terminal), `command:<cmd>` (the command gets the image
path as its last argument and prints the answer), `ocr` (ddddocr, installed with `pip install
fapiao-agent[ocr]`). SMS sources: `prompt`, `command:<cmd>` (prints the code), `file:<path>` (an SMS
forwarder writes the latest message or code there), `mock-outbox:<url>` (the built-in mock portal's phone).
In non-interactive mode a source that needs a person says so (`needs_person`), so the login stops before it
types anything, and raises NeedsPerson if asked all the same. A wait that lasts says what it waits for, at the
default verbosity (a WARNING line), after ANNOUNCE_AFTER seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shlex
import time
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

from agent.errors import NeedsPerson, SettingsError

log = logging.getLogger(__name__)

SMS_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
POLL_SECONDS = 0.5
ANNOUNCE_AFTER = 3.0  # seconds of waiting before the wait is said at the default verbosity


async def _run_command(command: str, *extra: str, timeout: float, waits_for: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *shlex.split(command), *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    answer = asyncio.ensure_future(process.communicate())
    try:
        done, _ = await asyncio.wait({answer}, timeout=min(ANNOUNCE_AFTER, timeout))
        if not done:
            log.warning("waiting up to %.0f s more for %s from `%s`", timeout - ANNOUNCE_AFTER, waits_for, shlex.split(command)[0])
        stdout, _ = await asyncio.wait_for(answer, max(0.0, timeout - ANNOUNCE_AFTER))
    except TimeoutError:
        raise NeedsPerson(f"`{command}` gave no answer within {timeout:.0f} s") from None
    finally:
        answer.cancel()
        if process.returncode is None:
            process.kill()
    return stdout.decode().strip()


class Announcer:
    """Says once, at the default verbosity, that a wait has lasted and for what."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what, self.started, self.timeout, self.said = what, time.monotonic(), timeout, False

    def tick(self) -> None:
        waited = time.monotonic() - self.started
        if not self.said and waited >= ANNOUNCE_AFTER:
            log.warning("waiting up to %.0f s more for %s", self.timeout - waited, self.what)
            self.said = True


async def _ask(question: str) -> str:
    return await asyncio.to_thread(click.prompt, question, err=True)


async def ask_choice(question: str, choices: list[str]) -> str:
    """A choice among `choices` typed at the terminal (e.g. the role, when the person has several)."""
    choice = await asyncio.to_thread(click.prompt, question, type=click.Choice(choices), err=True)
    return str(choice)


class CaptchaSolver(ABC):
    needs_person = False  # True: only a person at the terminal can answer, and none is

    @abstractmethod
    async def solve(self, image: bytes) -> str: ...


class PromptCaptcha(CaptchaSolver):
    def __init__(self, image_dir: Path, interactive: bool) -> None:
        self.image_dir, self.interactive = image_dir, interactive
        self.needs_person = not interactive

    async def solve(self, image: bytes) -> str:
        _needs_terminal(self.interactive, "an image captcha")
        self.image_dir.mkdir(parents=True, exist_ok=True)
        path = self.image_dir / "captcha.png"
        path.write_bytes(image)
        return await _ask(f"Type the characters shown in {path}")


class CommandCaptcha(CaptchaSolver):
    def __init__(self, command: str, image_dir: Path, timeout: float) -> None:
        self.command, self.image_dir, self.timeout = command, image_dir, timeout

    async def solve(self, image: bytes) -> str:
        self.image_dir.mkdir(parents=True, exist_ok=True)
        path = self.image_dir / "captcha.png"
        path.write_bytes(image)
        return await _run_command(self.command, str(path), timeout=self.timeout, waits_for="the captcha answer")


class OcrCaptcha(CaptchaSolver):
    def __init__(self) -> None:
        try:
            import ddddocr
        except ImportError:
            raise SettingsError("captcha = 'ocr' needs ddddocr: pip install 'fapiao-agent[ocr]'") from None
        self._ocr = ddddocr.DdddOcr(show_ad=False)

    async def solve(self, image: bytes) -> str:
        return await asyncio.to_thread(self._ocr.classification, image)


class SmsSource(ABC):
    needs_person = False  # True: only a person at the terminal can give the code, and none is

    @abstractmethod
    async def code(self, masked_mobile: str, sent_at: float) -> str:
        """The 6-digit code sent to `masked_mobile` at or after `sent_at` (epoch seconds)."""


class PromptSms(SmsSource):
    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.needs_person = not interactive

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        _needs_terminal(self.interactive, "an SMS code")
        return await _ask(f"SMS code sent to {masked_mobile}")


class CommandSms(SmsSource):
    def __init__(self, command: str, timeout: float) -> None:
        self.command, self.timeout = command, timeout

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        said = await _run_command(self.command, masked_mobile, timeout=self.timeout, waits_for=f"the SMS code sent to {masked_mobile}")
        return _only_code(said, self.command)


class FileSms(SmsSource):
    """Waits for the file to be (re)written after the code was sent, then reads a 6-digit code from it."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        deadline = time.monotonic() + self.timeout
        waiting = Announcer(f"the SMS code sent to {masked_mobile} to arrive in {self.path}", self.timeout)
        while time.monotonic() < deadline:
            if self.path.exists() and self.path.stat().st_mtime >= sent_at - 1:
                return _only_code(self.path.read_text(errors="replace"), str(self.path))
            waiting.tick()
            await asyncio.sleep(POLL_SECONDS)
        raise NeedsPerson(f"no SMS code arrived in {self.path} within {self.timeout:.0f} s")


class MockOutboxSms(SmsSource):
    """The built-in mock portal's phone: its outbox on the mock-only control surface."""

    def __init__(self, portal_url: str, login: str, timeout: float) -> None:
        self.url = f"{portal_url.rstrip('/')}/__mock__/sms?account={login}"
        self.timeout = timeout

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        deadline = time.monotonic() + self.timeout
        waiting = Announcer(f"the SMS code sent to {masked_mobile} to reach the mock portal's phone", self.timeout)
        while time.monotonic() < deadline:
            messages = await asyncio.to_thread(self._fetch)
            fresh = [m for m in messages if _epoch(m.get("sent_at")) >= sent_at - 1]
            if fresh:
                return str(fresh[-1]["code"])
            waiting.tick()
            await asyncio.sleep(POLL_SECONDS)
        raise NeedsPerson("the mock portal's phone received no SMS code")

    def _fetch(self) -> list[dict[str, object]]:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            body = json.load(response)
        return body["messages"] if isinstance(body, dict) else body


def _epoch(value: object) -> float:
    """A message time as epoch seconds, whether the outbox gives a number or an ISO timestamp."""
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp() if value else 0.0


def _only_code(text: str, origin: str) -> str:
    found = SMS_CODE.findall(text)
    if not found:
        raise NeedsPerson(f"no 6-digit SMS code in what {origin} gave")
    return found[-1]


def _needs_terminal(interactive: bool, what: str) -> None:
    if not interactive:
        raise NeedsPerson(
            f"the portal asks for {what} and nobody is at the terminal: run `fapiao login` once interactively "
            "(the saved session then serves scheduled runs), or configure an automatic source (see README)"
        )


def make_captcha_solver(spec: str, interactive: bool, image_dir: Path, timeout: float) -> CaptchaSolver:
    kind, _, argument = spec.partition(":")
    if kind == "command":
        return CommandCaptcha(argument, image_dir, timeout)
    if kind == "ocr":
        return OcrCaptcha()
    return PromptCaptcha(image_dir, interactive)


def make_sms_source(spec: str, interactive: bool, login: str, timeout: float) -> SmsSource:
    kind, _, argument = spec.partition(":")
    if kind == "command":
        return CommandSms(argument, timeout)
    if kind == "file":
        return FileSms(Path(argument).expanduser(), timeout)
    if kind == "mock-outbox":
        return MockOutboxSms(argument, login, timeout)
    return PromptSms(interactive)


@dataclass
class HumanInputs:
    """Where one person's answers come from at login (an SMS code, a captcha answer). A run given none builds
    them from the configuration (make_sms_source, make_captcha_solver); the queue hands in sources that wait
    for a code typed elsewhere (`fapiao login --person`, the status page)."""

    sms: SmsSource
    captcha: CaptchaSolver
