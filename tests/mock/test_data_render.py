"""The mock's invoice files: PDFs that read like the real ones, well-formed XML and OFD, the Excel export."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import openpyxl
import pdfplumber
import pypdfium2
import pytest
import zxingcpp
from invoicekit import hand_made_invoice

from fixtures.data import files
from fixtures.data.export_xlsx import BASIC_HEADERS, ITEM_HEADERS, export_xlsx
from fixtures.data.files import FileStore
from fixtures.data.generator import Universe
from fixtures.data.layout import rail_trip
from fixtures.data.model import Invoice
from fixtures.data.render_ofd import OFD_NS
from fixtures.data.render_pdf import render_pdf
from fixtures.data.render_xml import render_xml

SEED = 613  # its first 40 received invoices hold every kind (rail, paper 数电), voided ones, both reversals
MONTH = "2025-10"
OFD = {"ofd": OFD_NS}


@pytest.fixture(scope="module")
def month() -> list[Invoice]:
    universe = Universe(seed=SEED, invoices_per_month=40)
    return universe.month(universe.companies[0].tax_id, MONTH, "received")


@pytest.fixture(scope="module")
def store() -> FileStore:
    return FileStore()


@pytest.fixture(scope="module")
def with_files(month: list[Invoice]) -> list[Invoice]:
    return [invoice for invoice in month if invoice.has_file]


def _first(invoices: list[Invoice], kind: str) -> Invoice:
    return next(invoice for invoice in invoices if invoice.kind == kind)


def _pdf_text(data: bytes) -> str:
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join(page.extract_text() for page in pdf.pages)


def test_the_test_month_covers_every_kind_of_invoice(month: list[Invoice]) -> None:
    assert len(month) == 40
    assert {invoice.kind for invoice in month} == {"01", "04", "08", "10", "51", "81", "82", "85"}
    assert {invoice.status for invoice in month} == {"01", "02", "03", "04"}


def test_digital_pdf_reads_in_the_portal_order() -> None:
    assert _pdf_text(render_pdf(hand_made_invoice())).splitlines() == [
        "电子发票（增值税专用发票） 发票号码：25112000000012345678",
        "开票日期：2025年10月08日",
        "购 销",
        "买 名称：上海云帆商贸有限公司 售 名称：北京星辰信息科技有限公司",
        "方 方",
        "信 统一社会信用代码/纳税人识别号：91310115MA1K4ABC7T 信 统一社会信用代码/纳税人识别号：91110108MA01GUF37R",
        "息 息",
        "项目名称 规格型号 单位 数量 单价 金额 税率/征收率 税额",
        "*信息技术服务*软件开发服务 项 1 5000.00 5000.00 13% 650.00",
        "合 计 ¥5000.00 ¥650.00",
        "价税合计（大写） 伍仟陆佰伍拾圆整 （小写）¥5650.00",
        "备",
        "合同编号：HT2025100042",
        "注",
        "开票人：张三",
    ]


def test_every_pdf_carries_the_listing_figures(with_files: list[Invoice], store: FileStore) -> None:
    for invoice in with_files:
        text = _pdf_text(store.get(invoice, "PDF"))
        yuan = "¥" if invoice.is_digital else "￥"
        numbers = [invoice.number] if invoice.is_digital else [invoice.legacy_code, invoice.legacy_number]
        if invoice.is_rail:  # a rail e-ticket prints its fare, the buyer and no seller
            expected = [*numbers, invoice.date_cn, invoice.buyer.tax_id, f"票价:￥{invoice.total:.2f}"]
        else:
            expected = [
                *numbers,
                invoice.date_cn,
                invoice.seller.tax_id,
                invoice.buyer.tax_id,
                f"{yuan}{invoice.total:.2f}",
                invoice.total_upper,
            ]
        assert [field for field in expected if field not in text] == [], invoice.number


def test_rail_e_ticket_pdf_prints_fare_trip_and_buyer_but_no_seller(with_files: list[Invoice]) -> None:
    invoice = _first(with_files, "51")
    trip = rail_trip(invoice)
    lines = _pdf_text(render_pdf(invoice)).splitlines()
    assert lines[0] == f"电子发票（铁路电子客票） 发票号码:{invoice.number}"
    assert f"{trip.origin}站 {trip.train} {trip.destination}站" in lines
    assert f"票价:￥{invoice.total:.2f}" in lines
    assert f"购买方名称:{invoice.buyer.name} 统一社会信用代码:{invoice.buyer.tax_id}" in lines
    assert invoice.seller.name not in "\n".join(lines) and "价税合计" not in "\n".join(lines)
    assert (invoice.number[4], invoice.seller.name) == (
        "9",
        f"中国铁路{invoice.seller.name[4:7]}集团有限公司",
    )


def test_legacy_pdf_prints_code_check_code_groups_and_spaced_labels(with_files: list[Invoice]) -> None:
    invoice = _first(with_files, "10")
    text = _pdf_text(render_pdf(invoice))
    groups = " ".join(invoice.check_code[index : index + 5] for index in range(0, 20, 5))
    assert f"{invoice.region.short}增值税电子普通发票" in text
    assert f"发票代码:{invoice.legacy_code}" in text and f"发票号码:{invoice.legacy_number}" in text
    assert f"校 验 码:{groups}" in text
    assert f"合 计 ￥{invoice.amount:.2f} ￥{invoice.tax:.2f}" in text
    assert f"价税合计（大写） {invoice.total_upper} (小写)￥{invoice.total:.2f}" in text


def test_qr_code_decodes_to_the_payload(with_files: list[Invoice], store: FileStore) -> None:
    red = next(invoice for invoice in with_files if invoice.reverses)
    kinds = ("81", "82", "10", "51")
    for invoice in (*(_first(with_files, kind) for kind in kinds), red):
        page = pypdfium2.PdfDocument(store.get(invoice, "PDF"))[0]
        decoded = [barcode.text for barcode in zxingcpp.read_barcodes(page.render(scale=2).to_pil())]
        assert decoded == [invoice.qr_payload]


def test_same_seed_renders_byte_identical_files_and_another_seed_does_not() -> None:
    def digests(seed: int) -> list[str]:
        universe = Universe(seed=seed, invoices_per_month=4)
        invoices = universe.month(universe.companies[0].tax_id, MONTH, "issued")
        store = FileStore()
        return [store.sha256(invoice, fmt) for invoice in invoices for fmt in ("PDF", "OFD", "XML")]

    first = digests(SEED)
    assert first == digests(SEED)
    assert set(first).isdisjoint(digests(SEED + 1))


def test_xml_parses_and_carries_number_and_figures(with_files: list[Invoice]) -> None:
    for invoice in with_files:
        root = ET.fromstring(render_xml(invoice))
        assert root.tag == "EInvoice"
        assert (
            root.findtext("Header/EIid")
            == root.findtext("TaxSupervisionInfo/InvoiceNumber")
            == invoice.number
        )
        basic = root.find("EInvoiceData/BasicInformation")
        assert basic is not None
        figures = [
            basic.findtext(tag) for tag in ("TotalAmWithoutTax", "TotalTaxAm", "TotalTax-includedAmount")
        ]
        assert figures == [f"{invoice.amount:.2f}", f"{invoice.tax:.2f}", f"{invoice.total:.2f}"]
        assert len(root.findall("EInvoiceData/IssuItemInformation")) == len(invoice.items)


def test_red_letter_xml_names_the_reversed_invoice_and_writes_the_negative_upper_amount(
    with_files: list[Invoice],
) -> None:
    red = next(invoice for invoice in with_files if invoice.reverses)
    root = ET.fromstring(render_xml(red))
    assert root.findtext("EInvoiceData/SpecificInformation/RedEInvoice/OriginalInvoiceCode") == red.reverses
    upper = root.findtext("EInvoiceData/BasicInformation/TotalTax-includedAmountInChinese")
    assert upper == "（负数）" + red.total_upper.removeprefix("负")


def test_ofd_is_a_zip_whose_page_carries_the_main_fields(with_files: list[Invoice], store: FileStore) -> None:
    invoice = _first(with_files, "82")
    with zipfile.ZipFile(io.BytesIO(store.get(invoice, "OFD"))) as archive:
        assert archive.testzip() is None
        root = ET.fromstring(archive.read("OFD.xml"))
        document_path = root.findtext("ofd:DocBody/ofd:DocRoot", namespaces=OFD)
        assert document_path == "Doc_0/Document.xml"
        document = ET.fromstring(archive.read(document_path))
        page_path = document.find("ofd:Pages/ofd:Page", OFD).get("BaseLoc")  # type: ignore[union-attr]
        content = ET.fromstring(archive.read(f"Doc_0/{page_path}"))
        fonts = ET.fromstring(archive.read("Doc_0/PublicRes.xml")).findall("ofd:Fonts/ofd:Font", OFD)
    texts = [code.text for code in content.iterfind(".//ofd:TextObject/ofd:TextCode", OFD)]
    assert f"发票号码：{invoice.number}" in texts and f"（小写）¥{invoice.total:.2f}" in texts
    assert [font.get("FontName") for font in fonts] == ["宋体"]
    custom = {data.get("Name"): data.text for data in root.iterfind(".//ofd:CustomData", OFD)}
    assert (custom["发票号码"], custom["价税合计"]) == (invoice.number, f"{invoice.total:.2f}")


def test_xlsx_export_has_a_row_per_invoice_and_per_line(month: list[Invoice]) -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(export_xlsx(month)), read_only=True)
    basic = list(workbook["发票基础信息"].iter_rows(values_only=True))
    items = list(workbook["信息汇总表"].iter_rows(values_only=True))
    workbook.close()
    assert workbook.sheetnames == ["发票基础信息", "信息汇总表"]
    assert (basic[0], items[0]) == (BASIC_HEADERS, ITEM_HEADERS)
    assert len(basic) == 1 + len(month)
    assert len(items) == 1 + sum(len(invoice.items) for invoice in month)
    first = dict(zip(BASIC_HEADERS, basic[1], strict=True))
    assert (first["数电发票号码"] or first["发票代码"] + first["发票号码"]) == month[0].number
    assert first["价税合计"] == float(month[0].total)


def test_xlsx_export_is_byte_identical_for_the_same_invoices(month: list[Invoice]) -> None:
    assert export_xlsx(month[:5]) == export_xlsx(month[:5])


def test_paper_invoice_and_unknown_format_are_refused(month: list[Invoice], store: FileStore) -> None:
    for kind in ("04", "85"):  # legacy paper, and a fully digital invoice printed on paper
        with pytest.raises(ValueError, match="paper"):
            store.get(_first(month, kind), "PDF")
    with pytest.raises(ValueError, match="unknown file format"):
        store.get(_first(month, "82"), "DOCX")


def test_second_store_serves_files_from_disk_without_rendering(
    with_files: list[Invoice], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoices = with_files[:3]
    FileStore(tmp_path).warm(invoices, formats=("PDF", "XML"))
    assert len(list((tmp_path / files.RENDERER_VERSION).iterdir())) == 6

    def refuse(invoice: Invoice) -> bytes:
        raise AssertionError(f"rendered {invoice.number} again")

    monkeypatch.setitem(files.RENDERERS, "PDF", refuse)
    second = FileStore(tmp_path)
    second.warm(invoices)
    assert second.get(invoices[0], "PDF") == render_pdf(invoices[0])


def test_renderer_version_covers_what_the_bytes_depend_on_besides_this_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upper-case amounts (agent/parsers/amounts.py), the kind names and the format version are printed
    in files too: changing any of them changes the cache folder, so no stale file is ever served."""
    before = files._renderer_version()
    assert before == files.RENDERER_VERSION
    monkeypatch.setattr(files, "FORMAT_VERSION", files.FORMAT_VERSION + 1)
    bumped = files._renderer_version()
    monkeypatch.setattr(files, "FORMAT_VERSION", files.FORMAT_VERSION - 1)
    monkeypatch.setitem(files.KIND_NAMES, "82", "数电票（普通发票） renamed")
    assert len({before, bumped, files._renderer_version()}) == 3


def test_parallel_warm_gives_the_same_bytes_as_rendering_inline(with_files: list[Invoice]) -> None:
    parallel = FileStore()
    parallel.warm(with_files, workers=2)  # enough files per worker to start a pool
    assert len(with_files) >= 2 * files.POOL_MIN_FILES_PER_WORKER
    assert all(parallel.get(invoice, "PDF") == render_pdf(invoice) for invoice in with_files)
