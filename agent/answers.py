"""The one translator from portal answers to agent.errors: what the portal said, in what the caller does next.

    judge(status, headers, body, url, expected)   a dppt API answer ("json") or a file (a FileFormat) ->
                                                  the JSON envelope / the file's bytes, or the error raised
    login_answer(status, body)                    an SSO login answer -> its JSON, or the typed refusal
    retry_after(value)                            a Retry-After header (seconds or an HTTP date) -> seconds
    playwright_errors(what)                       Playwright's exceptions -> ours, around any page call

Pure functions over what came back; every portal name they look for (codes, messages, markers, file magic)
lives in agent.portal. What each answer means (portal-reference.md, "What the page does ..."):

    3xx (to the SSO host)                         SessionLost (to a foreign host: refused)
    429                                           RateLimited, with Retry-After
    412 with a script challenge                   AntiBot: reload the page, then retry
    412 on an API call                            AntiBot
    412 on a file, no challenge                   SessionLost
    200, a long script / {"Code":0,"Y":false}     AntiBot
    Response.Error.Code 204 / 302 / AuthFailure.* SessionLost
    Response.Data.CodeMsg refresh / N             SessionLost
    Response.Data.Address nonlogin / 请重新登录    SessionLost
    an HTML page instead of a file                SessionLost (the login page) unless it says maintenance,
                                                  busy or challenge; never a corrupt file
    5xx                                           Maintenance (系统维护) or PortalUnavailable
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from agent import errors
from agent.browser import TLS_ERROR_MARKS, navigation_error
from agent.parsers.listing import html_text, html_title
from agent.portal import FILE_MAGIC, LOGIN_ERROR_CODES, Messages, Signals
from agent.records import FileFormat

JSON: Literal["json"] = "json"  # a dppt API answer
PAGE: Literal["page"] = "page"  # a page load (HTML): only a failing status is judged
Expected = Literal["json", "page"] | FileFormat

MESSAGES = Messages()
SIGNALS = Signals()
# Tencent-cloud error code families meaning "this request is wrong", not "try again later".
REFUSED_CODE_PREFIXES = ("InvalidParameter", "MissingParameter", "UnsupportedOperation")


def judge(
    status: int, headers: Mapping[str, str], body: bytes, url: str, expected: Expected,
    hosts: frozenset[str] = frozenset(),
) -> Any:
    """The accepted payload of one answer (the parsed JSON envelope, or the file's bytes), or the exception
    that says what the caller must do instead. `headers` with lower-case names; `hosts` the portal's own
    (a redirect elsewhere is refused)."""
    _check_status(status, headers, body, url, expected, hosts)
    if expected == JSON:
        return _json_answer(status, body)
    if expected == PAGE:
        return _page_answer(status, body)
    assert isinstance(expected, FileFormat)
    return _file_answer(status, headers, body, expected)


def api_json(status: int, headers: Mapping[str, str], body: bytes, url: str) -> dict[str, Any]:
    """judge() for a dppt API call: the envelope whose Response holds Data."""
    answer: dict[str, Any] = judge(status, headers, body, url, JSON)
    return answer


def file_bytes(
    status: int, headers: Mapping[str, str], body: bytes, url: str, fmt: FileFormat, hosts: frozenset[str] = frozenset()
) -> bytes:
    """judge() for an invoice file: its bytes, to verify."""
    data: bytes = judge(status, headers, body, url, fmt, hosts)
    return data


# -- status line


def _check_status(
    status: int, headers: Mapping[str, str], body: bytes, url: str, expected: Expected, hosts: frozenset[str]
) -> None:
    if 300 <= status < 400:
        _check_redirect(headers.get("location", ""), hosts, expected)
        raise errors.SessionLost(f"the portal sent {_what(expected)} to its login page (HTTP {status})")
    if status == 429:
        raise errors.RateLimited(f"the portal asked to slow down (HTTP 429) on {_what(expected)}", retry_after(headers.get("retry-after")))
    if status == SIGNALS.challenge_status:
        if expected == JSON or _is_challenge(body):
            raise errors.AntiBot(f"the portal's anti-bot check refused {_what(expected)} (HTTP {status}); reloading the page")
        raise errors.SessionLost(f"the portal refused {_what(expected)} with HTTP {status}: the session is gone")


def _check_redirect(location: str, hosts: frozenset[str], expected: Expected) -> None:
    host = urlsplit(location).netloc
    if host and hosts and host not in hosts:
        raise errors.FapiaoError(f"refused {_what(expected)} redirected to a foreign host ({host})")


def _what(expected: Expected) -> str:
    if expected == JSON:
        return "a query"
    if expected == PAGE:
        return "a page load"
    assert isinstance(expected, FileFormat)
    return f"a {expected.value.upper()} download"


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: a number of seconds, or an HTTP date; None when absent or
    unreadable (the retry policy's own backoff applies)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# -- JSON API answers


def _json_answer(status: int, body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body, parse_float=Decimal)  # floats would lose fen: 0.1 + 0.2
    except ValueError:
        raise _not_json(status, body) from None
    if _is_antibot_json(answer):
        raise errors.AntiBot("the portal's anti-bot check answered instead of the query (Y: false); reloading the page")
    response = answer.get("Response") if isinstance(answer, dict) else None
    if not isinstance(response, dict):
        if status >= 400:
            raise _status_error(status, "")
        raise errors.PortalChanged(f"the query answer has no Response object: {body[:80]!r}")
    if "Error" in response:
        raise api_error(response["Error"] if isinstance(response["Error"], dict) else {})
    _check_data(response.get("Data"))
    if status >= 400:
        raise _status_error(status, "")
    assert isinstance(answer, dict)
    return answer


def _not_json(status: int, body: bytes) -> errors.FapiaoError:
    """What an API answer that is not JSON means: a page, a challenge, or an answer cut short."""
    page = _page_error(body)
    if page is not None:
        return page
    if status >= 400:
        return _status_error(status, "")
    if _is_script(body):
        return errors.AntiBot("the portal answered a query with a script (anti-bot check); reloading the page")
    return errors.PortalUnavailable(f"the query answer is not JSON (cut short?): {body[:80]!r}")


def _is_antibot_json(answer: Any) -> bool:
    return isinstance(answer, dict) and all(
        key in answer and answer[key] == value and type(answer[key]) is type(value)
        for key, value in SIGNALS.antibot_json.items()
    )


def _check_data(data: Any) -> None:
    """Session loss said inside a Data object: CodeMsg refresh/N, or an Address pointing at the login."""
    if not isinstance(data, dict):
        return
    if str(data.get("CodeMsg", "")) in SIGNALS.session_code_msgs:
        raise errors.SessionLost(f"the portal says the session is gone (CodeMsg {data['CodeMsg']})")
    address = str(data.get("Address") or "")
    if any(mark in address for mark in SIGNALS.session_addresses):
        raise errors.SessionLost(f"the portal sends the page to its login ({address[:80]})")


def api_error(error: Mapping[str, Any]) -> errors.FapiaoError:
    """An `Error` object of a dppt API -> the exception saying what the caller must do next."""
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code in SIGNALS.session_error_codes or code.startswith(SIGNALS.session_error_families):
        return errors.SessionLost(f"the portal says the session is gone: {message} ({code})")
    known = _known_message(message)
    if known is not None:
        return known
    if _says(message, MESSAGES.file_not_ready):
        return errors.FileNotReady(message)
    if _says(message, MESSAGES.range_too_long) or code.startswith(REFUSED_CODE_PREFIXES):
        return errors.QueryRefused(f"the portal refused the query: {message} ({code})")
    return errors.PortalUnavailable(f"the portal answered {code}: {message}")


def _known_message(message: str) -> errors.FapiaoError | None:
    """Messages that mean the same on every API and page: the session is gone, the portal is down or throttling."""
    if _says(message, MESSAGES.session_expired + MESSAGES.kicked_out):
        return errors.SessionLost(message)
    if _says(message, MESSAGES.maintenance):
        return errors.Maintenance(message)
    if _says(message, MESSAGES.sms_throttled):  # "频繁": the throttle word on every API, not only SMS
        return errors.RateLimited(message)
    if _says(message, SIGNALS.busy):
        return errors.PortalUnavailable(message)
    return None


def _status_error(status: int, text: str) -> errors.FapiaoError:
    if _says(text, MESSAGES.maintenance):
        return errors.Maintenance("the portal is down for maintenance (系统维护)")
    if status == 401:
        return errors.SessionLost("the portal answered HTTP 401: the session is gone")
    return errors.PortalUnavailable(f"the portal answered HTTP {status}")


def _says(message: str, patterns: tuple[str, ...]) -> bool:
    return any(pattern in message for pattern in patterns)


def _page_answer(status: int, body: bytes) -> bytes:
    """A page load: its HTML when the status is a success, else what the page or the status says."""
    if status < 400:
        return body
    raise _page_error(body) or _status_error(status, html_text(body))


# -- files


def _file_answer(status: int, headers: Mapping[str, str], body: bytes, fmt: FileFormat) -> bytes:
    """The file's bytes when they start as the format does; an error page or envelope said as what it means;
    anything else (a PDF for an OFD, a file cut short) is left to verification when the status is a success."""
    if body.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(FILE_MAGIC[fmt]) and status < 400:
        return body
    problem = _file_problem(status, headers.get("content-type", ""), body, fmt)
    if problem is not None:
        raise problem
    if status >= 400:
        raise errors.PortalUnavailable(f"HTTP {status} from the file service")
    return body


def _file_problem(status: int, content_type: str, body: bytes, fmt: FileFormat) -> errors.FapiaoError | None:
    if "json" in content_type.lower() or body.lstrip().startswith(b"{"):
        return _file_json_error(status, body)
    if html_title(body) is not None:
        return _file_page_error(status, body, fmt)
    if _is_script(body):  # a bare script, whatever its type says
        return errors.AntiBot(f"the portal answered a {fmt.value.upper()} download with a script (anti-bot check)")
    if "html" in content_type.lower():
        return _file_page_error(status, body, fmt)
    if status >= 500:
        return errors.PortalUnavailable(f"HTTP {status} from the file service")
    return None


def _file_json_error(status: int, body: bytes) -> errors.FapiaoError | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return _status_error(status, "") if status >= 400 else None
    if _is_antibot_json(answer):
        return errors.AntiBot("the portal's anti-bot check answered instead of the file (Y: false)")
    response = answer.get("Response") if isinstance(answer, dict) else None
    error = response.get("Error") if isinstance(response, dict) else None
    if isinstance(error, dict):
        return api_error(error)
    if isinstance(response, dict):
        try:
            _check_data(response.get("Data"))
        except errors.SessionLost as lost:
            return lost
    return _status_error(status, "") if status >= 400 else None


def _file_page_error(status: int, body: bytes, fmt: FileFormat) -> errors.FapiaoError:
    """An HTML page where a file was due: session or anti-bot first, never a corrupt file."""
    page = _page_error(body)
    if page is not None:
        return page
    if status >= 500:
        return errors.PortalUnavailable(f"HTTP {status} from the file service")
    title = html_title(body) or ""
    return errors.SessionLost(f"the portal answered a {fmt.value.upper()} download with an HTML page ({title[:40] or 'no title'}): the session is gone")


def _page_error(body: bytes) -> errors.FapiaoError | None:
    """What an HTML page says, when it says something the agent knows; None when it is not such a page."""
    if html_title(body) is None:
        return None
    text = html_text(body)
    known = _known_message(text)
    if known is not None:
        return known
    if _is_challenge(body):
        return errors.AntiBot("the portal answered with its anti-bot challenge page; reloading the page")
    if _says(text, SIGNALS.login_page) or _says(body.decode("utf-8", "replace"), SIGNALS.login_page):
        return errors.SessionLost("the portal answered with its login page: the session is gone")
    return None


def _is_challenge(body: bytes) -> bool:
    head = body[:65536].decode("utf-8", "replace")
    return _says(head, SIGNALS.challenge_marks) and not _says(head, SIGNALS.login_page)


def _is_script(body: bytes) -> bool:
    """A 200 whose body is a long script rather than data: the anti-bot check."""
    return len(body) >= SIGNALS.script_min_length and _says(body[:65536].decode("utf-8", "replace"), SIGNALS.challenge_marks)


# -- login (SSO) answers


def login_answer(status: int, body: bytes) -> dict[str, Any]:
    """An SSO login API answer: its JSON when it carries a `code` (success, or a step to repeat such as a
    rejected captcha or a throttled SMS: the caller tells them apart with login_succeeded), the typed refusal
    when the code or message is one (never retried), PortalUnavailable when the service failed, and
    AnswerNotUnderstood for anything else (the password must not be submitted again)."""
    if status == 429:
        raise errors.RateLimited("the login service asked to slow down (HTTP 429)")
    if status == SIGNALS.challenge_status:
        raise errors.AntiBot(f"the login service's anti-bot check refused the request (HTTP {status})")
    try:
        answer = json.loads(body)
    except ValueError:
        raise _login_not_json(status, body) from None
    if not isinstance(answer, dict) or "code" not in answer:
        if status >= 500:
            raise errors.PortalUnavailable(f"login service answered HTTP {status}")
        raise errors.AnswerNotUnderstood(_excerpt(body), str(status))
    if not login_succeeded(answer) and _is_refusal(answer):
        raise login_refusal(answer)
    return answer


def _login_not_json(status: int, body: bytes) -> errors.FapiaoError:
    page = _page_error(body)
    if isinstance(page, errors.PortalUnavailable):  # maintenance, busy, throttled, anti-bot
        return page
    if status >= 500:
        return errors.PortalUnavailable(f"login service answered HTTP {status} without JSON")
    return errors.AnswerNotUnderstood(_excerpt(body), str(status))


def _excerpt(body: bytes) -> str:
    return f"an answer this agent does not understand: {body[:80].decode('utf-8', 'replace')!r}"


def login_succeeded(answer: Mapping[str, Any]) -> bool:
    return str(answer.get("code")) == str(MESSAGES.success_code)


def _is_refusal(answer: Mapping[str, Any]) -> bool:
    return str(answer.get("code", "")) in LOGIN_ERROR_CODES or MESSAGES.no_confirmed_role in str(answer.get("msg", ""))


def login_refusal(answer: Mapping[str, Any]) -> errors.LoginRefused:
    """The typed refusal for a login answer whose code is not success."""
    code, message = str(answer.get("code", "")), str(answer.get("msg", ""))
    if MESSAGES.no_confirmed_role in message:
        return errors.NoConfirmedRole(message, code)
    exception_type: type[errors.LoginRefused] = getattr(errors, LOGIN_ERROR_CODES.get(code, "LoginRefused"))
    return exception_type(message, code)


# -- Playwright


@contextlib.contextmanager
def playwright_errors(what: str) -> Iterator[None]:
    """Around a page call: a timeout or a lost page, connection or context becomes PortalUnavailable, with
    what was being done and Playwright's first line; our own errors pass through."""
    try:
        yield
    except PlaywrightTimeout as exc:
        raise errors.PortalUnavailable(f"{what}: no answer in time ({_first_line(exc)})") from None
    except PlaywrightError as exc:
        if any(mark in _first_line(exc) for mark in TLS_ERROR_MARKS):
            raise navigation_error(exc, what) from None  # an untrusted certificate stops the run
        raise errors.PortalUnavailable(f"{what} failed: {_first_line(exc)}") from None


def _first_line(exc: PlaywrightError) -> str:
    return (exc.message or type(exc).__name__).splitlines()[0]
