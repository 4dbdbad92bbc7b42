"""What went wrong, in the user's terms, and the exit code each maps to.

    FapiaoError                      (exit 1)
    ├── SettingsError                (exit 2)  a bad flag, value or config file; names the setting and the fix
    │   └── CompanyNotLinked                   a configured company the person's login does not list
    ├── ArchiveError                 (exit 2)  the output folder cannot be written (permissions, disk full)
    │   └── ArchiveBusy              (exit 75) another run works on this archive (its pid and start); --wait
    ├── LoginRefused                 (exit 3)  the portal said no: NEVER retried
    │   ├── WrongCompanyId           2018
    │   ├── WrongCredentials         2035
    │   ├── AccountLocked            2023
    │   ├── NotLinked                2034
    │   ├── NotRegistered            2059
    │   ├── NoConfirmedRole          有效的角色为空
    │   ├── AnswerNotUnderstood      a login answer in an unknown shape: the password is not sent again
    │   ├── ForeignLoginHost         the portal address led to a host not configured: nothing typed there
    │   └── RefusalRemembered        an earlier run was refused: an unattended run makes no attempt
    ├── NeedsPerson                  (exit 4)  captcha or SMS code needed and nobody is at the terminal
    ├── PortalUnavailable            (exit 5)  transient: down, maintenance, 5xx, timeouts, reset connections
    │   ├── RateLimited              429; carries `retry_after` seconds
    │   ├── Maintenance              系统维护 page
    │   └── AntiBot                  412 challenge, a script, {"Y": false}: reload the page, then retry
    ├── SessionLost                  (exit 5)  expired or kicked out; the flows log in again once
    ├── QueryRefused                 (exit 2)  the portal refused the query (range too long, bad filter)
    ├── PortalChanged                (exit 1)  an answer in a shape the agent does not know: update portal.py
    ├── FileNotReady                 (exit 1)  the portal has no file yet; retried at the end, then pending
    └── FileRejected                 (exit 1)  a downloaded file failed verification
        ├── FileCorrupt                        not a PDF, truncated, no text: download again (bounded)
        └── ContentMismatch                    a good file whose content differs from the listing: quarantine
    Interrupted                      (exit 130 Ctrl-C, 143 SIGTERM)  stopped cleanly; the next run resumes
    any other exception              (exit 70)  a bug: one line naming it, the traceback in the debug folder

Foreign exceptions (Playwright, OSError, sqlite3) are translated into these at one boundary each; the CLI
sees only this tree. Messages never contain a password.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_LOGIN_REFUSED = 3
EXIT_NEEDS_PERSON = 4
EXIT_PORTAL_UNAVAILABLE = 5
EXIT_INTERNAL = 70  # sysexits EX_SOFTWARE: an unexpected error, a bug in the agent
EXIT_BUSY = 75  # sysexits EX_TEMPFAIL: another run holds the archive; try again later
EXIT_SIGNAL_BASE = 128  # a run stopped by signal N exits 128 + N, as a shell reports it: 130 Ctrl-C, 143 SIGTERM


class FapiaoError(Exception):
    exit_code = EXIT_INCOMPLETE


class SettingsError(FapiaoError):
    exit_code = EXIT_USAGE


class CompanyNotLinked(SettingsError):
    """A company configured for a person is not among the companies the portal links to that person's login
    (selectRelationList), or the portal refused the switch to it (2034): the other companies still run."""


class ArchiveError(FapiaoError):
    exit_code = EXIT_USAGE


class LoginRefused(FapiaoError):
    """The portal refused the login. Retrying could lock the account, so nothing retries it."""

    exit_code = EXIT_LOGIN_REFUSED

    def __init__(self, portal_message: str, code: str = "") -> None:
        self.portal_message = portal_message
        self.code = code
        super().__init__(f"{self.advice} (portal {code or 'said'}: {portal_message})")

    advice = "the portal refused the login"


class WrongCompanyId(LoginRefused):
    advice = "the company id (统一社会信用代码) is wrong; check `company_id` in your config"


class WrongCredentials(LoginRefused):
    advice = "wrong login or password; fix it before trying again, more wrong attempts lock the account"


class AccountLocked(LoginRefused):
    advice = "the account is locked; reset the password on the portal (忘记密码), then try again"


class NotLinked(LoginRefused):
    advice = "this person is not linked to the company; ask the company's administrator to add them"


class NotRegistered(LoginRefused):
    advice = "this login is not registered on the portal"


class NoConfirmedRole(LoginRefused):
    advice = "the person has no confirmed role for this company; confirm one at the tax bureau first"


class AnswerNotUnderstood(LoginRefused):
    """The login answer was in a shape the agent does not know: it stops, and never submits the password again
    in this run, since it cannot tell whether the portal counted a wrong attempt."""

    advice = "the portal's login answer was not understood; the password is not submitted again: run `fapiao login`"


class ForeignLoginHost(LoginRefused):
    """The page that would take a credential is on a host that is neither portal_url's nor sso_url's: nothing is
    typed there (a mistyped or hijacked address, a captive portal, a proxy's page)."""

    def __init__(self, origin: str, allowed: list[str]) -> None:
        self.origin = origin
        self.portal_message, self.code = "", ""
        FapiaoError.__init__(
            self,
            f"the portal address led to {origin}, which is not a configured portal or login host "
            f"({', '.join(allowed)}); nothing was typed there. If {origin} is your province's login page, "
            "set sso_url to it; otherwise check portal_url and the network (proxy, captive portal)",
        )


class RefusalRemembered(LoginRefused):
    """An earlier run's login was refused with these same credentials: an unattended run makes no attempt."""

    def __init__(self, message: str) -> None:
        self.portal_message, self.code = "", ""
        FapiaoError.__init__(self, message)


class NeedsPerson(FapiaoError):
    """A step needs a human and the run is non-interactive."""

    exit_code = EXIT_NEEDS_PERSON


class PortalUnavailable(FapiaoError):
    """Transient: worth retrying with backoff, within the configured bounds."""

    exit_code = EXIT_PORTAL_UNAVAILABLE


class RateLimited(PortalUnavailable):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class Maintenance(PortalUnavailable):
    pass


class AntiBot(PortalUnavailable):
    """The page's anti-bot script refused a request (412 challenge, a script, Y:false): reload the page, retry."""


class SessionLost(FapiaoError):
    """The portal session expired or another login kicked it out."""

    exit_code = EXIT_PORTAL_UNAVAILABLE


class QueryRefused(FapiaoError):
    """The portal refused the query itself (date range too long, bad filter): retrying the same query is futile."""

    exit_code = EXIT_USAGE


class PortalChanged(FapiaoError):
    """The portal answered in a shape the agent does not know, e.g. a new portal version renamed a field."""


class FileNotReady(FapiaoError):
    pass


class FileRejected(FapiaoError):
    pass


class FileCorrupt(FileRejected):
    pass


class ContentMismatch(FileRejected):
    pass


class ArchiveBusy(ArchiveError):
    """Another run holds the archive's lock: two runs would fetch every file twice."""

    exit_code = EXIT_BUSY


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run stopped cleanly, the ledger keeps what was done. Raised only at the CLI edge,
    after the job has unwound; not a FapiaoError, so that nothing inside a run takes it for a file's failure."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = EXIT_SIGNAL_BASE + signum
        super().__init__("interrupted — the next run resumes")
