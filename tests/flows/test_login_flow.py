"""The login flow against the mock portal: success paths, and every refusal stopping after ONE attempt."""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from agentkit import DEMO_MOBILE, SettingsFactory, login_record, mock_account, run_job

from agent import errors
from agent.config import Settings, load_settings
from agent.login_memory import LoginMemory
from fixtures.pytest_plugin import MockPortal


def test_login_passes_slider_and_sms_and_saves_a_private_session(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings()
    run_job(settings, login_only=True)
    state = settings.state_dir / "sessions" / "acct.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1
    assert len(mock_portal.sms_outbox(DEMO_MOBILE)) == 1


def test_saved_session_is_reused_without_a_new_login(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings()
    run_job(settings, login_only=True)
    run_job(settings, login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1


def test_wrong_password_is_one_attempt_and_no_lockout(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    from pydantic import SecretStr

    account = mock_account(mock_portal, password=SecretStr("not-the-password"))
    with pytest.raises(errors.WrongCredentials) as refused:
        run_job(agent_settings(account), login_only=True)
    assert refused.value.code == "2035"
    assert "not-the-password" not in str(refused.value)
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 1, "wrong_passwords": 1, "locked": False}


@pytest.mark.mock_portal(lock_after=1)
def test_locked_account_gets_the_portals_message(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    from pydantic import SecretStr

    with pytest.raises(errors.WrongCredentials):
        run_job(agent_settings(mock_account(mock_portal, password=SecretStr("wrong"))), login_only=True)
    with pytest.raises(errors.AccountLocked) as locked:
        run_job(agent_settings(), login_only=True)
    assert "账号已被锁定" in str(locked.value)
    assert locked.value.exit_code == errors.EXIT_LOGIN_REFUSED
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 2


@pytest.mark.parametrize(
    ("mobile", "company_index", "refusal", "code"),
    [
        (DEMO_MOBILE, 2, errors.NotLinked, "2034"),
        ("13800000004", 0, errors.NotLinked, "2034"),
        ("13899999999", 0, errors.NotRegistered, "2059"),
        ("13800000005", 0, errors.NoConfirmedRole, ""),
    ],
)
def test_refusals_stop_after_one_attempt(
    mock_portal: MockPortal, agent_settings: SettingsFactory, mobile: str, company_index: int,
    refusal: type[errors.LoginRefused], code: str,
) -> None:
    company = mock_portal.accounts()["companies"][company_index]["tax_id"]
    with pytest.raises(refusal) as refused:
        run_job(agent_settings(mock_account(mock_portal, mobile, company)), login_only=True)
    assert refused.value.code == code or not code
    assert login_record(mock_portal, mobile)["attempts"] == 1


def test_unknown_company_id_is_2018(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    from agent.parsers.ids import uscc_check_char

    unknown = "91110000MA0000000" + uscc_check_char("91110000MA0000000")
    with pytest.raises(errors.WrongCompanyId):
        run_job(agent_settings(mock_account(mock_portal, DEMO_MOBILE, unknown)), login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1


def test_several_roles_without_a_configured_role_needs_a_person(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    with pytest.raises(errors.NeedsPerson, match="several roles"):
        run_job(agent_settings(mock_account(mock_portal, "13800000002")), login_only=True)


def test_configured_role_is_picked(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings(mock_account(mock_portal, "13800000002", role="财务负责人"))
    run_job(settings, login_only=True)
    assert (settings.state_dir / "sessions" / "acct.json").exists()


def test_first_login_role_confirmation_is_accepted(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings(mock_account(mock_portal, "13800000003"))
    run_job(settings, login_only=True)
    assert (settings.state_dir / "sessions" / "acct.json").exists()


def test_sms_prompt_in_a_scheduled_run_fails_fast_with_exit_4(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    with pytest.raises(errors.NeedsPerson, match="fapiao login") as needed:
        run_job(agent_settings(mock_account(mock_portal, sms="prompt")), login_only=True)
    assert needed.value.exit_code == errors.EXIT_NEEDS_PERSON


# -- provinces: with or without the SMS step, renamed login paths, the platform entered through spHandler


@pytest.mark.parametrize("scenario", ["renamed", "sphandler", "realistic"])
def test_login_with_the_sms_step_on_other_paths_and_entries(
    mock_portal_factory: Callable[..., MockPortal], tmp_path: Path, scenario: str
) -> None:
    portal = mock_portal_factory(scenario, invoices_per_month=2)
    settings = settings_on(portal, tmp_path)
    run_job(settings, login_only=True)
    assert login_record(portal, DEMO_MOBILE)["attempts"] == 1
    assert len(portal.sms_outbox(DEMO_MOBILE)) == 1
    assert LoginMemory(settings.state_dir, "acct").asks_sms() is True


@pytest.mark.mock_portal("password_roles", invoices_per_month=2)
def test_a_password_login_without_an_sms_step_is_remembered_so_cron_needs_no_sms_source(
    mock_portal: MockPortal, agent_settings: SettingsFactory
) -> None:
    run_job(agent_settings(), login_only=True, interactive=True)  # `fapiao login`, once
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 1 and mock_portal.sms_outbox(DEMO_MOBILE) == []
    mock_portal.advance_clock(24 * 3600)  # the session expires; the scheduled run logs in again, unattended
    settings = agent_settings(mock_account(mock_portal, sms="prompt"))
    run_job(settings, login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE)["attempts"] == 2 and mock_portal.sms_outbox(DEMO_MOBILE) == []
    assert LoginMemory(settings.state_dir, "acct").asks_sms() is False


@pytest.mark.mock_portal("password_roles", invoices_per_month=2)
def test_a_password_login_that_answers_several_roles_picks_the_configured_one(
    mock_portal: MockPortal, agent_settings: SettingsFactory
) -> None:
    settings = agent_settings(mock_account(mock_portal, "13800000002", role="财务负责人"))
    run_job(settings, login_only=True)
    assert login_record(mock_portal, "13800000002")["attempts"] == 1
    assert (settings.state_dir / "sessions" / "acct.json").exists()
    with pytest.raises(errors.NeedsPerson, match="several roles"):
        run_job(agent_settings(mock_account(mock_portal, "13800000002"), state_dir=settings.state_dir / "other"), login_only=True)


@pytest.mark.mock_portal("password_roles", invoices_per_month=2)
def test_a_wrong_password_without_an_sms_step_is_one_attempt_too(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    from pydantic import SecretStr

    with pytest.raises(errors.WrongCredentials):
        run_job(agent_settings(mock_account(mock_portal, password=SecretStr("wrong"))), login_only=True)
    assert login_record(mock_portal, DEMO_MOBILE) == {"attempts": 1, "wrong_passwords": 1, "locked": False}


def settings_on(portal: MockPortal, tmp_path: Path) -> Settings:
    base = load_settings(None, portal_url=portal.url, out=tmp_path / "archive", state_dir=tmp_path / "state", rate_limit=0.0)
    return base.model_copy(update={"accounts": {"acct": mock_account(portal)}})


@pytest.mark.mock_portal(invoices_per_month=2, sms_resend_seconds=3)
def test_the_sms_resend_countdown_is_waited_out_and_said_at_the_default_verbosity(
    mock_portal: MockPortal, agent_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    with httpx.Client(base_url=mock_portal.url, timeout=60, trust_env=False) as elsewhere:
        mock_portal.log_in(elsewhere, DEMO_MOBILE)  # a code was just sent: the portal throttles the next one
    with caplog.at_level(logging.WARNING):
        run_job(agent_settings(), login_only=True)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(re.match(r"waiting [0-9]+ s for the portal's SMS resend countdown", line) for line in said), said
    assert len(mock_portal.sms_outbox(DEMO_MOBILE)) == 2
