"""`fapiao demo`: the whole job against the built-in mock portal, unattended, checked against the mock's truth."""

from __future__ import annotations

import json
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from agent.config import Account, Settings
from agent.ledger import EntryState, Ledger
from agent.records import Direction, FileFormat

DEMO_LOGIN = "13800000001"  # the mock's demo person: one role, no choice to make
DEMO_CONCURRENCY = 8  # downloads in flight against the built-in mock


def last_month(today: date | None = None) -> str:
    first_of_this_month = (today or date.today()).replace(day=1)
    return f"{first_of_this_month - timedelta(days=1):%Y-%m}"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.load(response)


def demo_account(portal_url: str) -> Account:
    accounts = _get_json(f"{portal_url}/__mock__/accounts")
    person = next(a for a in accounts["accounts"] if a["mobile"] == DEMO_LOGIN)
    return Account(
        company_id=next(iter(person["roles"])),
        login=person["mobile"],
        password=SecretStr(person["password"]),
        sms=f"mock-outbox:{portal_url}",
    )


def demo_settings(base: Settings, portal_url: str, out: Path) -> Settings:
    """The user's settings pointed at the mock: its URL, its demo account, no politeness delay needed."""
    return base.model_copy(
        update={
            "portal_url": portal_url,
            "sso_url": "",
            "accounts": {"demo": demo_account(portal_url)},
            "out": out,
            "rate_limit": 0.0,
            "pause": 0.0,  # the polite pace (0.5-1 s between requests, one at a time) is for the real portal
            "pause_jitter": 0.0,
            "concurrency": max(base.concurrency, DEMO_CONCURRENCY),
            "state_dir": out / "_state",
        }
    )


class TruthCheck(BaseModel):
    """The archive compared with what the mock knows it served."""

    files_expected: int = 0
    files_matching: int = 0
    missing: list[str] = []

    @property
    def ok(self) -> bool:
        return self.files_expected == self.files_matching


def check_against_truth(portal_url: str, out: Path, company_id: str, month: str, formats: list[FileFormat]) -> TruthCheck:
    with Ledger.open(out) as ledger:
        verified = {
            (entry.direction, entry.number, entry.format): entry.sha256
            for entry in ledger.entries(company_id, month)
            if entry.state is EntryState.verified
        }
    check = TruthCheck()
    for direction in Direction:
        truth = _get_json(f"{portal_url}/__mock__/truth?month={month}&direction={direction.value}&company={company_id}")
        for invoice in truth["invoices"]:
            if not invoice["has_file"]:
                continue
            for fmt in formats:
                check.files_expected += 1
                if verified.get((direction, invoice["Fphm"], fmt)) == invoice["sha256"][fmt.value.upper()]:
                    check.files_matching += 1
                else:
                    check.missing.append(f"{direction.value} {invoice['Fphm']} {fmt.value}")
    return check
