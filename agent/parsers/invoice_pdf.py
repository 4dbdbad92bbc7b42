"""Read the fields of an invoice PDF: fully digital invoices (数电票) and legacy electronic VAT invoices.

Real files print labels apart from their values (two content streams, a template and the data), put spaces
inside labels ("合 计", "开 票 人"), mix full- and half-width brackets and colons, ¥ and ￥. So the parser does
not trust the text stream. It takes every character with its box, groups them into visual lines by vertical
centre and size, and sorts each line left to right, putting a space for a small gap and a tab for a column gap.
A value then sits to the right of its label even when the stream printed it elsewhere; where it does not, the
nearest match to the right (on a neighbouring line) or below the label is taken.

Buyer or seller: each 名称 / 纳税人识别号 label belongs to the nearest 购/销 block marker (the vertical 购买方 /
销售方信息 captions), whatever order the stream printed them in. A value never lies beyond the next label on its
line, so a label printed empty (a private person's tax id) reads None rather than its neighbour's value.

Files re-printed through macOS draw look-alike Kangxi radicals and compatibility ideographs (⼈ ⽅ ⼦) in place
of ordinary characters; those, and only those, are folded to their ordinary form (NFKC would also turn （ into
(). Kinds print different things: a rail e-ticket (铁路电子客票) has a 票价 and no 价税合计, no seller block, no
合计 line; what a kind does not print reads None, and the verifier judges each kind on what it prints.

Why pdfium (pypdfium2) and not pdfplumber: pdfminer interprets a page in pure Python, 26-33 ms for a real
invoice page; pdfium loads one in about 1 ms (13 ms with heavy images; 5 ms for the mock's, whose font it must
substitute) and the whole parse adds 3-4 ms to the load. Only page 1 is read unless it lacks the totals (a long
invoice continues on the next pages). Before pdfium sees a file, pdf_bounds holds it to its bounds (inflated
content, pages): a hostile file is corrupt, not a run's memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from statistics import median
from typing import NamedTuple

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from agent.errors import FileCorrupt
from agent.parsers.amounts import parse_amount
from agent.parsers.listing import html_title
from agent.parsers.pdf_bounds import check_inflation, check_page_count
from agent.parsers.qr import PDFIUM_LOCK, decode_qr_page
from agent.records import InvoiceFields

EOF_WINDOW = 1024  # readers accept %%EOF this far from the end; a cut file lacks it
SAME_LINE = 0.5  # centres closer than this share of the glyph height are one visual line
SAME_SIZE = 1.6  # glyphs more than this factor apart in height (title, stamps) are different lines
SPACE_GAP, COLUMN_GAP = 0.15, 1.0  # gaps, in glyph heights, that become " " and "\t"
NEAR_RIGHT = 4.0  # a value printed apart starts at most this many heights right of its label
NEAR_BELOW = 2.5  # ... or at most this many heights below it
RECENT_LINES = 8  # glyphs come top to bottom: one can only join one of the last few lines begun
KEPT_SPACES = " \u3000"  # spaces the file prints, half and full width
FREE_TEXT = ("remark",)  # labels whose value may hold other labels' words
BOX_EDGES = ("upper", "lower", "clerk", "sum")  # labels on the lines above and below the remark box
REMARK_LINE_GAP = 1.8  # remark lines follow each other closer than this many caption heights
# Look-alikes of ordinary CJK characters: CJK radicals supplement, Kangxi radicals, compatibility ideographs.
LOOK_ALIKE_RANGES = ((0x2E80, 0x2EFF), (0x2F00, 0x2FDF), (0xF900, 0xFAFF))
FOLD_LOOK_ALIKES = {
    code: unicodedata.normalize("NFKC", chr(code))
    for low, high in LOOK_ALIKE_RANGES
    for code in range(low, high + 1)
    if unicodedata.normalize("NFKC", chr(code)) != chr(code)
}  # each folds to exactly one character, so text positions keep their boxes

_COLON = r"\s*[:：]?"
_AMOUNT = r"(?:-\s*)?[¥￥]?\s*-?\d[\d,]*\.\d{2}(?!\d)"
_UPPER_DIGITS = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆元角分整正"
_UPPER = rf"(?:[（(]\s*负\s*数\s*[)）]|负)?[ⓧ⊗\s]*[{_UPPER_DIGITS}][{_UPPER_DIGITS}\s]*"

LABELS = {
    "code": re.compile(r"发\s*票\s*代\s*码" + _COLON),
    "number": re.compile(r"发\s*票\s*号\s*码" + _COLON),
    "date": re.compile(r"开\s*票\s*日\s*期" + _COLON),
    "check_code": re.compile(r"校\s*验\s*码" + _COLON),
    "name": re.compile(r"名\s*称\s*[:：]"),  # the colon keeps out table headers like 项目名称
    "tax_id": re.compile(
        r"(?:(?:统一社会信用代码\s*/\s*)?纳\s*税\s*人\s*识\s*别\s*号|统一社会信用代码)" + _COLON
    ),
    "sum": re.compile(r"(?<![税\w])合\s*计"),  # 合计 but not 价税合计
    "upper": re.compile(r"价\s*税\s*合\s*计\s*[（(]\s*大\s*写\s*[)）]"),
    "lower": re.compile(r"[（(]\s*小\s*写\s*[)）]"),
    "fare": re.compile(r"(?<![\u4e00-\u9fff])票\s*价" + _COLON),  # rail e-ticket: the total it prints
    "clerk": re.compile(r"开\s*票\s*人\s*[:：]"),
    "remark": re.compile(r"备\s*注" + _COLON),
}
VALUES = {
    "code": re.compile(r"(?<!\d)(?:\d{12}|\d{10})(?!\d)"),
    "number": re.compile(r"(?<!\d)(?:\d{20}|\d{8})(?!\d)"),
    "date": re.compile(r"(\d{4})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})"),
    "check_code": re.compile(r"(?<!\d)\d{5}(?:\s*\d{5}){3}(?!\d)"),
    "tax_id": re.compile(r"(?<![0-9A-Z])[0-9A-Z]{15,20}(?![0-9A-Z])"),
    "amount": re.compile(_AMOUNT),
    "upper": re.compile(_UPPER),
    "clerk": re.compile(r"[^\s:：]+"),
    "text": re.compile(r"[^\s:：][^\t]*"),  # free text (names, remarks): up to the next column gap
}
TITLE = re.compile(r"[\u4e00-\u9fff]*(?:电子发票[（(][\u4e00-\u9fff]+[)）]|增值税[\u4e00-\u9fff]*发票)")
# A block caption: 购/销 standing alone (one character of a vertical 购买方信息), or starting 购买方/销售方.
PARTY_MARKER = re.compile(r"(?<![\u4e00-\u9fff])([购销])(?![\u4e00-\u9fff])|([购销])(?=[买售]方)")


class Glyph(NamedTuple):
    char: str
    x0: float
    x1: float
    center: float  # vertical, from the top of the page as a reader sees it
    height: float


@dataclass(frozen=True)
class Line:
    """One visual line: its text (gaps as " " and "\t") and each text position's horizontal extent."""

    text: str
    x0s: tuple[float, ...]
    x1s: tuple[float, ...]
    center: float
    height: float


@dataclass(frozen=True)
class Found:
    """A regex match on a line, with where it sits on the page."""

    line: Line
    match: re.Match[str]

    @property
    def text(self) -> str:
        return self.match.group(0)

    @property
    def x0(self) -> float:
        return self.line.x0s[self.match.start()]

    @property
    def x1(self) -> float:
        return self.line.x1s[self.match.end() - 1]


def parse_invoice_pdf(data: bytes, *, read_qr: bool = False) -> InvoiceFields:
    """The fields printed on an invoice PDF; raises FileCorrupt when the bytes are not a readable invoice file.

    `read_qr` also decodes the QR code into `qr_payload` while page 1 is loaded anyway (saves a second load).
    """
    _check_envelope(data)
    with PDFIUM_LOCK:
        try:
            with pdfium.PdfDocument(data) as pdf:
                lines, qr_payload = _read_document(pdf, read_qr)
        except pdfium.PdfiumError as exc:
            raise FileCorrupt(f"cannot be opened: {exc}") from exc
    if not lines:
        raise FileCorrupt("no text on page 1")
    return _fields(lines).model_copy(update={"qr_payload": qr_payload})


def _check_envelope(data: bytes) -> None:
    if not data.startswith(b"%PDF-"):
        title = html_title(data)
        if title is not None:
            raise FileCorrupt(f"an HTML page, not a PDF: {title or 'untitled'}")
        raise FileCorrupt(f"not a PDF (starts with {data[:16]!r})")
    if b"%%EOF" not in data[-EOF_WINDOW:]:
        raise FileCorrupt("truncated: no %%EOF")
    check_inflation(data)  # before pdfium inflates anything: a flate bomb is refused here


def _read_document(pdf: pdfium.PdfDocument, read_qr: bool) -> tuple[list[Line], str | None]:
    if len(pdf) == 0:
        raise FileCorrupt("cannot be opened: the document has no pages")
    check_page_count(len(pdf))
    first = pdf[0]
    lines = _page_lines(first, offset=0.0)
    qr_payload = decode_qr_page(first) if read_qr else None
    offset = first.get_height()
    for index in range(1, len(pdf)):
        if not lines or _first(lines, LABELS["lower"]):
            break  # the totals are printed on the invoice's last page
        page = pdf[index]
        lines += _page_lines(page, offset)
        offset += page.get_height()
    return lines, qr_payload


def _page_lines(page: pdfium.PdfPage, offset: float) -> list[Line]:
    textpage = page.get_textpage()
    return _group_lines(list(_glyphs(textpage, page.get_height(), offset)))


def _glyphs(textpage: pdfium.PdfTextPage, page_height: float, offset: float) -> Iterator[Glyph]:
    raw, box = textpage.raw, pdfium_c.FS_RECTF()  # raw handles: this loop runs for every character
    for index in range(textpage.count_chars()):
        char = chr(pdfium_c.FPDFText_GetUnicode(raw, index))
        if not _is_printed(raw, index, char) or not pdfium_c.FPDFText_GetLooseCharBox(raw, index, box):
            continue
        height = box.top - box.bottom
        if box.right > box.left and height > 0:
            center = offset + page_height - (box.top + box.bottom) / 2
            yield Glyph(char, box.left, box.right, center, height)


def _is_printed(raw: pdfium_c.FPDF_TEXTPAGE, index: int, char: str) -> bool:
    """A character the file draws: not a control code, nor a space or line break pdfium inserted itself
    (gaps are re-derived from positions, which the stream's order does not follow)."""
    if char.isspace():
        return char in KEPT_SPACES and pdfium_c.FPDFText_IsGenerated(raw, index) != 1
    return char.isprintable()


class _LineBuilder:
    def __init__(self, glyph: Glyph) -> None:
        self.glyphs = [glyph]
        self.center = glyph.center
        self.height = glyph.height

    def accepts(self, glyph: Glyph) -> bool:
        small, large = sorted((self.height, glyph.height))
        return abs(glyph.center - self.center) <= SAME_LINE * small and large <= SAME_SIZE * small

    def add(self, glyph: Glyph) -> None:
        self.glyphs.append(glyph)
        self.center += (glyph.center - self.center) / len(self.glyphs)


def _group_lines(glyphs: list[Glyph]) -> list[Line]:
    builders: list[_LineBuilder] = []
    for glyph in sorted(glyphs, key=lambda g: g.center):
        builder = next((b for b in reversed(builders[-RECENT_LINES:]) if b.accepts(glyph)), None)
        if builder:
            builder.add(glyph)
        else:
            builders.append(_LineBuilder(glyph))
    printed = [b.glyphs for b in builders if any(not g.char.isspace() for g in b.glyphs)]
    return sorted((_make_line(glyphs) for glyphs in printed), key=lambda line: line.center)


def _make_line(glyphs: list[Glyph]) -> Line:
    ordered = _without_overprint(sorted(glyphs, key=lambda g: g.x0))
    text: list[str] = []
    x0s: list[float] = []
    x1s: list[float] = []
    previous, spaced = None, False
    for glyph in ordered:
        if glyph.char.isspace():
            spaced = True  # a space the file printed; the gap alone may be too narrow to tell
            continue
        if previous:
            separator = _separator(previous, glyph) or (" " if spaced else "")
            if separator:
                text.append(separator)
                x0s.append(previous.x1)
                x1s.append(glyph.x0)
        text.append(glyph.char)
        x0s.append(glyph.x0)
        x1s.append(glyph.x1)
        previous, spaced = glyph, False
    printed = [g for g in ordered if not g.char.isspace()]
    return Line(
        "".join(text).translate(FOLD_LOOK_ALIKES),
        tuple(x0s),
        tuple(x1s),
        median(g.center for g in printed),
        median(g.height for g in printed),
    )


def _separator(previous: Glyph, glyph: Glyph) -> str:
    gap = (glyph.x0 - previous.x1) / max(previous.height, glyph.height)
    return "\t" if gap > COLUMN_GAP else " " if gap > SPACE_GAP else ""


def _without_overprint(glyphs: list[Glyph]) -> list[Glyph]:
    """Drop a character printed twice at one spot (fake bold), which would otherwise read doubled."""
    kept = [glyphs[0]]
    for glyph in glyphs[1:]:
        last = kept[-1]
        if not (glyph.char == last.char and abs(glyph.x0 - last.x0) < 0.3 * glyph.height):
            kept.append(glyph)
    return kept


# --- finding labels and values ---------------------------------------------------------------------------


def _search(lines: list[Line], pattern: re.Pattern[str]) -> Iterator[Found]:
    for line in lines:
        for match in pattern.finditer(line.text):
            yield Found(line, match)


def _first(lines: list[Line], pattern: re.Pattern[str]) -> Found | None:
    return next(_search(lines, pattern), None)


def _value_of(
    lines: list[Line], label: Found, pattern: re.Pattern[str], free_text: bool = False
) -> Found | None:
    """The match of `pattern` nearest to the label: right of it on its line or a neighbour, else below it.
    A value stops at the next label on the label's line, unless it is free text (a remark may say 发票号码)."""
    height = label.line.height
    best: tuple[float, Found] | None = None
    for line in lines:
        rise = line.center - label.line.center
        if abs(rise) > NEAR_BELOW * height:
            continue
        span = (
            (label.match.end(), len(line.text))
            if free_text and line is label.line
            else _value_span(line, label)
        )
        for match in pattern.finditer(line.text, *span):
            found = Found(line, match)
            distance = _distance(label, found, rise, height)
            if distance is not None and (best is None or distance < best[0]) and not _is_label(found):
                best = (distance, found)
    return best[1] if best else None


def _distance(label: Found, value: Found, rise: float, height: float) -> float | None:
    """How far a candidate value is from its label, or None when it is neither right of it nor below it."""
    right = value.x0 - label.x1
    if value.line is label.line:
        return right  # the same visual line: however far right, e.g. the 合计 figures in their columns
    if abs(rise) <= max(height, value.line.height) / 2 and -height / 2 <= right <= NEAR_RIGHT * height:
        return max(right, 0) + abs(rise)  # a value in another size, a little off the label's line
    under_label = value.x0 < label.x1 + height and value.x1 > label.x0 - height
    if 0 < rise <= NEAR_BELOW * height and under_label:
        return rise + abs(value.x0 - label.x0) + NEAR_RIGHT * height  # a value beside its label wins
    return None


@lru_cache(maxsize=512)
def _label_starts(text: str) -> tuple[int, ...]:
    return tuple(sorted(match.start() for label in LABELS.values() for match in label.finditer(text)))


def _value_span(line: Line, label: Found) -> tuple[int, int]:
    """Where on `line` a value of `label` may be: on the label's own line, after it and before the next label
    (so an empty field stays empty); anywhere on another line."""
    if line is not label.line:
        return 0, len(line.text)
    after = label.match.end()
    return after, next((start for start in _label_starts(line.text) if start >= after), len(line.text))


def _is_label(found: Found) -> bool:
    return any(label.match(found.line.text, found.match.start()) for label in LABELS.values())


def _labelled(lines: list[Line], label: str, value: str | None = None) -> Iterator[tuple[Found, Found]]:
    """Every (label, value) pair for the label; `value` names the value pattern when it differs."""
    for found in _search(lines, LABELS[label]):
        match = _value_of(lines, found, VALUES[value or label], free_text=label in FREE_TEXT)
        if match:
            yield found, match


def _value_text(lines: list[Line], label: str, value: str | None = None) -> str | None:
    pair = next(_labelled(lines, label, value), None)
    return pair[1].text if pair else None


# --- the fields ------------------------------------------------------------------------------------------


def _fields(lines: list[Line]) -> InvoiceFields:
    buyer, seller = _parties(lines)
    amount, tax = _sum_line(lines)
    upper = _value_text(lines, "upper")
    total = _value_text(lines, "lower", "amount") or _value_text(lines, "fare", "amount")
    check_code = _value_text(lines, "check_code")
    return InvoiceFields(
        title=_title(lines),
        number=_value_text(lines, "number"),
        code=_value_text(lines, "code"),
        check_code=re.sub(r"\s", "", check_code) if check_code else None,
        date=_date(lines),
        buyer_name=buyer.get("name"),
        buyer_tax_id=buyer.get("tax_id"),
        seller_name=seller.get("name"),
        seller_tax_id=seller.get("tax_id"),
        amount=amount,
        tax=tax,
        total=parse_amount(total) if total else None,
        total_upper=re.sub(r"[\sⓧ⊗]", "", upper) if upper else None,
        remark=_remark(lines),
        clerk=_value_text(lines, "clerk"),
    )


def _title(lines: list[Line]) -> str | None:
    """The largest text naming an invoice kind: 电子发票（普通发票）, 天津增值税电子普通发票."""
    titles = list(_search(lines, TITLE))
    return max(titles, key=lambda found: found.line.height).text if titles else None


def _date(lines: list[Line]) -> date | None:
    pair = next(_labelled(lines, "date"), None)
    if not pair:
        return None
    year, month, day = (int(part) for part in pair[1].match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _sum_line(lines: list[Line]) -> tuple[Decimal | None, Decimal | None]:
    """合计 ¥amount ¥tax; an exempt invoice prints *** for the tax, which reads as None."""
    pair = next(_labelled(lines, "sum", "amount"), None)
    if not pair:
        return None, None
    first = pair[1]
    figures = VALUES["amount"].findall(first.line.text, first.match.start())
    return parse_amount(figures[0]), parse_amount(figures[1]) if len(figures) > 1 else None


def _parties(lines: list[Line]) -> tuple[dict[str, str], dict[str, str]]:
    """Buyer and seller names and tax ids, each assigned to the nearest 购/销 block marker."""
    markers = [
        (found, found.match.group(1) or found.match.group(2)) for found in _search(lines, PARTY_MARKER)
    ]
    buyer: dict[str, str] = {}
    seller: dict[str, str] = {}
    for field in ("name", "tax_id"):
        pairs = list(_labelled(lines, field, "text" if field == "name" else None))
        for order, (label, value) in enumerate(pairs):
            text = _name_with_continuation(lines, label, value) if field == "name" else value.text
            party = buyer if _is_buyer(label, markers, order) else seller
            party.setdefault(field, text)
    return buyer, seller


def _is_buyer(label: Found, markers: list[tuple[Found, str]], order: int) -> bool:
    if not markers:
        return order == 0  # no block captions at all: reading order, buyer first on both layouts
    nearest = min(markers, key=lambda marker: _gap(label, marker[0]))
    return nearest[1] == "购"


def _gap(a: Found, b: Found) -> float:
    return ((a.x0 - b.x0) ** 2 + (a.line.center - b.line.center) ** 2) ** 0.5


def _name_with_continuation(lines: list[Line], label: Found, value: Found) -> str:
    """A long name wraps onto the next line, starting under its first character with no label before it."""
    parts = [value.text.strip()]
    current = value
    for line in lines:
        rise = line.center - current.line.center
        if not 0 < rise <= 1.5 * current.line.height:
            continue
        follow = _segment_starting_at(line, current.x0, label.x0)
        if follow is None:
            break
        parts.append(follow.text.strip())
        current = follow
    return "".join(parts)


def _segment_starting_at(line: Line, x: float, block_left: float) -> Found | None:
    for match in VALUES["text"].finditer(line.text):
        found = Found(line, match)
        if abs(found.x0 - x) <= line.height / 2:
            return found
        if found.x1 > block_left:
            return None  # something (a label) sits between the block's left edge and the value column
    return None


def _remark(lines: list[Line]) -> str | None:
    """备注: written across one line ("备注：…") or down a column (备 above 注) beside a box of text."""
    column = _vertical_caption(lines, "备", "注")
    if column:
        return _text_beside(lines, *column)
    pair = next(_labelled(lines, "remark", "text"), None)
    return _name_with_continuation(lines, *pair) if pair else None


def _vertical_caption(lines: list[Line], upper: str, lower: str) -> tuple[Found, Found] | None:
    """Two single characters stacked in one column, like the 备/注 caption of the remark box. Either may share
    its line with the text beside it ("备 收款人:…")."""
    alone = re.compile(rf"(?:(?<=\s)|^)[{upper}{lower}](?=\s|$)")
    found = list(_search(lines, alone))
    for top in (f for f in found if f.text == upper):
        for bottom in (f for f in found if f.text == lower):
            rise = bottom.line.center - top.line.center
            if 0 < rise <= 6 * top.line.height and abs(bottom.x0 - top.x0) < top.line.height:
                return top, bottom
    return None


def _text_beside(lines: list[Line], top: Found, bottom: Found) -> str | None:
    """The text right of a vertical caption: the lines level with it, and those that follow on above or below
    it at line spacing (the first remark may sit above 备), up to a line holding another label (价税合计,
    开票人). Column gaps within a line read as one space, lines are joined by a line break."""
    height, left = top.line.height, max(top.x1, bottom.x1)
    level = [
        line
        for line in lines
        if top.line.center - height / 2 <= line.center <= bottom.line.center + height / 2
        and not _holds_label(line, left)
    ]
    above = _following(
        reversed([line for line in lines if line.center < top.line.center]), top.line, height, left
    )
    below = _following(
        [line for line in lines if line.center > bottom.line.center], bottom.line, height, left
    )
    texts = [_text_right_of(line, left) for line in [*reversed(above), *level, *below]]
    return "\n".join(text for text in texts if text) or None


def _following(candidates: Iterable[Line], start: Line, height: float, left: float) -> list[Line]:
    """Lines after `start` (in the order given) while each is within remark spacing and holds no label."""
    taken: list[Line] = []
    previous = start
    for line in candidates:
        if abs(line.center - previous.center) > REMARK_LINE_GAP * height or _holds_label(line, left):
            break
        taken.append(line)
        previous = line
    return taken


def _holds_label(line: Line, left: float) -> bool:
    """A label right of `left` that bounds the remark box (价税合计 above, 开票人 below); others, such as
    发票号码 in "被红冲蓝字数电发票号码：…", may be part of a remark."""
    return any(
        line.x0s[match.start()] > left for label in BOX_EDGES for match in LABELS[label].finditer(line.text)
    )


def _text_right_of(line: Line, left: float) -> str:
    first = next((index for index, x0 in enumerate(line.x0s) if x0 > left), len(line.text))
    return " ".join(match.group(0).strip() for match in VALUES["text"].finditer(line.text, first))
