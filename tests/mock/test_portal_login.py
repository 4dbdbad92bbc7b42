"""The mock SSO login over HTTP: every refusal the reference lists, the human checks, SMS, roles, sessions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fixtures.portal.http_login import LoginFailed, new_captcha, slider_ticket, sso_call
from fixtures.pytest_plugin import MockPortal

PASSWORD = "Fapiao#2025"
QUERY_PAGE = "/invoice-query/invoice-query"
QUERY_API = "/szzhzz/qlfpcx/v1/queryFpjcxx"
QUERY = {"Gjbq": "1", "Kprqq": "2025-10-01", "Kprqz": "2025-10-31", "PageNumber": 1, "PageSize": 10}

pytestmark = pytest.mark.mock_portal("plain")  # the callback entry, and the query API without signatures


def companies(portal: MockPortal) -> list[str]:
    return [company["tax_id"] for company in portal.accounts()["companies"]]


def account_login(
    client: httpx.Client, company: str, mobile: str, password: str = PASSWORD, **extra: str
) -> Any:
    body = {"creditCode": company, "account": mobile, "password": password, **extra}
    headers = {"X-TICKET-ID": slider_ticket(client)}
    return client.post("/sys-api/v1.0/auth/enterprise/quick/accountLogin", json=body, headers=headers).json()


def started_login(portal: MockPortal, client: httpx.Client, mobile: str, company_index: int = 0) -> str:
    answer = account_login(client, companies(portal)[company_index], mobile)
    assert answer["code"] == 1000, answer
    return str(answer["data"]["uuid"])


def query_error(client: httpx.Client) -> dict[str, str]:
    error: dict[str, str] = client.post(QUERY_API, json=QUERY).json()["Response"]["Error"]
    return error


@pytest.fixture
def client(mock_portal: MockPortal) -> httpx.Client:
    return mock_portal.client()


# ---- account check ----


def test_known_account_gets_uuid_and_masked_mobile(mock_portal: MockPortal, client: httpx.Client) -> None:
    answer = account_login(client, companies(mock_portal)[0], "13800000001")
    assert (answer["code"], answer["msg"], answer["data"]["mobile"]) == (1000, "处理成功！", "138****0001")


def test_unknown_company_id_is_2018(client: httpx.Client) -> None:
    answer = account_login(client, "91110000000000000X", "13800000001")
    assert (answer["code"], answer["msg"]) == (2018, "输入的统一社会信用代码或纳税人识别号错误")


def test_wrong_password_is_2035_and_counted(mock_portal: MockPortal, client: httpx.Client) -> None:
    answer = account_login(client, companies(mock_portal)[0], "13800000001", password="wrong")
    assert (answer["code"], answer["msg"]) == (2035, "输入的个人账号或密码错误")
    login = mock_portal.counters()["logins"]["13800000001"]
    assert login == {"attempts": 1, "wrong_passwords": 1, "locked": False}


@pytest.mark.mock_portal("plain", lock_after=3)
def test_account_locks_after_lock_after_wrong_passwords_even_for_the_right_one(
    mock_portal: MockPortal, client: httpx.Client
) -> None:
    company = companies(mock_portal)[0]
    codes = [account_login(client, company, "13800000001", password="wrong")["code"] for _ in range(3)]
    locked = account_login(client, company, "13800000001")
    assert codes == [2035, 2035, 2035]
    assert (locked["code"], locked["msg"]) == (
        2023,
        '连续认证错误次数过多，您的账号已被锁定。建议您直接使用"忘记密码"修改密码',
    )
    assert mock_portal.counters()["logins"]["13800000001"] == {
        "attempts": 4,
        "wrong_passwords": 3,
        "locked": True,
    }


def test_right_password_resets_the_wrong_streak(mock_portal: MockPortal, client: httpx.Client) -> None:
    company = companies(mock_portal)[0]
    for _ in range(4):
        account_login(client, company, "13800000001", password="wrong")
    account_login(client, company, "13800000001")
    assert account_login(client, company, "13800000001", password="wrong")["code"] == 2035


def test_person_not_linked_to_the_company_is_2034(mock_portal: MockPortal, client: httpx.Client) -> None:
    answer = account_login(client, companies(mock_portal)[0], "13800000004")
    assert (answer["code"], answer["msg"]) == (2034, "未查询到您与该企业的关联关系信息")


def test_linked_to_another_company_only_is_2034(mock_portal: MockPortal, client: httpx.Client) -> None:
    assert account_login(client, companies(mock_portal)[1], "13800000001")["code"] == 2034


def test_unregistered_login_is_2059(mock_portal: MockPortal, client: httpx.Client) -> None:
    answer = account_login(client, companies(mock_portal)[0], "13900000000")
    assert (answer["code"], answer["msg"]) == (2059, "该用户未注册")


def test_person_without_confirmed_role_is_refused(mock_portal: MockPortal, client: httpx.Client) -> None:
    answer = account_login(client, companies(mock_portal)[0], "13800000005")
    assert answer["msg"] == "有效的角色为空，请先到税局确认角色后再登录!"


# ---- human checks ----


def test_login_without_slider_ticket_is_refused(mock_portal: MockPortal, client: httpx.Client) -> None:
    body = {"creditCode": companies(mock_portal)[0], "account": "13800000001", "password": PASSWORD}
    answer = client.post("/sys-api/v1.0/auth/enterprise/quick/accountLogin", json=body).json()
    assert (answer["code"], answer["msg"]) == (2001, "滑块验证失败，请重新拖动滑块")


def test_slider_ticket_is_good_for_one_attempt(mock_portal: MockPortal, client: httpx.Client) -> None:
    body = {"creditCode": companies(mock_portal)[0], "account": "13800000001", "password": PASSWORD}
    headers = {"X-TICKET-ID": slider_ticket(client)}
    path = "/sys-api/v1.0/auth/enterprise/quick/accountLogin"
    codes = [client.post(path, json=body, headers=headers).json()["code"] for _ in range(2)]
    assert codes == [1000, 2001]


def test_slider_dragged_short_of_the_end_gets_no_ticket(client: httpx.Client) -> None:
    with pytest.raises(LoginFailed) as refused:
        sso_call(client, "/slider/verify", {"distance": 200, "width": 300})
    assert refused.value.code == 2001


@pytest.mark.mock_portal("plain", captcha=True)
def test_image_captcha_right_answer_passes(mock_portal: MockPortal, client: httpx.Client) -> None:
    captcha_id = new_captcha(client)
    answer = mock_portal.captcha_answer(captcha_id)
    assert answer is not None and 4 <= len(answer) <= 5
    reply = account_login(
        client, companies(mock_portal)[0], "13800000001", captchaId=captcha_id, captcha=answer.lower()
    )
    assert reply["code"] == 1000


@pytest.mark.mock_portal("plain", captcha=True)
def test_image_captcha_wrong_answer_is_refused_and_spends_the_captcha(
    mock_portal: MockPortal, client: httpx.Client
) -> None:
    captcha_id = new_captcha(client)
    right = mock_portal.captcha_answer(captcha_id)
    company = companies(mock_portal)[0]
    wrong = account_login(client, company, "13800000001", captchaId=captcha_id, captcha="XXXX")
    reused = account_login(client, company, "13800000001", captchaId=captcha_id, captcha=right or "")
    assert (wrong["code"], wrong["msg"]) == (2007, "图形验证码错误")
    assert reused["code"] == 2007


@pytest.mark.mock_portal("plain", captcha=True)
def test_image_captcha_is_a_png(client: httpx.Client) -> None:
    image = client.get("/sys-api/v1.0/auth/captcha").json()["data"]["image"]
    assert image.startswith("data:image/png;base64,iVBORw0KGgo")


def test_login_page_has_captcha_only_when_the_scenario_says(
    mock_portal: MockPortal, client: httpx.Client
) -> None:
    page = client.get("/").text
    assert 'placeholder="统一社会信用代码/纳税人识别号"' in page and "captcha-img" not in page


# ---- SMS ----


def test_sms_code_goes_to_the_phone_outbox(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000001")
    answer = sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    outbox = mock_portal.sms_outbox("13800000001")
    assert answer == {"seconds": 60}
    assert len(outbox) == 1 and outbox[0]["mobile"] == "13800000001"
    assert len(outbox[0]["code"]) == 6 and outbox[0]["code"].isdigit()


def test_sms_resend_is_throttled_then_allowed(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000001")
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    mock_portal.advance_clock(20)
    with pytest.raises(LoginFailed) as throttled:
        sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    mock_portal.advance_clock(40)
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    assert (throttled.value.code, throttled.value.msg) == (2061, "短信发送过于频繁，请稍后再试")
    assert len(mock_portal.sms_outbox("13800000001")) == 2


def test_sms_throttle_answer_carries_the_countdown(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000001")
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    mock_portal.advance_clock(15)
    answer = client.post("/sys-api/v1.0/auth/user/second/sendSmsCodeByUuid", json={"uuid": uuid}).json()
    assert answer["data"] == {"seconds": 45}


def test_wrong_sms_code_is_refused(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000001")
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    wrong = "000000" if mock_portal.latest_sms_code("13800000001") != "000000" else "111111"
    with pytest.raises(LoginFailed) as refused:
        sso_call(client, "/enterprise/quick/SmsMessageLogin", {"uuid": uuid, "smsCode": wrong})
    assert (refused.value.code, refused.value.msg) == (2062, "短信验证码错误")


def test_sms_code_expires(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000001")
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    mock_portal.advance_clock(301)
    code = mock_portal.latest_sms_code("13800000001")
    with pytest.raises(LoginFailed) as refused:
        sso_call(client, "/enterprise/quick/SmsMessageLogin", {"uuid": uuid, "smsCode": code})
    assert (refused.value.code, refused.value.msg) == (2063, "短信验证码已失效")


def test_single_role_account_is_done_after_sms(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000001")
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    step = sso_call(
        client,
        "/enterprise/quick/SmsMessageLogin",
        {"uuid": uuid, "smsCode": mock_portal.latest_sms_code("13800000001")},
    )
    assert step["next"] == "done" and len(step["code"]) == 32


# ---- roles ----


def _after_sms(
    mock_portal: MockPortal, client: httpx.Client, mobile: str, company_index: int
) -> tuple[str, Any]:
    uuid = started_login(mock_portal, client, mobile, company_index)
    sso_call(client, "/user/second/sendSmsCodeByUuid", {"uuid": uuid})
    step = sso_call(
        client,
        "/enterprise/quick/SmsMessageLogin",
        {"uuid": uuid, "smsCode": mock_portal.latest_sms_code(mobile)},
    )
    return uuid, step


def test_person_with_several_roles_chooses_one(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid, step = _after_sms(mock_portal, client, "13800000002", 1)
    granted = sso_call(client, "/enterprise/quick/quickLogin", {"uuid": uuid, "roleId": "02"})
    assert step == {
        "next": "role",
        "roles": [
            {"id": "01", "name": "法定代表人"},
            {"id": "02", "name": "财务负责人"},
            {"id": "03", "name": "办税员"},
        ],
    }
    assert len(granted["code"]) == 32


def test_role_choice_refuses_a_role_the_person_lacks(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid, _step = _after_sms(mock_portal, client, "13800000002", 0)
    with pytest.raises(LoginFailed) as refused:
        sso_call(client, "/enterprise/quick/quickLogin", {"uuid": uuid, "roleId": "99"})
    assert refused.value.code == 2065


def test_role_choice_needs_the_sms_step_first(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid = started_login(mock_portal, client, "13800000002")
    with pytest.raises(LoginFailed) as refused:
        sso_call(client, "/enterprise/quick/quickLogin", {"uuid": uuid, "roleId": "02"})
    assert refused.value.code == 2064


def test_first_login_needs_confirmation_once(mock_portal: MockPortal, client: httpx.Client) -> None:
    uuid, step = _after_sms(mock_portal, client, "13800000003", 1)
    with pytest.raises(LoginFailed) as unconfirmed:
        sso_call(client, "/enterprise/quick/quickLogin", {"uuid": uuid, "roleId": "02"})
    sso_call(client, "/enterprise/quick/quickLogin", {"uuid": uuid, "roleId": "02", "confirmed": True})
    mock_portal.advance_clock(61)  # past the SMS throttle
    _uuid, second = _after_sms(mock_portal, client, "13800000003", 1)
    assert step == {"next": "confirm", "roles": [{"id": "02", "name": "财务负责人"}]}
    assert unconfirmed.value.code == 2066
    assert second["next"] == "done"


# ---- callback, sessions ----


def test_callback_sets_an_httponly_session_cookie_and_opens_the_query_page(
    mock_portal: MockPortal, client: httpx.Client
) -> None:
    _uuid, step = _after_sms(mock_portal, client, "13800000001", 0)
    response = client.get("/szzhzz/sso/callback", params={"code": step["code"], "state": "s1"})
    cookie = response.headers["set-cookie"]
    assert (response.status_code, response.headers["location"]) == (302, QUERY_PAGE)
    assert cookie.startswith("DZFP_SSO_TOKEN=") and "HttpOnly" in cookie
    page = client.get(QUERY_PAGE)
    assert page.status_code == 200 and "全量发票查询" in page.text


def test_authorization_code_works_once(mock_portal: MockPortal, client: httpx.Client) -> None:
    _uuid, step = _after_sms(mock_portal, client, "13800000001", 0)
    client.get("/szzhzz/sso/callback", params={"code": step["code"]})
    again = mock_portal.client().get("/szzhzz/sso/callback", params={"code": step["code"]})
    assert again.status_code == 302 and "/#/login?" in again.headers["location"]


def test_query_page_without_session_redirects_to_login(mock_portal: MockPortal, client: httpx.Client) -> None:
    response = client.get(QUERY_PAGE)
    location = response.headers["location"]
    assert response.status_code == 302
    assert location.startswith(f"{mock_portal.url}/#/login?response_type=code&client_id=")
    assert (
        f"redirect_uri={mock_portal.url.replace(':', '%3A').replace('/', '%2F')}%2Fszzhzz%2Fsso%2Fcallback"
        in location
    )


def test_other_dppt_pages_redirect_to_login_too(client: httpx.Client) -> None:
    response = client.get("/invoice-query/invoice-detail")
    assert response.status_code == 302 and "/#/login?" in response.headers["location"]


def test_idle_session_expires(mock_portal: MockPortal, client: httpx.Client) -> None:
    mock_portal.log_in(client)
    mock_portal.advance_clock(1801)
    error = query_error(client)
    page = client.get(QUERY_PAGE)
    assert error == {"Code": "AuthFailure.SessionExpired", "Message": "会话已失效，请重新登录"}
    assert page.status_code == 302


def test_activity_keeps_the_session_alive(mock_portal: MockPortal, client: httpx.Client) -> None:
    mock_portal.log_in(client)
    for _ in range(3):
        mock_portal.advance_clock(1000)
        assert "Data" in client.post(QUERY_API, json=QUERY).json()["Response"]


def test_second_login_kicks_the_first_session_out(mock_portal: MockPortal) -> None:
    first = mock_portal.log_in(mock_portal.client())
    mock_portal.advance_clock(61)  # past the SMS throttle
    second = mock_portal.log_in(mock_portal.client())
    assert query_error(first) == {
        "Code": "AuthFailure.KickedOut",
        "Message": "您的账号已在其他地方登录，被踢下线",
    }
    assert "Data" in second.post(QUERY_API, json=QUERY).json()["Response"]


def test_logout_ends_the_session(mock_portal: MockPortal, client: httpx.Client) -> None:
    mock_portal.log_in(client)
    response = client.get("/szzhzz/sso/logout")
    assert response.status_code == 302 and "/#/login?" in response.headers["location"]
    assert query_error(client)["Message"] == "会话已失效，请重新登录"
