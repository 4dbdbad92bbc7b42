"""The archive's table of contents for people: `manifest.csv` and `manifest.xlsx` in the archive root.

Columns start with those accountants know from the portal's Excel export (发票基础信息), then ours: direction,
format, state (in Chinese: 已核验, 失败, 待生成, 已隔离, 纸质发票 ...), file, hash, error. The CSV is UTF-8 with a
BOM, which Excel needs to read Chinese. The Excel file has a frozen header with filters, column widths that fit,
and each file's cell links to the file (a relative link: the archive can move). Names come from the portal, so a
text that Excel would run as a formula (=, +, -, @) is neutralized in both files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from agent.archive import Archive
from agent.ledger import EntryState, Ledger, LedgerEntry
from agent.portal import FORMAT_PARAM, KIND_NAMES, SOURCE_NAMES, STATUS_NAMES
from agent.records import Direction

if TYPE_CHECKING:
    from openpyxl.cell import WriteOnlyCell

CSV_NAME = "manifest.csv"
XLSX_NAME = "manifest.xlsx"
SHEET_TITLE = "发票基础信息"
COLUMNS: tuple[str, ...] = (
    "发票代码", "发票号码", "数电发票号码", "销方识别号", "销方名称", "购方识别号", "购买方名称", "开票日期",
    "金额", "税额", "价税合计", "发票来源", "发票票种", "发票状态", "开票人",
    "方向", "格式", "状态", "文件", "sha256", "错误",
)  # fmt: skip
DIRECTION_NAMES: dict[Direction, str] = {Direction.issued: "开具", Direction.received: "取得"}
STATE_NAMES: dict[EntryState, str] = {
    EntryState.listed: "待下载",
    EntryState.downloaded: "已下载未核验",
    EntryState.verified: "已核验",
    EntryState.failed: "失败",
    EntryState.pending: "待生成",  # the portal has not generated the file yet
    EntryState.quarantined: "已隔离",
    EntryState.paper: "纸质发票",
}
# Excel column widths, in characters (a Chinese character takes two)
COLUMN_WIDTHS: tuple[int, ...] = (14, 10, 22, 21, 30, 21, 30, 19, 12, 11, 12, 20, 20, 12, 8, 6, 6, 12, 70, 16, 40)
FILE_COLUMN = COLUMNS.index("文件")  # its cell links to the file
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
AMOUNT_FORMAT = "0.00"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | Decimal | datetime


def manifest_row(entry: LedgerEntry) -> list[Cell]:
    """One ledger entry as the manifest's cells, in COLUMNS order; amounts and dates keep their types."""
    row = entry.row
    return [
        row.legacy_code, row.legacy_number, row.number,
        row.seller_tax_id, row.seller_name, row.buyer_tax_id, row.buyer_name,
        row.issued_at, row.amount, row.tax, row.total,
        SOURCE_NAMES.get(row.source, row.source), KIND_NAMES.get(row.kind, row.kind), STATUS_NAMES.get(row.status, row.status), row.clerk,
        DIRECTION_NAMES[entry.direction], FORMAT_PARAM[entry.format], STATE_NAMES[entry.state],
        entry.path or "", entry.sha256 or "", entry.last_error,
    ]  # fmt: skip


def _defused(text: str) -> str:
    """Excel runs a cell starting with = + - @ as a formula; a leading apostrophe makes it plain text."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_text(cell: Cell) -> str:
    if isinstance(cell, datetime):
        return f"{cell:%Y-%m-%d %H:%M:%S}"
    if isinstance(cell, Decimal):
        return f"{cell:.2f}"
    return _defused(cell)


def csv_bytes(rows: Iterable[list[Cell]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows([_csv_text(cell) for cell in row] for row in rows)
    return buffer.getvalue().encode("utf-8-sig")


def link_target(path: str) -> str:
    """A relative hyperlink to a file of the archive: its path with the characters a URI reserves escaped."""
    return path.replace("%", "%25").replace(" ", "%20").replace("#", "%23")


def xlsx_bytes(rows: list[list[Cell]]) -> bytes:
    # openpyxl takes a tenth of a second to import: only a run that writes the Excel file pays for it
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.utils import get_column_letter

    def typed_cell(value: Cell) -> WriteOnlyCell:
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)  # control characters are not allowed in the XML
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, datetime):
            cell.number_format = DATE_FORMAT
        elif isinstance(value, Decimal):
            cell.number_format = AMOUNT_FORMAT
        else:
            cell.data_type = "s"  # openpyxl would store a text starting with "=" as a formula
        return cell

    def linked(cells: list[WriteOnlyCell], path: Cell) -> list[WriteOnlyCell]:
        if isinstance(path, str) and path:
            cells[FILE_COLUMN].hyperlink = link_target(path)
            cells[FILE_COLUMN].style = "Hyperlink"
        return cells

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(SHEET_TITLE)
    sheet.freeze_panes = "A2"  # a write-only sheet takes its layout before the first row
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(rows) + 1}"
    for number, width in enumerate(COLUMN_WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(number)].width = width
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append(linked([typed_cell(value) for value in row], row[FILE_COLUMN]))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def write_manifests(ledger: Ledger, root: Path, company_id: str | None = None) -> list[Path]:
    """Write both manifests from the ledger (one company's entries, or all); return their paths."""
    rows = [manifest_row(entry) for entry in ledger.entries(company_id=company_id)]
    archive = Archive(root)
    csv_path, xlsx_path = archive.root / CSV_NAME, archive.root / XLSX_NAME
    csv_data = csv_bytes(rows)
    if xlsx_path.is_file() and _holds(csv_path, csv_data):
        return [csv_path, xlsx_path]  # nothing changed (a rerun): the Excel file takes a second per 2,000 rows
    archive.write_atomic(csv_path, csv_data)
    archive.write_atomic(xlsx_path, xlsx_bytes(rows))
    return [csv_path, xlsx_path]


class ManifestWriter:
    """A run events listener (agent.events): the manifests follow the ledger once a person's companies are done,
    and once more when the run ends (`finish`) if anything happened since, whatever became of the run."""

    def __init__(self, ledger: Ledger, root: Path) -> None:
        self.ledger, self.root = ledger, root
        self._changed = False

    def started(self, person: str, company: str) -> None:
        self._changed = True

    def person_finished(self, person: str, totals: object) -> None:
        self.finish()

    def finish(self) -> None:
        """Write the manifests if a company was archived since they were last written (reading the whole ledger
        to find nothing new cost a rerun a tenth of a second)."""
        if self._changed:
            self._changed = False
            write_manifests(self.ledger, self.root)


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False
