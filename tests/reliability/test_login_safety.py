"""Login safety through the CLI: a refused password is tried once and never locks the account, a locked account
gets the portal's own message, a kick-out costs one re-login, and a session that keeps dying stops the run."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agentkit import DEMO_MOBILE, MONTH, SettingsFactory, login_record, mock_account
from pydantic import SecretStr
from reliakit import QUICK_SMS, audit, cli_env, file_requests, on_downloads, run_agent, run_cli

from agent.config import load_settings
from agent.errors import EXIT_LOGIN_REFUSED, EXIT_NEEDS_PERSON, EXIT_OK, EXIT_PORTAL_UNAVAILABLE
from agent.job import MAX_RELOGINS
from agent.portal import Paths
from fixtures.portal.faults import FaultSpec
from fixtures.portal.http_login import LoginFailed, log_in_over_http
from fixtures.portal.scenario import Scenario
from fixtures.portal.server import MockPortalServer
from fixtures.pytest_plugin import MockPortal

WRONG = "Wr0ng-Pass#77"


@pytest.mark.mock_portal(invoices_per_month=4)
def test_wrong_password_is_one_attempt_exit_3_and_no_lockout(mock_portal: MockPortal, fast_settings: SettingsFactory) -> None:
    settings = fast_settings(mock_account(mock_portal, password=SecretStr(WRONG)))
    result = run_cli(["download", "--month", MONTH], cli_env(mock_portal, settings))
    assert result.returncode == EXIT_LOGIN_REFUSED
    assert "wrong login or password" in result.stderr and "输入的个人账号或密码错误" in result.stderr
    assert WRONG not in result.stdout + result.stderr
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 1, "wrong_passwords": 1, "locked": False}
    assert file_requests(mock_portal) == {}


def lock_out(portal: MockPortal) -> None:
    """Someone else types a wrong password once, on a portal that locks after one."""
    company = portal.accounts()["companies"][0]["tax_id"]
    with pytest.raises(LoginFailed, match="2035"):
        log_in_over_http(portal.client(), company, DEMO_MOBILE, WRONG, portal.latest_sms_code, portal.captcha_answer)


@pytest.mark.mock_portal(invoices_per_month=4, lock_after=1)
def test_locked_account_gets_the_portals_message_and_one_attempt(mock_portal: MockPortal, fast_settings: SettingsFactory) -> None:
    lock_out(mock_portal)
    result = run_cli(["download", "--month", MONTH], cli_env(mock_portal, fast_settings()))
    assert result.returncode == EXIT_LOGIN_REFUSED
    assert "the account is locked; reset the password on the portal (忘记密码)" in result.stderr
    assert "连续认证错误次数过多，您的账号已被锁定" in result.stderr
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 2, "wrong_passwords": 1, "locked": True}


def log_in_elsewhere(portal: MockPortal) -> None:
    """The same person logs in from another browser: the portal kicks the agent's session out (被踢下线)."""
    with httpx.Client(base_url=portal.url, timeout=60, trust_env=False) as client:
        portal.log_in(client, DEMO_MOBILE)


@pytest.mark.mock_portal(invoices_per_month=12, sms_resend_seconds=0)
def test_kicked_out_by_another_login_costs_one_relogin_and_the_run_goes_on(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    with on_downloads(mock_portal, 4, lambda: log_in_elsewhere(mock_portal)):
        result = run_agent(settings)
    checked = audit(mock_portal, settings)
    assert result.exit_code == EXIT_OK, result.error
    assert (checked.problems, checked.unknown) == ([], [])
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1 + 1 + 1  # the agent, the other login, the agent again


DYING = Scenario(name="dying", faults=[FaultSpec(kind="kick_out", after_downloads=3)])


@pytest.mark.mock_portal(DYING, invoices_per_month=12, **QUICK_SMS)
def test_a_session_that_keeps_dying_stops_with_exit_5_not_a_loop(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    result = run_cli(["download", "--month", MONTH], cli_env(mock_portal, settings))
    assert result.returncode == EXIT_PORTAL_UNAVAILABLE, result.stderr
    assert "the portal session keeps dying (2 re-logins this run)" in result.stderr
    assert "the ledger resumes where this run stopped" in result.stderr
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1 + MAX_RELOGINS
    assert audit(mock_portal, settings, stopped=True).problems == []


# -- issue 10: credentials only where they belong, a refusal remembered, no SMS without a person


class Redirector:
    """A small web server on 127.0.0.1 that answers every request with 302 to the same path on `target`: a
    portal address that leads somewhere else (a typo'd or hijacked name, a captive portal, a proxy)."""

    def __init__(self, target: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                self.send_response(302)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = _redirect

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[MockPortal]:
    """A copy of the portal on another host (127.0.0.2): what the redirect leads to."""
    portal = MockPortal(MockPortalServer("default", 2025, host="127.0.0.2", invoices_per_month=4).start())
    try:
        yield portal
    finally:
        portal.stop()


def test_a_portal_address_that_leads_to_another_host_gets_no_password(elsewhere: MockPortal, tmp_path: Path) -> None:
    redirector = Redirector(elsewhere.url)
    try:
        settings = load_settings(None, portal_url=redirector.url, out=tmp_path / "archive", state_dir=tmp_path / "state")
        settings = settings.model_copy(update={"accounts": {"acct": mock_account(elsewhere)}})
        result = run_cli(["download", "--month", MONTH], cli_env(elsewhere, settings, FAPIAO_PORTAL_URL=redirector.url))
    finally:
        redirector.close()
    assert result.returncode == EXIT_LOGIN_REFUSED, result.stderr
    assert "127.0.0.2" in result.stderr and "nothing was typed" in result.stderr
    assert login_record(elsewhere, DEMO_MOBILE)["attempts"] == 0
    assert elsewhere.sms_outbox(DEMO_MOBILE) == []
    assert not any("/sys-api/" in path for path in elsewhere.counters()["routes"])  # no credential reached it
    assert not (settings.state_dir / "sessions" / "acct.json").exists()


@pytest.mark.mock_portal(invoices_per_month=4)
def test_five_unattended_runs_with_a_wrong_password_make_one_attempt_in_all(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings(mock_account(mock_portal, password=SecretStr(WRONG)))
    results = [run_agent(settings, login_only=True) for _ in range(5)]
    assert [result.exit_code for result in results] == [EXIT_LOGIN_REFUSED] * 5
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 1, "wrong_passwords": 1, "locked": False}
    later = results[-1].error
    assert "refused" in later and "输入的个人账号或密码错误" in later and "no attempt" in later, later
    assert "fapiao login" in later and time.strftime("%Y-%m-%d") in later
    for path in settings.state_dir.rglob("*"):
        assert not path.is_file() or WRONG.encode() not in path.read_bytes(), path


@pytest.mark.mock_portal(invoices_per_month=4)
def test_a_remembered_refusal_is_cleared_by_an_interactive_login_or_a_changed_password(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    wrong = fast_settings(mock_account(mock_portal, password=SecretStr(WRONG)))
    assert run_agent(wrong, login_only=True).exit_code == EXIT_LOGIN_REFUSED
    assert run_agent(wrong, login_only=True, interactive=True).exit_code == EXIT_LOGIN_REFUSED  # a person: tried
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 2
    fixed = fast_settings()  # the right password now: tried once, unattended, without `fapiao login`
    assert run_agent(fixed, login_only=True).exit_code == EXIT_OK
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 3, "wrong_passwords": 2, "locked": False}


@pytest.mark.mock_portal(invoices_per_month=4)
def test_an_expired_unattended_session_without_an_sms_source_sends_nothing_exit_4(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    assert run_agent(fast_settings(), login_only=True).exit_code == EXIT_OK  # e.g. `fapiao login` yesterday
    mock_portal.advance_clock(24 * 3600)  # the saved session has expired since
    result = run_agent(fast_settings(mock_account(mock_portal, sms="prompt")))
    assert result.exit_code == EXIT_NEEDS_PERSON, result.error
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1  # yesterday's only: no password sent today
    assert len(mock_portal.sms_outbox(DEMO_MOBILE)) == 1  # and no SMS
    assert "SMS" in result.error and "fapiao login" in result.error and "nothing was typed" in result.error


class LoginAnswerProxy:
    """A reverse proxy on 127.0.0.1 in front of the mock that answers the password step itself with `answer`
    (a shape no portal version this agent knows has sent) and passes everything else through; it counts the
    password submissions it received."""

    def __init__(self, portal: MockPortal, answer: bytes, content_type: str) -> None:
        self.submissions = 0
        proxy = self
        upstream = httpx.Client(base_url=portal.url, timeout=60, trust_env=False, follow_redirects=False)
        hop_by_hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST" and self.path.split("?")[0].endswith(PASSWORD_STEPS):
                    proxy.submissions += 1
                    self._answer(200, [("Content-Type", content_type)], answer)
                    return
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in hop_by_hop]
                response = upstream.request(self.command, self.path, headers=headers, content=body)
                kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in hop_by_hop]
                self._answer(response.status_code, kept, response.content)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _forward

            def log_message(self, *_args: object) -> None:
                pass

        self._upstream = upstream
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._upstream.close()


PASSWORD_STEPS = Paths().sso_login_apis


@pytest.mark.parametrize(
    ("answer", "content_type"),
    [
        (b'{"status": "OK", "result": {"token": "x"}}', "application/json"),  # JSON without a code
        (b"<!DOCTYPE html><html><head><title>\xe5\x8d\x87\xe7\xba\xa7\xe5\x85\xac\xe5\x91\x8a</title></head><body>...</body></html>", "text/html"),
    ],
    ids=["json-without-code", "html-page"],
)
@pytest.mark.mock_portal(invoices_per_month=4)
def test_a_login_answer_not_understood_stops_and_later_unattended_runs_do_not_submit_again(
    mock_portal: MockPortal, fast_settings: SettingsFactory, answer: bytes, content_type: str
) -> None:
    proxy = LoginAnswerProxy(mock_portal, answer, content_type)
    try:
        settings = fast_settings(portal_url=proxy.url)
        first, second = run_agent(settings, login_only=True), run_agent(settings, login_only=True)
    finally:
        proxy.close()
    assert (first.exit_code, second.exit_code) == (EXIT_LOGIN_REFUSED, EXIT_LOGIN_REFUSED), first.error
    assert "not understood" in first.error and "not understood" in second.error and "no attempt" in second.error
    assert proxy.submissions == 1
