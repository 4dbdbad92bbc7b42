"""`fapiao verify` and `fapiao demo` read the ledger where it is: the SQLite one above a file named by a relative
path, or PostgreSQL's when the config names one (database_url), where verify looks the archive's files up and the
demo's check against the mock's truth reads, not an empty SQLite ledger.

The PostgreSQL tests are skipped without FAPIAO_TEST_DATABASE_URL (tests/pgkit.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentkit import SettingsFactory, run_job
from pgkit import own_schema, server_url

from agent.ledger import LEDGER_NAME
from agent.records import Direction
from fixtures.pytest_plugin import MockPortal

ROOT = Path(__file__).resolve().parents[2]


def fapiao(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=cwd, check=False,
        env={**clean, "PYTHONPATH": str(ROOT), "NO_PROXY": "*", **(env or {})}, timeout=timeout,
    )


@pytest.fixture
def database_url() -> Iterator[str]:
    with own_schema(server_url()) as url:
        yield url


def swap_two(out: Path) -> tuple[Path, Path]:
    """A good file, and one holding another invoice's genuine PDF: only the ledger's listing tells them apart."""
    pdfs = sorted(out.rglob("*.pdf"))
    shutil.copyfile(pdfs[2], pdfs[1])
    return pdfs[0], pdfs[1]


def statuses(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [json.loads(line)["status"] for line in result.stdout.splitlines()]


@pytest.mark.mock_portal(invoices_per_month=6)
def test_verify_finds_the_sqlite_ledger_of_a_file_named_by_a_relative_path(
    mock_portal: MockPortal, agent_settings: SettingsFactory
) -> None:
    settings = agent_settings()
    run_job(settings, directions=[Direction.issued])
    good, swapped = swap_two(settings.out)
    here = settings.out.parent
    result = fapiao("verify", "--json", str(good.relative_to(here)), str(swapped.relative_to(here)), cwd=here)
    assert statuses(result) == ["ok", "mismatch"], result.stderr
    assert result.returncode == 1


@pytest.mark.mock_portal(invoices_per_month=6)
def test_verify_checks_files_against_the_postgresql_ledger_of_the_config(
    mock_portal: MockPortal, agent_settings: SettingsFactory, database_url: str, tmp_path: Path
) -> None:
    settings = agent_settings(database_url=database_url)
    run_job(settings, directions=[Direction.issued])
    assert not (settings.out / LEDGER_NAME).exists()  # the only ledger is PostgreSQL's
    good, swapped = swap_two(settings.out)
    config = tmp_path / "fapiao.toml"
    config.write_text(f'out = "{settings.out}"\ndatabase_url = "{database_url}"\n', encoding="utf-8")
    result = fapiao("verify", "--config", str(config), "--json", str(good), str(swapped), cwd=tmp_path)
    assert statuses(result) == ["ok", "mismatch"], result.stderr
    assert result.returncode == 1


def test_the_demo_checks_the_mock_truth_against_the_postgresql_ledger(database_url: str, tmp_path: Path) -> None:
    result = fapiao("demo", "--json", "--month", "2025-10", "--out", "books", cwd=tmp_path,
                    env={"FAPIAO_DATABASE_URL": database_url}, timeout=600)
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["truth_files"] == summary["truth_matching"] > 0, result.stderr[-2000:]
    assert result.returncode == 0
    assert not (tmp_path / "books" / LEDGER_NAME).exists()
