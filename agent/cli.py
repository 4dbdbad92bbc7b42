"""The user's face: `fapiao login | download | verify | report | status | enqueue | worker | serve | demo | mock-portal |
setup-browser`.

Parses flags, builds Settings once, runs the job, and maps every error to its exit code:
0 all verified · 1 some failed or pending · 2 usage or config error · 3 login refused · 4 a person is needed ·
5 portal unavailable after retries · 70 an unexpected error (a bug) · 75 another run holds the archive ·
130 / 143 stopped by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from agent import errors
from agent.config import Settings, load_settings
from agent.job import Job, JobRequest, job_args
from agent.period import parse_month, period
from agent.progress import make_progress
from agent.records import Direction, RunSummary
from agent.signals import run_until_signal

__all__ = ["cli", "exit_for", "main", "parse_month", "period"]  # parse_month, period: imported by tests and bench

log = logging.getLogger("agent")

_debug_dir: list[Path] = []  # where an unexpected error's traceback goes, once the settings say


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """load_settings, remembering the debug folder for a crash report."""
    settings = load_settings(config_file, **overrides)
    _debug_dir[:] = [settings.debug_dir or settings.out / "_debug"]
    return settings


def directions(value: str) -> list[Direction]:
    return list(Direction) if value == "both" else [Direction(value)]


def configure_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def is_interactive(flag: bool | None, settings: Settings) -> bool:
    if flag is not None:
        return flag
    return settings.interactive if settings.interactive is not None else sys.stdin.isatty()


def print_summary(summary: RunSummary, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        click.echo(json.dumps({**summary.model_dump(), **(extra or {})}, ensure_ascii=False))
        return
    click.echo(
        f"listed {summary.listed} · verified {summary.verified} (downloaded {summary.downloaded}, "
        f"already there {summary.skipped}) · failed {summary.failed} · pending {summary.pending} · "
        f"quarantined {summary.quarantined} · paper {summary.paper}"
    )
    for mismatch in summary.count_mismatches:
        click.echo(f"count mismatch: {mismatch}", err=True)
    for line in summary.not_verified:
        click.echo(f"not verified: {line}", err=True)


def run_job(settings: Settings, request: JobRequest, as_json: bool) -> RunSummary:
    with make_progress(enabled=not as_json) as progress:
        return run_until_signal(Job(settings, request, progress).run(job_args(request, settings)))


def exit_for(summary: RunSummary) -> int:
    return errors.EXIT_OK if summary.complete else errors.EXIT_INCOMPLETE


config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML config file (accounts, portal, out)"
)
common = [
    config_option,
    click.option("--out", type=click.Path(path_type=Path), help="archive folder (default ./archive)"),
    click.option("--portal-url", help="invoice platform base URL"),
    click.option("--browser-path", type=click.Path(path_type=Path), help="Chromium executable"),
    click.option("-v", "--verbose", count=True, help="-v: one line per portal action; -vv: debug"),
]


def with_common(function: Any) -> Any:
    for option in reversed(common):
        function = option(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fapiao-agent")
def cli() -> None:
    """Download and verify invoices from China's e-tax portal (电子税务局 / 税务数字账户)."""


@cli.command()
@with_common
@click.option("--account", "accounts", multiple=True, help="account name from the config (repeatable; default: the only one)")
@click.option("--show", is_flag=True, help="show the browser window")
@click.option("--person", help="type the SMS code (or captcha) a queued task of this person waits for (fapiao worker)")
def login(config_file: Path | None, out: Path | None, portal_url: str | None, browser_path: Path | None, verbose: int,
          accounts: tuple[str, ...], show: bool, person: str | None) -> None:
    """Log in once interactively and save the session for scheduled runs; with --person, hand the code to the
    queue's task waiting for that person."""
    configure_logging(verbose)
    settings = settings_from(config_file, out=out, portal_url=portal_url, browser_path=browser_path, headless=False if show else None)
    if person is not None:
        hand_in_code(settings, person)
        return
    request = JobRequest(
        accounts=list(accounts) or [None], date_from=date.today(), date_to=date.today(),
        interactive=is_interactive(True, settings), login_only=True,
    )
    run_job(settings, request, as_json=True)
    click.echo("logged in; the session is saved for later runs")


@cli.command()
@with_common
@click.option("--account", "--person", "accounts", multiple=True, help="account or person name from the config (repeatable)")
@click.option("--all-accounts", is_flag=True, help="every configured account and person, max_persons at a time")
@click.option("--month", help="YYYY-MM")
@click.option("--from", "date_from", help="YYYY-MM-DD (with --to)")
@click.option("--to", "date_to", help="YYYY-MM-DD (with --from)")
@click.option("--direction", type=click.Choice(["issued", "received", "both"]), default="both", show_default=True)
@click.option("--kind", "kinds", multiple=True, help="票种 code, e.g. 81, 82 (repeatable; default all)")
@click.option("--status", "statuses", multiple=True, help="发票状态 code 01-04 (repeatable; default all)")
@click.option("--format", "formats", help="comma-separated: pdf,xml,ofd (default pdf)")
@click.option("--concurrency", type=int, help="downloads in flight at once")
@click.option("--rate-limit", type=float, help="max file requests per second (0 = no limit)")
@click.option("--interactive/--no-interactive", default=None, help="ask on the terminal for SMS codes and captchas")
@click.option("--wait", "wait_for_archive", is_flag=True,
              help="if another run works on the same archive, wait for it to end (default: refuse at once, exit 75)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON summary object")
def download(config_file: Path | None, out: Path | None, portal_url: str | None, browser_path: Path | None, verbose: int,
             accounts: tuple[str, ...], all_accounts: bool, month: str | None, date_from: str | None, date_to: str | None,
             direction: str, kinds: tuple[str, ...], statuses: tuple[str, ...], formats: str | None,
             concurrency: int | None, rate_limit: float | None, interactive: bool | None, wait_for_archive: bool,
             as_json: bool) -> None:
    """Download and verify every invoice of a period."""
    configure_logging(verbose)
    start, end = period(month, date_from, date_to)
    settings = settings_from(
        config_file, out=out, portal_url=portal_url, browser_path=browser_path, formats=formats,
        concurrency=concurrency, rate_limit=rate_limit,
    )
    names: list[str | None] = list(settings.all_persons()) if all_accounts else list(accounts) or [None]
    if not names:
        raise errors.SettingsError("--all-accounts: no account configured; add [accounts.<name>] to the config file (--config)")
    request = JobRequest(
        accounts=names, date_from=start, date_to=end, directions=directions(direction), kinds=list(kinds),
        statuses=list(statuses), interactive=is_interactive(interactive, settings), wait_for_archive=wait_for_archive,
    )
    summary = run_job(settings, request, as_json)
    print_summary(summary, as_json)
    sys.exit(exit_for(summary))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option("--json", "as_json", is_flag=True, help="one JSON object per file")
@click.option("--no-qr", is_flag=True, help="skip the QR payload cross-check")
def verify(paths: tuple[Path, ...], config_file: Path | None, as_json: bool, no_qr: bool) -> None:
    """Check invoice files (default: the whole archive, `out` of the config): PDF sound, and content matching
    the ledger's listing when there is one."""
    from agent.checks import verify_paths

    settings = settings_from(config_file)
    targets = list(paths) or [settings.out]
    if not paths and not targets[0].is_dir():
        raise errors.SettingsError(f"nothing to check: no archive at {targets[0]}; name files or folders, or --config")
    verdicts = verify_paths(targets, not no_qr, settings.out, settings.database_url)
    if not verdicts:
        shown = ", ".join(str(path) for path in targets)
        raise errors.SettingsError(f"nothing to check: no invoice files (.pdf, .ofd, .xml) in {shown}")
    for verdict in verdicts:
        if as_json:
            click.echo(verdict.model_dump_json())
        else:
            click.echo(f"{verdict.status.value:10} {verdict.path}" + (f"  ({verdict.reason})" if verdict.reason else ""))
    sys.exit(errors.EXIT_OK if all(v.status == "ok" for v in verdicts) else errors.EXIT_INCOMPLETE)


@cli.command()
@config_option
@click.option("--out", type=click.Path(path_type=Path), help="archive folder (default: `out` of the config, else ./archive)")
@click.option("--month", help="YYYY-MM (default: all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of the table")
def report(config_file: Path | None, out: Path | None, month: str | None, as_json: bool) -> None:
    """What the archive holds: counts per state, and every file not verified (or gone since) with its reason."""
    from agent.checks import archive_report, render_report

    if month:
        parse_month(month)
    settings = settings_from(config_file, out=out)
    result = archive_report(settings.out, month, settings.database_url)
    click.echo(json.dumps(result, ensure_ascii=False) if as_json else render_report(result))
    sys.exit(errors.EXIT_OK if result["complete"] else errors.EXIT_INCOMPLETE)


@cli.command()
@config_option
@click.option("--out", type=click.Path(path_type=Path), help="archive folder (default: `out` of the config, else ./archive)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on; beyond loopback needs web_token")
@click.option("--port", type=int, default=8700, show_default=True, help="0 = a free port")
@click.option("-v", "--verbose", count=True, help="-v: one line per request (paths only)")
def serve(config_file: Path | None, out: Path | None, host: str, port: int, verbose: int) -> None:
    """The firm's status page: companies × months, the people needed, the files. Prints its URL (with its
    access token) first, then serves until Ctrl-C."""
    from agent.web.server import serve as serve_status_page

    configure_logging(verbose)
    serve_status_page(settings_from(config_file, out=out), host, port)


@cli.command("mock-portal")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, help="0 = a free port")
@click.option("--scenario", default="default", show_default=True, help="preset name or scenario TOML file")
@click.option("--seed", type=int, default=2025, show_default=True)
def mock_portal(host: str, port: int, scenario: str, seed: int) -> None:
    """Serve the built-in mock e-tax portal; prints its base URL first, then its demo logins."""
    from fixtures.portal.server import serve

    serve(host=host, port=port, scenario=scenario, seed=seed)


@cli.command()
@click.option("--month", help="YYYY-MM (default: last month)")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-archive"), show_default=True)
@click.option("--scenario", default="default", show_default=True, help="mock portal scenario")
@click.option("--seed", type=int, default=2025, show_default=True)
@click.option("--format", "formats", help="comma-separated: pdf,xml,ofd (default pdf)")
@click.option("-v", "--verbose", count=True)
@click.option("--firm", is_flag=True, help="an accounting firm: persons of several companies, through the queue")
@click.option("--json", "as_json", is_flag=True, help="print one JSON summary object")
def demo(month: str | None, out: Path, scenario: str, seed: int, formats: str | None, verbose: int, firm: bool,
         as_json: bool) -> None:
    """Start the built-in mock portal and run the whole job on it, unattended."""
    from agent.demo import check_against_truth, demo_settings, last_month
    from fixtures.portal.server import MockPortalServer

    configure_logging(verbose)
    month = month or last_month()
    start, end = parse_month(month)
    if firm:
        demo_firm(month, out, scenario, seed, formats, as_json)
    with MockPortalServer(scenario=scenario, seed=seed) as server:
        if not as_json:
            click.echo(f"mock portal at {server.url}; archiving {month} into {out}/", err=True)
        settings = demo_settings(settings_from(None, formats=formats), server.url, out)
        request = JobRequest(accounts=["demo"], date_from=start, date_to=end, interactive=False)
        summary = run_job(settings, request, as_json)
        company_id = settings.accounts["demo"].company_id
        truth = check_against_truth(server.url, out, company_id, month, settings.formats, settings.database_url)
    print_summary(summary, as_json, {"truth_files": truth.files_expected, "truth_matching": truth.files_matching})
    if not as_json:
        click.echo(f"mock truth: {truth.files_matching} of {truth.files_expected} files match the portal's sha256")
    sys.exit(exit_for(summary) if truth.ok else errors.EXIT_INCOMPLETE)


def demo_firm(month: str, out: Path, scenario: str, seed: int, formats: str | None, as_json: bool) -> None:
    """`fapiao demo --firm`: the mock firm's month through the embedded queue, then one report; exits."""
    from agent.demo import FIRM_SCENARIO, firm_demo_settings, firm_report, run_firm_month
    from agent.status import company_months, open_ledger, render_status
    from fixtures.portal.server import MockPortalServer

    start, end = parse_month(month)
    with MockPortalServer(scenario=FIRM_SCENARIO if scenario == "default" else scenario, seed=seed) as server:
        settings = firm_demo_settings(settings_from(None, formats=formats), server.url, out)
        if not as_json:
            click.echo(f"mock portal at {server.url}; {len(settings.persons)} persons archive {month} into {out}/", err=True)
        run_firm_month(settings, start, end)
        report = firm_report(settings, server.url, month)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
    else:
        with open_ledger(settings.out, settings.database_url) as ledger:
            click.echo(render_status(company_months(ledger, month), month))
        mock = report["mock"]
        click.echo(f"mock: password logins {mock['password_logins']}, most live sessions {mock['max_live_sessions']}; "
                   f"{mock['truth_matching']} of {mock['truth_files']} files match the portal's sha256")
    sys.exit(errors.EXIT_OK if report["complete"] else errors.EXIT_INCOMPLETE)


@cli.command()
@config_option
@click.option("--out", type=click.Path(path_type=Path), help="archive folder (default: `out` of the config, else ./archive)")
@click.option("--month", help="YYYY-MM (default: all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of the table")
def status(config_file: Path | None, out: Path | None, month: str | None, as_json: bool) -> None:
    """Companies × months from the ledger: listed, verified, pending, failed, quarantined, paper, last run."""
    from agent.status import company_months, open_ledger, render_status, status_json

    if month:
        parse_month(month)
    settings = settings_from(config_file, out=out)
    with open_ledger(settings.out, settings.database_url) as ledger:
        rows = company_months(ledger, month)
    click.echo(json.dumps(status_json(rows, month), ensure_ascii=False) if as_json else render_status(rows, month))
    sys.exit(errors.EXIT_OK if all(row.complete for row in rows) else errors.EXIT_INCOMPLETE)


@cli.command()
@config_option
@click.option("--out", type=click.Path(path_type=Path), help="archive folder (default: `out` of the config, else ./archive)")
@click.option("--person", "persons", multiple=True, help="person from [persons.*] (repeatable; default: every person)")
@click.option("--company", "companies", multiple=True, help="a company's tax id: a task of the person archiving it (repeatable)")
@click.option("--month", help="YYYY-MM")
@click.option("--from", "date_from", help="YYYY-MM-DD (with --to)")
@click.option("--to", "date_to", help="YYYY-MM-DD (with --from)")
@click.option("--direction", type=click.Choice(["issued", "received", "both"]), default="both", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per task queued")
def enqueue(config_file: Path | None, out: Path | None, persons: tuple[str, ...], companies: tuple[str, ...],
            month: str | None, date_from: str | None, date_to: str | None, direction: str, as_json: bool) -> None:
    """Put tasks on the queue (one per person and period) for `fapiao worker` to run."""
    from agent.notify import period_label
    from agent.queue import FirmQueue, tasks_for

    start, end = period(month, date_from, date_to)
    settings = settings_from(config_file, out=out)
    tasks = tasks_for(settings, list(persons), list(companies), start, end, directions(direction))
    queue = FirmQueue(settings)
    try:
        for task in tasks:
            task_id = queue.enqueue(task)
            shown = ", ".join(task.companies) if task.companies else "their companies"
            click.echo(json.dumps({"task_id": task_id, **task.model_dump(mode="json")}, ensure_ascii=False) if as_json
                       else f"queued {task_id}: {task.person} {period_label(task.date_from, task.date_to)} ({shown})")
    finally:
        queue.close()


@cli.command()
@config_option
@click.option("--out", type=click.Path(path_type=Path), help="archive folder (default: `out` of the config, else ./archive)")
@click.option("-w", "--workers", type=click.IntRange(1, 64), help="persons driven at once (default: max_persons)")
@click.option("--until-empty", is_flag=True, help="stop once nothing is queued, scheduled or running (demos, tests, cron)")
@click.option("-v", "--verbose", count=True, help="-v: one line per task and portal action; -vv: debug")
def worker(config_file: Path | None, out: Path | None, workers: int | None, until_empty: bool, verbose: int) -> None:
    """Run the queue's tasks and schedules until stopped (Ctrl-C, SIGTERM: tasks running go back on the queue).
    A task waiting for a person's code holds its worker: run at least two so that the others go on."""
    from agent.queue import FirmQueue

    configure_logging(verbose)
    settings = settings_from(config_file, out=out)
    queue = FirmQueue(settings)
    count = workers or settings.max_persons
    where = "Redis" if settings.queue_url else f"{settings.out / 'queue.sqlite3'}"
    click.echo(f"worker: {count} at once on {where}; {len(settings.schedules)} schedules; Ctrl-C stops", err=True)
    stop = stop_on_signals()
    try:
        queue.work(count, until_empty, stop)
    finally:
        queue.close()
    last = {outcome.task_id: outcome for outcome in queue.outcomes}  # a task retried ends with its last outcome
    for outcome in last.values():
        click.echo(f"{outcome.outcome}: {outcome.person} {outcome.message}".rstrip(), err=True)
    sys.exit(errors.EXIT_OK if all(outcome.outcome == "complete" for outcome in last.values()) else errors.EXIT_INCOMPLETE)


def stop_on_signals() -> threading.Event:
    """An event set by the first SIGINT or SIGTERM; a second one interrupts at once (KeyboardInterrupt)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping; tasks running go back on the queue", err=True)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def hand_in_code(settings: Settings, person: str) -> None:
    """`fapiao login --person NAME`: the code a parked task of that person waits for, typed here and handed
    over through the queue; a task held because nobody came in time is started again first (a new SMS)."""
    from agent.queue import FirmQueue

    name, _ = settings.person(person)
    queue = FirmQueue(settings)
    try:
        waiting = queue.waiting_for(name)
        if waiting is None and queue.restart_held(name):
            click.echo(f"{name}'s task starts again; the portal will send a new code", err=True)
            waiting = wait_until(lambda: queue.waiting_for(name), settings.human_timeout)
        if waiting is None or waiting.until is None:
            raise errors.SettingsError(f"no task waits for {name}'s code: none is parked (see the status page), or no worker runs")
        left = max(0, int((waiting.until - datetime.now()).total_seconds()))
        if waiting.kind == "captcha" and waiting.image:
            image = (settings.debug_dir or settings.out / "_debug") / f"captcha-{name}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(base64.b64decode(waiting.image))
            click.echo(f"the captcha is in {image}", err=True)
        click.echo(f"{name}'s task waits for {waiting.detail} ({left} s left)", err=True)
        code = click.prompt("code", err=True)
        if not queue.submit_code(name, code):
            raise errors.NeedsPerson(f"the wait for {name}'s code ended before it was handed in; run this again")
        click.echo("handed to the waiting task", err=True)
    finally:
        queue.close()


def wait_until(found: Any, timeout: float, every: float = 0.5) -> Any:
    """What `found()` gives once it is truthy, asked every `every` seconds; None when `timeout` passes first.
    The tests' bounded waits (agentkit.wait_for) are this one too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(every)
    return None


@cli.command("setup-browser")
def setup_browser() -> None:
    """Find Chromium (configured, Playwright's, PATH) or install it; says which is used."""
    from agent.browser import find_chromium, install_chromium

    try:
        choice = find_chromium(load_settings(None).browser_path)
    except errors.SettingsError:
        choice = install_chromium()
    click.echo(f"Chromium: {choice.describe()}")


def main() -> None:
    """The `fapiao` command: every outcome is one exit code of the table in agent/errors.py."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(errors.EXIT_USAGE)
    except click.exceptions.Abort as abort:
        if isinstance(abort.__context__, KeyboardInterrupt):  # click turns Ctrl-C outside a job into Abort
            stop(errors.Interrupted(signal.SIGINT))
        click.echo("aborted", err=True)  # end of input where a person was asked something
        sys.exit(errors.EXIT_NEEDS_PERSON)
    except errors.Interrupted as interrupted:
        stop(interrupted)
    except errors.FapiaoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        stop(errors.Interrupted(signal.SIGINT))
    except Exception as exc:  # a bug: say what and where in one line, the traceback goes to a file  # noqa: BLE001
        crashed(exc)


def stop(interrupted: errors.Interrupted) -> None:
    """One line, then the exit code at once: the job has unwound and written what it had, but a thread may still
    be blocked reading the terminal (a prompt), which a normal exit would wait for."""
    click.echo(f"\n{interrupted}", err=True)  # on a line of its own: after the terminal's ^C, or a prompt
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(interrupted.exit_code)


def crashed(exc: Exception) -> None:
    from agent.crash import summary, write_crash_report

    try:
        details = f"traceback in {write_crash_report(exc, next(iter(_debug_dir), None))}"
    except OSError:
        details = "no file could be written for the traceback; run again with -vv"
    click.echo(f"internal error (a bug, please report it): {summary(exc)}; {details}", err=True)
    sys.exit(errors.EXIT_INTERNAL)
