"""Every page of the status page in Chromium, over the seeded firm of webkit.py."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date

import pytest
from playwright.sync_api import Locator, Page, expect
from webkit import PASSWORD, TOKEN, A, B, C, FakeQueue, Seeded

from agent.ledger import Ledger
from agent.web.server import StatusServer

pytestmark = pytest.mark.browser


def cell(page: Page, company: str, month: str) -> Locator:
    return page.locator(f'td.cell[data-company="{company}"][data-month="{month}"]')


def test_home_colours_each_company_month_by_its_state(signed_in: Page) -> None:
    expected = {
        (A, "2025-08"): "not-run", (A, "2025-09"): "complete", (A, "2025-10"): "gaps",
        (B, "2025-09"): "not-run", (B, "2025-10"): "waiting",
        (C, "2025-08"): "queued", (C, "2025-09"): "complete", (C, "2025-10"): "running",
    }
    for (company, month), state in expected.items():
        expect(cell(signed_in, company, month)).to_have_attribute("data-state", state)
    gaps = cell(signed_in, A, "2025-10")
    expect(gaps).to_contain_text("有缺口")
    expect(gaps.locator(".count")).to_have_text("3/4")
    expect(gaps).to_contain_text("1 failed")
    expect(gaps).to_contain_text("1 paper")
    expect(cell(signed_in, B, "2025-10")).to_contain_text("wang: SMS code")
    expect(cell(signed_in, C, "2025-10")).to_contain_text("li on host-1:77")
    colours = {state: signed_in.locator(f"td.cell.{state}").first.evaluate("e => getComputedStyle(e).backgroundColor")
               for state in ("complete", "gaps", "waiting", "running", "queued", "not-run")}
    assert len(set(colours.values())) == 6, colours  # each state its own colour
    expect(signed_in.locator("th.company .name").first).to_have_text("北京甲科技有限公司")


def test_home_shows_the_queue_and_the_next_scheduled_runs(signed_in: Page) -> None:
    expect(signed_in.locator(".task.running")).to_contain_text("li")
    expect(signed_in.locator(".task.waiting")).to_contain_text("wang needs an SMS code")
    expect(signed_in.locator(".task.queued")).to_contain_text("2025-08-01 – 2025-08-31")
    expect(signed_in.locator(".panel", has_text="Next scheduled runs")).to_contain_text("2025-12-03 02:00 last month, everyone")
    expect(signed_in.locator("nav .badge")).to_have_text("1")


def test_home_filters_by_person_and_by_company(signed_in: Page) -> None:
    signed_in.select_option("select[name=person]", "li")  # applies at once (a little JS)
    expect(signed_in.locator("th.company .taxid")).to_have_text([C])
    signed_in.select_option("select[name=person]", "")
    expect(signed_in.locator("th.company .taxid")).to_have_text(sorted([A, B, C]))
    signed_in.fill("input[name=company]", B[:10].lower())
    signed_in.click("button:has-text('Filter')")
    expect(signed_in.locator("th.company .taxid")).to_have_text([B])


def test_home_moves_to_earlier_months(signed_in: Page) -> None:
    expect(signed_in.locator("table.grid thead th").last).to_have_text("2025-10")
    signed_in.click("a.shift[title='earlier months']")
    expect(signed_in.locator("table.grid thead th").last).to_have_text("2025-04")
    expect(signed_in.locator("td.cell.not-run")).to_have_count(18)


def test_a_company_month_lists_its_invoices_with_state_and_reason(signed_in: Page, server: StatusServer) -> None:
    cell(signed_in, A, "2025-10").locator("a").click()
    expect(signed_in).to_have_url(re.compile(f"/company/{A}/2025-10$"))
    expect(signed_in.locator("h1")).to_contain_text("北京甲科技有限公司")
    rows = signed_in.locator("table.invoices tbody tr")
    expect(rows).to_have_count(4)
    failed = rows.filter(has_text="25112000000000001003")
    expect(failed.locator("td")).to_have_text(
        ["25112000000000001003", "2025-10-20", "取得", "北京某某科技有限公司", "530.00", "失败 failed",
         "HTTP 502 from the file server, 5 attempts", ""]
    )
    expect(rows.filter(has_text="25112000000000001001").locator("td").nth(5)).to_have_text("已核验 verified")
    expect(rows.filter(has_text="25112000000000001004").locator("td").nth(5)).to_have_text("纸质发票 paper, no file")
    expect(rows.filter(has_text="25112000000000001002").locator("td").nth(4)).to_have_text("88,000.00")
    expect(signed_in.locator(".pill")).to_contain_text("有缺口 gaps")


def test_a_company_month_sets_the_portal_total_against_the_archive(signed_in: Page, server: StatusServer) -> None:
    signed_in.goto(f"{server.url}/company/{A}/2025-10")
    received = signed_in.locator(".total[data-direction=received]")
    expect(received.locator(".portal-total")).to_have_text("4")  # the last run: portal Total 4, collected 3
    expect(received).to_contain_text("2 in the archive of 4")
    expect(received).to_contain_text("2 missing")
    expect(received.locator(".said")).to_contain_text("portal Total 4, collected 3")
    issued = signed_in.locator(".total[data-direction=issued]")
    expect(issued).to_contain_text("1 in the archive of 1")
    expect(issued).to_contain_text("all there")


def test_each_pdf_opens_from_the_company_month(signed_in: Page, server: StatusServer, seeded: Seeded) -> None:
    signed_in.goto(f"{server.url}/company/{A}/2025-10")
    links = signed_in.locator("a.file")
    expect(links).to_have_count(2)  # the verified ones; not the failed or the paper one
    for index in range(2):
        link = links.nth(index)
        expect(link).to_have_attribute("target", "_blank")
        number = link.locator("xpath=ancestor::tr").locator("td.number").inner_text()
        answer = signed_in.request.get(server.url + str(link.get_attribute("href")))  # the page's own cookie
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/pdf"
        assert answer.headers["content-disposition"].startswith("inline;")
        assert answer.body() == seeded.files[number]


def test_a_company_month_downloads_its_manifests(signed_in: Page, server: StatusServer) -> None:
    signed_in.goto(f"{server.url}/company/{A}/2025-10")
    with signed_in.expect_download() as csv_download:
        signed_in.click("a.manifest:has-text('manifest.csv')")
    text = csv_download.value.path().read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["数电发票号码"] for row in rows) == [f"2511200000000000100{i}" for i in range(1, 5)]
    assert {row["状态"] for row in rows} == {"已核验", "失败", "纸质发票"}
    with signed_in.expect_download() as xlsx_download:
        signed_in.click("a.manifest:has-text('manifest.xlsx')")
    assert xlsx_download.value.suggested_filename == f"manifest_{A}_2025-10.xlsx"
    assert xlsx_download.value.path().read_bytes()[:2] == b"PK"


def test_run_again_enqueues_the_company_month_for_its_person(signed_in: Page, server: StatusServer, fake_queue: FakeQueue) -> None:
    signed_in.goto(f"{server.url}/company/{A}/2025-10")
    expect(signed_in.locator(".run-again small")).to_have_text("enqueues wang for 2025-10")
    signed_in.click("button:has-text('Run again')")
    expect(signed_in.locator(".message.ok")).to_contain_text("Queued as task task-1 for wang")
    [task] = fake_queue.enqueued
    assert (task.person, task.companies, task.date_from, task.date_to) == ("wang", [A], date(2025, 10, 1), date(2025, 10, 31))


def test_people_needed_hands_the_code_to_the_waiting_task(signed_in: Page, server: StatusServer, fake_queue: FakeQueue) -> None:
    signed_in.click("nav a.people-link")
    person = signed_in.locator("article.person[data-person=wang]")
    expect(person).to_contain_text("短信验证码 SMS code")
    expect(person).to_contain_text("the SMS code sent to 139****0001")
    expect(person.locator(".held-up a")).to_have_text([B])  # no invoice of B in the ledger yet: no name to show
    expect(person.locator("time.until")).to_contain_text("left to hand it in")
    person.locator("input[name=code]").fill("123456")
    person.locator("button:has-text('Hand in')").click()
    expect(signed_in.locator(".message.ok")).to_contain_text("The code went to wang's waiting task")
    assert fake_queue.codes == [("wang", "123456")]
    expect(signed_in.locator(".nobody")).to_be_visible()


def test_people_needed_shows_the_captcha_image(signed_in: Page, server: StatusServer, fake_queue: FakeQueue) -> None:
    import base64

    from fixtures.portal.captcha import render_captcha

    png = render_captcha("K7PX", __import__("random").Random(1))
    fake_queue.waiting = [w.model_copy(update={"kind": "captcha", "image": base64.b64encode(png).decode()}) for w in fake_queue.waiting]
    signed_in.goto(f"{server.url}/people")
    image = signed_in.locator("article.person img.captcha")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 130
    signed_in.fill("article.person input[name=code]", "K7PX")
    signed_in.click("button:has-text('Hand in')")
    assert fake_queue.codes == [("wang", "K7PX")]


def test_a_held_task_starts_again_from_the_page(signed_in: Page, server: StatusServer, fake_queue: FakeQueue) -> None:
    fake_queue.waiting = [w.model_copy(update={"until": None}) for w in fake_queue.waiting]
    signed_in.goto(f"{server.url}/people")
    expect(signed_in.locator("article.person.held")).to_contain_text("Nobody handed in a code in time")
    signed_in.click("button:has-text('Start again')")
    expect(signed_in.locator(".message.ok")).to_contain_text("wang's held task is back on the queue")
    assert fake_queue.restarted == ["wang"]


def test_a_code_for_nobody_says_it_was_not_used(signed_in: Page, server: StatusServer, fake_queue: FakeQueue) -> None:
    signed_in.goto(f"{server.url}/people")
    fake_queue.waiting = []  # the task gave up meanwhile
    signed_in.fill("input[name=code]", "654321")
    signed_in.click("button:has-text('Hand in')")
    expect(signed_in.locator(".message.refused")).to_contain_text("No task waits for wang any more")


def test_no_password_token_or_cookie_on_any_page(signed_in: Page, server: StatusServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    cookie = next(c["value"] for c in signed_in.context.cookies() if c["name"] == "fapiao_status")
    for path in ("/", f"/company/{A}/2025-10", f"/company/{C}/2025-09", "/people", "/nowhere"):
        signed_in.goto(server.url + path)
        html = signed_in.content()
        for secret in (PASSWORD, TOKEN, cookie):
            assert secret not in html, (path, secret[:4])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /people -> 200" in logged  # the page's own log: paths only
    for secret in (PASSWORD, TOKEN, cookie):
        assert secret not in logged


def test_the_page_reads_the_ledger_as_it_changes(signed_in: Page, server: StatusServer, seeded: Seeded) -> None:
    with Ledger.open(seeded.root) as ledger:
        entry = next(e for e in ledger.entries(A, "2025-10") if e.state.value == "failed")
        ledger.mark_verified(1, entry.key, seeded.root / "x.pdf", hashlib.sha256(b"x").hexdigest(), 1)
    (seeded.root / "x.pdf").write_bytes(b"x")
    signed_in.reload()
    expect(cell(signed_in, A, "2025-10")).to_have_attribute("data-state", "complete")


def test_a_reason_holding_a_password_or_cookie_is_masked(signed_in: Page, server: StatusServer, seeded: Seeded) -> None:
    with Ledger.open(seeded.root) as ledger:
        entry = next(e for e in ledger.entries(A, "2025-10") if e.state.value == "failed")
        said = f"login with {PASSWORD} failed; Cookie: dzfp-ssotoken=0a1b2c3d4e5f; SESSION=abcdef"
        ledger.mark_failed(1, entry.key, said)
    signed_in.goto(f"{server.url}/company/{A}/2025-10")
    reason = signed_in.locator("tr", has_text="25112000000000001003").locator("td.reason")
    expect(reason).to_contain_text("login with ******** failed; Cookie: ********")
    for secret in (PASSWORD, "0a1b2c3d4e5f", "abcdef"):
        assert secret not in signed_in.content()


def test_no_page_breaks_its_own_content_security_policy(page: Page, server: StatusServer) -> None:
    complaints: list[str] = []
    page.on("console", lambda message: complaints.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: complaints.append(str(error)))
    page.goto(server.login_url)
    for path in (f"/company/{A}/2025-10", "/people", "/nowhere"):
        page.goto(server.url + path)
    expect(page.locator("h1")).to_have_text("404")
    assert [text for text in complaints if "404" not in text] == []
