"""The status page's routes. Every one needs the session cookie (agent/web/access.py); every POST its CSRF token.

    GET  /                                        companies × months, the queue, the next scheduled runs
    GET  /company/<tax id>/<YYYY-MM>              its invoices, the portal's Total against the archive
    GET  /company/<tax id>/<YYYY-MM>/manifest.csv  (.xlsx) that month's manifest
    POST /company/<tax id>/<YYYY-MM>/run          run again: enqueue (person, month) for that company
    GET  /file/<ledger id>                        the file, from inside the archive only
    GET  /people                                  persons a task waits for, with a form for the code
    POST /people/<person>/code                    hand the code to the waiting task
    POST /people/<person>/restart                 put a task held for want of a code back on the queue

Files are named by their ledger id, never by a path: the path comes from the ledger, is resolved, and is served
only when it lies inside the archive root and still has the sha256 the ledger recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.ledger import LedgerEntry
from agent.manifest import csv_bytes, manifest_row, xlsx_bytes
from agent.notify import scrub
from agent.records import FileFormat
from agent.web import status
from agent.web.access import CSRF_FIELD, Access, TokenGate
from agent.web.status import Sources

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"
COMPANY = re.compile(r"[0-9A-Z]{15,20}")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
MAX_FORM = 8 * 1024  # bytes: the forms hold a code, a token and a button
MEDIA: dict[FileFormat, tuple[str, str]] = {  # PDFs open in the browser; the others are saved
    FileFormat.pdf: ("application/pdf", "inline"),
    FileFormat.xml: ("application/octet-stream", "attachment"),
    FileFormat.ofd: ("application/octet-stream", "attachment"),
}
MANIFESTS = {
    "csv": ("text/csv; charset=utf-8", csv_bytes),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx_bytes),
}


def archived_file(root: Path, entry: LedgerEntry) -> Path | None:
    """The entry's file when it lies inside the archive root (symbolic links resolved), else None."""
    if entry.path is None:
        return None
    relative = PurePosixPath(entry.path)
    if relative.is_absolute() or ".." in relative.parts or "\\" in entry.path:
        return None
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True
    )
    environment.filters.update(when=_when, money=_money, said=_said, month_url=_month_url)
    environment.globals.update(CELL_NAMES=status.CELL_NAMES, CellState=status.CellState, quote=quote)
    return environment


def _when(value: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return "" if value is None else value.astimezone().strftime(pattern) if value.tzinfo else value.strftime(pattern)


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _said(text: str) -> str:
    """Free text from the ledger or the queue, without any password this process knows nor anything shaped
    like a cookie or token value (agent.notify.scrub)."""
    return scrub(text)


def _month_url(company_id: str, month: str) -> str:
    return f"/company/{quote(company_id)}/{quote(month)}"


class Pages:
    """The endpoints, over one set of sources. Reads run on Starlette's thread pool (the ledger and queue block)."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.env = templates()

    # -- rendering

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        waiting = len(self.sources.queue.waiting_people()) if self.sources.queue is not None else 0
        page = self.env.get_template(name).render(
            request=request, csrf=getattr(request.state, "csrf", ""), waiting_count=waiting,
            has_queue=self.sources.queue is not None, csrf_field=CSRF_FIELD, now=f"{datetime.now():%H:%M:%S}", **context,
        )
        return HTMLResponse(page, status_code=status_code)

    async def error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not hasattr(request.state, "csrf"):  # refused before the gate let it through: say nothing more
            return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
        return await run_in_threadpool(self.render, request, "error.html", exc.status_code, error=exc)

    # -- pages

    def home(self, request: Request) -> Response:
        params = request.query_params
        end = params.get("to", "")
        count = params.get("months", "")
        view = status.home(
            self.sources, person=params.get("person", ""), company=params.get("company", ""),
            end=end if MONTH.fullmatch(end) else "", count=int(count) if count.isdigit() else status.DEFAULT_MONTHS,
        )
        return self.render(request, "home.html", view=view)

    def company_month(self, request: Request) -> Response:
        company_id, month = _company_month(request)
        view = status.company_month(self.sources, company_id, month)
        return self.render(request, "month.html", view=view, queued=request.query_params.get("queued", ""),
                           refused=request.query_params.get("refused", ""))

    def people(self, request: Request) -> Response:
        params = request.query_params
        return self.render(
            request, "people.html", needed=status.people(self.sources), handed=params.get("handed", ""),
            missed=params.get("missed", ""), restarted=params.get("restarted", ""),
        )

    # -- files

    def file(self, request: Request) -> Response:
        entry = self.sources.ledger.entry(int(request.path_params["entry_id"]))
        path = None if entry is None else archived_file(self.sources.ledger.root, entry)
        if entry is None or path is None:
            raise HTTPException(404, "no such file in the archive")
        if path.stat().st_size > self.sources.settings.max_file_mb * 1024 * 1024:
            raise HTTPException(413, "the file is larger than max_file_mb")
        data = path.read_bytes()
        if entry.sha256 is not None and hashlib.sha256(data).hexdigest() != entry.sha256:
            raise HTTPException(409, "the file changed since it was verified: run `fapiao verify` on the archive")
        media, disposition = MEDIA[entry.format]
        headers = {"Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(path.name)}"}
        return Response(data, media_type=media, headers=headers)

    def manifest(self, request: Request) -> Response:
        company_id, month = _company_month(request)
        kind = request.path_params["kind"]
        if kind not in MANIFESTS:
            raise HTTPException(404, "manifest.csv or manifest.xlsx")
        media, build = MANIFESTS[kind]
        data = build([manifest_row(entry) for entry in self.sources.ledger.entries(company_id, month)])
        name = f"manifest_{company_id}_{month}.{kind}"
        return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- forms

    async def run_again(self, request: Request) -> Response:
        await posted(request)
        company_id, month = _company_month(request)
        person = self.sources.person_for(company_id)
        back = _month_url(company_id, month)
        if self.sources.queue is None or person is None:
            reason = "no queue" if self.sources.queue is None else "no configured person archives this company"
            return RedirectResponse(f"{back}?{urlencode({'refused': reason})}", status_code=303)
        task_id = await run_in_threadpool(self._enqueue, person, company_id, month)
        log.info("run again: %s %s for %s, task %s", company_id, month, person, task_id)
        return RedirectResponse(f"{back}?{urlencode({'queued': task_id})}", status_code=303)

    def _enqueue(self, person: str, company_id: str, month: str) -> str:
        from agent.queue import PersonTask

        assert self.sources.queue is not None
        start, end = status.month_range(month, self.sources.today())
        return self.sources.queue.enqueue(PersonTask(person=person, date_from=start, date_to=end, companies=[company_id]))

    async def hand_in(self, request: Request) -> Response:
        fields = await posted(request)
        person = request.path_params["person"]
        queue = self._queue()
        handed = await run_in_threadpool(queue.submit_code, person, fields.get("code", ""))
        log.info("a code for %s was %s", person, "handed in" if handed else "not taken: nobody waits for it")
        return RedirectResponse(f"/people?{urlencode({'handed' if handed else 'missed': person})}", status_code=303)

    async def restart(self, request: Request) -> Response:
        await posted(request)
        person = request.path_params["person"]
        restarted = await run_in_threadpool(self._queue().restart_held, person)
        log.info("restarted %d held task(s) of %s", len(restarted), person)
        return RedirectResponse(f"/people?{urlencode({'restarted': person})}", status_code=303)

    def _queue(self) -> status.StatusQueue:
        if self.sources.queue is None:
            raise HTTPException(404, "this status page has no queue")
        return self.sources.queue


def _company_month(request: Request) -> tuple[str, str]:
    company_id, month = request.path_params["company_id"], request.path_params["month"]
    if not COMPANY.fullmatch(company_id) or not MONTH.fullmatch(month):
        raise HTTPException(404, "no such company or month")
    return company_id, month


async def posted(request: Request) -> dict[str, str]:
    """The form's fields, once its CSRF token (and Origin, when the browser sends one) are this session's."""
    origin = request.headers.get("origin")
    if origin not in (None, "null", f"{request.url.scheme}://{request.url.netloc}"):
        raise HTTPException(403, "a form from another site")
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(413, "form too large")
    fields = {name: values[-1] for name, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    expected = getattr(request.state, "csrf", "")
    if not expected or not hmac.compare_digest(fields.get(CSRF_FIELD, "").encode(), expected.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or not this session's: reload the page and try again")
    return fields


def build_app(sources: Sources, access: Access) -> Starlette:
    pages = Pages(sources)
    company_month = "/company/{company_id}/{month}"
    routes = [
        Route("/", pages.home),
        Route(company_month, pages.company_month),
        Route(company_month + "/manifest.{kind}", pages.manifest),
        Route(company_month + "/run", pages.run_again, methods=["POST"]),
        Route("/file/{entry_id:int}", pages.file),
        Route("/people", pages.people),
        Route("/people/{person}/code", pages.hand_in, methods=["POST"]),
        Route("/people/{person}/restart", pages.restart, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(TokenGate, access=access)], exception_handlers={HTTPException: pages.error}
    )
