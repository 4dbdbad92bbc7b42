"""A month end to end against the mock: files equal the portal's truth, reruns download nothing."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import httpx
import pytest
from agentkit import MONTH, SettingsFactory, run_job
from playwright.sync_api import Page

from agent.config import Settings
from agent.flows.download import FETCH_IN_PAGE
from agent.ledger import EntryState, Ledger
from agent.records import Direction, FileFormat
from fixtures.pytest_plugin import MockPortal


def expected_files(portal: MockPortal, formats: list[FileFormat]) -> dict[tuple[str, str, str], str]:
    """(direction, number, format) -> sha256 of every file the portal has for the month."""
    expected = {}
    for direction in Direction:
        for invoice in portal.truth(MONTH, direction.value)["invoices"]:
            for fmt in formats if invoice["has_file"] else []:
                expected[(direction.value, invoice["Fphm"], fmt.value)] = invoice["sha256"][fmt.value.upper()]
    return expected


def archived_files(settings: Settings) -> dict[tuple[str, str, str], str]:
    with Ledger.open(settings.out) as ledger:
        entries = [e for e in ledger.entries() if e.state is EntryState.verified]
    for entry in entries:
        assert entry.path is not None
        assert (settings.out / entry.path).is_file()
    return {(e.direction.value, e.number, e.format.value): e.sha256 or "" for e in entries}


def final_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".pdf", ".ofd", ".xml") and "_quarantine" not in p.parts]


@pytest.mark.mock_portal(invoices_per_month=40)
def test_month_end_to_end_equals_truth_and_rerun_downloads_nothing(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings()
    expected = expected_files(mock_portal, [FileFormat.pdf])
    summary = run_job(settings)
    assert archived_files(settings) == expected
    assert len(final_files(settings.out)) == len(expected)
    assert (summary.listed, summary.verified, summary.downloaded) == (80, len(expected), len(expected))
    assert summary.paper == 80 - len(expected) and summary.complete
    downloads = mock_portal.counters()["downloads_total"]

    again = run_job(settings)
    assert (again.downloaded, again.skipped, again.verified) == (0, len(expected), len(expected))
    assert mock_portal.counters()["downloads_total"] == downloads


@pytest.mark.mock_portal(invoices_per_month=12)
def test_all_three_formats_are_verified(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings(formats=[FileFormat.pdf, FileFormat.xml, FileFormat.ofd])
    summary = run_job(settings)
    assert archived_files(settings) == expected_files(mock_portal, settings.formats)
    assert summary.complete and summary.failed == 0


@pytest.mark.mock_portal(invoices_per_month=15)
def test_a_changed_file_is_downloaded_again(mock_portal: MockPortal, agent_settings: SettingsFactory) -> None:
    settings = agent_settings()
    run_job(settings, directions=[Direction.issued])
    victim = min(final_files(settings.out))
    victim.write_bytes(b"%PDF-1.4 tampered")
    summary = run_job(settings, directions=[Direction.issued])
    assert summary.downloaded == 1 and summary.complete
    assert archived_files(settings) == {
        k: v for k, v in expected_files(mock_portal, [FileFormat.pdf]).items() if k[0] == "issued"
    }


@pytest.mark.mock_portal(invoices_per_month=10)
def test_manifest_lists_every_invoice_with_portal_columns(agent_settings: SettingsFactory) -> None:
    settings = agent_settings()
    run_job(settings)
    with (settings.out / "manifest.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert {"数电发票号码", "销方识别号", "价税合计", "发票状态"} <= set(rows[0])
    assert (settings.out / "manifest.xlsx").stat().st_size > 0


@pytest.mark.parametrize("native", [True, False], ids=["Uint8Array.toBase64", "FileReader for older Chromium"])
def test_fetch_in_the_page_hands_back_the_exact_bytes(page: Page, mock_portal: MockPortal, native: bool) -> None:
    """Bytes of every value, multi-byte text included, cross from the page to Python unchanged, by either encoder."""
    page.goto(f"{mock_portal.url}/static/portal.css")  # a page of the portal's origin
    if not native:
        page.evaluate("delete Uint8Array.prototype.toBase64")
    url = f"{mock_portal.url}/static/query.js"
    got = page.evaluate(FETCH_IN_PAGE, [url, 10_000])
    sent = httpx.get(url, trust_env=False).content
    assert got["status"] == 200 and any(byte >= 0x80 for byte in sent)
    assert base64.b64decode(got["body"]) == sent
