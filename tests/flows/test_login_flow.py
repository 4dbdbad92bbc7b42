"""The login flow against the mock portal: success paths, and every refusal stopping after ONE attempt."""

from __future__ import annotations

import stat

import pytest
from agentkit import DEMO_MOBILE, SettingsFactory, login_record, mock_account, run_job

from agent import errors
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
