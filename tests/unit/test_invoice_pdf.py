"""Reading invoice PDFs: real legacy and fully digital files, PDFs drawn here to pin one quirk each, the mock's files."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from agent.errors import FileCorrupt
from agent.parsers.amounts import from_upper
from agent.parsers.invoice_pdf import parse_invoice_pdf
from agent.parsers.qr import decode_qr, parse_qr_payload
from agent.records import InvoiceFields
from fixtures.data.generator import Universe
from fixtures.data.model import Invoice
from fixtures.data.render_pdf import render_pdf

SAMPLES = Path(__file__).parents[1] / "samples" / "real-legacy"  # copied from shared/samples
TRUTH = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))
DIGITAL_SAMPLES = Path(__file__).parents[1] / "samples" / "real-sd"
DIGITAL_TRUTH = json.loads((DIGITAL_SAMPLES / "truth.json").read_text(encoding="utf-8"))
DIGITAL_TITLES = {"数电普票": "电子发票（普通发票）", "数电专票": "电子发票（增值税专用发票）"}
FONT = "STSong-Light"
PAGE = (683.0, 397.0)
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

Text = tuple[float, float, str, float]  # x, y of the baseline from the top of the page, text, size


def draw_pdf(*pages: list[Text]) -> bytes:
    """A PDF with each text drawn in the order given: the order of the content stream, not of the page."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=PAGE, invariant=1)
    for texts in pages:
        for x, y, text, size in texts:
            canvas.setFont(FONT, size)
            canvas.drawString(x, PAGE[1] - y, text)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def right_of(x: float, label: str, size: float = 9) -> float:
    return x + pdfmetrics.stringWidth(label, FONT, size) + 1


def vertical(x: float, top: float, text: str, step: float = 13) -> list[Text]:
    return [(x, top + index * step, char, 9) for index, char in enumerate(text)]


# --- real legacy invoices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_real_legacy_invoice_reads_as_a_person_reads_it(name: str) -> None:
    truth = TRUTH[name]
    fields = parse_invoice_pdf((SAMPLES / name).read_bytes())
    assert (fields.code, fields.number, fields.date) == (
        truth["code"],
        truth["number"],
        date.fromisoformat(truth["date"]),
    )
    assert (fields.total, fields.seller_tax_id, fields.title) == (
        Decimal(truth["total"]),
        truth["seller_tax_id"],
        truth["title"],
    )
    assert fields.total_upper == truth["total_upper"]
    assert from_upper(fields.total_upper) == fields.total


def test_values_printed_apart_from_their_labels_land_on_their_fields() -> None:
    """The template (labels) and the data are two separate streams in this file, stamps overlap the title."""
    fields = parse_invoice_pdf((SAMPLES / "tianjin-retail-values-apart.pdf").read_bytes())
    assert fields == InvoiceFields(
        title="天津增值税电子普通发票", number="61876678", code="012001900211", check_code="83454623591883368905",
        date=date(2019, 11, 18), buyer_name="信睿吉科技（北京）有限公司", buyer_tax_id="91110108MA01GUF37R",
        seller_name="天津京东达业贸易有限公司", seller_tax_id="91120110MA06J3WLX8", amount=Decimal("23.89"),
        tax=Decimal("3.11"), total=Decimal("27.00"), total_upper="贰拾柒圆整", remark="订单号:106383362118", clerk="王梅",
    )  # fmt: skip


def test_spaced_labels_and_full_width_brackets_read() -> None:
    fields = parse_invoice_pdf((SAMPLES / "hubei-toll-summary.pdf").read_bytes())
    assert (fields.amount, fields.tax, fields.clerk) == (
        Decimal("184.65"),
        Decimal("5.54"),
        "曹佳培",
    )  # 合 计, 开 票 人
    assert (fields.buyer_name, fields.buyer_tax_id) == ("武汉市车城物流有限公司", "914201007483062457")
    assert (fields.check_code, fields.remark) == ("11241636206802490280", "汇总开具")


def test_real_legacy_qr_codes_decode() -> None:
    payloads = {name: decode_qr((SAMPLES / name).read_bytes()) for name in sorted(TRUTH)}
    assert payloads == {
        "hubei-toll-summary.pdf": "01,10,042001700112,11162913,184.65,20180323,11241636206802490280,DDB1,",
        "tianjin-didi-transport.pdf": "01,10,012001800211,23326471,734.59,20180921,16707184549009707698,B7D0,",
        "tianjin-retail-values-apart.pdf": "01,10,012001900211,61876678,23.89,20191118,83454623591883368905,41FF,",
    }


def test_read_qr_fills_the_payload_while_the_page_is_loaded() -> None:
    data = (SAMPLES / "tianjin-didi-transport.pdf").read_bytes()
    assert parse_invoice_pdf(data).qr_payload is None
    assert parse_invoice_pdf(data, read_qr=True).qr_payload == decode_qr(data)


# --- real fully digital invoices ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DIGITAL_TRUTH))
def test_real_digital_invoice_reads_as_a_person_reads_it(name: str) -> None:
    truth = DIGITAL_TRUTH[name]
    fields = parse_invoice_pdf((DIGITAL_SAMPLES / name).read_bytes())
    assert (fields.title, fields.number, fields.date, fields.code) == (
        DIGITAL_TITLES[truth["kind"]],
        truth["number"],
        date.fromisoformat(truth["date"]),
        None,
    )
    assert (fields.buyer_name, fields.buyer_tax_id, fields.seller_name, fields.seller_tax_id) == (
        truth["buyer_name"],
        truth["buyer_tax_id"],
        truth["seller_name"],
        truth["seller_tax_id"],
    )
    assert (fields.amount, fields.tax, fields.total) == (
        Decimal(truth["amount"]),
        Decimal(truth["tax"]),
        Decimal(truth["total"]),
    )
    assert fields.total_upper is not None and from_upper(fields.total_upper) == fields.total


def test_real_digital_qr_codes_carry_the_total_and_often_no_check() -> None:
    payloads = {name: decode_qr((DIGITAL_SAMPLES / name).read_bytes()) for name in sorted(DIGITAL_TRUTH)}
    assert payloads == {
        "ordinary-passenger-transport-travellers-table.pdf": "01,32,,25952000000093739161,110798.50,20250514,,F162",
        "ordinary-refined-oil-discount-line.pdf": "01,32,,26427000000144470353,267.19,20260108,,ac64",
        "ordinary-reprinted-macos-kangxi-radicals.pdf": "01,32,,25442000000101203423,336.00,20250224,,8716",
        "ordinary-suwell-two-lines-long-remark.pdf": "01,32,,25432000000031411143,655.00,20250311,,19E3",
        "special-suwell-remark-payee.pdf": "01,31,,25317000002228021821,35559.69,20251020,,58E4",
    }


def test_reprinted_file_with_look_alike_radicals_reads_its_title() -> None:
    """The title is drawn as 电⼦发票 (U+2F26 KANGXI RADICAL CHILD): it reads as 电子发票, brackets unchanged."""
    fields = parse_invoice_pdf(
        (DIGITAL_SAMPLES / "ordinary-reprinted-macos-kangxi-radicals.pdf").read_bytes()
    )
    assert (fields.title, fields.remark, fields.clerk) == ("电子发票（普通发票）", None, "蓝晓燕")


def test_remark_caption_sharing_its_lines_with_a_four_line_remark() -> None:
    """备 shares the second remark line, 注 the fourth; the first line sits above the caption."""
    fields = parse_invoice_pdf((DIGITAL_SAMPLES / "ordinary-suwell-two-lines-long-remark.pdf").read_bytes())
    assert fields.remark == (
        "销售方地址:湖南省娄底市娄星区贤童街林业局门面; 电话:07388311889;\n"
        "销方开户银行:湖南娄底农村商业银行股份有限公司; 银行账号:82013300000018413;\n"
        "刻制：湖南链城数字科技有限公司，行政章、财务章、合同章、法人私章费用;\n"
        "收款人:匡小林; 复核人:彭光峰;"
    )


@pytest.mark.parametrize(
    ("name", "remark"),
    [
        (
            "special-suwell-remark-payee.pdf",
            "0070309510/PO.LTG2025070403/BR./A0B8682;\n收款人:积塔; 复核人:司璐;",
        ),
        ("ordinary-passenger-transport-travellers-table.pdf", "收款人:詹小凤; 复核人:乔小利;"),
        ("ordinary-refined-oil-discount-line.pdf", "收款人：熊静; 复核人：谌皋;"),
    ],
)
def test_real_remark_beside_or_above_its_caption_reads(name: str, remark: str) -> None:
    assert parse_invoice_pdf((DIGITAL_SAMPLES / name).read_bytes()).remark == remark


# --- files that are not invoices ----------------------------------------------------------------------------


def test_html_page_is_not_a_pdf() -> None:
    with pytest.raises(FileCorrupt, match=r"^an HTML page, not a PDF: 系统繁忙$"):
        parse_invoice_pdf("<!DOCTYPE html><html><title>系统繁忙</title></html>".encode())


def test_other_bytes_are_not_a_pdf() -> None:
    with pytest.raises(FileCorrupt, match=r"^not a PDF \(starts with b'PK\\x03\\x04'\)$"):
        parse_invoice_pdf(b"PK\x03\x04")


def test_file_cut_in_half_is_truncated() -> None:
    data = (SAMPLES / "hubei-toll-summary.pdf").read_bytes()
    with pytest.raises(FileCorrupt, match="^truncated: no %%EOF$"):
        parse_invoice_pdf(data[: len(data) // 2])


def test_garbage_behind_a_pdf_header_cannot_be_opened() -> None:
    with pytest.raises(FileCorrupt, match="^cannot be opened: "):
        parse_invoice_pdf(b"%PDF-1.7\n" + b"\x00garbage" * 100 + b"\n%%EOF\n")


def test_page_without_text_is_refused() -> None:
    with pytest.raises(FileCorrupt, match="^no text on page 1$"):
        parse_invoice_pdf(draw_pdf([]))


# --- quirks, one drawn PDF each ---------------------------------------------------------------------------

BUYER_NAME, BUYER_ID = "北京云杉数据科技有限公司", "91110108MA01ABCD2X"
SELLER_NAME, SELLER_ID = "上海青禾贸易有限公司", "91310115MA1K4XYZ7P"


def digital_labels(number_below: bool = False) -> list[Text]:
    """The template of a fully digital invoice, seller block first in the stream, buyer block on the left."""
    header = [(450, 36, "发票号码：", 9), (450, 64 if number_below else 52, "开票日期：", 9)]
    seller = [
        *vertical(345, 80, "销售方信息"),
        (365, 93, "名称：", 9),
        (365, 119, "统一社会信用代码/纳税人识别号：", 9),
    ]
    buyer = [
        *vertical(24, 80, "购买方信息"),
        (44, 93, "名称：", 9),
        (44, 119, "统一社会信用代码/纳税人识别号：", 9),
    ]
    table = [
        (24, 150, "项目名称", 8.5),
        (480, 150, "金额", 8.5),
        (640, 150, "税额", 8.5),
        (44, 280, "合 计", 9),
    ]
    totals = [
        (24, 306, "价税合计（大写）", 9),
        (470, 306, "（小写）", 10),
        *vertical(24, 330, "备注", 16),
        (44, 376, "开票人：", 9),
    ]
    return [(240, 42, "电子发票（普通发票）", 15), *header, *seller, *buyer, *table, *totals]


def digital_values(number_below: bool = False) -> list[Text]:
    """The data, drawn after the whole template, each value beside (or under) its label."""
    tax_label = "统一社会信用代码/纳税人识别号："
    return [
        (450, 48, "25312000000087654321", 9)
        if number_below
        else (right_of(450, "发票号码："), 36, "25312000000087654321", 9),
        (right_of(450, "开票日期："), 64 if number_below else 52, "2025年10月08日", 9),
        (right_of(44, "名称："), 93, BUYER_NAME, 9),
        (right_of(365, "名称："), 93, SELLER_NAME, 9),
        (right_of(44, tax_label), 119, BUYER_ID, 9),
        (right_of(365, tax_label), 119, SELLER_ID, 9),
        (24, 163, "*信息技术服务*软件维护费", 8.5),
        (480, 163, "-5000.00", 8.5),
        (640, 163, "-300.00", 8.5),
        (480, 280, "¥-5000.00", 9),
        (640, 280, "¥-300.00", 9),
        (120, 306, "负伍仟叁佰圆整", 10),
        (right_of(470, "（小写）", 10), 306, "¥-5300.00", 10),
        (44, 334, "被红冲蓝字数电发票号码：25312000000012340000", 8),
        (right_of(44, "开票人："), 376, "李雷", 9),
    ]


RED_LETTER = InvoiceFields(
    title="电子发票（普通发票）", number="25312000000087654321", date=date(2025, 10, 8), buyer_name=BUYER_NAME,
    buyer_tax_id=BUYER_ID, seller_name=SELLER_NAME, seller_tax_id=SELLER_ID, amount=Decimal("-5000.00"),
    tax=Decimal("-300.00"), total=Decimal("-5300.00"), total_upper="负伍仟叁佰圆整",
    remark="被红冲蓝字数电发票号码：25312000000012340000", clerk="李雷",
)  # fmt: skip


def test_seller_block_first_in_the_stream_is_still_the_seller() -> None:
    """Values come after all labels, the seller's block before the buyer's: positions decide, not order."""
    assert parse_invoice_pdf(draw_pdf(digital_labels() + digital_values())) == RED_LETTER


def test_block_captions_decide_buyer_and_seller_not_the_side() -> None:
    """Captions swapped: the left block is now the seller's, so its values are the seller's."""
    swap = {"销": "购", "售": "买", "购": "销", "买": "售"}
    texts = [
        (x, y, swap.get(text, text) if x in (24, 345) else text, size)
        for x, y, text, size in digital_labels()
    ]
    fields = parse_invoice_pdf(draw_pdf(texts + digital_values()))
    assert (fields.seller_name, fields.seller_tax_id) == (BUYER_NAME, BUYER_ID)
    assert (fields.buyer_name, fields.buyer_tax_id) == (SELLER_NAME, SELLER_ID)


def test_caption_beside_a_label_still_marks_its_block() -> None:
    """Captions 3 points left of the labels, 销 level with 名称: the line reads "销 名称：…" (captions swapped)."""
    captions = [*vertical(32, 93, "销售方信息"), *vertical(353, 93, "购买方信息")]
    texts = [t for t in digital_labels() if t[0] not in (24, 345) or t[1] > 140] + captions + digital_values()
    fields = parse_invoice_pdf(draw_pdf(texts))
    assert (fields.seller_name, fields.buyer_name) == (BUYER_NAME, SELLER_NAME)


def test_without_block_captions_the_buyer_comes_first() -> None:
    texts = [t for t in digital_labels() if t[0] not in (24, 345) or t[1] > 140] + digital_values()
    fields = parse_invoice_pdf(draw_pdf(texts))
    assert (fields.buyer_name, fields.seller_name) == (BUYER_NAME, SELLER_NAME)


def test_value_printed_under_its_label_is_found() -> None:
    data = draw_pdf(digital_labels(number_below=True) + digital_values(number_below=True))
    fields = parse_invoice_pdf(data)
    assert (fields.number, fields.date) == ("25312000000087654321", date(2025, 10, 8))


def test_long_name_wrapped_onto_a_second_line_reads_whole() -> None:
    texts = [t for t in digital_labels() + digital_values() if t[2] != BUYER_NAME]
    texts += [
        (right_of(44, "名称："), 90, "北京云杉数据科技有限公司", 9),
        (right_of(44, "名称："), 101, "第一分公司", 9),
    ]
    assert parse_invoice_pdf(draw_pdf(texts)).buyer_name == "北京云杉数据科技有限公司第一分公司"


def test_totals_on_the_second_page_of_a_long_invoice() -> None:
    first_page = [t for t in digital_labels() + digital_values() if t[1] < 270]
    second_page = [t for t in digital_labels() + digital_values() if t[1] >= 270]
    fields = parse_invoice_pdf(draw_pdf(first_page, second_page))
    assert (fields.number, fields.total, fields.clerk) == (
        "25312000000087654321",
        Decimal("-5300.00"),
        "李雷",
    )


def test_look_alike_radicals_in_labels_fold_to_ordinary_characters() -> None:
    """A re-printed file draws 纳税⼈识别号 and 电⼦发票 with Kangxi radicals (U+2F08, U+2F26) and a name with a
    compatibility ideograph (U+F9B1 for U+9234 鈴): labels match again, the title's full-width brackets stay."""
    look_alike = {"人": "\u2f08", "子": "\u2f26", "大": "\u2f24"}
    texts = [
        (x, y, "".join(look_alike.get(char, char) for char in text), size)
        for x, y, text, size in digital_labels() + digital_values()
    ]
    texts = [
        (x, y, "北京\uf9b1木科技有限公司" if text == BUYER_NAME else text, size) for x, y, text, size in texts
    ]
    fields = parse_invoice_pdf(draw_pdf(texts))
    assert (fields.title, fields.buyer_tax_id, fields.seller_tax_id, fields.clerk) == (
        "电子发票（普通发票）", BUYER_ID, SELLER_ID, "李雷",
    )  # fmt: skip
    assert fields.buyer_name == "北京\u9234木科技有限公司"  # U+F9B1 folded to U+9234


def test_private_person_buyer_printed_without_tax_id_reads_none() -> None:
    """The buyer's tax id label is printed empty on the line that holds the seller's: it stays empty."""
    texts = [t for t in digital_labels() + digital_values() if t[2] not in (BUYER_ID, BUYER_NAME)]
    texts.append((right_of(44, "名称："), 93, "张三", 9))
    fields = parse_invoice_pdf(draw_pdf(texts))
    assert (fields.buyer_name, fields.buyer_tax_id, fields.seller_tax_id) == ("张三", None, SELLER_ID)


def test_tax_printed_as_stars_reads_none() -> None:
    """A tax office's invoice (税务代开) or an exempt one prints *** for the tax on the 合计 line."""
    texts = [t for t in digital_labels() + digital_values() if t[2] != "¥-300.00"] + [(640, 280, "***", 9)]
    fields = parse_invoice_pdf(draw_pdf(texts))
    assert (fields.amount, fields.tax, fields.total) == (Decimal("-5000.00"), None, Decimal("-5300.00"))


def remark_box(caption_top: float, remarks: list[tuple[float, str]]) -> list[Text]:
    """The totals, a 备/注 caption 17 points tall at `caption_top`, half a character left of the remark lines
    (at the given heights): a caption and a remark on one line read "备 收款人:…", a space apart."""
    kept = [
        t
        for t in digital_labels() + digital_values()
        if t[2] not in ("备", "注") and not t[2].startswith("被红冲")
    ]
    return kept + vertical(30, caption_top, "备注", 17) + [(44, y, text, 9) for y, text in remarks]


def test_remark_caption_sharing_a_line_with_the_first_remark() -> None:
    """备 and the first remark on one visual line ("备 收款人:…"), 注 beside the third."""
    texts = remark_box(330, [(330, "收款人:王五;"), (340, "复核人:赵六;"), (350, "订单号:2025100042")])
    assert parse_invoice_pdf(draw_pdf(texts)).remark == "收款人:王五;\n复核人:赵六;\n订单号:2025100042"


def test_remark_above_its_caption() -> None:
    """The remark sits one line above 备 (a short remark at the top of a tall box)."""
    texts = remark_box(334, [(324, "收款人:王五;")])
    assert parse_invoice_pdf(draw_pdf(texts)).remark == "收款人:王五;"


def test_remark_holding_a_label_of_its_own_still_reads() -> None:
    """发票号码 inside a red-letter remark is text, not the end of the remark box."""
    texts = remark_box(330, [(334, "被红冲蓝字数电发票号码：25312000000012340000")])
    assert parse_invoice_pdf(draw_pdf(texts)).remark == "被红冲蓝字数电发票号码：25312000000012340000"


def test_remark_written_across_its_line_keeps_the_labels_it_quotes() -> None:
    """备注：… on one line: a red-letter remark quoting 发票号码 is read whole, not cut at that label."""
    kept = [
        t
        for t in digital_labels() + digital_values()
        if t[2] not in ("备", "注") and not t[2].startswith("被红冲")
    ]
    texts = [*kept, (24, 334, "备注：被红冲蓝字数电发票号码：25312000000012340000", 8)]
    assert parse_invoice_pdf(draw_pdf(texts)).remark == "被红冲蓝字数电发票号码：25312000000012340000"


RAIL_NUMBER = "25119110172000044123"


def rail_ticket() -> list[Text]:
    """A rail e-ticket (铁路电子客票): 票价 instead of 合计 and 价税合计, no seller block, the buyer on one line."""
    return [
        (220, 42, "电子发票（铁路电子客票）", 15),
        (450, 36, f"发票号码:{RAIL_NUMBER}", 9),
        (450, 52, "开票日期:2025年11月04日", 9),
        (80, 110, "北京南站", 14), (300, 110, "G123", 14), (480, 110, "上海虹桥站", 14),
        (80, 140, "2025年11月05日 08:00开", 9), (300, 140, "05车12A号", 9), (480, 140, "二等座", 9),
        (80, 160, "票价:", 9), (right_of(80, "票价:"), 160, "￥553.00", 9),
        (80, 180, "1101011990****1234 张三", 9),
        (80, 200, "电子客票号:1234567890123456789012", 9),
        (80, 220, f"购买方名称:{BUYER_NAME}", 9), (330, 220, f"统一社会信用代码:{BUYER_ID}", 9),
        (80, 260, "买票请到12306 发货请到95306", 9),
    ]  # fmt: skip


def test_rail_e_ticket_reads_its_fare_as_the_total_and_no_seller() -> None:
    fields = parse_invoice_pdf(draw_pdf(rail_ticket()))
    assert fields == InvoiceFields(
        title="电子发票（铁路电子客票）", number=RAIL_NUMBER, date=date(2025, 11, 4), buyer_name=BUYER_NAME,
        buyer_tax_id=BUYER_ID, total=Decimal("553.00"),
    )  # fmt: skip


# --- the mock portal's files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe(invoices_per_month=120)


def invoices(universe: Universe) -> Iterator[Invoice]:
    home = universe.companies[0].tax_id
    for month in range(1, 13):
        for direction in ("received", "issued"):
            yield from universe.month(home, f"2025-{month:02d}", direction)


MOCK_CASES: dict[str, Callable[[Invoice], bool]] = {
    "digital special 81": lambda invoice: invoice.kind == "81" and invoice.total > 0,
    "digital ordinary 82 with a remark": lambda invoice: invoice.kind == "82" and bool(invoice.remark),
    "red-letter digital": lambda invoice: invoice.is_digital and invoice.has_file and invoice.total < 0,
    "legacy electronic ordinary 10": lambda invoice: invoice.kind == "10",
    "legacy electronic special 08": lambda invoice: invoice.kind == "08",
    "discount row": lambda invoice: any(item.amount < 0 for item in invoice.items) and invoice.total > 0,
}


def test_mock_rail_e_ticket_reads_back_what_it_prints(universe: Universe) -> None:
    invoice = next(invoice for invoice in invoices(universe) if invoice.kind == "51")
    fields = parse_invoice_pdf(render_pdf(invoice), read_qr=True)
    assert fields == InvoiceFields(
        title="电子发票（铁路电子客票）", number=invoice.number, date=invoice.issued_at.date(),
        buyer_name=invoice.buyer.name, buyer_tax_id=invoice.buyer.tax_id, total=invoice.total,
        qr_payload=invoice.qr_payload,
    )  # fmt: skip


@pytest.mark.parametrize("case", sorted(MOCK_CASES))
def test_mock_invoice_reads_back_every_field(universe: Universe, case: str) -> None:
    invoice = next(invoice for invoice in invoices(universe) if MOCK_CASES[case](invoice))
    fields = parse_invoice_pdf(render_pdf(invoice), read_qr=True)
    assert fields == InvoiceFields(
        title=fields.title,  # checked below: it names the province on legacy files
        number=invoice.legacy_number or invoice.number, code=invoice.legacy_code or None,
        check_code=invoice.check_code or None, date=invoice.issued_at.date(),
        buyer_name=invoice.buyer.name, buyer_tax_id=invoice.buyer.tax_id,
        seller_name=invoice.seller.name, seller_tax_id=invoice.seller.tax_id,
        amount=invoice.amount, tax=invoice.tax, total=invoice.total, total_upper=invoice.total_upper,
        remark=invoice.remark or None, clerk=invoice.clerk, qr_payload=invoice.qr_payload,
    )  # fmt: skip
    assert fields.title is not None and fields.title.endswith("发票）" if invoice.is_digital else "发票")


def test_mock_qr_payload_parses_to_the_invoice(universe: Universe) -> None:
    invoice = next(invoice for invoice in invoices(universe) if invoice.kind == "82")
    payload = parse_qr_payload(decode_qr(render_pdf(invoice)) or "")
    assert payload is not None
    assert (payload.kind, payload.code, payload.number) == ("32", "", invoice.number)
    assert (payload.amount, payload.date, payload.check) == (
        invoice.total,  # 价税合计 on a fully digital invoice
        invoice.issued_at.date(),
        invoice.check_hex,
    )


# --- QR payloads ---------------------------------------------------------------------------------------------


def test_legacy_qr_payload_parses() -> None:
    payload = parse_qr_payload("01,10,012001900211,61876678,23.89,20191118,83454623591883368905,41FF,")
    assert payload is not None
    assert payload.model_dump() == {
        "kind": "10", "code": "012001900211", "number": "61876678", "amount": Decimal("23.89"),
        "date": date(2019, 11, 18), "check": "83454623591883368905",
    }  # fmt: skip
    assert not payload.is_digital


@pytest.mark.parametrize(
    "text",
    [
        "01,32,,25312000000087654321,5650.00,20251008,,",  # check field empty
        "01,32,,25312000000087654321,5650.00,20251008,",  # stops after the empty field before the check
        "01,32,,25312000000087654321,5650.00,2025-10-08,,",  # one platform writes the date with dashes
    ],
)
def test_digital_qr_payload_without_a_check_or_with_a_dashed_date_parses(text: str) -> None:
    payload = parse_qr_payload(text)
    assert payload is not None
    assert (payload.number, payload.amount, payload.date, payload.check, payload.amount_field) == (
        "25312000000087654321", Decimal("5650.00"), date(2025, 10, 8), "", "total",
    )  # fmt: skip


def test_legacy_qr_amount_is_held_to_the_amount_before_tax() -> None:
    payload = parse_qr_payload("01,10,012001900211,61876678,23.89,20191118,83454623591883368905,41FF,")
    assert payload is not None and payload.amount_field == "amount"


def test_digital_qr_payload_parses() -> None:
    payload = parse_qr_payload("01,31,,25312000000087654321,-5000.00,20251008,,A1B2")
    assert payload is not None
    assert (payload.kind, payload.number, payload.amount, payload.check) == (
        "31",
        "25312000000087654321",
        Decimal("-5000.00"),
        "A1B2",
    )
    assert payload.is_digital


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/invoice",
        "01,31,,2531200000008765432,5000.00,20251008,,A1B2",  # 19 digits
        "01,10,0120019002,123,23.89,20191118,8345,41FF",  # legacy number not 8 digits
        "01,31,,25312000000087654321,abc,20251008,,A1B2",
        "01,31,,25312000000087654321,5000.00,20251308,,A1B2",  # month 13
        "02,31,,25312000000087654321,5000.00,20251008,,A1B2",
    ],
)
def test_other_qr_texts_are_not_invoice_payloads(text: str) -> None:
    assert parse_qr_payload(text) is None


def test_decode_qr_of_a_broken_file_is_none() -> None:
    assert decode_qr(b"<html></html>") is None
