"""Login safety through the CLI: a refused password is tried once and never locks the account, a locked account
gets the portal's own message, a kick-out costs one re-login, and a session that keeps dying stops the run."""

from __future__ import annotations

import httpx
import pytest
from agentkit import DEMO_MOBILE, MONTH, SettingsFactory, login_record, mock_account
from pydantic import SecretStr
from reliakit import QUICK_SMS, audit, cli_env, file_requests, on_downloads, run_agent, run_cli

from agent.errors import EXIT_LOGIN_REFUSED, EXIT_OK, EXIT_PORTAL_UNAVAILABLE
from agent.job import MAX_RELOGINS
from fixtures.portal.faults import FaultSpec
from fixtures.portal.http_login import LoginFailed, log_in_over_http
from fixtures.portal.scenario import Scenario
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
