"""The login memory: a refused login is remembered without the password, later unattended runs with the same
credentials stop at once, a person or a changed password lifts it, and the SMS step is remembered."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent import errors
from agent.config import Account
from agent.login_memory import LoginMemory
from agent.parsers.ids import uscc_check_char

PASSWORD = "Secr3t#Pass-2025"
ACCOUNT = Account(company_id="91110108MA01ABCDE" + uscc_check_char("91110108MA01ABCDE"), login="13800000001", password=SecretStr(PASSWORD))


@pytest.fixture
def memory(tmp_path: Path) -> LoginMemory:
    return LoginMemory(tmp_path / "state", "acme corp")


def refuse(memory: LoginMemory, password: str = PASSWORD) -> None:
    memory.remember_refusal(errors.WrongCredentials("输入的个人账号或密码错误", "2035"), ACCOUNT, SecretStr(password))


def test_a_refusal_is_kept_in_a_private_file_without_the_password(memory: LoginMemory) -> None:
    refuse(memory)
    assert memory.path.name == "acme_corp.json"
    assert stat.S_IMODE(memory.path.stat().st_mode) == 0o600
    text = memory.path.read_bytes()
    assert PASSWORD.encode() not in text and b"WrongCredentials" in text and b"2035" in text


def test_the_same_credentials_unattended_stop_at_once_saying_when_why_and_what_to_do(memory: LoginMemory) -> None:
    refuse(memory)
    with pytest.raises(errors.RefusalRemembered) as stopped:
        memory.check(ACCOUNT, SecretStr(PASSWORD), interactive=False)
    message = str(stopped.value)
    assert stopped.value.exit_code == errors.EXIT_LOGIN_REFUSED
    assert "'acme corp'" in message and "输入的个人账号或密码错误" in message and "fapiao login" in message
    assert memory.read().refusal is not None and memory.read().refusal.when.strftime("%Y-%m-%d %H:%M") in message
    assert PASSWORD not in message


def test_a_changed_password_company_or_login_is_tried_and_the_record_stays_until_a_success(memory: LoginMemory) -> None:
    refuse(memory)
    memory.check(ACCOUNT, SecretStr(PASSWORD + "x"), interactive=False)
    memory.check(ACCOUNT.model_copy(update={"login": "13800000002"}), SecretStr(PASSWORD), interactive=False)
    assert memory.read().refusal is not None
    memory.succeeded(asked_sms=True)
    assert memory.read().refusal is None and memory.asks_sms() is True


def test_a_person_at_the_terminal_tries_and_an_accepted_password_clears_the_record(memory: LoginMemory) -> None:
    refuse(memory)
    memory.check(ACCOUNT, SecretStr(PASSWORD), interactive=True)
    assert memory.read().refusal is not None  # until the portal says whether the password is good
    memory.forget_refusal()
    memory.check(ACCOUNT, SecretStr(PASSWORD), interactive=False)


def test_a_foreign_host_is_no_refusal_of_the_credentials(memory: LoginMemory) -> None:
    memory.remember_refusal(errors.ForeignLoginHost("http://127.0.0.2:80", ["http://127.0.0.1:80"]), ACCOUNT, SecretStr(PASSWORD))
    assert not memory.path.exists()


def test_an_unreadable_memory_is_no_memory_and_the_sms_step_is_unknown_until_seen(memory: LoginMemory) -> None:
    assert memory.asks_sms() is None
    memory.path.parent.mkdir(parents=True)
    memory.path.write_text("{not json")
    assert memory.read().refusal is None
    memory.note_sms_step(False)
    assert memory.asks_sms() is False
