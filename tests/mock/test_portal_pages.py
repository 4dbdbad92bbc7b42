"""The mock's pages in Chromium: login with the slider, SMS and roles; the query page; a real download."""

from __future__ import annotations

import hashlib
import re

import pytest
from playwright.sync_api import Page, expect

from fixtures.portal import drive
from fixtures.pytest_plugin import MockPortal

pytestmark = [pytest.mark.browser, pytest.mark.mock_portal(invoices_per_month=45)]

QUERY_PAGE = re.compile(r".*/invoice-query/invoice-query$")
TOAST = ".t-message.t-is-error"


def fill_account(
    page: Page, portal: MockPortal, mobile: str, company_index: int = 0, password: str = "Fapiao#2025"
) -> None:
    page.goto(portal.url + "/invoice-query/invoice-query")
    page.fill(
        'input[placeholder="统一社会信用代码/纳税人识别号"]',
        portal.accounts()["companies"][company_index]["tax_id"],
    )
    page.fill('input[placeholder="居民身份证号码/手机号码/用户名"]', mobile)
    page.fill('input[placeholder="个人用户密码"]', password)
    drive.drag_slider(page)
    expect(page.locator(".drag .handler")).to_have_class(re.compile("handler_ok_bg"))
    page.click("button.login-btn")


def pass_sms(page: Page, portal: MockPortal, mobile: str) -> None:
    expect(page.locator(".sms-panel .sms-mobile")).to_have_text(f"138****{mobile[-4:]}")
    page.click(".sms-panel button.send-sms")
    expect(page.locator(".sms-panel button.send-sms")).to_be_disabled()
    page.fill('input[placeholder="请输入短信验证码"]', portal.latest_sms_code(mobile))
    page.click(".sms-panel button.sms-login")


def log_in(page: Page, portal: MockPortal, mobile: str = "13800000001") -> None:
    fill_account(page, portal, mobile)
    pass_sms(page, portal, mobile)
    page.wait_for_url(QUERY_PAGE)


def test_login_with_role_choice_then_query_and_download_a_pdf(page: Page, mock_portal: MockPortal) -> None:
    fill_account(page, mock_portal, "13800000002", company_index=1)
    expect(page.locator(".drag .drag_text")).to_have_text("请按住滑块，拖动到最右边")  # reset after use
    pass_sms(page, mock_portal, "13800000002")
    expect(page.locator(".role-panel .role-item")).to_have_text(["法定代表人", "财务负责人", "办税员"])
    page.click('.role-panel .role-item:has-text("财务负责人")')
    expect(page.locator(".role-item.is-selected")).to_have_text("财务负责人")
    page.click(".role-panel button.role-confirm")
    page.wait_for_url(QUERY_PAGE)
    drive.query(page)
    expect(page.locator(".t-pagination__total")).to_have_text("共 45 条")
    expect(page.locator(".t-table tbody tr.t-table__row")).to_have_count(20)
    headers = page.locator(".t-table thead th").all_inner_texts()
    assert headers == [
        "序号", "数电发票号码", "发票代码", "发票号码", "开票日期", "销方识别号", "销方名称", "购方识别号", "购买方名称",
        "金额", "税额", "价税合计", "发票票种", "发票状态", "发票来源", "开票人", "操作",
    ]  # fmt: skip
    company = mock_portal.accounts()["companies"][1]["tax_id"]
    truth = mock_portal.truth("2025-10", "received", company=company)["invoices"]
    row = next(row for row in truth if row["has_file"])
    page.fill('input[placeholder="发票号码"]', row["Fphm"])
    page.click("button.query-btn")
    expect(page.locator(".t-table tbody tr.t-table__row")).to_have_count(1)
    page.locator("button.row-download").click()
    with page.expect_download() as download_info:
        page.click('.t-dialog.download-dialog button[data-format="PDF"]')
    download = download_info.value
    kprq = re.sub(r"\D", "", row["Kprq"])
    assert download.suggested_filename == f"dzfp_{row['Fphm']}_{row['Xsfmc']}_{kprq}.pdf"
    assert hashlib.sha256(download.path().read_bytes()).hexdigest() == row["sha256"]["PDF"]


def test_wrong_password_shows_the_portal_message(page: Page, mock_portal: MockPortal) -> None:
    fill_account(page, mock_portal, "13800000001", password="wrong")
    expect(page.locator(TOAST)).to_have_text("输入的个人账号或密码错误")
    expect(page.locator(".drag .handler")).not_to_have_class(re.compile("handler_ok_bg"))


def test_first_login_confirmation_dialog(page: Page, mock_portal: MockPortal) -> None:
    fill_account(page, mock_portal, "13800000003", company_index=1)
    pass_sms(page, mock_portal, "13800000003")
    dialog = page.locator(".t-dialog.role-confirm-dialog")
    expect(dialog).to_contain_text("是否确认成为该企业的财务负责人?")
    dialog.locator(".t-dialog__confirm").click()
    page.wait_for_url(QUERY_PAGE)


def test_query_page_paging_and_messages(page: Page, mock_portal: MockPortal) -> None:
    log_in(page, mock_portal)
    drive.query(page, "开具发票", end="2025-11-01")
    expect(page.locator(TOAST)).to_have_text("开票日期起止范围不能超过31天")
    drive.query(page, "开具发票")
    expect(page.locator("button.row-download").first).to_have_text("交付")
    drive.set_page_size(page, 10)
    expect(page.locator(".t-table tbody tr.t-table__row")).to_have_count(10)
    next_page = page.locator(".t-pagination__btn-next")
    for _ in range(4):
        next_page.click()
    expect(next_page).to_have_class(re.compile("t-is-disabled"))
    expect(page.locator(".t-table tbody tr.t-table__row")).to_have_count(5)
    page.fill('input[placeholder="发票号码"]', "99999999999999999999")
    page.click("button.query-btn")
    expect(page.locator(".t-table__empty")).to_have_text("暂无数据")


def test_expired_session_shows_a_toast_then_login(page: Page, mock_portal: MockPortal) -> None:
    log_in(page, mock_portal)
    mock_portal.advance_clock(1801)
    drive.query(page)
    expect(page.locator(TOAST)).to_have_text("会话已失效，请重新登录")
    page.wait_for_url(re.compile(r".*/#/login\?response_type=code.*"))


@pytest.mark.mock_portal(captcha=True)
def test_captcha_image_on_the_login_page(page: Page, mock_portal: MockPortal) -> None:
    page.goto(mock_portal.url + "/invoice-query/invoice-query")
    image = page.locator("img.captcha-img")
    expect(image).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    first = image.get_attribute("data-captcha-id")
    image.click()
    expect(image).not_to_have_attribute("data-captcha-id", first or "")
    expect(page.locator('input[placeholder="请输入图形验证码"]')).to_be_visible()
