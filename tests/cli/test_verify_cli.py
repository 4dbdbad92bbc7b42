"""`fapiao verify` on good, truncated, HTML-as-PDF and mismatched files, with and without the ledger."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from agentkit import SettingsFactory, run_job

from agent.records import Direction
from fixtures.pytest_plugin import MockPortal


def verify(*paths: Path) -> tuple[int, list[dict[str, object]]]:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "verify", "--json", *map(str, paths)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2], check=False,
    )
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def archive(mock_portal: MockPortal, agent_settings: SettingsFactory) -> Path:
    settings = agent_settings()
    run_job(settings, directions=[Direction.issued])
    return settings.out


def pdfs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.pdf") if "_" not in p.relative_to(root).parts[0][:1])


@pytest.mark.mock_portal(invoices_per_month=6)
def test_verified_archive_is_all_ok_with_fields(archive: Path) -> None:
    code, verdicts = verify(archive)
    assert code == 0 and len(verdicts) == len(pdfs(archive)) > 0
    first = verdicts[0]
    assert first["status"] == "ok"
    fields = first["fields"]
    assert isinstance(fields, dict)
    assert len(str(fields["number"])) == 20 and str(fields["date"]).startswith("2025-10-")
    assert fields["total"] == str(fields["total"]) and "." in str(fields["total"])


@pytest.mark.mock_portal(invoices_per_month=6)
def test_truncated_html_and_mismatched_files_are_named(archive: Path, tmp_path: Path) -> None:
    good, other, third = pdfs(archive)[:3]
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    other.write_bytes("<html><head><title>系统繁忙</title></head><body>请稍后再试</body></html>".encode())
    shutil.copyfile(pdfs(archive)[3], third)  # another invoice's genuine PDF under this invoice's name
    code, verdicts = verify(good, other, third)
    assert code == 1
    assert [v["status"] for v in verdicts] == ["corrupt", "corrupt", "mismatch"]
    assert "HTML" in str(verdicts[1]["reason"])
    assert "number" in str(verdicts[2]["reason"])


@pytest.mark.mock_portal(invoices_per_month=6)
def test_standalone_file_outside_any_archive_is_checked_on_its_own(archive: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose.pdf"
    shutil.copyfile(pdfs(archive)[0], loose)
    code, verdicts = verify(loose, tmp_path / "missing.pdf")
    assert code == 1
    assert [v["status"] for v in verdicts] == ["ok", "unreadable"]
