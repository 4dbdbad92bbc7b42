"""agent.manifest: manifest.csv (UTF-8 with BOM) and manifest.xlsx from a small ledger, values exact."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from rowkit import COMPANY, make_row

from agent.ledger import EntryKey, Ledger
from agent.manifest import write_manifests
from agent.records import Direction, FileFormat, InvoiceRow

OTHER_COMPANY = "91110000000000000X"
HEADER = [
    "发票代码", "发票号码", "数电发票号码", "销方识别号", "销方名称", "购方识别号", "购买方名称", "开票日期",
    "金额", "税额", "价税合计", "发票来源", "发票票种", "发票状态", "开票人",
    "方向", "格式", "状态", "文件", "sha256", "错误",
]  # fmt: skip
DIGITAL = make_row(source="2", clerk="张三")  # a 数电 invoice received
PAPER = InvoiceRow(
    direction=Direction.issued,
    number="25110000000000000042",
    legacy_code="011002300111",
    legacy_number="00012345",
    kind="04",
    status="03",
    source="1",
    seller_tax_id=COMPANY,
    seller_name="上海买方贸易有限公司",
    buyer_tax_id="91110000600012345X",
    buyer_name='=HYPERLINK("http://evil.example","点我")',
    issued_at=datetime(2025, 10, 9, 8, 0, 0),
    amount=Decimal("-100.00"),
    tax=Decimal("-13.00"),
    total=Decimal("-113.00"),
)
SHA = "ab" * 32
DIGITAL_CELLS = [
    "", "", "25112000000012345678", "91110000600012345X", "北京某某科技有限公司", COMPANY,
    "上海买方贸易有限公司",
    "2025-10-08 10:17:57", "1165.57", "68.93", "1234.50", "电子发票服务平台", "数电票（普通发票）", "正常", "张三",
    "取得", "PDF", "已核验", f"{COMPANY}/2025-10/a.pdf", SHA, "",
]  # fmt: skip
PAPER_CELLS = [
    "011002300111", "00012345", "25110000000000000042", COMPANY, "上海买方贸易有限公司", "91110000600012345X",
    '\'=HYPERLINK("http://evil.example","点我")', "2025-10-09 08:00:00", "-100.00", "-13.00", "-113.00", "增值税发票管理系统",
    "增值税普通发票", "已红冲-全额", "", "开具", "PDF", "纸质发票", "", "", "",
]  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path) as opened:
        run_id = opened.start_run({})
        opened.record_listed(run_id, COMPANY, [DIGITAL, PAPER], [FileFormat.pdf])
        opened.record_listed(run_id, OTHER_COMPANY, [DIGITAL], [FileFormat.pdf])
        key = EntryKey.of(COMPANY, DIGITAL, FileFormat.pdf)
        opened.mark_verified(run_id, key, tmp_path / COMPANY / "2025-10" / "a.pdf", SHA, 1234)
        yield opened


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def read_xlsx(path: Path) -> list[list[Any]]:
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["发票基础信息"]
    return [[cell.value for cell in row] for row in workbook.worksheets[0].iter_rows()]


def test_write_manifests_returns_both_files_in_the_root(ledger: Ledger, tmp_path: Path) -> None:
    paths = write_manifests(ledger, tmp_path, COMPANY)
    assert paths == [tmp_path.resolve() / "manifest.csv", tmp_path.resolve() / "manifest.xlsx"]
    assert not [name for name in os.listdir(tmp_path) if ".part-" in name]


def test_csv_has_bom_portal_columns_and_exact_values(ledger: Ledger, tmp_path: Path) -> None:
    csv_path, _ = write_manifests(ledger, tmp_path, COMPANY)
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf\xe5\x8f\x91\xe7\xa5\xa8\xe4\xbb\xa3\xe7\xa0\x81,")
    assert read_csv(csv_path) == [HEADER, DIGITAL_CELLS, PAPER_CELLS]


def test_xlsx_keeps_numbers_and_dates_typed(ledger: Ledger, tmp_path: Path) -> None:
    _, xlsx_path = write_manifests(ledger, tmp_path, COMPANY)
    header, digital, _ = read_xlsx(xlsx_path)
    assert header == HEADER
    assert digital[7:11] == [datetime(2025, 10, 8, 10, 17, 57), 1165.57, 68.93, 1234.5]
    assert digital[:7] == [None, None, *DIGITAL_CELLS[2:7]]
    assert digital[11:] == [*DIGITAL_CELLS[11:20], None]


def test_xlsx_stores_a_formula_looking_name_as_plain_text(ledger: Ledger, tmp_path: Path) -> None:
    _, xlsx_path = write_manifests(ledger, tmp_path, COMPANY)
    sheet = openpyxl.load_workbook(xlsx_path).worksheets[0]
    cell = sheet.cell(row=3, column=7)
    assert (cell.value, cell.data_type) == ('=HYPERLINK("http://evil.example","点我")', "s")


def test_without_company_every_company_is_listed(ledger: Ledger, tmp_path: Path) -> None:
    csv_path, xlsx_path = write_manifests(ledger, tmp_path)
    numbers_and_buyers = [(row[2], row[5]) for row in read_csv(csv_path)[1:]]
    assert numbers_and_buyers == [
        ("25112000000012345678", COMPANY),
        ("25112000000012345678", COMPANY),
        ("25110000000000000042", "91110000600012345X"),
    ]
    assert len(read_xlsx(xlsx_path)) == 4


def test_control_characters_in_names_do_not_break_the_xlsx(tmp_path: Path) -> None:
    row = DIGITAL.model_copy(update={"seller_name": "北京\x00某某\x1f公司"})
    with Ledger.open(tmp_path) as ledger:
        ledger.record_listed(ledger.start_run({}), COMPANY, [row], [FileFormat.pdf])
        _, xlsx_path = write_manifests(ledger, tmp_path)
    assert read_xlsx(xlsx_path)[1][4] == "北京某某公司"


def test_writing_again_replaces_the_manifest(ledger: Ledger, tmp_path: Path) -> None:
    csv_path, _ = write_manifests(ledger, tmp_path)
    write_manifests(ledger, tmp_path, OTHER_COMPANY)
    assert len(read_csv(csv_path)) == 2


def test_unchanged_manifests_are_left_alone_and_a_change_rewrites_both(ledger: Ledger, tmp_path: Path) -> None:
    csv_path, xlsx_path = write_manifests(ledger, tmp_path, COMPANY)
    first = (csv_path.stat().st_ino, xlsx_path.stat().st_ino)
    write_manifests(ledger, tmp_path, COMPANY)
    assert (csv_path.stat().st_ino, xlsx_path.stat().st_ino) == first  # a rerun that changed nothing
    entry = next(ledger.entries(COMPANY))
    ledger.mark_failed(1, entry.key, "changed since")
    write_manifests(ledger, tmp_path, COMPANY)
    assert csv_path.stat().st_ino != first[0] and xlsx_path.stat().st_ino != first[1]
    assert "changed since" in csv_path.read_text(encoding="utf-8-sig")


def test_a_deleted_excel_manifest_is_written_again(ledger: Ledger, tmp_path: Path) -> None:
    _, xlsx_path = write_manifests(ledger, tmp_path, COMPANY)
    xlsx_path.unlink()
    write_manifests(ledger, tmp_path, COMPANY)
    assert read_xlsx(xlsx_path)[0] == HEADER


def test_every_state_has_a_chinese_name() -> None:
    from agent.ledger import EntryState
    from agent.manifest import STATE_NAMES

    assert set(STATE_NAMES) == set(EntryState)
    assert (STATE_NAMES[EntryState.verified], STATE_NAMES[EntryState.failed], STATE_NAMES[EntryState.pending]) == (
        "已核验", "失败", "待生成",
    )
    assert (STATE_NAMES[EntryState.quarantined], STATE_NAMES[EntryState.paper]) == ("已隔离", "纸质发票")


def test_xlsx_has_a_frozen_header_filters_widths_and_a_link_to_each_file(ledger: Ledger, tmp_path: Path) -> None:
    spaced = DIGITAL.model_copy(update={"number": "25112000000012349999"})
    ledger.record_listed(1, COMPANY, [spaced], [FileFormat.pdf])
    ledger.mark_verified(1, EntryKey.of(COMPANY, spaced, FileFormat.pdf), tmp_path / "A B#1%.pdf", SHA, 1)
    _, xlsx_path = write_manifests(ledger, tmp_path, COMPANY)
    sheet = openpyxl.load_workbook(xlsx_path).worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:U4"
    assert sheet.column_dimensions["S"].width == 70 and sheet.column_dimensions["E"].width == 30
    linked = {row[18].value: row[18].hyperlink.target for row in sheet.iter_rows(min_row=2) if row[18].hyperlink}
    assert linked == {f"{COMPANY}/2025-10/a.pdf": f"{COMPANY}/2025-10/a.pdf", "A B#1%.pdf": "A%20B%231%25.pdf"}
    assert sheet["S2"].style == "Hyperlink" and sheet["S4"].hyperlink is None  # the paper invoice has no file
