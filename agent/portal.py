"""The portal profile: every URL, selector, field name, code and message of the e-tax portal, in one place.

Names follow ../shared/portal-reference.md. Provinces and versions drift: when the portal changes, this file
changes and the flows do not. The built-in mock portal (fixtures/portal) serves the same shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel

from agent.records import Direction, FileFormat

if TYPE_CHECKING:
    from agent.config import Settings


class LoginPage(BaseModel):
    company_id: str = 'input[placeholder="统一社会信用代码/纳税人识别号"]'
    user: str = 'input[placeholder="居民身份证号码/手机号码/用户名"]'
    password: str = 'input[placeholder="个人用户密码"]'
    slider: str = ".drag"
    slider_handle: str = ".drag .handler"
    slider_done_class: str = "handler_ok_bg"
    captcha_image: str = "img.captcha-img"
    captcha_input: str = 'input[placeholder="请输入图形验证码"]'
    submit: str = "button.login-btn"
    error_toast: str = ".t-message.t-is-error"
    sms_panel: str = ".sms-panel"
    sms_mobile: str = ".sms-panel .sms-mobile"
    sms_send: str = ".sms-panel button.send-sms"
    sms_input: str = 'input[placeholder="请输入短信验证码"]'
    sms_submit: str = ".sms-panel button.sms-login"
    role_panel: str = ".role-panel"
    role_item: str = ".role-panel .role-item"
    role_submit: str = ".role-panel button.role-confirm"
    confirm_dialog: str = ".t-dialog.role-confirm-dialog"
    confirm_dialog_ok: str = ".t-dialog.role-confirm-dialog .t-dialog__confirm"


class QueryPage(BaseModel):
    direction_tab: dict[Direction, str] = {
        Direction.issued: '.t-radio-button:has-text("开具发票")',
        Direction.received: '.t-radio-button:has-text("取得发票")',
    }
    date_from: str = 'input[placeholder="开票日期起"]'  # readonly: set by the date-range picker
    date_to: str = 'input[placeholder="开票日期止"]'
    date_panel: str = "div.t-date-range-picker__panel"  # one month, opened by a click on either input
    date_title: str = "div.t-date-range-picker__panel .t-date-picker__header-title"  # "YYYY-MM"
    date_move: str = "div.t-date-range-picker__panel .t-date-picker__header-btn--{move}"  # prev/next(-year)
    date_cell: str = 'div.t-date-range-picker__panel td.t-date-picker__cell[data-date="{day}"]'  # 1st start, 2nd end
    kinds_field: str = "FplxDm"  # popup multi-selects: nothing selected = all
    statuses_field: str = "FpztDm"
    page_size_field: str = "PageSize"
    select: str = 'div.t-select[data-field="{field}"]'  # a click opens its popup, another closes it
    select_empty: str = ".t-select__placeholder"  # shown inside a select with nothing selected
    popup_option: str = 'div.t-popup[data-field="{field}"] li.t-select-option'
    option_value: str = "data-value"
    selected_class: str = "t-is-selected"
    number: str = 'input[placeholder="发票号码"]'
    counterpart_id: str = 'input[placeholder="对方纳税人识别号"]'
    counterpart_name: str = 'input[placeholder="对方纳税人名称"]'
    submit: str = "button.query-btn"
    table: str = ".t-table"
    header_cells: str = ".t-table thead th"
    body_rows: str = ".t-table tbody tr.t-table__row"
    empty: str = ".t-table__empty"
    empty_text: str = "暂无数据"
    total: str = ".t-pagination__total"  # "共 N 条"
    page_size: str = "div.t-pagination__select"  # "20 条/页"; its popup re-queries at page 1 when picked
    next_page: str = ".t-pagination__btn-next"
    page_numbers: str = ".t-pagination__pager .t-pagination__number"  # 1 … 4 5 [6] 7 8 … 50
    disabled_class: str = "t-is-disabled"
    error_toast: str = ".t-message.t-is-error"
    row_action: str = "button.row-download"  # 下载 (received) / 交付 (issued)
    download_dialog: str = ".t-dialog.download-dialog"
    download_button: str = '.t-dialog.download-dialog button[data-format="{fmt}"]'


class CompanySwitch(BaseModel):
    """切换企业 in the query page's header (one person, many companies): the company the page acts for, and the
    dialog listing the companies linked to the person (filled from selectRelationList's answer)."""

    current: str = ".company-switch .current-company[data-tax-id]"
    current_of: str = '.company-switch .current-company[data-tax-id="{tax_id}"]'
    tax_id_attribute: str = "data-tax-id"
    open: str = ".company-switch button.switch-company"  # 切换企业
    dialog: str = ".t-dialog.company-dialog"
    item: str = '.t-dialog.company-dialog li.company-item[data-tax-id="{tax_id}"]'  # a click switches (changeUser)
    close: str = ".t-dialog.company-dialog .t-dialog__close"


class Paths(BaseModel):
    """Paths relative to the invoice platform (dppt) host, unless named sso."""

    query_page: str = "/invoice-query/invoice-query"
    query_api: str = "/szzhzz/qlfpcx/v1/queryFpjcxx"
    export_check_api: str = "/szzhzz/qlfpcx/v1/checkFpCount"
    file_api: str = "/kpfw/fpjfzz/v1/exportDzfpwj"
    # Login (SSO host) APIs, one tuple per step: provinces name them differently, any of the names is the step.
    sso_login_apis: tuple[str, ...] = (
        "/sys-api/v1.0/auth/enterprise/quick/accountLogin",  # then an SMS code
        "/sys-api/v1.0/auth/user/first/accountLogin",  # renamed; then an SMS code
        "/sys-api/v1.0/auth/enterprise/passwordLogin",  # answers with the roles, no SMS step
    )
    sso_send_sms_apis: tuple[str, ...] = ("/sys-api/v1.0/auth/user/second/sendSmsCodeByUuid",)
    sso_sms_login_apis: tuple[str, ...] = (
        "/sys-api/v1.0/auth/enterprise/quick/SmsMessageLogin",
        "/sys-api/v1.0/auth/user/second/smsCodeLogin",
    )
    sso_role_apis: tuple[str, ...] = ("/sys-api/v1.0/auth/enterprise/quick/quickLogin",)
    # One person, many companies: the companies linked to the person, and the switch to another of them.
    sso_relations_api: str = "/sys-api/v1.0/idm/internal/relation/selectRelationList"
    sso_change_user_api: str = "/sys-api/v1.0/auth/oauth2/changeUser"


class Messages(BaseModel):
    """Texts the portal shows, by what they mean for the agent."""

    session_expired: tuple[str, ...] = ("会话已失效",)
    kicked_out: tuple[str, ...] = ("被踢下线", "在其他地方登录")
    maintenance: tuple[str, ...] = ("系统维护",)
    file_not_ready: tuple[str, ...] = ("文件生成中", "请稍后")
    range_too_long: tuple[str, ...] = ("开票日期", "不能超过")
    no_confirmed_role: str = "有效的角色为空"
    captcha_rejected: tuple[str, ...] = ("验证码错误", "图形验证码")
    slider_rejected: tuple[str, ...] = ("滑块验证失败",)  # the drag, not the password: drag again
    sms_throttled: tuple[str, ...] = ("频繁",)
    success_code: int = 1000


class Signals(BaseModel):
    """How an answer says that the session is gone, or that the page's anti-bot script wants the page reloaded
    (portal-reference.md, "What the page does that a client outside it cannot"). agent.answers reads them."""

    session_error_codes: tuple[str, ...] = ("204", "302")  # Response.Error.Code
    session_error_families: tuple[str, ...] = ("AuthFailure",)  # Response.Error.Code "AuthFailure.*"
    session_code_msgs: tuple[str, ...] = ("refresh", "N")  # Response.Data.CodeMsg
    session_addresses: tuple[str, ...] = ("nonlogin", "请重新登录")  # in Response.Data.Address
    login_page: tuple[str, ...] = ("统一社会信用代码/纳税人识别号", "个人用户密码", "tpass")  # an HTML answer that is the login page
    challenge_status: int = 412  # an unsigned or stale request; on a file also a dead session
    challenge_marks: tuple[str, ...] = ("<script", "eval(", "function(", "function (")  # a script challenge
    script_min_length: int = 512  # a 200 whose body is a script this long (and no JSON) is a challenge
    antibot_json: dict[str, object] = {"Code": 0, "Y": False}  # {"Code":0,"Y":false,"T":"..."}
    busy: tuple[str, ...] = ("系统繁忙",)  # a busy page: transient


# The first bytes of each file format; an answer without them is judged as an error page, or left to verification.
FILE_MAGIC: dict[FileFormat, tuple[bytes, ...]] = {
    FileFormat.pdf: (b"%PDF-",),
    FileFormat.ofd: (b"PK\x03\x04",),
    FileFormat.xml: (b"<?xml",),
}

# Login error codes -> name of the exception in agent.errors (resolved there, kept here as data).
LOGIN_ERROR_CODES: dict[str, str] = {
    "2018": "WrongCompanyId",
    "2035": "WrongCredentials",
    "2023": "AccountLocked",
    "2034": "NotLinked",
    "2059": "NotRegistered",
}

DIRECTION_CODE: dict[Direction, str] = {Direction.issued: "1", Direction.received: "2"}  # Gjbq

STATUS_NAMES: dict[str, str] = {"01": "正常", "02": "已作废", "03": "已红冲-全额", "04": "已红冲-部分"}

SOURCE_NAMES: dict[str, str] = {"1": "增值税发票管理系统", "2": "电子发票服务平台"}  # FplyDm

KIND_NAMES: dict[str, str] = {
    "01": "增值税专用发票",
    "04": "增值税普通发票",
    "08": "增值税电子专用发票",
    "10": "增值税电子普通发票",
    "81": "数电票（增值税专用发票）",
    "82": "数电票（普通发票）",
    "85": "数电纸质发票（增值税专用发票）",
    "86": "数电纸质发票（普通发票）",
    "51": "铁路电子客票",
    "61": "航空运输电子客票行程单",
}

# Paper invoices appear in the listing but the portal has no electronic file for them.
PAPER_KINDS: frozenset[str] = frozenset({"01", "04", "85", "86"})  # 85/86: fully digital, printed on paper

FORMAT_PARAM: dict[FileFormat, str] = {FileFormat.pdf: "PDF", FileFormat.ofd: "OFD", FileFormat.xml: "XML"}

# selectRelationList items -> LinkedCompany fields (agent.flows.switch); Dqqy "Y" marks the current company.
RELATION_FIELDS: dict[str, str] = {"Nsrsbh": "tax_id", "Nsrmc": "name", "Sfmc": "role", "Dqqy": "current"}
CURRENT_COMPANY_MARK = "Y"

# Listing JSON keys (queryFpjcxx rows) -> InvoiceRow fields.
ROW_FIELDS: dict[str, str] = {
    "Fphm": "number",
    "ZzfpDm": "legacy_code",
    "Zzfphm": "legacy_number",
    "FplxDm": "kind",
    "FpztDm": "status",
    "FplyDm": "source",
    "Xsfnsrsbh": "seller_tax_id",
    "Xsfmc": "seller_name",
    "Gmfnsrsbh": "buyer_tax_id",
    "Gmfmc": "buyer_name",
    "Kprq": "issued_at",
    "Hjje": "amount",
    "Hjse": "tax",
    "Jshj": "total",
    "Kpr": "clerk",
}

# Listing table header texts (HTML fallback) -> InvoiceRow fields. 发票票种/发票状态 show names, not codes.
TABLE_HEADERS: dict[str, str] = {
    "数电发票号码": "number",
    "发票代码": "legacy_code",
    "发票号码": "legacy_number",
    "发票票种": "kind",
    "发票状态": "status",
    "发票来源": "source",
    "销方识别号": "seller_tax_id",
    "销方名称": "seller_name",
    "购方识别号": "buyer_tax_id",
    "购买方名称": "buyer_name",
    "开票日期": "issued_at",
    "金额": "amount",
    "税额": "tax",
    "价税合计": "total",
    "开票人": "clerk",
}

PAGE_SIZES: tuple[int, ...] = (10, 20, 50, 100)


class PortalProfile(BaseModel):
    """Where the portal lives and how its pages look. One instance per configured portal."""

    portal_url: str  # invoice platform (dppt) base, e.g. https://dppt.beijing.chinatax.gov.cn:8443
    sso_url: str = ""  # login host (tpass); the mock serves both from one origin
    max_range_days: int = 31
    login: LoginPage = LoginPage()
    query: QueryPage = QueryPage()
    company_switch: CompanySwitch = CompanySwitch()
    paths: Paths = Paths()
    messages: Messages = Messages()
    signals: Signals = Signals()

    @classmethod
    def of(cls, settings: Settings) -> PortalProfile:
        """The profile of the portal the settings name."""
        return cls(portal_url=settings.portal_url, sso_url=settings.sso_url, max_range_days=settings.max_range_days)

    def model_post_init(self, _context: object) -> None:
        self.portal_url = self.portal_url.rstrip("/")
        self.sso_url = (self.sso_url or self.portal_url).rstrip("/")

    def url(self, path: str) -> str:
        return self.portal_url + path

    @property
    def hosts(self) -> frozenset[str]:
        """Hosts downloads may come from: a redirect anywhere else is refused."""
        return frozenset(urlsplit(u).netloc for u in (self.portal_url, self.sso_url))

    def file_url(self, number: str, issued_at_compact: str, fmt: FileFormat) -> str:
        return f"{self.url(self.paths.file_api)}?Fphm={number}&Kprq={issued_at_compact}&Wjgs={FORMAT_PARAM[fmt]}"
