"""The QR code printed on an invoice: find it on page 1, decode it, read its payload.

Payloads, comma-separated (the real files end with a trailing comma, which is tolerated):
    fully digital  01,<kind 31|32|51...>,,<20-digit number>,<价税合计: total incl. tax>,<YYYYMMDD>,,<4-hex check>
    legacy         01,<kind 10|04|01|08|...>,<10/12-digit code>,<8-digit number>,<amount before tax>,<YYYYMMDD>,
                   <20-digit check code>,<4-hex digest>
The amount field means the total on a fully digital invoice and the amount before tax on a legacy one (17 of 17
real fully digital files agree); which one is told by the payload's shape (a code, or a 20-digit number alone).
The check field is often empty, one platform writes the date as YYYY-MM-DD, and a payload may stop after the
date's empty neighbour (seven fields): all are read.

Only the top-left corner of page 1 is rendered, where real invoices of both generations print the code: that
region at 2x (144 dpi) decodes the real samples and the mock's files and costs about 2 ms over loading the page.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from decimal import Decimal

import pypdfium2 as pdfium
import zxingcpp
from pydantic import BaseModel, ConfigDict

from agent.parsers.amounts import to_fen

# PDFium is process-global and not thread-safe, even across documents: every pdfium call in the agent
# (here and in invoice_pdf) holds this lock.
PDFIUM_LOCK = threading.Lock()

QR_REGION = (0.35, 0.45)  # share of the page width and height, from the top-left corner
QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)  # searching other symbologies costs time
DATE_SHAPES = ("%Y%m%d", "%Y-%m-%d")
QR_RENDER_SCALE = 2.0  # 144 dpi: about 3.5 pixels per module on the real samples; 1x is too close to failing


class QrPayload(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str  # 31/32 on fully digital invoices; the legacy FplxDm (10, 04, 01, 08) otherwise
    code: str  # 发票代码 of a legacy invoice, "" on a fully digital one
    number: str  # 20 digits, or the legacy 8-digit 发票号码
    amount: Decimal  # fully digital: 价税合计 (total incl. tax); legacy: amount before tax
    date: date
    check: str  # legacy: the 20-digit 校验码 (or "", then the digest); fully digital: the Jym, often ""

    @property
    def is_digital(self) -> bool:
        return not self.code

    @property
    def amount_field(self) -> str:
        """The InvoiceFields field the amount is held to: `total` on a fully digital invoice, else `amount`."""
        return "total" if self.is_digital else "amount"


def decode_qr_page(page: pdfium.PdfPage) -> str | None:
    """The text of the QR code in the page's top-left corner. The caller holds PDFIUM_LOCK."""
    width, height = page.get_size()
    crop_right, crop_bottom = width * (1 - QR_REGION[0]), height * (1 - QR_REGION[1])
    bitmap = page.render(scale=QR_RENDER_SCALE, crop=(0, crop_bottom, crop_right, 0), grayscale=True)
    found = zxingcpp.read_barcode(bitmap.to_pil(), formats=QR_ONLY)
    return found.text if found else None


def decode_qr(data: bytes) -> str | None:
    """The QR text of an invoice PDF; None when the file does not open or no code decodes."""
    with PDFIUM_LOCK:
        try:
            with pdfium.PdfDocument(data) as pdf:
                return decode_qr_page(pdf[0]) if len(pdf) else None
        except pdfium.PdfiumError:
            return None  # whether the file is corrupt is parse_invoice_pdf's verdict, not ours


def parse_qr_payload(text: str) -> QrPayload | None:
    """The payload's fields, or None when the text is not an invoice QR payload."""
    parts = [part.strip() for part in text.strip().split(",")]
    if len(parts) == 9 and parts[-1] == "":
        parts.pop()  # the trailing comma of real legacy payloads
    if len(parts) == 7:
        parts.append("")  # a fully digital payload that stops before its (empty) check
    if len(parts) != 8 or parts[0] != "01":
        return None
    _, kind, code, number, amount, day, check_code, digest = parts
    issued = _date(day)
    try:
        value = to_fen(amount)
    except ValueError:
        return None
    if issued is None:
        return None
    if not _numbers_fit(code, number):
        return None
    return QrPayload(
        kind=kind, code=code, number=number, amount=value, date=issued, check=check_code or digest
    )


def _date(text: str) -> date | None:
    for shape in DATE_SHAPES:
        try:
            return datetime.strptime(text, shape).date()
        except ValueError:
            continue
    return None


def _numbers_fit(code: str, number: str) -> bool:
    if not code:
        return len(number) == 20 and number.isdigit()
    return len(code) in (10, 12) and code.isdigit() and len(number) == 8 and number.isdigit()
