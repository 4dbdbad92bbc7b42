"""agent.answers: every answer the portal gives, translated into what the agent does next."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent import errors
from agent.answers import JSON, api_json, file_bytes, judge, login_answer, playwright_errors, retry_after
from agent.records import FileFormat

URL = "https://dppt.example/szzhzz/qlfpcx/v1/queryFpjcxx"
FILE_URL = "https://dppt.example/kpfw/fpjfzz/v1/exportDzfpwj?Fphm=1&Kprq=20251008101757&Wjgs=PDF"
JSON_TYPE = {"content-type": "application/json"}
HTML_TYPE = {"content-type": "text/html; charset=utf-8"}
PDF_TYPE = {"content-type": "application/pdf"}
PDF = b"%PDF-1.7\n...%%EOF"
CHALLENGE = (
    b"<!DOCTYPE html><html><head><title></title></head><body><script>"
    + b"var _0x1a=['\\x61'];(function(a,b){while(--b){a.push(a.shift());}})(_0x1a,0x1f4);" * 20
    + b"</script></body></html>"
)
LONG_SCRIPT = b"(function(){var _0x5c=" + b"'\\x41\\x42'+" * 200 + b"'';eval(_0x5c);})();"
LOGIN_PAGE = (
    '<!DOCTYPE html><html><head><title>登录</title><script src="/static/login.js"></script></head><body>'
    '<input placeholder="统一社会信用代码/纳税人识别号"><input placeholder="个人用户密码"></body></html>'
).encode()
MAINTENANCE_PAGE = "<!DOCTYPE html><html><head><title>系统维护 - 电子税务局</title></head><body><p>系统维护中，请稍后访问</p></body></html>".encode()
BUSY_PAGE = "<!DOCTYPE html><html><head><title>系统繁忙</title></head><body><h2>系统繁忙，请稍后再试</h2></body></html>".encode()
PLAIN_PAGE = b"<!DOCTYPE html><html><head><title>Index</title></head><body>hello</body></html>"


def envelope(**response: Any) -> bytes:
    return json.dumps({"Response": {"RequestId": "r", **response}}, ensure_ascii=False).encode()


def error(code: str, message: str = "") -> bytes:
    return envelope(Error={"Code": code, "Message": message})


def data(**fields: Any) -> bytes:
    return envelope(Data={"PageNumber": 1, "PageSize": 20, "Total": 0, "List": [], **fields})


# -- JSON API answers


def test_a_listing_answer_is_accepted_with_exact_amounts() -> None:
    body = data(Total=1, List=[{"Jshj": 0.3}])
    answer = api_json(200, JSON_TYPE, body, URL)
    assert str(answer["Response"]["Data"]["List"][0]["Jshj"]) == "0.3"


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected", "says"),
    [
        (302, {"location": "https://tpass.example/#/login"}, b"", errors.SessionLost, "HTTP 302"),
        (301, {"location": "/login"}, b"", errors.SessionLost, "HTTP 301"),
        (200, JSON_TYPE, error("204", "请重新登录"), errors.SessionLost, r"\(204\)"),
        (200, JSON_TYPE, error("302", ""), errors.SessionLost, r"\(302\)"),
        (200, JSON_TYPE, error("AuthFailure.TokenExpired", "token"), errors.SessionLost, "AuthFailure"),
        (200, JSON_TYPE, error("AuthFailure.SessionExpired", "会话已失效，请重新登录"), errors.SessionLost, "会话已失效"),
        (200, JSON_TYPE, error("FailedOperation", "您已被踢下线"), errors.SessionLost, "踢下线"),
        (200, JSON_TYPE, data(CodeMsg="refresh"), errors.SessionLost, "CodeMsg refresh"),
        (200, JSON_TYPE, data(CodeMsg="N"), errors.SessionLost, "CodeMsg N"),
        (200, JSON_TYPE, data(Address="https://tpass.example/nonlogin/index"), errors.SessionLost, "nonlogin"),
        (200, JSON_TYPE, data(Address="请重新登录"), errors.SessionLost, "请重新登录"),
        (200, HTML_TYPE, LOGIN_PAGE, errors.SessionLost, "login page"),
        (412, HTML_TYPE, CHALLENGE, errors.AntiBot, "HTTP 412"),
        (412, HTML_TYPE, b"", errors.AntiBot, "HTTP 412"),
        (200, {"content-type": "text/html"}, LONG_SCRIPT, errors.AntiBot, "script"),
        (200, HTML_TYPE, b"<script>" + LONG_SCRIPT + b"</script>", errors.AntiBot, "script"),
        (200, JSON_TYPE, b'{"Code":0,"Y":false,"T":"a1b2"}', errors.AntiBot, "Y: false"),
        (200, HTML_TYPE, CHALLENGE, errors.AntiBot, "challenge"),
        (429, {"retry-after": "3"}, error("RequestLimitExceeded", "请求过于频繁"), errors.RateLimited, "429"),
        (200, JSON_TYPE, error("RequestLimitExceeded", "请求过于频繁"), errors.RateLimited, "频繁"),
        (503, HTML_TYPE, MAINTENANCE_PAGE, errors.Maintenance, "系统维护"),
        (200, JSON_TYPE, error("FailedOperation", "系统维护中"), errors.Maintenance, "系统维护"),
        (502, HTML_TYPE, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", errors.PortalUnavailable, "502"),
        (200, JSON_TYPE, b'{"Response": {"Data": {"Total"', errors.PortalUnavailable, "cut short"),
        (200, JSON_TYPE, error("InvalidParameter.Kprq", "开票日期范围不能超过31天"), errors.QueryRefused, "不能超过"),
        (200, JSON_TYPE, error("InternalError", "内部错误"), errors.PortalUnavailable, "InternalError"),
        (200, JSON_TYPE, b'{"Data": {}}', errors.PortalChanged, "no Response"),
    ],
)
def test_an_api_answer_raises_what_the_caller_must_do(
    status: int, headers: dict[str, str], body: bytes, expected: type[Exception], says: str
) -> None:
    with pytest.raises(expected, match=says) as raised:
        judge(status, headers, body, URL, JSON)
    assert type(raised.value) is expected


def test_a_normal_codemsg_is_not_a_session_loss() -> None:
    assert api_json(200, JSON_TYPE, data(CodeMsg="Y", Address="/invoice-query"), URL)["Response"]["Data"]["CodeMsg"] == "Y"


def test_rate_limited_carries_the_retry_after_of_an_http_date() -> None:
    later = "Wed, 21 Oct 2099 07:28:00 GMT"
    with pytest.raises(errors.RateLimited) as raised:
        judge(429, {"retry-after": later}, b"", URL, JSON)
    assert raised.value.retry_after is not None and raised.value.retry_after > 1e9


def test_a_redirect_to_a_foreign_host_is_refused() -> None:
    with pytest.raises(errors.FapiaoError, match="foreign host") as raised:
        judge(302, {"location": "https://evil.example/x"}, b"", FILE_URL, FileFormat.pdf, frozenset({"dppt.example"}))
    assert type(raised.value) is errors.FapiaoError


# -- files


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        (FileFormat.pdf, PDF),
        (FileFormat.ofd, b"PK\x03\x04rest of the zip"),
        (FileFormat.xml, b"\xef\xbb\xbf<?xml version='1.0'?><EInvoice/>"),
    ],
)
def test_a_file_with_its_format_magic_is_accepted(fmt: FileFormat, body: bytes) -> None:
    assert file_bytes(200, {"content-type": "application/octet-stream"}, body, FILE_URL, fmt) == body


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected", "says"),
    [
        (412, HTML_TYPE, b"<html><head><title>412</title></head><body>Precondition Failed</body></html>", errors.SessionLost, "session is gone"),
        (412, {}, b"", errors.SessionLost, "HTTP 412"),
        (412, HTML_TYPE, CHALLENGE, errors.AntiBot, "HTTP 412"),
        (200, PDF_TYPE, LOGIN_PAGE, errors.SessionLost, "login page"),
        (200, PDF_TYPE, PLAIN_PAGE, errors.SessionLost, "HTML page"),
        (200, HTML_TYPE, "<html><body>会话已失效</body></html>".encode(), errors.SessionLost, "会话已失效"),
        (200, PDF_TYPE, CHALLENGE, errors.AntiBot, "challenge"),
        (200, PDF_TYPE, LONG_SCRIPT, errors.AntiBot, "script"),
        (200, HTML_TYPE, b"<script>" + LONG_SCRIPT + b"</script>", errors.AntiBot, "script"),
        (200, JSON_TYPE, b'{"Code":0,"Y":false,"T":"x"}', errors.AntiBot, "Y: false"),
        (302, {"location": "/login"}, b"", errors.SessionLost, "HTTP 302"),
        (200, JSON_TYPE, error("AuthFailure.SessionExpired", "会话已失效，请重新登录"), errors.SessionLost, "会话已失效"),
        (200, JSON_TYPE, error("204", ""), errors.SessionLost, "204"),
        (200, JSON_TYPE, data(CodeMsg="refresh"), errors.SessionLost, "refresh"),
        (200, JSON_TYPE, error("FailedOperation.FileNotReady", "文件生成中，请稍后再试"), errors.FileNotReady, "文件生成中"),
        (429, {"retry-after": "2"}, b"", errors.RateLimited, "429"),
        (200, PDF_TYPE, BUSY_PAGE, errors.PortalUnavailable, "系统繁忙"),
        (503, HTML_TYPE, MAINTENANCE_PAGE, errors.Maintenance, "系统维护"),
        (502, HTML_TYPE, b"<html><head><title>502 Bad Gateway</title></head></html>", errors.PortalUnavailable, "502"),
        (404, {}, b"not here", errors.PortalUnavailable, "404"),
    ],
)
def test_a_file_answer_that_is_not_the_file(
    status: int, headers: dict[str, str], body: bytes, expected: type[Exception], says: str
) -> None:
    with pytest.raises(expected, match=says) as raised:
        judge(status, headers, body, FILE_URL, FileFormat.pdf)
    assert type(raised.value) is expected
    assert not isinstance(raised.value, errors.FileRejected)  # never judged a corrupt file


def test_an_html_page_for_an_ofd_names_the_format() -> None:
    with pytest.raises(errors.SessionLost, match="OFD download"):
        judge(200, {}, PLAIN_PAGE, FILE_URL, FileFormat.ofd)


@pytest.mark.parametrize(
    ("fmt", "body"),
    [(FileFormat.ofd, PDF), (FileFormat.pdf, b"\x00\x01 garbage"), (FileFormat.xml, b"<EInvoice/>")],
)
def test_other_bytes_are_left_to_verification(fmt: FileFormat, body: bytes) -> None:
    assert file_bytes(200, {}, body, FILE_URL, fmt) == body


# -- Retry-After


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # a date gone by: no wait
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, now=datetime(2026, 1, 1, tzinfo=UTC)) == seconds


# -- login answers


def sso(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": None}, ensure_ascii=False).encode()


def test_a_login_success_is_returned() -> None:
    assert login_answer(200, sso(1000, "处理成功！"))["code"] == 1000


def test_a_step_to_repeat_is_returned_for_the_flow_to_judge() -> None:
    assert login_answer(200, sso(2007, "图形验证码错误"))["code"] == 2007


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, sso(2018, "输入的统一社会信用代码或纳税人识别号错误"), errors.WrongCompanyId),
        (200, sso(2035, "输入的个人账号或密码错误"), errors.WrongCredentials),
        (200, sso(2023, "连续认证错误次数过多，您的账号已被锁定"), errors.AccountLocked),
        (200, sso(2034, "未查询到您与该企业的关联关系信息"), errors.NotLinked),
        (200, sso(2059, "该用户未注册"), errors.NotRegistered),
        (200, sso(2045, "有效的角色为空，请先到税局确认角色后再登录!"), errors.NoConfirmedRole),
        (200, b'{"datagram": "c2lnbmVk"}', errors.AnswerNotUnderstood),
        (200, b"[1, 2]", errors.AnswerNotUnderstood),
        (200, PLAIN_PAGE, errors.AnswerNotUnderstood),
        (200, LOGIN_PAGE, errors.AnswerNotUnderstood),
        (502, b"<html><head><title>502</title></head></html>", errors.PortalUnavailable),
        (503, MAINTENANCE_PAGE, errors.Maintenance),
        (429, b"", errors.RateLimited),
        (412, CHALLENGE, errors.AntiBot),
    ],
)
def test_a_login_answer_that_is_no_success(status: int, body: bytes, expected: type[Exception]) -> None:
    with pytest.raises(expected) as raised:
        login_answer(status, body)
    assert type(raised.value) is expected


def test_an_answer_not_understood_is_a_refusal_that_names_itself() -> None:
    with pytest.raises(errors.LoginRefused, match="not understood"):
        login_answer(200, b'{"datagram": "x"}')


# -- Playwright errors


def test_playwright_errors_become_ours() -> None:
    with pytest.raises(errors.PortalUnavailable, match="fetching a file: no answer in time"), playwright_errors("fetching a file"):
        raise PlaywrightTimeout("Timeout 30000ms exceeded.\ncall log")
    with pytest.raises(errors.PortalUnavailable, match="Target page, context or browser has been closed$"), playwright_errors("x"):
        raise PlaywrightError("Target page, context or browser has been closed\nmore")
    with pytest.raises(errors.SettingsError, match="TLS"), playwright_errors("x"):
        raise PlaywrightError("net::ERR_CERT_AUTHORITY_INVALID at https://dppt.example/")
    with pytest.raises(errors.SessionLost), playwright_errors("x"):
        raise errors.SessionLost("ours pass through")
