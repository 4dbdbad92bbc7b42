"""Answers a person would give: image captcha text and SMS codes, from pluggable sources.

Captcha solvers: `prompt` (save the image, ask on the terminal), `command:<cmd>` (the command gets the image
path as its last argument and prints the answer), `ocr` (ddddocr, installed with `pip install
fapiao-agent[ocr]`). SMS sources: `prompt`, `command:<cmd>` (prints the code), `file:<path>` (an SMS
forwarder writes the latest message or code there), `mock-outbox:<url>` (the built-in mock portal's phone).
In non-interactive mode a source that needs a person raises NeedsPerson at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
import urllib.request
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path

import click

from agent.errors import NeedsPerson, SettingsError

SMS_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
POLL_SECONDS = 0.5


async def _run_command(command: str, *extra: str, timeout: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *shlex.split(command), *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise NeedsPerson(f"`{command}` gave no answer within {timeout:.0f} s") from None
    return stdout.decode().strip()


async def _ask(question: str) -> str:
    return await asyncio.to_thread(click.prompt, question, err=True)


class CaptchaSolver(ABC):
    @abstractmethod
    async def solve(self, image: bytes) -> str: ...


class PromptCaptcha(CaptchaSolver):
    def __init__(self, image_dir: Path, interactive: bool) -> None:
        self.image_dir, self.interactive = image_dir, interactive

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
        return await _run_command(self.command, str(path), timeout=self.timeout)


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
    @abstractmethod
    async def code(self, masked_mobile: str, sent_at: float) -> str:
        """The 6-digit code sent to `masked_mobile` at or after `sent_at` (epoch seconds)."""


class PromptSms(SmsSource):
    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        _needs_terminal(self.interactive, "an SMS code")
        return await _ask(f"SMS code sent to {masked_mobile}")


class CommandSms(SmsSource):
    def __init__(self, command: str, timeout: float) -> None:
        self.command, self.timeout = command, timeout

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        return _only_code(await _run_command(self.command, masked_mobile, timeout=self.timeout), self.command)


class FileSms(SmsSource):
    """Waits for the file to be (re)written after the code was sent, then reads a 6-digit code from it."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path, self.timeout = path, timeout

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.path.exists() and self.path.stat().st_mtime >= sent_at - 1:
                return _only_code(self.path.read_text(errors="replace"), str(self.path))
            await asyncio.sleep(POLL_SECONDS)
        raise NeedsPerson(f"no SMS code arrived in {self.path} within {self.timeout:.0f} s")


class MockOutboxSms(SmsSource):
    """The built-in mock portal's phone: its outbox on the mock-only control surface."""

    def __init__(self, portal_url: str, login: str, timeout: float) -> None:
        self.url = f"{portal_url.rstrip('/')}/__mock__/sms?account={login}"
        self.timeout = timeout

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            messages = await asyncio.to_thread(self._fetch)
            fresh = [m for m in messages if _epoch(m.get("sent_at")) >= sent_at - 1]
            if fresh:
                return str(fresh[-1]["code"])
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
