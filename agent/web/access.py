"""Who may see the status page: whoever holds its access token, as Jupyter does.

The first request carries the token in the URL (`/?token=...`, printed by `fapiao serve`); the answer sets a
session cookie (HttpOnly, SameSite=Strict) and redirects to the same page without the token, so that it stays
out of the browser's history and of any Referer. Every later request shows the cookie. Anything else is refused
with 403, static files (no data in them) excepted.

The cookie is `<nonce>.<HMAC(token, "session:" nonce)>`, so nothing is kept on the server and a restart with the
same configured token keeps sessions valid; a new token ends them all. Each session's CSRF token is
`HMAC(token, "csrf:" nonce)`: forms carry it in a hidden field and every POST is checked against it (besides
SameSite=Strict, which keeps the cookie off requests started by other sites).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

COOKIE = "fapiao_status"
CSRF_FIELD = "csrf"
TOKEN_PARAM = "token"
PUBLIC_PREFIX = "/static/"
SAFE_METHODS = frozenset({"GET", "HEAD"})
ALLOWED_METHODS = SAFE_METHODS | {"POST"}
REFUSED = (
    "This status page needs its access token: open the URL that `fapiao serve` printed first "
    "(it ends in ?token=...).\n"
)
HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # (no-referrer would make Chromium send `Origin: null` with our own forms)
}


def new_token() -> str:
    """A fresh access token for one start of the server (when none is configured)."""
    return secrets.token_urlsafe(24)


class Access:
    """Checks the token, and makes and checks session cookies and CSRF tokens derived from it."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the status page needs a non-empty access token")
        self._key = token.encode()

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._key)

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign('session', nonce)}"

    def session(self, cookie: str | None) -> str | None:
        """The session's nonce when the cookie is one of ours, else None."""
        nonce, _, signature = (cookie or "").partition(".")
        if nonce and hmac.compare_digest(signature.encode(), self._sign("session", nonce).encode()):
            return nonce
        return None

    def csrf(self, session: str) -> str:
        return self._sign("csrf", session)

    def csrf_ok(self, session: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf(session).encode())

    def _sign(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()


def refused(status: int = 403, text: str = REFUSED) -> Response:
    return PlainTextResponse(text, status_code=status, headers=dict(HEADERS))


class TokenGate(BaseHTTPMiddleware):
    """Lets through requests with the session cookie (or the token, which buys one); logs each request by its
    path alone (never a query string, which may hold the token)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        super().__init__(app)
        self.access = access

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await self._answer(request, call_next)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(PUBLIC_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        log.info("%s %s -> %d", request.method, request.url.path, response.status_code)
        return response

    async def _answer(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method not in ALLOWED_METHODS:
            return refused(405, "method not allowed\n")
        if request.url.path.startswith(PUBLIC_PREFIX) and request.method in SAFE_METHODS:
            return await call_next(request)
        token = request.query_params.get(TOKEN_PARAM)
        if token is not None:
            return self._welcome(request, token)
        session = self.access.session(request.cookies.get(COOKIE))
        if session is None:
            return refused()
        request.state.session = session
        request.state.csrf = self.access.csrf(session)
        return await call_next(request)

    def _welcome(self, request: Request, token: str) -> Response:
        """The token in the URL: a session cookie, and the same page again without the token."""
        if request.method not in SAFE_METHODS or not self.access.token_ok(token):
            return refused()
        query = request.url.remove_query_params(TOKEN_PARAM).query
        response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
        response.set_cookie(
            COOKIE, self.access.new_session(), httponly=True, samesite="strict", path="/",
            secure=request.url.scheme == "https",
        )
        return response
