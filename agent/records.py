"""Typed records that cross the agent's boundaries: listing rows, parsed invoice fields, verdicts, summaries.

Parsers produce them, flows pass them on, the ledger and archive store them. Amounts are `Decimal` to the fen;
dates are real `date`/`datetime` values, never strings.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Direction(StrEnum):
    issued = "issued"  # 开具发票, Gjbq 1
    received = "received"  # 取得发票, Gjbq 2


class FileFormat(StrEnum):
    pdf = "pdf"
    ofd = "ofd"
    xml = "xml"


class InvoiceRow(BaseModel):
    """One row of the portal's 全量发票查询 listing, in the portal's own terms but typed."""

    model_config = ConfigDict(frozen=True)

    direction: Direction
    number: str = Field(description="Fphm: 20-digit number of a fully digital invoice (also set for legacy ones)")
    legacy_code: str = Field("", description="ZzfpDm: 10/12-digit 发票代码 of a legacy invoice, else empty")
    legacy_number: str = Field("", description="Zzfphm: 8-digit 发票号码 of a legacy invoice, else empty")
    kind: str = Field(description="FplxDm, e.g. 81, 82, 01, 04, 08, 10")
    status: str = Field(description="FpztDm: 01 正常, 02 已作废, 03 已红冲-全额, 04 已红冲-部分")
    source: str = Field("", description="FplyDm: 1 legacy system, 2 电子发票服务平台")
    seller_tax_id: str
    seller_name: str
    buyer_tax_id: str
    buyer_name: str
    issued_at: dt.datetime = Field(description="Kprq")
    amount: Decimal = Field(description="Hjje: amount before tax")
    tax: Decimal = Field(description="Hjse")
    total: Decimal = Field(description="Jshj: amount + tax")
    clerk: str = Field("", description="Kpr: the issuing clerk")

    @property
    def counterpart_name(self) -> str:
        return self.buyer_name if self.direction is Direction.issued else self.seller_name

    @property
    def counterpart_tax_id(self) -> str:
        return self.buyer_tax_id if self.direction is Direction.issued else self.seller_tax_id

    @property
    def display_number(self) -> str:
        """The number a person reads on the paper: legacy 发票号码 where there is one."""
        return self.legacy_number or self.number


class InvoiceFields(BaseModel):
    """What a parser read off one invoice file. Any field it could not find is None."""

    title: str | None = None
    number: str | None = None
    code: str | None = Field(None, description="发票代码 of a legacy invoice")
    check_code: str | None = Field(None, description="校验码 of a legacy invoice, digits only")
    date: dt.date | None = None
    buyer_name: str | None = None
    buyer_tax_id: str | None = None
    seller_name: str | None = None
    seller_tax_id: str | None = None
    amount: Decimal | None = None
    tax: Decimal | None = None
    total: Decimal | None = None
    total_upper: str | None = Field(None, description="价税合计（大写）as printed")
    remark: str | None = None
    clerk: str | None = None
    qr_payload: str | None = None


class FileStatus(StrEnum):
    ok = "ok"
    corrupt = "corrupt"  # not a PDF, truncated, no text: download again
    mismatch = "mismatch"  # a good PDF of another invoice or with other figures: quarantine
    unreadable = "unreadable"  # cannot be read at all (missing, permission)


class Verdict(BaseModel):
    """The outcome of checking one file, as `fapiao verify --json` prints it."""

    path: str
    status: FileStatus
    reason: str = ""
    fields: InvoiceFields | None = None


class RunSummary(BaseModel):
    """One run's totals, as `--json` prints them and the ledger stores them."""

    listed: int = 0
    verified: int = 0
    downloaded: int = 0  # verified by this run
    skipped: int = 0  # already verified by an earlier run, file hash still matching
    failed: int = 0
    pending: int = 0
    quarantined: int = 0
    paper: int = 0  # paper invoices (kinds 01/04): listed, but the portal has no electronic file
    count_mismatches: list[str] = Field(default_factory=list)  # "received 2025-10: portal Total 120, collected 119"
    not_verified: list[str] = Field(default_factory=list)  # "received 2511… pdf quarantined: <reason>", one per file

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.pending == 0 and self.quarantined == 0 and not self.count_mismatches
