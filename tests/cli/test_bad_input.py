"""Bad input gets exit 2 and a message naming the fix, before anything touches the portal or the archive."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.parsers.ids import uscc_check_char

USCC = "91110108MA01ABCDE" + uscc_check_char("91110108MA01ABCDE")


def fapiao(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=cwd, check=False,
        env={**clean, "PYTHONPATH": str(Path(__file__).parents[2]), **(env or {})}, timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["download", "--month", "2025-13"], "invalid --month '2025-13': use YYYY-MM"),
        (["download", "--month", "October"], "invalid --month 'October'"),
        (["download", "--from", "2025-10-31", "--to", "2025-10-01"], "--to 2025-10-01 is before --from 2025-10-31; swap them"),
        (["download", "--from", "2025-10-01"], "say which invoices"),
        (["download", "--month", "2025-10", "--from", "2025-10-01", "--to", "2025-10-02"], "either --month or --from/--to"),
        (["download", "--month", "2025-10"], "no account configured"),
        (["download", "--month", "2025-10", "--concurrency", "0"], "setting concurrency"),
        (["download", "--month", "2025-10", "--format", "pdf,docx"], "setting formats"),
        (["download", "--month", "2025-10", "--direction", "sideways"], "Invalid value for '--direction'"),
        (["download", "--month", "2025-10", "--config", "missing.toml"], "config file missing.toml does not exist"),
        (["report", "--out", "nowhere"], "no archive at nowhere"),
    ],
)
def test_bad_input_exits_2_with_the_fix(tmp_path: Path, args: list[str], message: str) -> None:
    result = fapiao(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_unknown_account_names_the_configured_ones(tmp_path: Path) -> None:
    (tmp_path / "fapiao.toml").write_text(
        f'[accounts.acme]\ncompany_id = "{USCC}"\nlogin = "13800000001"\npassword = "pw"\n', encoding="utf-8"
    )
    result = fapiao("download", "--month", "2025-10", "--config", "fapiao.toml", "--account", "other", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown account 'other'; configured: acme" in result.stderr


def test_malformed_config_is_exit_2_naming_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "fapiao.toml").write_text("[accounts.acme\ncompany_id = 1\n", encoding="utf-8")
    result = fapiao("download", "--month", "2025-10", "--config", "fapiao.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "config file fapiao.toml is not valid TOML: " in result.stderr
    assert "(at line 1, column 15)" in result.stderr


def test_output_folder_that_is_a_file_is_exit_2_and_untouched(tmp_path: Path) -> None:
    blocker = tmp_path / "archive"
    blocker.write_bytes(b"precious")
    env = {"FAPIAO_COMPANY_ID": USCC, "FAPIAO_LOGIN": "l", "FAPIAO_PASSWORD": "pw"}
    result = fapiao("download", "--month", "2025-10", "--out", "archive", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "archive" in result.stderr
    assert blocker.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "0000-01"], "--month 0000-01: the platform holds no invoices before 2017-01"),
        (["--month", "2016-12"], "--month 2016-12: the platform holds no invoices before 2017-01"),
        (["--month", "9999-12"], "--month 9999-12 is in the future"),
        (["--from", "2016-12-31", "--to", "2017-01-31"], "--from 2016-12-31: the platform holds no invoices before"),
        (["--from", "2025-10-01", "--to", "9999-12-31"], "--to 9999-12-31 is after today"),
    ],
)
def test_a_period_that_cannot_hold_invoices_is_exit_2_before_any_login(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = {"FAPIAO_COMPANY_ID": USCC, "FAPIAO_LOGIN": "l", "FAPIAO_PASSWORD": "pw", "FAPIAO_PORTAL_URL": "http://127.0.0.1:9"}
    result = fapiao("download", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "archive").exists()  # nothing started


def test_all_accounts_with_none_configured_is_exit_2(tmp_path: Path) -> None:
    result = fapiao("download", "--all-accounts", "--month", "2025-10", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--all-accounts: no account configured" in result.stderr


def test_a_typo_in_an_account_is_exit_2_with_the_nearest_key(tmp_path: Path) -> None:
    (tmp_path / "fapiao.toml").write_text(
        f'[accounts.acme]\ncompany_id = "{USCC}"\nlogin = "l"\npassword = "pw"\nrol = "办税员"\n', encoding="utf-8"
    )
    result = fapiao("download", "--month", "2025-10", "--config", "fapiao.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "accounts.acme: unknown key 'rol' — did you mean 'role'?" in result.stderr


def test_a_password_command_that_cannot_be_parsed_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "fapiao.toml").write_text(
        f'[accounts.acme]\ncompany_id = "{USCC}"\nlogin = "l"\npassword_command = "echo \'x"\n', encoding="utf-8"
    )
    result = fapiao("download", "--month", "2025-10", "--config", "fapiao.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "setting accounts.acme.password_command: cannot be parsed as a command" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_with_nothing_to_check_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an invoice", encoding="utf-8")
    result = fapiao("verify", "empty", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "nothing to check: no invoice files (.pdf, .ofd, .xml) in empty" in result.stderr


def test_verify_without_paths_checks_the_archive_named_by_the_config(tmp_path: Path) -> None:
    (tmp_path / "books").mkdir()
    (tmp_path / "fapiao.toml").write_text('out = "books"\n', encoding="utf-8")
    result = fapiao("verify", "--config", "fapiao.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "nothing to check: no invoice files (.pdf, .ofd, .xml) in books" in result.stderr


BUG = """
import sys
import agent.checks
def explode(*args):
    raise RuntimeError("the report fell over near s3cret-pw-42\\nsecond line")
agent.checks.archive_report = explode
from agent.cli import main
sys.argv[0] = "fapiao"
main()
"""


def test_an_unexpected_error_is_exit_70_one_line_and_a_traceback_file_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "fapiao.toml").write_text(
        f'out = "books"\n[accounts.acme]\ncompany_id = "{USCC}"\nlogin = "l"\npassword = "s3cret-pw-42"\n',
        encoding="utf-8",
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    result = subprocess.run(
        [sys.executable, "-c", BUG, "report", "--config", "fapiao.toml"], capture_output=True, text=True,
        cwd=tmp_path, check=False, env={**clean, "PYTHONPATH": str(Path(__file__).parents[2])}, timeout=60,
    )
    assert result.returncode == 70, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("internal error (a bug, please report it): RuntimeError: the report fell over near ********")
    assert "(at agent/cli.py:" in line  # the innermost frame of the agent's own code
    [crash] = (tmp_path / "books" / "_debug").glob("crash-*.txt")
    assert line.endswith(f"; traceback in {crash.relative_to(tmp_path)}")
    text = crash.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "RuntimeError" in text
    assert "s3cret-pw-42" not in text + result.stderr
    assert oct(crash.stat().st_mode & 0o777) == "0o600"
