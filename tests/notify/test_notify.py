"""Notifications seen arriving at a local SMTP server and a local webhook receiver: the four things that need a
person's attention, each once, and never a password or a session cookie in them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from notifykit import Mailbox, Webhook, arrived
from pydantic import SecretStr

from agent import errors
from agent.config import remember_secret
from agent.events import RunEvents
from agent.notify import Notifier, Sender, period_label, scrub
from agent.records import RunSummary

sys.path.insert(0, str(Path(__file__).parent.parent / "queue"))
from queuekit import FakeArchive, queue_settings, task, wait_for, worker_thread

from agent.queue import FirmQueue

COMPANY = "91310000MA1FL0XX00"
GAPS = RunSummary(listed=20, verified=17, failed=1, pending=1, quarantined=1, not_verified=["issued 2510… pdf failed: 503"])


def test_each_event_needing_attention_arrives_once_by_mail_and_webhook(mailbox: Mailbox, webhook: Webhook) -> None:
    notifier = Notifier(Sender([mailbox.url, webhook.url]), "2025-10", hint="Hand it in with `fapiao login --person wang`.")
    events = RunEvents(notifier)
    events.person_needed("wang", "sms", "the SMS code sent to 139****0001, until 14:05")
    events.company_finished(COMPANY, GAPS)
    events.company_finished("91110108MA01ABCDE1", RunSummary(listed=5, verified=5))  # complete: nothing to say
    events.login_refused("li", errors.WrongCredentials("账号或密码错误", "2035"))
    events.login_refused("li", errors.WrongCredentials("账号或密码错误", "2035"))  # said by the run and the queue
    events.portal_down("zhou", errors.Maintenance("系统维护中"))
    notifier.close()
    titles = sorted(post["title"] for post in arrived(webhook.posts, 4))
    assert titles == sorted([
        "fapiao: wang is needed (an SMS code)", f"fapiao: {COMPANY} 2025-10 ended with gaps",
        "fapiao: the portal refused li's login", "fapiao: the portal stayed down for zhou",
    ])
    assert sorted(subject for subject, _ in arrived(mailbox.mails, 4)) == titles
    assert len(webhook.posts) == len(mailbox.mails) == 4
    bodies = {post["title"]: post["message"] for post in webhook.posts}
    assert "139****0001" in bodies["fapiao: wang is needed (an SMS code)"]
    assert "fapiao login --person wang" in bodies["fapiao: wang is needed (an SMS code)"]
    assert "failed 1 · pending 1 · quarantined 1" in bodies[f"fapiao: {COMPANY} 2025-10 ended with gaps"]
    assert "Nothing retries a refused login" in bodies["fapiao: the portal refused li's login"]


def test_an_outage_the_queue_will_retry_is_not_told_yet(webhook: Webhook) -> None:
    notifier = Notifier(Sender([webhook.url]), "2025-10", last_attempt=False)
    notifier.portal_down("zhou", errors.PortalUnavailable("503"))
    notifier.company_finished(COMPANY, GAPS)
    notifier.close()
    assert [post["title"] for post in arrived(webhook.posts, 1)] == [f"fapiao: {COMPANY} 2025-10 ended with gaps"]


def test_no_password_or_cookie_reaches_a_message(mailbox: Mailbox, webhook: Webhook) -> None:
    remember_secret(SecretStr("Tr0ub4dor&3-secret"))
    leaky = errors.LoginRefused("password Tr0ub4dor&3-secret refused; Cookie: dzfp-ssotoken=9f8e7d6c5b4a; SSOTicket=x", "2035")
    notifier = Notifier(Sender([mailbox.url, webhook.url]), "2025-10")
    notifier.login_refused("wang", leaky)
    notifier.close()
    (post,) = arrived(webhook.posts, 1)
    ((subject, body),) = arrived(mailbox.mails, 1)
    for text in (post["title"], post["message"], subject, body):
        assert "Tr0ub4dor" not in text and "9f8e7d6c5b4a" not in text and "SSOTicket=x" not in text
    assert "Cookie: ********" in post["message"]
    assert scrub("token: abc123 and pwd=hunter2, dzfp-ssotoken=f00") == "token: ******** and pwd=********, dzfp-ssotoken=********"
    assert scrub("invoice 25117000000012345678 of 2025-10: 503") == "invoice 25117000000012345678 of 2025-10: 503"


def test_a_url_apprise_cannot_use_is_skipped_and_nothing_breaks(webhook: Webhook) -> None:
    notifier = Notifier(Sender(["nosuchscheme://x", webhook.url]), "2025-10")
    notifier.person_needed("wang", "captcha", "the characters of an image captcha")
    notifier.close()
    assert arrived(webhook.posts, 1)[0]["title"] == "fapiao: wang is needed (a captcha answer)"
    Notifier(Sender([]), "2025-10").person_needed("wang", "sms", "x")  # no URL configured: nothing sent, no error


def test_period_labels() -> None:
    from datetime import date

    assert period_label(date(2025, 10, 1), date(2025, 10, 31)) == "2025-10"
    assert period_label(date(2024, 2, 1), date(2024, 2, 29)) == "2024-02"
    assert period_label(date(2025, 10, 1), date(2025, 10, 15)) == "2025-10-01..2025-10-15"


async def refused_and_told(settings: Any, person_task: Any, events: RunEvents, human: Any) -> Any:
    """What agent.firm does on a refusal: tell the run events, then raise."""
    error = errors.WrongCredentials("账号或密码错误", "2035")
    events.login_refused(person_task.person, error)
    raise error


def test_the_queue_tells_of_a_parked_person_a_month_with_gaps_a_refusal_and_an_outage(
    tmp_path: Path, mailbox: Mailbox, webhook: Webhook
) -> None:
    settings = queue_settings(tmp_path, "sqlite", notify=[mailbox.url, webhook.url], queue_retries=1, queue_retry_wait=0.2)
    script = {"dee": ["sms"], "bob": ["gaps"], "dan": ["down", "down"]}
    queue = FirmQueue(settings, FakeArchive(tmp_path / "calls.jsonl", script))
    for person in ("dee", "bob", "dan"):
        queue.enqueue(task(person))
    with worker_thread(queue, workers=3):
        wait_for(queue.waiting_people, what="dee's task to wait for a code")
        needed = wait_for(lambda: [p for p in webhook.posts if "dee is needed" in p["title"]], what="the person-needed message")
        assert "138****0001" in needed[0]["message"] and "fapiao login --person dee" in needed[0]["message"]
        assert queue.submit_code("dee", "404142")
        wait_for(lambda: queue.is_idle(), what="the queue to empty")
    queue.archive = refused_and_told
    queue.enqueue(task("cy"))
    queue.work(workers=1, until_empty=True)
    titles = sorted(post["title"] for post in arrived(webhook.posts, 4))
    assert titles == sorted([
        "fapiao: dee is needed (an SMS code)", f"fapiao: {queue_company()} 2025-10 ended with gaps",
        "fapiao: the portal stayed down for dan", "fapiao: the portal refused cy's login",
    ])
    assert len(arrived(mailbox.mails, 4)) == 4
    assert all("404142" not in post["message"] and "pw-" not in post["message"] for post in webhook.posts)


def queue_company() -> str:
    from queuekit import COMPANY as QUEUE_COMPANY

    return QUEUE_COMPANY
