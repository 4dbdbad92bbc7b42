"""[persons.<name>]: one login for several companies; [accounts.x] keeps working as a person of one company."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import Person, load_settings
from agent.errors import SettingsError
from agent.parsers.ids import uscc_check_char


def uscc(base: str) -> str:
    return base + uscc_check_char(base)


A, B, C = uscc("91110108MA01ABCDE"), uscc("91310000MA1FL0000"), uscc("91440300MA5G00000")


@pytest.fixture(autouse=True)
def no_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("FAPIAO_COMPANY_ID", "FAPIAO_LOGIN", "FAPIAO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fapiao.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_person_with_companies_logs_in_with_the_first(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, f"""
portal_url = "https://dppt.shanghai.chinatax.gov.cn:8443"
[persons.zhou]
login = "13900000001"
password_command = "pass show tax/zhou"
sms = "file:~/sms.txt"
companies = ["{A.lower()}", "{B}", "{A}"]
"""))
    name, person = settings.person(None)
    assert name == "zhou"
    assert person.companies == [A, B]  # upper case, each once, in order
    assert person.login_account().company_id == A
    assert settings.region_of(person) == "dppt.shanghai.chinatax.gov.cn"


def test_all_companies_need_the_company_typed_at_login(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="login_company"):
        load_settings(config(tmp_path, '[persons.wu]\nlogin = "13900000002"\npassword = "x"\ncompanies = "all"\n'))
    settings = load_settings(config(tmp_path, f"""
[persons.wu]
login = "13900000002"
password = "x"
companies = "all"
login_company = "{C}"
region = "shanghai"
captcha = "ocr"
"""))
    _, person = settings.person("wu")
    assert person.companies == "all"
    assert person.login_account().company_id == C
    assert settings.region_of(person) == "shanghai"


def test_accounts_are_persons_of_one_company(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, f"""
[accounts.acme]
company_id = "{A}"
login = "13800000001"
password = "s3cret!"
role = "办税员"
[persons.zhou]
login = "13900000001"
password = "x"
companies = ["{B}", "{C}"]
"""))
    persons = settings.all_persons()
    assert list(persons) == ["zhou", "acme"]
    acme = persons["acme"]
    assert acme.companies == [A] and acme.login_account().company_id == A and acme.role == "办税员"
    assert settings.account("acme")[1].company_id == A  # the account path is unchanged


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('compnies = ["X"]', r"persons\.zhou: unknown key 'compnies' — did you mean 'companies'\?"),
        ('regoin = "bj"', r"persons\.zhou: unknown key 'regoin' — did you mean 'region'\?"),
    ],
)
def test_a_typo_inside_a_person_is_refused_with_the_nearest_key(tmp_path: Path, extra: str, message: str) -> None:
    text = f'[persons.zhou]\nlogin = "13900000001"\npassword = "x"\ncompanies = ["{A}"]\n{extra}\n'
    with pytest.raises(SettingsError, match=message):
        load_settings(config(tmp_path, text))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("companies = []", "at least one company"),
        ('companies = ["91110108MA01ABCDE0"]', "not a valid unified social credit code"),
        (f'companies = ["{A}"]\npassword_command = "pass x"', "only one of password"),
        (f'companies = ["{A}"]\nsms = "pigeon"', "sms must start with one of"),
        (f'companies = ["{A}"]\ncaptcha = "guess"', "captcha must start with one of"),
    ],
)
def test_bad_person_settings_name_the_person(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as bad:
        load_settings(config(tmp_path, f'[persons.zhou]\nlogin = "13900000001"\npassword = "x"\n{body}\n'))
    assert "persons.zhou" in str(bad.value)


def test_a_name_both_person_and_account_is_refused(tmp_path: Path) -> None:
    text = f"""
[accounts.zhou]
company_id = "{A}"
login = "13800000001"
[persons.zhou]
login = "13900000001"
companies = ["{B}"]
"""
    with pytest.raises(SettingsError, match="zhou: named both"):
        load_settings(config(tmp_path, text))


def test_unknown_person_lists_the_configured_ones(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, f'[persons.zhou]\nlogin = "1"\ncompanies = ["{A}"]\n'))
    with pytest.raises(SettingsError, match="unknown person 'wu'; configured: zhou"):
        settings.person("wu")


def test_max_persons_is_bounded(tmp_path: Path) -> None:
    assert load_settings(None).max_persons >= 1
    with pytest.raises(SettingsError, match="max_persons"):
        load_settings(None, max_persons=0)


def test_a_persons_password_never_shows(tmp_path: Path) -> None:
    person = Person(login="13900000001", password="hunter22", companies=[A])  # type: ignore[arg-type]
    assert "hunter22" not in repr(person) and "hunter22" not in str(person.login_account())
