"""Run events -> messages to people, through apprise (e-mail, WeCom, DingTalk, Feishu, any webhook).

`notify = ["mailto://...", "json://..."]` in the config lists where messages go. A `Notifier` listens to a
run's events (agent/events.py) and tells of four things only: a person is needed (an SMS code, a captcha), a
month ended with gaps (failed, pending, quarantined files, or a count that differs from the portal's Total),
a login was refused, and the portal stayed down past the bound. Everything else is for the logs.

A message never holds a password or a session cookie: every text goes through `config.redact` (every password
this process has seen) and a filter for anything shaped like a cookie or token, and messages say what to do
next in the user's terms. Sending happens on a thread of its own, since listeners must be quick; `close()`
waits (bounded) for what is still being sent. One notifier serves one task: an event said twice (the run and
the queue both saying a login was refused) is sent once.
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from agent import errors
from agent.config import redact
from agent.events import NeededFor, RunListener
from agent.records import RunSummary

log = logging.getLogger(__name__)

SEND_TIMEOUT = 60.0  # seconds `close()` waits for messages still being sent
NOT_VERIFIED_SHOWN = 10  # files named in a "month with gaps" message; the rest are counted
COOKIE_HEADER = re.compile(r"(?i)\b(set-cookie|cookie)(\s*:\s*)[^\n]*")  # a header: everything after it
SECRET_VALUE = re.compile(r"(?i)\b([\w-]*(?:token|ticket|session|password|passwd|pwd)[\w-]*)(\s*[:=]\s*)[^\s;,&]+")


def scrub(text: str) -> str:
    """`text` without any password this process has seen, nor anything shaped like a cookie or token value."""
    text = COOKIE_HEADER.sub(lambda match: f"{match.group(1)}{match.group(2)}********", redact(text))
    return SECRET_VALUE.sub(lambda match: f"{match.group(1)}{match.group(2)}********", text)


def period_label(date_from: date, date_to: date) -> str:
    """`2025-10` for a whole month, else `2025-10-01..2025-10-15`."""
    last_day = calendar.monthrange(date_from.year, date_from.month)[1]
    if date_from.day == 1 and date_to == date_from.replace(day=last_day):
        return f"{date_from:%Y-%m}"
    return f"{date_from}..{date_to}"


class Sender:
    """The apprise side: the configured URLs that apprise understands (none: nothing is sent).

    Each message gets an `Apprise` object of its own: messages go out from several threads at once, and a
    plugin object shared between them would hold each back by its rate limit (5.5 s for e-mail)."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls: list[str] = []
        for url in urls:
            if self._apprise([url]) is None:
                log.warning("notify: a URL apprise does not understand was skipped (scheme %s)", url.split(":", 1)[0])
            else:
                self.urls.append(url)

    @staticmethod
    def _apprise(urls: Sequence[str]) -> Any:
        import apprise  # only when notifications are configured

        sender = apprise.Apprise()
        return sender if all(sender.add(url) for url in urls) and len(sender) else None

    def send(self, title: str, body: str) -> bool:
        sender = self._apprise(self.urls) if self.urls else None
        if sender is None:
            return False
        sent = bool(sender.notify(title=scrub(title), body=scrub(body)))
        if not sent:
            log.warning("notify: %r could not be sent to every configured URL", scrub(title))
        return sent


class Notifier(RunListener):
    """Listens to one task's run events and sends the few that need a person's attention.

    `period` names the month in messages; `last_attempt` is False while the queue will try again, so that a
    portal outage is told only when nothing will retry it (past the bound). `hint` says how to hand in a code.
    """

    def __init__(self, sender: Sender, period: str, *, last_attempt: bool = True, hint: str = "") -> None:
        self.sender, self.period, self.last_attempt, self.hint = sender, period, last_attempt, hint
        self._said: set[tuple[str, ...]] = set()
        self._threads: list[threading.Thread] = []

    def person_needed(self, person: str, kind: NeededFor, detail: str) -> None:
        what = {"sms": "an SMS code", "captcha": "a captcha answer", "role": "a role choice"}.get(kind, kind)
        body = f"The {self.period} run of {person} waits for {what}: {detail}."
        self._say(("needed", person, kind), f"fapiao: {person} is needed ({what})", f"{body} {self.hint}".strip())

    def company_finished(self, company: str, summary: RunSummary) -> None:
        if summary.complete:
            return
        self._say(("gaps", company), f"fapiao: {company} {self.period} ended with gaps", gaps_text(summary))

    def login_refused(self, person: str, error: errors.LoginRefused) -> None:
        body = f"{error}\nNothing retries a refused login: fix {person}'s settings, then enqueue the run again."
        self._say(("refused", person), f"fapiao: the portal refused {person}'s login", body)

    def portal_down(self, person: str, error: errors.PortalUnavailable) -> None:
        if not self.last_attempt:
            log.info("portal down for %s; the queue tries again later, so nobody is told yet", person)
            return
        body = f"{error}\nThe {self.period} run of {person} gave up; the next schedule or `fapiao enqueue` tries again."
        self._say(("down", person), f"fapiao: the portal stayed down for {person}", body)

    def _say(self, key: tuple[str, ...], title: str, body: str) -> None:
        if key in self._said:
            return
        self._said.add(key)
        thread = threading.Thread(target=self._send, args=(title, body), name="fapiao-notify", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _send(self, title: str, body: str) -> None:
        try:
            self.sender.send(title, body)
        except Exception as exc:  # a notification that fails never stops the archiving  # noqa: BLE001
            log.warning("notify: %r not sent: %s", title, scrub(str(exc)))

    def close(self, timeout: float = SEND_TIMEOUT) -> None:
        """Wait, at most `timeout` seconds in all, for messages still being sent."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [thread for thread in self._threads if thread.is_alive()]


def gaps_text(summary: RunSummary) -> str:
    """What a month with gaps lacks, counted, then the first files named with their reasons."""
    counts = (
        f"listed {summary.listed} · verified {summary.verified} · failed {summary.failed} · pending {summary.pending}"
        f" · quarantined {summary.quarantined} · paper {summary.paper}"
    )
    lines = [
        counts,
        *(f"count mismatch: {mismatch}" for mismatch in summary.count_mismatches),
        *summary.not_verified[:NOT_VERIFIED_SHOWN],
    ]
    if len(summary.not_verified) > NOT_VERIFIED_SHOWN:
        lines.append(f"... and {len(summary.not_verified) - NOT_VERIFIED_SHOWN} more: `fapiao report` lists them all")
    return "\n".join(lines)

