"""The acceptance check: is a downloaded file a readable invoice file, and is it the invoice the listing names?

Two verdicts for a bad file, because the next step differs: FileCorrupt (not a PDF, cut short, no text, an
HTML page or a PDF served for an OFD/XML request) means download again; ContentMismatch (a good file whose
number, date, parties or figures differ from the listing, or that contradicts itself) means quarantine.
`verify_file` is the I/O edge for `fapiao verify`; the other functions take bytes.

Each kind is judged on what it prints (`PRINTED`): a rail e-ticket has a 票价 but no seller block and no amount
before tax, so those are not "missing". The QR code's amount is held to the 价税合计 on a fully digital invoice
and to the amount before tax on a legacy one, as the payload's shape says; an empty QR check field is no problem.
"""

from __future__ import annotations

import io
import re
import zipfile
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

from agent.errors import ContentMismatch, FileCorrupt, FileRejected
from agent.parsers.amounts import from_upper
from agent.parsers.invoice_pdf import parse_invoice_pdf
from agent.parsers.listing import html_title
from agent.parsers.qr import QrPayload, parse_qr_payload
from agent.records import FileFormat, FileStatus, InvoiceFields, InvoiceRow, Verdict

SUFFIX_FORMATS = {".pdf": FileFormat.pdf, ".ofd": FileFormat.ofd, ".xml": FileFormat.xml}
MAX_FILE_BYTES = 20 << 20  # the default of the `max_file_mb` setting: real invoice files are under 1 MB
# What a kind prints, by FplxDm, where it differs from an ordinary invoice (number, date, amount before tax,
# total, seller's tax id; plus the 发票代码 of a legacy one). Fields a kind does not print are never required.
ORDINARY_PRINTS = ("number", "date", "amount", "total", "seller_tax_id")
PRINTED: dict[str, tuple[str, ...]] = {
    "51": ("number", "date", "total"),  # 铁路电子客票: 票价 only, no seller block
    "61": ("number", "date"),  # 航空运输电子客票行程单: its own table (no sample of ours yet): identity only
}
_NUMBER_TEXT = re.compile(r"-?\d+(?:\.\d+)?")


def check_size(size: int, limit: int = MAX_FILE_BYTES) -> None:
    """A file larger than `limit` bytes is no invoice file (and is not read): FileCorrupt."""
    if size > limit:
        raise FileCorrupt(f"{size / 2**20:.1f} MB: larger than an invoice file may be ({limit / 2**20:g} MB)")


def check_pdf(data: bytes, row: InvoiceRow | None, *, check_qr: bool = True) -> InvoiceFields:
    """The file's fields when it is a good invoice PDF (of `row`, when given); raises FileCorrupt or
    ContentMismatch. `check_qr` also decodes the QR code (about 2 ms more per file) and holds it to the text."""
    fields = parse_invoice_pdf(data, read_qr=check_qr)
    _raise_mismatch(pdf_problems(fields, row))
    return fields


def pdf_problems(fields: InvoiceFields, row: InvoiceRow | None) -> list[str]:
    """Each way the file contradicts itself or the listing row, as "field: listing X, file Y"."""
    problems = _upper_problems(fields) + _qr_problems(fields)
    return problems + _row_problems(fields, row) if row else problems


def _raise_mismatch(problems: list[str]) -> None:
    if problems:
        raise ContentMismatch("; ".join(problems))


def _upper_problems(fields: InvoiceFields) -> list[str]:
    if fields.total_upper is None or fields.total is None:
        return []
    try:
        upper = from_upper(fields.total_upper)
    except ValueError:
        return [f"total_upper: {fields.total_upper!r} is not an amount"]
    if upper == fields.total:
        return []
    return [f"total_upper: {fields.total_upper} is {upper}, file total {fields.total}"]


def _qr_problems(fields: InvoiceFields) -> list[str]:
    payload = parse_qr_payload(fields.qr_payload) if fields.qr_payload else None
    if payload is None:
        return []  # no code, or some other code on the page: nothing to hold the text to
    problems = []
    if fields.number is not None and _qr_identity(payload) != (fields.code or "") + fields.number:
        problems.append(f"qr number: file {fields.code or ''}{fields.number}, qr {_qr_identity(payload)}")
    printed = getattr(fields, payload.amount_field)  # 价税合计 (fully digital) or amount before tax (legacy)
    if printed is not None and payload.amount != printed:
        problems.append(f"qr amount: file {payload.amount_field} {printed}, qr {payload.amount}")
    if fields.date is not None and payload.date != fields.date:
        problems.append(f"qr date: file {fields.date}, qr {payload.date}")
    if _is_check_code(payload.check) and fields.check_code and payload.check != fields.check_code:
        problems.append(f"qr check code: file {fields.check_code}, qr {payload.check}")
    return problems


def _is_check_code(check: str) -> bool:
    """A legacy 20-digit 校验码 (not a fully digital invoice's 4-hex Jym, nor an empty field)."""
    return len(check) == 20 and check.isdigit()


def _qr_identity(payload: QrPayload) -> str:
    """发票代码 + 发票号码 (legacy) or the 20-digit number. Compared as one string, so a legacy file whose code
    carries the portal's 20-digit Fphm (code and number run together, as the mock prints) still agrees."""
    return payload.code + payload.number


def _row_problems(fields: InvoiceFields, row: InvoiceRow) -> list[str]:
    legacy = bool(row.legacy_number)
    listing: dict[str, object] = {
        "number": row.legacy_number if legacy else row.number,
        "date": row.issued_at.date(),
        "amount": row.amount,
        "total": row.total,
        "seller_tax_id": row.seller_tax_id,
    }
    expected = {name: listing[name] for name in PRINTED.get(row.kind, ORDINARY_PRINTS)}
    if legacy:
        expected["code"] = row.legacy_code
    # Printed on some files only: a private buyer has no tax id; *** stands for the tax when exempt or when a
    # tax office issued it (税务代开). Whatever the file does print must agree.
    tolerated = {"buyer_tax_id": row.buyer_tax_id, "tax": row.tax}
    tolerated |= {name: value for name, value in listing.items() if name not in expected}
    problems = [
        _differs(name, value, getattr(fields, name), required=True) for name, value in expected.items()
    ]
    problems += [
        _differs(name, value, getattr(fields, name), required=False) for name, value in tolerated.items()
    ]
    return [problem for problem in problems if problem]


def _differs(name: str, listing: object, in_file: object, required: bool) -> str | None:
    if in_file is None:
        return f"{name}: not found in file" if required else None
    if listing == "" or in_file == listing:
        return None  # an empty listing value (a private buyer's tax id) has nothing to contradict
    return f"{name}: listing {listing}, file {in_file}"


def check_other_format(data: bytes, fmt: FileFormat, row: InvoiceRow | None) -> None:
    """An OFD or XML file: raises FileCorrupt when it is not one, ContentMismatch when it is another invoice's."""
    if fmt is FileFormat.pdf:
        raise ValueError("a PDF is checked by check_pdf")
    name = fmt.value.upper()
    if data.startswith(b"%PDF-"):
        raise FileCorrupt(f"PDF served for an {name} request")
    title = html_title(data)
    if title is not None:
        raise FileCorrupt(f"HTML page served as an {name}: {title}")
    texts = _ofd_texts(data) if fmt is FileFormat.ofd else _xml_texts(data)
    if row:
        _check_texts(texts, row, name)


def _ofd_texts(data: bytes) -> list[str]:
    """The text of every Content.xml page description in an OFD (a zip with OFD.xml at its root)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if "OFD.xml" not in names:
                raise FileCorrupt("not an OFD: no OFD.xml in the archive")
            broken = archive.testzip()
            if broken:
                raise FileCorrupt(f"OFD part {broken} is damaged")
            pages = [archive.read(name) for name in names if name.endswith("Content.xml")]
    except (zipfile.BadZipFile, EOFError) as exc:
        raise FileCorrupt(f"not an OFD (cut short, or not a zip): {exc}") from exc
    return [text for page in pages for text in _element_texts(page, "OFD page")]


def _xml_texts(data: bytes) -> list[str]:
    return _element_texts(data, "XML")


def _element_texts(data: bytes, what: str) -> list[str]:
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise FileCorrupt(f"{what} does not parse: {exc}") from exc
    return [text.strip() for text in root.itertext() if text.strip()]


def _check_texts(texts: list[str], row: InvoiceRow, name: str) -> None:
    """The invoice's number must be printed (inside a text, like 发票号码：…) and its total must be one."""
    numbers = {row.number, row.legacy_number} - {""}
    digits = re.compile(rf"(?<!\d)(?:{'|'.join(sorted(numbers))})(?!\d)")
    problems = []
    if not any(digits.search(text) for text in texts):
        problems.append(f"number: {row.display_number} not found in the {name}")
    if name == "XML" and not any(_is_amount(text, row.total) for text in texts):
        problems.append(f"total: listing {row.total} not found in the XML")
    _raise_mismatch(problems)


def _is_amount(text: str, value: Decimal) -> bool:
    return bool(_NUMBER_TEXT.fullmatch(text)) and Decimal(text) == value


def verify_file(
    path: Path, row: InvoiceRow | None, *, check_qr: bool = True, max_bytes: int = MAX_FILE_BYTES
) -> Verdict:
    """The verdict on one file on disk, by its suffix (.pdf, .ofd, .xml; anything else is read as a PDF)."""
    fields: InvoiceFields | None = None
    try:
        check_size(path.stat().st_size, max_bytes)  # before reading it
        data = path.read_bytes()
    except FileCorrupt as exc:
        return Verdict(path=str(path), status=FileStatus.corrupt, reason=str(exc))
    except OSError as exc:
        return Verdict(path=str(path), status=FileStatus.unreadable, reason=exc.strerror or str(exc))
    fmt = SUFFIX_FORMATS.get(path.suffix.lower(), FileFormat.pdf)
    try:
        if fmt is FileFormat.pdf:
            fields = parse_invoice_pdf(data, read_qr=check_qr)  # kept for the verdict, even on a mismatch
            _raise_mismatch(pdf_problems(fields, row))
        else:
            check_other_format(data, fmt, row)
    except FileRejected as exc:
        status = FileStatus.corrupt if isinstance(exc, FileCorrupt) else FileStatus.mismatch
        return Verdict(path=str(path), status=status, reason=str(exc), fields=fields)
    return Verdict(path=str(path), status=FileStatus.ok, fields=fields)
