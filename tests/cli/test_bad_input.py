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


def test_malformed_config_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "fapiao.toml").write_text("[accounts.acme\ncompany_id = 1\n", encoding="utf-8")
    result = fapiao("download", "--month", "2025-10", "--config", "fapiao.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read settings" in result.stderr


def test_output_folder_that_is_a_file_is_exit_2_and_untouched(tmp_path: Path) -> None:
    blocker = tmp_path / "archive"
    blocker.write_bytes(b"precious")
    env = {"FAPIAO_COMPANY_ID": USCC, "FAPIAO_LOGIN": "l", "FAPIAO_PASSWORD": "pw"}
    result = fapiao("download", "--month", "2025-10", "--out", "archive", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "archive" in result.stderr
    assert blocker.read_bytes() == b"precious"
