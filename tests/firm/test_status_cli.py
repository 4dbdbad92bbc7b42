"""`fapiao status`: companies × months from the ledger, a table unless --json, one month with --month; and
`fapiao demo --firm --json` end to end (the mock firm through the embedded queue, then a rerun)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rowkit import make_row

from agent.archive import Archive
from agent.ledger import EntryKey, Ledger
from agent.parsers.ids import uscc_check_char
from agent.records import Direction, FileFormat

ROOT = Path(__file__).resolve().parents[2]
ACME, BETA = (base + uscc_check_char(base) for base in ("91110108MA01ABCDE", "91310000MA1FL0000"))


def fapiao(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=cwd, check=False,
        env={**clean, "PYTHONPATH": str(ROOT)}, timeout=timeout,
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """ACME: 2025-10 complete (two verified, one paper), 2025-11 one failed; BETA: 2025-10 one pending."""
    root = tmp_path / "books"
    store = Archive(root)
    october = [make_row(number=f"2511200000001234567{n}", buyer_tax_id=ACME) for n in (1, 2)]
    paper = make_row(number="25112000000012345673", buyer_tax_id=ACME, kind="04")
    november = make_row(number="25112000000012345674", buyer_tax_id=ACME, issued_at=make_row().issued_at.replace(month=11))
    beta = make_row(number="25112000000012345675", buyer_tax_id=BETA, direction=Direction.received)
    with Ledger.open(root) as ledger:
        run_id = ledger.start_run({})
        ledger.record_listed(run_id, ACME, [*october, paper, november], [FileFormat.pdf])
        ledger.record_listed(run_id, BETA, [beta], [FileFormat.pdf])
        for row in october:
            path = store.path_for(row, FileFormat.pdf, ACME)
            sha256, size = store.write_atomic(path, f"%PDF-1.7 {row.number}".encode())
            ledger.mark_verified(run_id, EntryKey.of(ACME, row, FileFormat.pdf), path, sha256, size)
        ledger.mark_failed(run_id, EntryKey.of(ACME, november, FileFormat.pdf), "HTTP 500 from the file service")
        ledger.mark_pending(run_id, EntryKey.of(BETA, beta, FileFormat.pdf), "文件生成中")
    return root


def test_status_prints_companies_by_months_with_counts_and_the_last_run(archive: Path) -> None:
    table = fapiao("status", "--out", str(archive), cwd=archive.parent)
    assert table.returncode == 1, table.stderr  # gaps: as `fapiao report`, exit 1
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["company", "month", "listed", "verified"] and lines[0].endswith("last run")
    rows = {tuple(line.split()[:2]): line.split() for line in lines[2:-2]}
    assert rows[(ACME, "2025-10")][2:9] == ["3", "2", "0", "0", "0", "1", "0"]
    assert rows[(ACME, "2025-11")][2:9] == ["1", "0", "0", "1", "0", "0", "0"] and lines[3].endswith("gaps")
    assert rows[(BETA, "2025-10")][2:9] == ["1", "0", "1", "0", "0", "0", "0"]
    assert lines[-1].split()[:4] == ["3", "company-months", "5", "2"]


def test_status_json_for_one_month(archive: Path) -> None:
    shown = fapiao("status", "--out", str(archive), "--month", "2025-10", "--json", cwd=archive.parent)
    report = json.loads(shown.stdout)
    assert [(row["company_id"], row["complete"]) for row in report["company_months"]] == [(ACME, True), (BETA, False)]
    assert report["totals"] == {"listed": 4, "verified": 2, "pending": 1, "failed": 0, "quarantined": 0, "paper": 1, "untried": 0}
    assert report["company_months"][0]["last_run_at"] is not None and report["complete"] is False


def test_status_of_no_archive_is_exit_2_and_says_so(tmp_path: Path) -> None:
    result = fapiao("status", "--out", "nowhere", cwd=tmp_path)
    assert result.returncode == 2 and "no archive at nowhere" in result.stderr
    assert not (tmp_path / "nowhere").exists()  # looking creates nothing


@pytest.mark.browser
def test_demo_firm_archives_every_company_once_per_person_login_and_a_rerun_downloads_nothing(tmp_path: Path) -> None:
    first = fapiao("demo", "--firm", "--json", "--month", "2025-10", "--out", str(tmp_path / "firm"), cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads(first.stdout)
    assert len(report["companies"]) == 12 and report["complete"]
    totals, mock = report["totals"], report["mock"]
    assert totals["verified"] + totals["paper"] == totals["listed"] > 0
    assert (totals["failed"], totals["pending"], totals["quarantined"]) == (0, 0, 0)
    assert mock["truth_files"] == mock["truth_matching"] == totals["verified"] == mock["downloads"]
    assert set(mock["password_logins"].values()) == {1} and len(mock["password_logins"]) == 3
    assert set(mock["max_live_sessions"].values()) == {1}
    again = json.loads(fapiao("demo", "--firm", "--json", "--month", "2025-10", "--out", str(tmp_path / "firm"),
                              cwd=tmp_path, timeout=900).stdout)
    assert again["mock"]["downloads"] == 0 and again["totals"] == totals and again["complete"]
