"""What the state folder remembers about each account's logins between runs: a login the portal refused, and
whether the portal asks this account for an SMS code.

A refused login (wrong password, locked, not linked, no role, an answer not understood) is recorded with when,
why (the error's message, which never holds a password) and a fingerprint of what was submitted: company id,
login and password, hashed with scrypt (N=2**17, r=8, p=1: OWASP's setting, about 0.6 s and 128 MiB per guess)
and a random salt, so the password cannot be cheaply recovered from the file. While the record stands, an
unattended run with the same credentials makes no attempt (exit 3 at once): one wrong password in a cron job
costs one attempt, not one per run until the account locks. A changed password (or company id, or login) is
tried once; a person's interactive run (`fapiao login`) tries whatever the record says. The record goes when
the portal accepts the password, and is written afresh when it refuses again.

Why a fingerprint and not the password source's name: the usual fix is a new password behind the same source
(`pass edit`, the keyring, the .env), which the source's name cannot see; and a source's text is no safe thing
to keep (`password_command = "echo ..."` holds the password itself).

One file per account, <state_dir>/logins/<account>.json, mode 0600, written atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, SecretStr, ValidationError

from agent import errors
from agent.browser import file_stem, write_private
from agent.config import Account

log = logging.getLogger(__name__)

SCRYPT = {"n": 2**17, "r": 8, "p": 1, "maxmem": 2**28, "dklen": 32}
# Not a refusal of these credentials: nothing was submitted (a foreign host), or this is the record speaking.
NOT_REMEMBERED: tuple[type[errors.LoginRefused], ...] = (errors.ForeignLoginHost, errors.RefusalRemembered)


class Refusal(BaseModel):
    when: datetime
    kind: str  # the exception's class name, e.g. WrongCredentials
    reason: str  # its message: the advice and the portal's own words
    salt: str
    fingerprint: str


class Remembered(BaseModel):
    refusal: Refusal | None = None
    asks_sms: bool | None = None  # the last login showed the SMS step; None: no login seen yet


def fingerprint(account: Account, password: SecretStr, salt: bytes) -> str:
    submitted = json.dumps([account.company_id, account.login, password.get_secret_value()]).encode()
    return hashlib.scrypt(submitted, salt=salt, **SCRYPT).hex()


class LoginMemory:
    """One account's login memory."""

    def __init__(self, state_dir: Path, account_name: str) -> None:
        self.account_name = account_name
        self.path = state_dir / "logins" / f"{file_stem(account_name)}.json"

    def read(self) -> Remembered:
        try:
            return Remembered.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return Remembered()
        except (OSError, ValidationError) as exc:
            log.warning("ignoring unreadable login memory %s (%s)", self.path, type(exc).__name__)
            return Remembered()

    def _write(self, remembered: Remembered) -> None:
        write_private(self.path, remembered.model_dump_json(indent=1).encode())

    def check(self, account: Account, password: SecretStr, interactive: bool) -> None:
        """Before a login: RefusalRemembered when these credentials were refused and nobody is at the terminal."""
        refusal = self.read().refusal
        if refusal is None:
            return
        if interactive:
            log.warning("account %s: a person is at the terminal, so the login refused on %s is tried again",
                        self.account_name, f"{refusal.when:%Y-%m-%d %H:%M}")
        elif not hmac.compare_digest(refusal.fingerprint, fingerprint(account, password, bytes.fromhex(refusal.salt))):
            log.info("account %s: the credentials changed since the login refused on %s; trying them once",
                        self.account_name, f"{refusal.when:%Y-%m-%d %H:%M}")
        else:
            raise errors.RefusalRemembered(self._refused_message(refusal))

    def _refused_message(self, refusal: Refusal) -> str:
        return (
            f"account {self.account_name!r}: the portal refused its login on {refusal.when:%Y-%m-%d %H:%M} "
            f"({refusal.reason}). This unattended run made no attempt: each wrong attempt brings the account "
            "closer to being locked. Once the cause is fixed, run `fapiao login` (with a person at the terminal "
            "it tries, and an accepted login clears this); a changed password is tried once by itself"
        )

    def remember_refusal(self, refused: errors.LoginRefused, account: Account, password: SecretStr) -> None:
        if isinstance(refused, NOT_REMEMBERED):
            return
        salt = secrets.token_bytes(16)
        refusal = Refusal(
            when=datetime.now().astimezone(), kind=type(refused).__name__, reason=str(refused),
            salt=salt.hex(), fingerprint=fingerprint(account, password, salt),
        )
        self._write(self.read().model_copy(update={"refusal": refusal}))
        log.info("account %s: refusal recorded in %s; unattended runs make no attempt until it is fixed",
                 self.account_name, self.path)

    def forget_refusal(self) -> None:
        remembered = self.read()
        if remembered.refusal is not None:
            self._write(remembered.model_copy(update={"refusal": None}))

    def asks_sms(self) -> bool | None:
        return self.read().asks_sms

    def note_sms_step(self, asked: bool) -> None:
        remembered = self.read()
        if remembered.asks_sms is not asked:
            self._write(remembered.model_copy(update={"asks_sms": asked}))

    def succeeded(self, asked_sms: bool) -> None:
        """After a login that reached the invoice platform: no refusal stands, and the SMS step is known."""
        self._write(self.read().model_copy(update={"refusal": None, "asks_sms": asked_sms}))
