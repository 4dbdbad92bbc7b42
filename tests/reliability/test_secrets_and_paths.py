"""Nothing leaks: the password is nowhere but where it is typed, private files are private, hostile names cannot
leave the archive, downloads come only from the portal's hosts, and TLS errors stop the run unless asked not to."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import ssl
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import MONTH, SettingsFactory, run_job
from reliakit import QUICK_SMS, REPO, audit, cli_env, run_agent, run_cli
from starlette.responses import RedirectResponse

import fixtures.portal.files
from agent import answers, errors
from agent.config import load_settings
from agent.flows.download import FETCH_IN_PAGE
from agent.job import profile_for
from agent.ledger import EntryState, Ledger
from agent.parsers.ids import uscc_check_char
from agent.records import FileFormat
from fixtures.portal.faults import FaultSpec
from fixtures.portal.scenario import Scenario
from fixtures.pytest_plugin import MockPortal

PASSWORD = "Zebra7Quartz9Secret"  # letters and digits: the same bytes in JSON, URLs, form posts and logs
DYING = Scenario(name="dying", faults=[FaultSpec(kind="kick_out", after_downloads=3)])


def every_file(*folders: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file under the folders, zip members (traces) unpacked."""
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            yield str(path), data
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    yield from ((f"{path}!{name}", archive.read(name)) for name in archive.namelist())


@pytest.mark.mock_portal(DYING, invoices_per_month=8, password=PASSWORD, **QUICK_SMS)
def test_password_is_in_no_output_log_ledger_manifest_trace_or_session(
    mock_portal: MockPortal, fast_settings: SettingsFactory
) -> None:
    settings = fast_settings()
    result = run_cli(["download", "--month", MONTH, "-vv"], cli_env(mock_portal, settings))
    assert result.returncode == errors.EXIT_PORTAL_UNAVAILABLE  # a failing run, after re-logins while tracing
    files = dict(every_file(settings.out, settings.state_dir))
    traces = [name for name in files if "!" in name and "_debug/trace-" in name]
    assert traces and any(name.endswith(".png") for name in files)  # the evidence to search was kept
    assert "DEBUG" in result.stderr  # -vv really logged
    leaks = [name for name, data in files.items() if PASSWORD.encode() in data]
    assert (PASSWORD in result.stdout, PASSWORD in result.stderr, leaks) == (False, False, [])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.mock_portal(invoices_per_month=3, **QUICK_SMS)
def test_saved_session_ledger_and_evidence_are_private(mock_portal: MockPortal, fast_settings: SettingsFactory) -> None:
    settings = fast_settings()
    run_job(settings)
    ledger = settings.out / "ledger.sqlite3"
    private = [settings.state_dir / "sessions" / "acct.json", ledger]
    private += [path for path in (ledger.with_name("ledger.sqlite3-wal"), ledger.with_name("ledger.sqlite3-shm")) if path.exists()]
    assert {str(path): mode(path) for path in private} == {str(path): 0o600 for path in private}


HOSTILE_NAMES = [
    "../../../../escaped", "..\\..\\windows", "a/b/c", "\x00nul\x1b[31mred", "right\u202eleft", ".hidden",
    "CON", "名\n称\t", "~root/..", "很长的名字" * 40, "/absolute", "..",
]


def hostile_counterparts(portal: MockPortal, company: str) -> None:
    """The portal's listing now names each invoice's counterpart with a hostile string (files unchanged)."""
    listings = portal.server.portal.listings
    for direction, field in (("issued", "Gmfmc"), ("received", "Xsfmc")):
        for index, invoice in enumerate(listings.month(company, MONTH, direction)):
            listings.row(invoice)[field] = HOSTILE_NAMES[index % len(HOSTILE_NAMES)]


@pytest.mark.mock_portal(invoices_per_month=12, **QUICK_SMS)
def test_hostile_counterpart_names_cannot_leave_the_archive(
    mock_portal: MockPortal, fast_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = fast_settings()
    hostile_counterparts(mock_portal, settings.accounts["acct"].company_id)
    result = run_agent(settings)
    assert result.exit_code == errors.EXIT_OK, result.error
    checked = audit(mock_portal, settings)
    assert (checked.problems, checked.unknown) == ([], [])
    root = settings.out.resolve()
    with Ledger.open(root) as ledger:
        paths = [root / (entry.path or "") for entry in ledger.entries() if entry.state is EntryState.verified]
    assert len(paths) == len(set(paths)) == checked.of_state(EntryState.verified) > 12  # all but paper ones
    for path in paths:
        parts = path.relative_to(root).parts
        assert path.resolve().is_relative_to(root) and len(parts) == 4
        assert not any(part.startswith(".") or any(ord(c) < 0x20 or c in "\\\u202e" for c in part) for part in parts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "state"]


# -- downloads come only from the portal's hosts


PORTAL = "https://dppt.beijing.chinatax.gov.cn:8443"
FILE_URL = f"{PORTAL}/kpfw/fpjfzz/v1/exportDzfpwjEwm?Fphm=25112000000012345678&Wjgs=PDF"


def file_answer(location: str) -> bytes:
    """What the file translator makes of a redirect to `location` (agent.answers, as PageFiles uses it)."""
    hosts = profile_for(load_settings(None, portal_url=PORTAL)).hosts
    return answers.file_bytes(302, {"location": location}, b"", FILE_URL, FileFormat.pdf, hosts)


@pytest.mark.parametrize(
    "location",
    ["https://evil.example/fapiao.pdf", "//evil.example/fapiao.pdf",
     "https://dppt.beijing.chinatax.gov.cn:8443@evil.example/fapiao.pdf", "http://dppt.beijing.chinatax.gov.cn.evil.example/x"],
)
def test_download_redirected_to_a_foreign_host_is_refused_unfollowed(location: str) -> None:
    with pytest.raises(errors.FapiaoError, match="download redirected to a foreign host") as refused:
        file_answer(location)
    assert not isinstance(refused.value, (errors.PortalUnavailable, errors.SessionLost))  # never retried
    assert 'redirect: "manual"' in FETCH_IN_PAGE  # the page's fetch does not follow it either


@pytest.mark.parametrize("location", ["/#/login", f"{PORTAL}/#/login?client_id=x"])
def test_redirect_to_the_portals_own_login_is_a_lost_session(location: str) -> None:
    with pytest.raises(errors.SessionLost):
        file_answer(location)


@pytest.mark.mock_portal(invoices_per_month=6, **QUICK_SMS)
def test_portal_redirecting_one_file_elsewhere_fails_only_that_file(
    mock_portal: MockPortal, fast_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver = fixtures.portal.files._deliver
    victim: list[str] = []

    async def redirecting(portal: Any, invoice: Any, fmt: str, session: Any) -> Any:
        if not victim or victim[0] == invoice.number:
            victim[:1] = [invoice.number]
            return RedirectResponse(f"http://evil.invalid/{invoice.number}.pdf", status_code=302)
        return await deliver(portal, invoice, fmt, session)

    monkeypatch.setattr(fixtures.portal.files, "_deliver", redirecting)
    settings = fast_settings()
    result = run_agent(settings)
    assert result.exit_code == errors.EXIT_INCOMPLETE
    assert result.summary is not None
    assert [line.split(" ")[1] for line in result.summary.not_verified] == victim
    assert "foreign host (evil.invalid)" in result.summary.not_verified[0]
    assert audit(mock_portal, settings).problems == []


# -- TLS


@pytest.fixture
def untrusted_https(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate, answering every GET with a plain page."""
    certificate, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>portal</body></html>")

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / "cert.pem", folder / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return certificate_path, key_path


def test_tls_is_checked_by_default(tmp_path: Path) -> None:
    assert load_settings(None, out=tmp_path).insecure is False


USCC = "91110108MA01ABCDE" + uscc_check_char("91110108MA01ABCDE")


def test_untrusted_certificate_stops_the_run_unless_insecure_is_asked(untrusted_https: str, tmp_path: Path) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FAPIAO_")}
    env = {
        **clean, "PYTHONPATH": str(REPO), "FAPIAO_PORTAL_URL": untrusted_https, "FAPIAO_OUT": str(tmp_path / "archive"),
        "FAPIAO_STATE_DIR": str(tmp_path / "state"), "FAPIAO_COMPANY_ID": USCC, "FAPIAO_LOGIN": "13800000001",
        "FAPIAO_PASSWORD": PASSWORD, "FAPIAO_RETRIES": "2", "FAPIAO_BACKOFF_MAX": "0.2",
    }
    refused = run_cli(["login"], env)
    assert refused.returncode == errors.EXIT_USAGE, refused.stderr
    assert "error: the portal's TLS certificate is not valid (net::ERR_CERT_AUTHORITY_INVALID" in refused.stderr
    accepted = run_cli(["login"], {**env, "FAPIAO_INSECURE": "true"})  # the same page, once the user asks
    assert accepted.returncode == errors.EXIT_OK, accepted.stderr
