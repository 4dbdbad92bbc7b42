"""The mock portal in a process of its own, serving a month of N invoices, its file cache warmed before timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

from agent.config import Account
from agent.demo import demo_account
from agent.records import Direction
from fixtures.portal.http_login import log_in_over_http

SEED = 2025
WARM_TIMEOUT = 3600.0  # the first warm-up of a 10,000-invoice month renders 30,000 files


class MockPortalProcess:
    """`python -m agent mock-portal` on a scenario of `invoices` per month (both directions together)."""

    def __init__(self, invoices: int, workdir: Path, env: dict[str, str], realistic: bool = False) -> None:
        self.invoices, self.workdir, self.env, self.realistic = invoices, workdir, env, realistic
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        scenario = self.workdir / f"bench-{self.invoices}.toml"
        # sms_resend_seconds = 0: with --repeat the agent logs in again at once, and would wait out the throttle
        portal = f"invoices_per_month = {self.invoices // 2}\nsms_resend_seconds = 0\n"
        portal += f"realistic = {str(self.realistic).lower()}\n"  # signed, encrypted requests (contract 1)
        scenario.write_text(f'name = "bench-{self.invoices}"\n\n[portal]\n{portal}', encoding="utf-8")
        command = [sys.executable, "-m", "agent", "mock-portal", "--scenario", str(scenario), "--seed", str(SEED)]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=self.env)
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()  # serve() prints its URL first
        if not self.url.startswith("http"):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the mock portal did not start (said {self.url!r})")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def cpu_s(self) -> float:
        """CPU seconds the portal has used so far: it shares the machine with whatever is measured."""
        assert self._process is not None
        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    def account(self) -> Account:
        return demo_account(self.url)

    def http_session(self, account: Account) -> httpx.Cookies:
        """A session logged in over HTTP as login.js does (SMS code from the mock's outbox): the cookies a bare
        client outside the page needs. Only a plain portal then answers that client."""
        with httpx.Client(base_url=self.url, timeout=60, trust_env=False) as control:

            def sms_code(mobile: str) -> str:
                code: str = control.get("/__mock__/sms", params={"mobile": mobile}).json()["messages"][-1]["code"]
                return code

            def captcha(captcha_id: str) -> str | None:
                answer: str | None = control.get("/__mock__/captcha", params={"id": captcha_id}).json()["answer"]
                return answer

            with httpx.Client(base_url=self.url, timeout=60, trust_env=False) as client:
                assert account.password is not None
                password = account.password.get_secret_value()
                log_in_over_http(client, account.company_id, account.login, password, sms_code, captcha)
                return httpx.Cookies(client.cookies)

    def warm(self, month: str, company_id: str) -> dict[str, Any]:
        """Render (or load from the disk cache) every file of the month; returns the month's counts."""
        invoices = files = 0
        with httpx.Client(base_url=self.url, timeout=WARM_TIMEOUT, trust_env=False) as client:
            for direction in Direction:
                params = {"month": month, "direction": direction.value, "company": company_id}
                truth = client.get("/__mock__/truth", params=params).raise_for_status().json()
                invoices += truth["total"]
                files += sum(1 for invoice in truth["invoices"] if invoice["has_file"])
        return {"invoices": invoices, "files": files}
