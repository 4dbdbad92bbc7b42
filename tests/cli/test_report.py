"""`fapiao report`: a table unless --json, the archive of --config, and a verified file that is gone or changed
since is named, not counted verified. `fapiao mock-portal` says who can log in and where SMS codes appear."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rowkit import COMPANY, make_row

from agent.archive import Archive
from agent.ledger import EntryKey, Ledger
from agent.records import FileFormat

ROOT = Path(__file__).resolve().parents[2]
FIRST, SECOND, THIRD = (make_row(number=f"2511200000001234567{n}") for n in (1, 2, 3))


def fapiao(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, cwd=cwd, check=False,
        env={**clean, "PYTHONPATH": str(ROOT)}, timeout=60,
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """An archive of three verified files and one that failed."""
    root = tmp_path / "books"
    store = Archive(root)
    with Ledger.open(root) as ledger:
        run_id = ledger.start_run({})
        ledger.record_listed(run_id, COMPANY, [FIRST, SECOND, THIRD], [FileFormat.pdf, FileFormat.xml])
        for row in (FIRST, SECOND, THIRD):
            path = store.path_for(row, FileFormat.pdf, COMPANY)
            sha256, size = store.write_atomic(path, f"%PDF-1.7 {row.number}".encode())
            ledger.mark_verified(run_id, EntryKey.of(COMPANY, row, FileFormat.pdf), path, sha256, size)
            ledger.mark_failed(run_id, EntryKey.of(COMPANY, row, FileFormat.xml), "HTTP 500 from the file service")
    return root


def test_report_prints_a_table_unless_json_is_asked_for(archive: Path) -> None:
    table = fapiao("report", "--out", str(archive), cwd=archive.parent)
    assert table.returncode == 1
    assert not table.stdout.lstrip().startswith("{")
    lines = table.stdout.splitlines()
    assert lines[0] == f"archive {archive.resolve()} · all months"
    assert "  verified        3" in lines and "  failed          3" in lines
    assert "3 not verified:" in lines
    assert any(line.split()[:4] == ["received", FIRST.number, "xml", "failed"] for line in lines)
    assert lines[-1].startswith("not complete: run `fapiao download` again")
    as_json = json.loads(fapiao("report", "--out", str(archive), "--json", cwd=archive.parent).stdout)
    assert (as_json["counts"]["verified"], as_json["counts"]["failed"], as_json["complete"]) == (3, 3, False)


def test_a_verified_file_deleted_or_changed_since_is_named_and_not_counted(archive: Path) -> None:
    store = Archive(archive)
    store.path_for(FIRST, FileFormat.pdf, COMPANY).unlink()
    store.path_for(SECOND, FileFormat.pdf, COMPANY).write_bytes(b"%PDF-1.7 edited by hand")
    result = fapiao("report", "--out", str(archive), "--json", cwd=archive.parent)
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert (report["counts"]["verified"], report["counts"]["missing"], report["counts"]["changed"]) == (1, 1, 1)
    gone = {(p["number"], p["state"]) for p in report["not_verified"] if p["format"] == "pdf"}
    assert gone == {(FIRST.number, "missing"), (SECOND.number, "changed")}
    reasons = " ".join(p["error"] for p in report["not_verified"])
    assert "the file is no longer there; the next download fetches it again" in reasons
    assert "the file has changed since (sha256 differs)" in reasons


def test_a_complete_archive_says_so_with_exit_0(archive: Path) -> None:
    with Ledger.open(archive) as ledger:
        for row in (FIRST, SECOND, THIRD):
            ledger.mark_verified(1, EntryKey.of(COMPANY, row, FileFormat.xml), archive / "x.xml", "0" * 64, 1)
    for row in (FIRST, SECOND, THIRD):
        (archive / "x.xml").write_bytes(b"")
    with Ledger.open(archive) as ledger:  # one file stands for the three xml entries: its real hash
        sha = Archive.sha256_of(archive / "x.xml")
        for row in (FIRST, SECOND, THIRD):
            ledger.mark_verified(1, EntryKey.of(COMPANY, row, FileFormat.xml), archive / "x.xml", sha, 0)
    result = fapiao("report", "--out", str(archive), cwd=archive.parent)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "complete: every listed file is verified"


def test_report_reads_the_archive_named_by_the_config(archive: Path) -> None:
    (archive.parent / "fapiao.toml").write_text('out = "books"\n', encoding="utf-8")
    result = fapiao("report", "--config", "fapiao.toml", "--json", cwd=archive.parent)
    assert json.loads(result.stdout)["archive"] == str(archive.resolve())


def test_mock_portal_says_who_can_log_in_and_where_sms_codes_appear(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAPIAO_")}
    with subprocess.Popen(
        [sys.executable, "-m", "agent", "mock-portal"], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT)},
    ) as process:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        lines = []
        while not lines or "Ctrl-C stops it" not in lines[-1]:
            lines.append(process.stdout.readline().rstrip("\n"))
        accounts = httpx.get(f"{url}/__mock__/accounts", trust_env=False).json()["accounts"]
        outbox = httpx.get(f"{url}/__mock__/sms", params={"mobile": "13800000001"}, trust_env=False)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    demo = next(account for account in accounts if account["mobile"] == "13800000001")
    text = "\n".join(lines)
    assert f"  13800000001  {demo['password']}  {demo['name']}  办税员 of {next(iter(demo['roles']))}" in text
    assert f"{url}/__mock__/sms?mobile=<mobile>" in text and outbox.status_code == 200
    assert f'sms = "mock-outbox:{url}"' in text
