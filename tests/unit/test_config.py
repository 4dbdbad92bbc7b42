from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import SettingsError

GOOD_ID = "91110108MA01ABCDE1"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fapiao.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_user_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("FAPIAO_COMPANY_ID", "FAPIAO_LOGIN", "FAPIAO_PASSWORD", "FAPIAO_OUT", "FAPIAO_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)


def valid_uscc() -> str:
    from agent.parsers.ids import uscc_check_char

    return "91110108MA01ABCDE" + uscc_check_char("91110108MA01ABCDE")


def test_accounts_from_toml_with_secret_password(tmp_path: Path) -> None:
    uscc = valid_uscc()
    config = write(tmp_path, f'[accounts.acme]\ncompany_id = "{uscc}"\nlogin = "13800000001"\npassword = "s3cret!"\n')
    settings = load_settings(config)
    name, account = settings.account(None)
    assert name == "acme"
    assert account.password is not None and account.password.get_secret_value() == "s3cret!"
    assert "s3cret!" not in repr(settings)


def test_precedence_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path, "concurrency = 3\nrate_limit = 2.5\ntimeout = 9\n")
    monkeypatch.setenv("FAPIAO_CONCURRENCY", "5")
    monkeypatch.setenv("FAPIAO_RATE_LIMIT", "4")
    settings = load_settings(config, rate_limit=1.0)
    assert (settings.timeout, settings.concurrency, settings.rate_limit) == (9, 5, 1.0)


def test_bad_value_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="setting concurrency"):
        load_settings(write(tmp_path, "concurrency = 0\n"))


def test_invalid_company_id_names_the_check_character(tmp_path: Path) -> None:
    config = write(tmp_path, '[accounts.x]\ncompany_id = "91110108MA01ABCDE0"\nlogin = "a"\npassword = "p"\n')
    uscc = valid_uscc()
    assert uscc[-1] != "0"
    with pytest.raises(SettingsError, match="accounts.x.company_id.*18th character"):
        load_settings(config)


def test_malformed_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    config = write(tmp_path, "concurrency = 3\nrate_limit = = 3\n")
    with pytest.raises(SettingsError, match=rf"config file {re.escape(str(config))} is not valid TOML: .*at line 2"):
        load_settings(config)


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_account_lists_the_configured_ones(tmp_path: Path) -> None:
    uscc = valid_uscc()
    settings = load_settings(write(tmp_path, f'[accounts.acme]\ncompany_id = "{uscc}"\nlogin = "l"\npassword = "p"\n'))
    with pytest.raises(SettingsError, match="unknown account 'other'; configured: acme"):
        settings.account("other")


def test_flat_environment_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAPIAO_COMPANY_ID", valid_uscc())
    monkeypatch.setenv("FAPIAO_LOGIN", "13800000001")
    monkeypatch.setenv("FAPIAO_PASSWORD", "pw-from-env")
    name, account = load_settings().account(None)
    assert name == "default"
    assert account.resolve_password(name).get_secret_value() == "pw-from-env"


def test_password_command_is_run_and_its_failure_is_clear(tmp_path: Path) -> None:
    uscc = valid_uscc()
    config = write(tmp_path, f'[accounts.a]\ncompany_id = "{uscc}"\nlogin = "l"\npassword_command = "echo from-command"\n')
    _, account = load_settings(config).account("a")
    assert account.resolve_password("a").get_secret_value() == "from-command"
    config = write(tmp_path, f'[accounts.a]\ncompany_id = "{uscc}"\nlogin = "l"\npassword_command = "false"\n')
    _, account = load_settings(config).account("a")
    with pytest.raises(SettingsError, match="password_command of account 'a' failed"):
        account.resolve_password("a")


def test_formats_accept_comma_separated_text() -> None:
    assert [f.value for f in load_settings(formats="pdf, XML,ofd").formats] == ["pdf", "xml", "ofd"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(SettingsError, match="setting formats"):
        load_settings(formats="pdf,docx")


def account_toml(extra: str) -> str:
    return f'[accounts.acme]\ncompany_id = "{valid_uscc()}"\nlogin = "l"\n{extra}\n'


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('password = "p"\nrol = "办税员"', "accounts.acme: unknown key 'rol' — did you mean 'role'?"),
        ('password = "p"\nsmss = "prompt"', "accounts.acme: unknown key 'smss' — did you mean 'sms'?"),
        ('pasword = "p"', "accounts.acme: unknown key 'pasword' — did you mean 'password'?"),
    ],
)
def test_a_typo_inside_an_account_is_refused_with_the_nearest_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(write(tmp_path, account_toml(extra)))
    assert message in str(refused.value)


def test_a_typo_at_the_top_level_is_refused_with_the_nearest_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="top level: unknown key 'concurency' — did you mean 'concurrency'?"):
        load_settings(write(tmp_path, "concurency = 3\n"))


def test_an_unknown_key_with_no_near_name_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="accounts.acme: unknown key 'zzz'; valid keys: company_id, login, "):
        load_settings(write(tmp_path, account_toml('password = "p"\nzzz = 1')))


@pytest.mark.parametrize("setting", ["password_command = \"echo 'x\"", "sms = \"command:read-sms 'x\""])
def test_a_command_that_cannot_be_parsed_is_refused_when_the_file_is_read(tmp_path: Path, setting: str) -> None:
    with pytest.raises(SettingsError, match="cannot be parsed as a command .*No closing quotation.*; check its quotes"):
        load_settings(write(tmp_path, account_toml(setting)))


def test_every_password_seen_is_blanked_out_of_reports(tmp_path: Path) -> None:
    from agent.config import redact

    settings = load_settings(write(tmp_path, account_toml('password = "pw-in-config-9"')))
    _, account = load_settings(write(tmp_path, account_toml('password_command = "echo pw-from-command-7"'))).account("acme")
    account.resolve_password("acme")
    assert settings.accounts["acme"].password is not None
    assert redact("a pw-in-config-9 b pw-from-command-7 c") == "a ******** b ******** c"


def test_relative_folders_in_a_config_file_are_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cron starts in /: `out = "books"` in /etc/fapiao/fapiao.toml must not become /books."""
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "fapiao.toml"
    config.write_text('out = "books"\nstate_dir = "state"\ndebug_dir = "/var/debug"\nbrowser_path = "~/chromium"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config)
    assert (settings.out, settings.state_dir) == (folder / "books", folder / "state")
    assert (settings.debug_dir, settings.browser_path) == (Path("/var/debug"), Path("~/chromium").expanduser())
    assert load_settings(config, out=Path("elsewhere")).out == Path("elsewhere")  # a flag: the shell's folder
    monkeypatch.setenv("FAPIAO_OUT", "from-env")
    assert load_settings(config).out == Path("from-env")
