"""Every fault the mock can inject, alone and then all at once: the agent loses nothing, keeps no unverified
file, and exits with the documented code. Each passing case adds its row to docs/reliability.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from agentkit import DEMO_MOBILE, MONTH, SettingsFactory, login_record
from reliakit import (
    KEY_ROTATION,
    MIX,
    QUICK_SMS,
    Audit,
    Matrix,
    MatrixRow,
    RunResult,
    audit,
    expire_sessions_after,
    fault_hits,
    file_requests,
    on_downloads,
    run_agent,
    summary_problems,
    verified_keys,
)

from agent.config import Settings
from agent.errors import EXIT_INCOMPLETE, EXIT_OK
from agent.ledger import EntryState
from agent.records import Direction, FileFormat
from fixtures.data.generator import Universe
from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import Scenario
from fixtures.pytest_plugin import MockPortal

PER_MONTH = 10  # invoices per direction: 20 files a run
# The portal as it really is (the page signs and encrypts its calls, contract 1): the matrix runs on it whatever
# the mock's default is.
REALISTIC = {"realistic": True}
KEY_LIFETIME = 300  # seconds a signing key lives (the mock's key_rotation_seconds)
ALL_FORMATS = [FileFormat.pdf, FileFormat.ofd, FileFormat.xml]


@dataclass(frozen=True)
class Case:
    kind: str
    setup: str  # how the fault strikes, in words, for the matrix
    faults: list[dict[str, Any]]
    exit_code: int = EXIT_OK
    label: str = ""
    struck: dict[str, EntryState] = field(default_factory=dict)  # kind -> the state its invoices end in
    logins: int = 1  # login attempts on the portal; 0: one plus a re-login for each session loss the agent saw
    settings: dict[str, Any] = field(default_factory=dict)
    portal: dict[str, Any] = field(default_factory=dict)
    expire_after: int | None = None  # age the portal's clock once this many files went out (session_expiry)
    rotate_after: int | None = None  # move the portal's clock past the signing keys' lifetime after this many files

    def param(self) -> Any:
        scenario = Scenario(name=self.label or self.kind, faults=[FaultSpec(**spec) for spec in self.faults])
        portal = {"invoices_per_month": PER_MONTH, **REALISTIC, **QUICK_SMS, **self.portal}
        marker = pytest.mark.mock_portal(scenario, **portal)
        return pytest.param(self, marks=marker, id=self.label or self.kind)


def _numbers_with_files(direction: str) -> list[str]:
    """The month's invoice numbers that have a file, as the mock (default seed and size) will list them."""
    universe = Universe(invoices_per_month=PER_MONTH)
    month = universe.month(universe.companies[0].tax_id, MONTH, direction)
    return sorted(invoice.number for invoice in month if invoice.has_file)


ISSUED, RECEIVED = _numbers_with_files("issued"), _numbers_with_files("received")
# Transient faults strike fewer times than the agent tries (retries 5, corrupt_retries 3), so every file gets
# through whatever the order of requests; the "always" faults show what happens when it cannot.
NEVER_READY = {"kind": "not_ready", "share": 0.15, "first_requests": 99}
ALWAYS_HTML = {"kind": "html_as_pdf", "share": 0.15}
ALWAYS_WRONG = {"kind": "wrong_bytes", "share": 0.15}

CASES = [
    Case("not_ready", "30 % of invoices not ready for their first 2 requests", [
        {"kind": "not_ready", "share": 0.3, "first_requests": 2}]),
    Case("not_ready", "15 % of invoices never ready", [NEVER_READY], EXIT_INCOMPLETE, label="not_ready (never)",
         struck={"not_ready": EntryState.pending}),
    Case("server_error", "502 on 4 file requests; 503 on the first 2 queries", [
        {"kind": "server_error", "status": 502, "rate": 0.3, "count": 4},
        {"kind": "server_error", "target": "query", "count": 2}]),
    Case("rate_limit", "429 Retry-After 1 on 3 file requests and the first query", [
        {"kind": "rate_limit", "rate": 0.15, "count": 3, "retry_after": 1},
        {"kind": "rate_limit", "target": "query", "count": 1, "retry_after": 1}]),
    Case("slow", "4 file answers 1.5 s late, request timeout 1 s", [
        {"kind": "slow", "rate": 0.3, "count": 4, "delay": 1.5}], settings={"timeout": 1.0}),
    Case("drop_connection", "4 connections cut after 30 % of the body", [
        {"kind": "drop_connection", "rate": 0.3, "count": 4, "fraction": 0.3}]),
    Case("truncated_pdf", "2 PDFs cut to half their length", [
        {"kind": "truncated_pdf", "rate": 0.3, "count": 2}]),
    Case("wrong_bytes", "15 % of invoices always answered with another invoice's file", [ALWAYS_WRONG],
         EXIT_INCOMPLETE, struck={"wrong_bytes": EntryState.quarantined}),
    Case("html_as_pdf", "15 % of invoices always answered with a 系统繁忙 page", [ALWAYS_HTML], EXIT_INCOMPLETE,
         struck={"html_as_pdf": EntryState.failed}),
    Case("format_swap", "a PDF for 2 OFD/XML requests; formats pdf,ofd,xml (5 invoices a direction)", [
        {"kind": "format_swap", "rate": 0.3, "count": 2}], settings={"formats": ALL_FORMATS},
         portal={"invoices_per_month": 5}),
    Case("maintenance", "系统维护 page on the first 3 requests (the login page among them)", [
        {"kind": "maintenance", "first_requests": 3}]),
    Case("session_expiry", "the first session dies after the 3rd download (portal clock moved on)", [
        {"kind": "session_expiry", "seconds": 30, "count": 1}], logins=2, expire_after=3),
    Case("kick_out", "kicked out after the session's 5th download", [
        {"kind": "kick_out", "after_downloads": 5, "count": 1}], logins=2),
    Case("antibot_412", "412 and a script challenge on 3 file requests and the first query", [
        {"kind": "antibot_412", "rate": 0.3, "count": 3},
        {"kind": "antibot_412", "target": "query", "count": 1}]),
    Case("antibot_script", "a 200 whose body is a long script on 3 file requests and the first query", [
        {"kind": "antibot_script", "rate": 0.3, "count": 3},
        {"kind": "antibot_script", "target": "query", "count": 1}]),
    Case("antibot_json", '{"Code":0,"Y":false} on 3 file requests and the first query', [
        {"kind": "antibot_json", "rate": 0.3, "count": 3},
        {"kind": "antibot_json", "target": "query", "count": 1}]),
    *[
        Case("session_loss", f"the session ends on {where}; it answers {says} until a new login", [
            {"kind": "session_loss", "signal": signal, "target": target, "count": 1, **strike}],
            label=f"session_loss ({signal}, {target})", logins=2)
        for signal, target, strike, where, says in [
            ("redirect", "query", {}, "the first query", "302 to the SSO login"),
            ("redirect", "file", {"rate": 0.3}, "a file request", "302 to the SSO login"),
            ("error_204", "query", {}, "the first query", 'Response.Error.Code "204"'),
            ("error_302", "file", {"rate": 0.3}, "a file request", 'Response.Error.Code "302"'),
            ("codemsg_refresh", "file", {"rate": 0.3}, "a file request", 'Response.Data.CodeMsg "refresh"'),
            ("codemsg_n", "query", {}, "the first query", 'Response.Data.CodeMsg "N"'),
            ("address_nonlogin", "file", {"rate": 0.3}, "a file request", "Response.Data.Address .../nonlogin"),
            ("file_412", "file", {"rate": 0.3}, "a file request", "412 and the challenge page"),
            ("file_html", "file", {"rate": 0.3}, "a file request", "the login page's HTML (HTTP 200)"),
        ]
    ],
    Case(KEY_ROTATION, f"the signing keys expire mid-run (portal clock {KEY_LIFETIME + 1} s on after the 5th file): "
         "the pages' next calls get 412", [], rotate_after=5),
    Case(MIX, "every fault above at once (formats pdf,xml; 'never ready' on 2 invoices, 'always' HTML and wrong file on 1 each)", [
        {"kind": "not_ready", "first_requests": 99, "invoices": [ISSUED[0], RECEIVED[0]]},
        {"kind": "html_as_pdf", "invoices": [ISSUED[1]]},
        {"kind": "wrong_bytes", "invoices": [RECEIVED[1]]},
        {"kind": "maintenance", "first_requests": 2},
        {"kind": "server_error", "status": 502, "rate": 0.3, "count": 2},
        {"kind": "server_error", "target": "query", "count": 1},
        {"kind": "rate_limit", "rate": 0.3, "count": 1, "retry_after": 1},
        {"kind": "slow", "rate": 0.3, "count": 3, "delay": 0.5},
        {"kind": "drop_connection", "rate": 0.3, "count": 1},
        {"kind": "truncated_pdf", "rate": 0.3, "count": 1},
        {"kind": "format_swap", "rate": 0.3, "count": 1},
        {"kind": "session_expiry", "seconds": 30, "count": 1},
        {"kind": "kick_out", "after_downloads": 8, "count": 1},
        {"kind": "shifting_rows", "count": 1},
        {"kind": "antibot_412", "rate": 0.3, "count": 1},
        {"kind": "antibot_script", "target": "query", "count": 1},
        {"kind": "antibot_json", "rate": 0.3, "count": 1},
    ], EXIT_INCOMPLETE, struck={"not_ready": EntryState.pending, "html_as_pdf": EntryState.failed,
                                "wrong_bytes": EntryState.quarantined},
         logins=0, expire_after=3, settings={"formats": [FileFormat.pdf, FileFormat.xml]}),
]


def expected_states(checked: Audit, struck: dict[str, set[str]], states: dict[str, EntryState]) -> dict[Any, EntryState]:
    """Paper stays paper; an invoice a permanent fault struck ends in that fault's state (the first fault in
    scenario order wins, as on the portal); every other file is verified."""
    expected = {}
    for key, state in checked.state_of.items():
        kinds = [kind for kind in states if key[1] in struck[kind]]
        expected[key] = EntryState.paper if state is EntryState.paper else states[kinds[0]] if kinds else EntryState.verified
    return expected


def assert_end_state(
    portal: MockPortal, case: Case, result: RunResult, checked: Audit, records: list[logging.LogRecord]
) -> None:
    assert checked.problems == []
    assert result.exit_code == case.exit_code, result.error
    assert result.summary is not None
    assert summary_problems(result.summary, checked) == []
    struck = {kind: fault_hits(portal, kind) for kind in case.struck}
    assert all(struck.values()), f"a permanent fault struck no invoice: {struck}"
    assert checked.state_of == expected_states(checked, struck, case.struck)
    relogins = sum("logging in again" in record.getMessage() for record in records)
    assert login_record(portal, DEMO_MOBILE)["attempts"] == (case.logins or 1 + relogins)
    assert case.logins or relogins >= 1


def portal_load(portal: MockPortal) -> tuple[int, int]:
    """(login attempts, file requests) so far, to tell one run's share."""
    return login_record(portal, DEMO_MOBILE)["attempts"], sum(file_requests(portal).values())


def matrix_row(
    portal: MockPortal, case: Case, result: RunResult, checked: Audit, before: tuple[int, int] = (0, 0)
) -> MatrixRow:
    logins, requests = (now - then for now, then in zip(portal_load(portal), before, strict=True))
    return MatrixRow(
        kind=case.kind, label=case.label or case.kind, setup=case.setup, exit_code=result.exit_code,
        files=len(checked.state_of) + len(checked.unknown), audit=checked, logins=logins, requests=requests,
    )


def run_case(mock_portal: MockPortal, fast_settings: SettingsFactory, case: Case) -> tuple[Settings, RunResult, Audit]:
    """One run of the agent under the case's settings and session expiry, and the archive's audit after it."""
    settings = fast_settings(**case.settings)
    rotate = on_downloads(mock_portal, case.rotate_after, lambda: mock_portal.advance_clock(KEY_LIFETIME + 1))
    with expire_sessions_after(mock_portal, case.expire_after), rotate:
        result = run_agent(settings)
    return settings, result, audit(mock_portal, settings)


@pytest.mark.parametrize("case", [case.param() for case in CASES if case.kind != MIX])
def test_fault_alone_loses_nothing(
    mock_portal: MockPortal, fast_settings: SettingsFactory, fault_matrix: Matrix, case: Case,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, result, checked = run_case(mock_portal, fast_settings, case)
    counters = mock_portal.counters()
    refused = counters["security"]["refused"]
    struck = refused.get("stale_key", 0) if case.kind == KEY_ROTATION else counters["faults"].get(case.kind, 0)
    assert struck > 0, "the fault never struck"
    assert checked.unknown == []
    assert_end_state(mock_portal, case, result, checked, caplog.records)
    fault_matrix.add(matrix_row(mock_portal, case, result, checked))


@pytest.mark.parametrize("case", [case.param() for case in CASES if case.kind == MIX])
def test_all_faults_at_once_lose_nothing_and_the_rerun_fetches_only_the_rest(
    mock_portal: MockPortal, fast_settings: SettingsFactory, fault_matrix: Matrix, case: Case,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, result, checked = run_case(mock_portal, fast_settings, case)
    faults = mock_portal.counters()["faults"]
    assert sorted(faults) == sorted({spec["kind"] for spec in case.faults}), "some fault never struck"
    # the invoice the portal added after the listing page was served is the next run's business
    assert len(checked.unknown) == faults["shifting_rows"] * len(settings.formats)
    assert_end_state(mock_portal, case, result, checked, caplog.records)
    fault_matrix.add(matrix_row(mock_portal, case, result, checked))

    done, before = verified_keys(settings.out), file_requests(mock_portal)
    rerun = run_agent(settings)
    again = file_requests(mock_portal) - before
    assert rerun.exit_code == EXIT_INCOMPLETE  # the permanent faults still strike
    assert {(number, fmt) for number, fmt in again} & {(n, f.value.upper()) for _, n, f in done} == set()
    assert audit(mock_portal, settings).unknown == []


SHIFTING = Scenario(name="shifting", faults=[FaultSpec(kind="shifting_rows", count=3)])


@pytest.mark.mock_portal(SHIFTING, invoices_per_month=120, **REALISTIC, **QUICK_SMS)
def test_rows_shifting_while_paging_are_all_listed_as_the_total_moves(
    mock_portal: MockPortal, fast_settings: SettingsFactory, fault_matrix: Matrix
) -> None:
    """Each of the first three first-page queries adds an invoice: a later page's Total then differs from its
    first page's, so the walk starts again from the first page, until the Total holds still."""
    settings = fast_settings()
    received = [Direction.received]
    first = run_agent(settings, directions=received)
    checked = audit(mock_portal, settings, received)
    assert (checked.problems, checked.unknown) == ([], [])
    assert mock_portal.counters()["faults"]["shifting_rows"] == 3
    assert first.exit_code == EXIT_OK
    assert first.summary is not None and first.summary.listed == 123 and first.summary.count_mismatches == []
    setup = "3 invoices added while paging (120 received, 2 pages of 100): the Total moves, the walk starts again"
    fault_matrix.add(matrix_row(mock_portal, Case("shifting_rows", setup, []), first, checked))
