"""The acceptance check on downloaded files: good, corrupt (download again) or another invoice's (quarantine)."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hostilekit import flate_bomb_pdf, many_pages_pdf

from agent.errors import ContentMismatch, FileCorrupt
from agent.parsers.listing import parse_query_response
from agent.parsers.pdf_bounds import check_inflation
from agent.records import Direction, FileFormat, FileStatus, InvoiceFields, InvoiceRow
from agent.verify import check_other_format, check_pdf, check_size, pdf_problems, verify_file
from fixtures.data.generator import Universe
from fixtures.data.model import Invoice
from fixtures.data.render_ofd import render_ofd
from fixtures.data.render_pdf import render_pdf
from fixtures.data.render_xml import render_xml


@pytest.fixture(scope="module")
def month() -> list[Invoice]:
    universe = Universe(invoices_per_month=120)
    return universe.month(universe.companies[0].tax_id, "2025-10", "received")


def pick(month: list[Invoice], wanted: Callable[[Invoice], bool], skip: int = 0) -> Invoice:
    return [invoice for invoice in month if wanted(invoice)][skip]


def digital(invoice: Invoice) -> bool:
    return invoice.kind == "82" and invoice.total > 0


def listed(invoice: Invoice) -> InvoiceRow:
    """The row as the agent gets it: the mock's queryFpjcxx JSON through the listing parser."""
    body = json.dumps(
        {"Response": {"Data": {"PageNumber": 1, "PageSize": 20, "Total": 1, "List": [invoice.listing_row()]}}}
    )
    return parse_query_response(body, Direction(invoice.direction)).rows[0]


@pytest.mark.parametrize(
    "wanted",
    [
        digital,
        lambda invoice: invoice.total < 0 and invoice.has_file,
        lambda invoice: invoice.kind == "10",
        lambda invoice: invoice.kind == "51",
    ],
    ids=["digital", "red-letter", "legacy", "rail e-ticket"],
)
def test_good_pdf_of_the_listed_invoice_passes(
    month: list[Invoice], wanted: Callable[[Invoice], bool]
) -> None:
    invoice = pick(month, wanted)
    fields = check_pdf(render_pdf(invoice), listed(invoice))
    assert (fields.total, fields.qr_payload) == (invoice.total, invoice.qr_payload)


def test_every_mock_pdf_of_a_month_verifies_against_its_listing_row(month: list[Invoice]) -> None:
    """Every kind the mock serves (数电, red-letter, legacy, rail e-tickets), as a run downloads them."""
    with_files = [invoice for invoice in month if invoice.has_file]
    assert {"51", "81", "82", "10"} <= {invoice.kind for invoice in with_files}
    for invoice in with_files:
        check_pdf(render_pdf(invoice), listed(invoice))


def test_pdf_cut_in_half_is_corrupt(month: list[Invoice]) -> None:
    invoice = pick(month, digital)
    data = render_pdf(invoice)
    with pytest.raises(FileCorrupt, match="truncated"):
        check_pdf(data[: len(data) // 2], listed(invoice))


def test_html_page_served_as_a_pdf_is_corrupt(month: list[Invoice]) -> None:
    page = "<!DOCTYPE html><html><head><title>系统繁忙</title></head></html>".encode()
    with pytest.raises(FileCorrupt, match="not a PDF"):
        check_pdf(page, listed(pick(month, digital)))


def test_another_invoices_pdf_names_each_field_that_differs(month: list[Invoice]) -> None:
    wanted, served = pick(month, digital), pick(month, digital, skip=1)
    with pytest.raises(ContentMismatch) as raised:
        check_pdf(render_pdf(served), listed(wanted))
    reason = str(raised.value)
    assert f"number: listing {wanted.number}, file {served.number}" in reason
    assert f"total: listing {wanted.total}, file {served.total}" in reason


def test_legacy_pdf_with_another_code_is_a_mismatch(month: list[Invoice]) -> None:
    invoice = pick(month, lambda invoice: invoice.kind == "10")
    row = listed(invoice).model_copy(update={"legacy_code": "011000259999"})
    with pytest.raises(ContentMismatch, match=f"^code: listing 011000259999, file {invoice.legacy_code}$"):
        check_pdf(render_pdf(invoice), row)


GOOD = InvoiceFields(
    number="25112000000012345678", date=date(2025, 10, 8),
    seller_tax_id="91110108MA01ABCD2X", buyer_tax_id="91310115MA1K4XYZ7P", amount=Decimal("5000.00"),
    tax=Decimal("650.00"), total=Decimal("5650.00"), total_upper="伍仟陆佰伍拾圆整",
    qr_payload="01,32,,25112000000012345678,5650.00,20251008,,A1B2",
)  # fmt: skip
ROW = InvoiceRow(
    direction=Direction.received, number="25112000000012345678", kind="82", status="01",
    seller_tax_id="91110108MA01ABCD2X", seller_name="", buyer_tax_id="91310115MA1K4XYZ7P", buyer_name="",
    issued_at=datetime(2025, 10, 8, 10, 17, 57), amount=Decimal("5000.00"),
    tax=Decimal("650.00"), total=Decimal("5650.00"),
)  # fmt: skip


def test_consistent_fields_have_no_problems() -> None:
    assert pdf_problems(GOOD, ROW) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"total_upper": "伍佰陆拾伍圆整"}, "total_upper: 伍佰陆拾伍圆整 is 565.00, file total 5650.00"),
        ({"total_upper": "五千"}, "total_upper: '五千' is not an amount"),
        (
            {"qr_payload": "01,32,,25112000000012345678,565.00,20251008,,A1B2"},
            "qr amount: file total 5650.00, qr 565.00",
        ),
        (
            {"qr_payload": "01,32,,25112000000012345678,5000.00,20251008,,A1B2"},
            "qr amount: file total 5650.00, qr 5000.00",  # a fully digital QR carries 价税合计
        ),
        (
            {"qr_payload": "01,32,,25112000000012340000,5650.00,20251008,,A1B2"},
            "qr number: file 25112000000012345678, qr 25112000000012340000",
        ),
        (
            {"qr_payload": "01,32,,25112000000012345678,5650.00,20251009,,A1B2"},
            "qr date: file 2025-10-08, qr 2025-10-09",
        ),
        ({"number": None}, "number: not found in file"),
        ({"total": None, "total_upper": None}, "total: not found in file"),
        (
            {"seller_tax_id": "91110108MA01ABCD3Y"},
            "seller_tax_id: listing 91110108MA01ABCD2X, file 91110108MA01ABCD3Y",
        ),
        (
            {"buyer_tax_id": "91310115MA1K4XYZ8Q"},
            "buyer_tax_id: listing 91310115MA1K4XYZ7P, file 91310115MA1K4XYZ8Q",
        ),
        ({"tax": Decimal("65.00")}, "tax: listing 650.00, file 65.00"),
    ],
)
def test_each_contradiction_is_named(change: dict[str, object], problem: str) -> None:
    assert pdf_problems(GOOD.model_copy(update=change), ROW) == [problem]


def test_fields_legacy_layouts_may_lack_are_tolerated() -> None:
    """A private buyer has no tax id; an exempt invoice prints *** for the tax; some QR codes are not ours."""
    fields = GOOD.model_copy(update={"buyer_tax_id": None, "tax": None, "qr_payload": "https://example.com"})
    assert pdf_problems(fields, ROW) == []


def test_empty_qr_check_field_is_no_mismatch() -> None:
    for payload in (
        "01,32,,25112000000012345678,5650.00,20251008,,",
        "01,32,,25112000000012345678,5650.00,20251008,",
    ):
        assert pdf_problems(GOOD.model_copy(update={"qr_payload": payload}), ROW) == []


LEGACY = InvoiceFields(
    number="61876678", code="012001900211", check_code="83454623591883368905", date=date(2019, 11, 18),
    seller_tax_id="91120110MA06J3WLX8", amount=Decimal("23.89"), tax=Decimal("3.11"), total=Decimal("27.00"),
    qr_payload="01,10,012001900211,61876678,23.89,20191118,83454623591883368905,41FF,",
)  # fmt: skip


def test_legacy_qr_amount_is_the_amount_before_tax() -> None:
    assert pdf_problems(LEGACY, None) == []
    total_in_qr = LEGACY.qr_payload.replace("23.89", "27.00") if LEGACY.qr_payload else None
    assert pdf_problems(LEGACY.model_copy(update={"qr_payload": total_in_qr}), None) == [
        "qr amount: file amount 23.89, qr 27.00"
    ]


def test_legacy_qr_check_code_must_be_the_printed_one() -> None:
    fields = LEGACY.model_copy(update={"check_code": "83454623591883368999"})
    assert pdf_problems(fields, None) == ["qr check code: file 83454623591883368999, qr 83454623591883368905"]
    special = LEGACY.model_copy(update={"qr_payload": "01,08,012001900211,61876678,23.89,20191118,,41FF,"})
    assert pdf_problems(special, None) == []  # special invoices leave the check code out: nothing to compare


RAIL = InvoiceFields(
    title="电子发票（铁路电子客票）", number="25119110172000044123", date=date(2025, 10, 8),
    buyer_tax_id="91310115MA1K4XYZ7P", total=Decimal("553.00"),
    qr_payload="01,51,,25119110172000044123,553.00,20251008,,",
)  # fmt: skip
RAIL_ROW = ROW.model_copy(
    update={
        "number": "25119110172000044123", "kind": "51", "seller_tax_id": "91110000717823637P",
        "amount": Decimal("507.34"), "tax": Decimal("45.66"), "total": Decimal("553.00"),
    }
)  # fmt: skip


def test_rail_e_ticket_is_judged_on_what_it_prints() -> None:
    """票价 only: no seller block, no amount before tax, no tax on the file; none of those is missing."""
    assert pdf_problems(RAIL, RAIL_ROW) == []
    assert pdf_problems(RAIL.model_copy(update={"total": Decimal("533.00")}), RAIL_ROW) == [
        "qr amount: file total 533.00, qr 553.00",
        "total: listing 553.00, file 533.00",
    ]


def test_rail_e_ticket_still_needs_its_fare_and_other_kinds_their_seller() -> None:
    assert pdf_problems(RAIL.model_copy(update={"total": None}), RAIL_ROW) == ["total: not found in file"]
    assert pdf_problems(GOOD.model_copy(update={"seller_tax_id": None}), ROW) == [
        "seller_tax_id: not found in file"
    ]


def test_what_a_kind_does_not_require_must_still_agree_when_printed() -> None:
    fields = RAIL.model_copy(update={"seller_tax_id": "91110000717823637X"})
    assert pdf_problems(fields, RAIL_ROW) == [
        "seller_tax_id: listing 91110000717823637P, file 91110000717823637X"
    ]


def test_without_a_row_only_self_contradictions_count() -> None:
    fields = GOOD.model_copy(
        update={"number": "25112000000099999999", "seller_tax_id": None, "qr_payload": None}
    )
    assert pdf_problems(fields, None) == []
    upper_differs = fields.model_copy(update={"total_upper": "伍圆整"})
    assert pdf_problems(upper_differs, None) == ["total_upper: 伍圆整 is 5.00, file total 5650.00"]


@pytest.mark.parametrize(("fmt", "render"), [(FileFormat.ofd, render_ofd), (FileFormat.xml, render_xml)])
def test_good_ofd_and_xml_pass(
    month: list[Invoice], fmt: FileFormat, render: Callable[[Invoice], bytes]
) -> None:
    for invoice in (pick(month, digital), pick(month, lambda invoice: invoice.kind == "10")):
        check_other_format(render(invoice), fmt, listed(invoice))


@pytest.mark.parametrize("fmt", [FileFormat.ofd, FileFormat.xml])
def test_pdf_served_for_an_ofd_or_xml_request_is_corrupt(month: list[Invoice], fmt: FileFormat) -> None:
    invoice = pick(month, digital)
    with pytest.raises(FileCorrupt, match=f"^PDF served for an {fmt.value.upper()} request$"):
        check_other_format(render_pdf(invoice), fmt, listed(invoice))


@pytest.mark.parametrize(("fmt", "render"), [(FileFormat.ofd, render_ofd), (FileFormat.xml, render_xml)])
def test_another_invoices_ofd_or_xml_is_a_mismatch(
    month: list[Invoice], fmt: FileFormat, render: Callable[[Invoice], bytes]
) -> None:
    wanted, served = pick(month, digital), pick(month, digital, skip=1)
    with pytest.raises(
        ContentMismatch, match=f"number: {wanted.number} not found in the {fmt.value.upper()}"
    ):
        check_other_format(render(served), fmt, listed(wanted))


@pytest.mark.parametrize(
    ("fmt", "render", "reason"),
    [(FileFormat.ofd, render_ofd, "not an OFD"), (FileFormat.xml, render_xml, "XML does not parse")],
)
def test_ofd_or_xml_cut_short_is_corrupt(
    month: list[Invoice], fmt: FileFormat, render: Callable[[Invoice], bytes], reason: str
) -> None:
    data = render(pick(month, digital))
    with pytest.raises(FileCorrupt, match=reason):
        check_other_format(data[: len(data) // 2], fmt, None)


def test_html_page_served_as_an_xml_is_corrupt() -> None:
    page = "<html><head><title>系统繁忙</title></head><body></body></html>".encode()
    with pytest.raises(FileCorrupt, match="^HTML page served as an XML: 系统繁忙$"):
        check_other_format(page, FileFormat.xml, None)


def test_verify_file_gives_each_verdict(month: list[Invoice], tmp_path: Path) -> None:
    wanted, other = pick(month, digital), pick(month, digital, skip=1)
    files = {
        "good.pdf": render_pdf(wanted),
        "cut.pdf": render_pdf(wanted)[:500],
        "other.pdf": render_pdf(other),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    verdicts = {name: verify_file(tmp_path / name, listed(wanted)) for name in [*files, "missing.pdf"]}
    assert {name: verdict.status for name, verdict in verdicts.items()} == {
        "good.pdf": FileStatus.ok, "cut.pdf": FileStatus.corrupt, "other.pdf": FileStatus.mismatch,
        "missing.pdf": FileStatus.unreadable,
    }  # fmt: skip
    assert verdicts["good.pdf"].fields is not None and verdicts["good.pdf"].fields.number == wanted.number
    assert verdicts["other.pdf"].fields is not None and verdicts["other.pdf"].fields.number == other.number
    assert (verdicts["cut.pdf"].reason, verdicts["missing.pdf"].reason) == (
        "truncated: no %%EOF",
        "No such file or directory",
    )


SAMPLES = Path(__file__).parents[1] / "samples"


def truth_row(truth: dict[str, str]) -> InvoiceRow:
    """The listing row the portal would give for a real fully digital invoice, from its truth.json entry."""
    return InvoiceRow(
        direction=Direction.received, number=truth["number"], kind="81" if truth["kind"] == "数电专票" else "82",
        status="01", source="2", seller_tax_id=truth["seller_tax_id"], seller_name=truth["seller_name"],
        buyer_tax_id=truth["buyer_tax_id"], buyer_name=truth["buyer_name"],
        issued_at=datetime.fromisoformat(truth["date"]), amount=Decimal(truth["amount"]),
        tax=Decimal(truth["tax"]), total=Decimal(truth["total"]),
    )  # fmt: skip


DIGITAL_TRUTH = json.loads((SAMPLES / "real-sd" / "truth.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(DIGITAL_TRUTH))
def test_real_digital_invoice_verifies_against_its_listing_row(name: str) -> None:
    """Each of them was judged a mismatch before: its QR carries the 价税合计, held to the amount before tax."""
    fields = check_pdf((SAMPLES / "real-sd" / name).read_bytes(), truth_row(DIGITAL_TRUTH[name]))
    assert fields.qr_payload is not None and fields.total == Decimal(DIGITAL_TRUTH[name]["total"])


@pytest.mark.parametrize("folder", ["real-sd", "real-legacy"])
def test_every_real_file_verifies_ok_on_its_own(folder: str) -> None:
    truth = json.loads((SAMPLES / folder / "truth.json").read_text(encoding="utf-8"))
    for name, expected in truth.items():
        verdict = verify_file(SAMPLES / folder / name, None)
        assert (verdict.status, verdict.reason) == (FileStatus.ok, ""), name
        assert verdict.fields is not None and verdict.fields.number == expected["number"]


def test_verify_file_reads_an_ofd_by_its_suffix(month: list[Invoice], tmp_path: Path) -> None:
    invoice = pick(month, digital)
    (tmp_path / "a.ofd").write_bytes(render_pdf(invoice))
    verdict = verify_file(tmp_path / "a.ofd", listed(invoice))
    assert (verdict.status, verdict.reason) == (FileStatus.corrupt, "PDF served for an OFD request")


# --- hostile files: bounded checks ------------------------------------------------------------------------------

BOMB_CHECK = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # so that a failing check cannot take the machine
from agent.verify import verify_file
verdict = verify_file(Path(sys.argv[1]), None)
# VmHWM, not ru_maxrss: Linux carries the forking parent's peak (pytest's) into ru_maxrss across exec
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
print(json.dumps({"status": verdict.status, "reason": verdict.reason, "peak_kib": peak}))
"""
MEMORY_BOUND_KIB = 200 * 1024  # the whole `fapiao verify`-like process, Python and pdfium included


def test_flate_bomb_is_corrupt_within_a_stated_memory_bound(tmp_path: Path) -> None:
    """4 MB inflating to 4 GiB: 5.3 GB of memory and 30 s before the bounds; now refused before pdfium reads it."""
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(flate_bomb_pdf())
    done = subprocess.run(
        [sys.executable, "-c", BOMB_CHECK, str(bomb)],
        check=False, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    verdict = json.loads(done.stdout)
    assert (verdict["status"], verdict["reason"]) == (
        "corrupt",
        "content inflates to more than 64 MiB (a flate bomb?)",
    )
    assert verdict["peak_kib"] < MEMORY_BOUND_KIB


def test_ten_thousand_pages_are_corrupt_before_any_page_is_read(tmp_path: Path) -> None:
    """Page 1 has text and no totals: unbounded, every page was read (56 s) and the file passed."""
    many = tmp_path / "many.pdf"
    many.write_bytes(many_pages_pdf())
    verdict = verify_file(many, None)
    assert (verdict.status, verdict.reason) == (
        FileStatus.corrupt,
        "10000 pages: more than an invoice file has (at most 100)",
    )


def test_a_file_over_the_size_limit_is_corrupt_and_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.7\n" + b" " * (3 << 20))
    verdict = verify_file(big, None, max_bytes=2 << 20)
    assert (verdict.status, verdict.reason) == (
        FileStatus.corrupt,
        "3.0 MB: larger than an invoice file may be (2 MB)",
    )
    with pytest.raises(FileCorrupt, match=r"^20.0 MB: larger than an invoice file may be \(20 MB\)$"):
        check_size(20 << 20 | 1)


def test_chained_flate_filters_are_followed() -> None:
    """A bomb inside a bomb: FlateDecode applied twice, the outer stream small and innocent-looking."""
    inner = flate_bomb_pdf(256 << 20).split(b"stream\n", 1)[1].split(b"\nendstream", 1)[0]
    outer = zlib.compress(inner, 9)
    assert len(outer) < 1 << 20
    with pytest.raises(FileCorrupt, match="inflates to more than 64 MiB"):
        check_inflation(b"<< /Filter [/FlateDecode /FlateDecode] >>\nstream\n" + outer + b"\nendstream")


def test_real_invoices_inflate_far_below_the_bound() -> None:
    for path in sorted(SAMPLES.rglob("*.pdf")):
        assert check_inflation(path.read_bytes()) < 1 << 20, path.name
