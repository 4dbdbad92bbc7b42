"""Progress for a person: rich bars on a terminal, plain lines otherwise (cron mails, CI logs); run events
listeners (agent.events)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from agent.events import RunListener
from agent.flows.download import Outcome, State
from agent.records import Direction

PLAIN_EVERY = 100  # verified files between two plain progress lines


class BarProgress(RunListener):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.total = 0

    def listed(self, company: str, direction: Direction, count: int) -> None:
        self.progress.console.print(f"{company}: {count} {direction.value} invoices listed")

    def queued(self, company: str, count: int) -> None:
        self.total += count
        if self.task is None:
            self.task = self.progress.add_task("downloading + verifying", total=self.total)
        else:
            self.progress.update(self.task, total=self.total)

    def file_done(self, outcome: Outcome) -> None:
        if self.task is not None:
            self.progress.advance(self.task)
        if outcome.state is not State.verified:
            self.progress.console.print(f"{outcome.state.value}: {outcome.task.row.number} {outcome.error}")


class PlainProgress(RunListener):
    def __init__(self) -> None:
        self.done = 0
        self.total = 0

    def listed(self, company: str, direction: Direction, count: int) -> None:
        click.echo(f"{company}: {count} {direction.value} invoices listed", err=True)

    def queued(self, company: str, count: int) -> None:
        self.total += count
        click.echo(f"{count} files to download ({self.total} in all)", err=True)

    def file_done(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.state is not State.verified:
            click.echo(f"{outcome.state.value}: {outcome.task.row.number} {outcome.task.fmt.value} {outcome.error}", err=True)
        elif self.done % PLAIN_EVERY == 0 or self.done == self.total:
            click.echo(f"{self.done}/{self.total} files done", err=True)


@contextmanager
def make_progress(enabled: bool) -> Iterator[RunListener]:
    if not enabled:
        yield RunListener()
    elif sys.stderr.isatty():
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=False) as progress:
            yield BarProgress(progress)
    else:
        yield PlainProgress()
