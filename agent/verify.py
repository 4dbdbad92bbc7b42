"""The acceptance check: is a downloaded file a readable invoice file, and is it the invoice the listing names?

Two verdicts for a bad file, because the next step differs: FileCorrupt (not a PDF, cut short, no text, an
HTML page or a PDF served for an OFD/XML request) means download again; ContentMismatch (a good file whose
number, date, parties or figures differ from the listing, or that contradicts itself) means quarantine.
`verify_file` is the I/O edge for `fapiao verify`; the other functions take bytes.
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
_NUMBER_TEXT = re.compile(r"-?\d+(?:\.\d+)?")


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
    if fields.amount is not None and payload.amount != fields.amount:
        problems.append(f"qr amount: file {fields.amount}, qr {payload.amount}")
    if fields.date is not None and payload.date != fields.date:
        problems.append(f"qr date: file {fields.date}, qr {payload.date}")
    return problems


def _qr_identity(payload: QrPayload) -> str:
    """发票代码 + 发票号码 (legacy) or the 20-digit number. Compared as one string, so a legacy file whose code
    carries the portal's 20-digit Fphm (code and number run together, as the mock prints) still agrees."""
    return payload.code + payload.number


def _row_problems(fields: InvoiceFields, row: InvoiceRow) -> list[str]:
    legacy = bool(row.legacy_number)
    expected: dict[str, object] = {
        "number": row.legacy_number if legacy else row.number,
        "date": row.issued_at.date(),
        "amount": row.amount,
        "total": row.total,
        "seller_tax_id": row.seller_tax_id,
    }
    if legacy:
        expected["code"] = row.legacy_code
    # Legacy layouts may lack these: no buyer tax id for a private person; *** instead of the tax when exempt.
    tolerated = {"buyer_tax_id": row.buyer_tax_id, "tax": row.tax}
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


def verify_file(path: Path, row: InvoiceRow | None, *, check_qr: bool = True) -> Verdict:
    """The verdict on one file on disk, by its suffix (.pdf, .ofd, .xml; anything else is read as a PDF)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Verdict(path=str(path), status=FileStatus.unreadable, reason=exc.strerror or str(exc))
    fmt = SUFFIX_FORMATS.get(path.suffix.lower(), FileFormat.pdf)
    fields: InvoiceFields | None = None
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
