"""The firm's queue: tasks of one person and one period, run by workers on one machine or many (Huey).

    fapiao enqueue --person wang --month 2025-10     # or --company <tax id>; none: every configured person
    fapiao worker -w 2                                # runs until stopped; --until-empty for demos and tests
    fapiao login --person wang                        # hands the SMS code to wang's waiting task

`SqliteHuey` in `<out>/queue.sqlite3` when `queue_url` is unset (one machine, no server to run); `RedisHuey`
with `queue_url = "redis://..."` for workers on several machines (the archive folder is then a shared mount
and the ledger on PostgreSQL). This module is the only one that knows the queue.

A task, in order:
- takes the lease `person:<region>:<person>` (agent/leases.py), so that no two workers ever drive one person's
  portal session (the portal keeps one live session per person and region: a second login kicks the first
  out). A task whose person is busy waits its turn, rescheduled, not failed. The lease is renewed while the
  task runs and runs out by itself when a worker dies; any worker then puts the task back (`reap`), and the
  ledger makes the rerun skip whatever was verified.
- runs `archive_person` (agent.firm, injected) with the task's run events, the inputs of a person and the
  person's politeness gate, kept in the shared state under the lease's name (agent/gates.py): a task keeps the
  pace the person's last task left, on whichever worker, and a Retry-After told to one worker holds them all.
  An SMS code or captcha that no configured source can give parks the task "waiting for a person"
  (`waiting_people()`), says so (agent/notify.py), and waits, the login page open, for a code handed in by
  `submit_code(person, code)` (`fapiao login --person`, the status page) within the code's lifetime
  (`human_timeout`); the other workers go on with other persons. A wait that runs out leaves the task held:
  `fapiao login --person` starts it again.
- a portal outage (PortalUnavailable) is tried again `queue_retries` times, the first after `queue_retry_wait`
  seconds, doubling; a refused login never is. The last failure is notified.
- its outcome stays a week for the status page (`overview()`).

Schedules (`[[schedules]]`) are Huey periodic tasks: each fires once per matching minute however many workers
run (a claim in the shared state), and enqueues one task per person.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey, Task
from huey.consumer import Consumer
from huey.exceptions import RetryTask
from pydantic import BaseModel

from agent import errors
from agent.config import Schedule, Settings
from agent.events import NeededFor, RunEvents
from agent.firm import PersonSummary, PersonTask, archive_person
from agent.gates import SharedGate
from agent.human import CaptchaSolver, HumanInputs, SmsSource, make_captcha_solver, make_sms_source
from agent.leases import RedisState, SharedState, SqliteState
from agent.notify import Notifier, Sender, period_label, scrub
from agent.records import Direction
from agent.retry import Gate

log = logging.getLogger(__name__)

QUEUE_NAME = "fapiao"
QUEUE_FILE = "queue.sqlite3"  # the embedded queue, its leases and records, in the archive folder
TASK_NAME = "archive_person"
CODE_POLL = 0.5  # seconds between two looks for a handed-in code
OUTCOME_KEEP = 7 * 24 * 3600.0  # seconds a task's outcome stays for the status page
TICK = 0.25  # seconds between two looks of a worker's main loop (stop asked, dead leases, queue empty)
IDLE_LOOKS = 4  # an --until-empty worker stops after this many looks in a row found nothing to do
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

WAITING, HELD, INFLIGHT, OUTCOMES = "waiting", "held", "inflight", "outcome"  # tables of the shared state


ArchivePerson = Callable[[Settings, PersonTask, RunEvents, HumanInputs | None], Awaitable[PersonSummary]]


class Waiting(BaseModel):
    """A person a task waits for: what for, since when, until when (None: the wait ran out, the task is held)."""

    person: str
    kind: NeededFor
    detail: str
    task_id: str
    companies: list[str] | None
    date_from: date
    date_to: date
    since: datetime
    until: datetime | None
    image: str | None = None  # a captcha's PNG, base64, for the status page


class RunningTask(BaseModel):
    task_id: str
    person: str
    lease: str
    worker: str
    companies: list[str] | None
    date_from: date
    date_to: date
    started: datetime
    lease_expires: datetime


class QueuedTask(BaseModel):
    task_id: str
    person: str
    companies: list[str] | None
    date_from: date
    date_to: date
    eta: datetime | None  # a retry or a task whose person is busy: not before then
    retries_left: int


class ScheduledRun(BaseModel):
    name: str
    cron: str
    persons: list[str] | str
    period: str
    next_run: datetime | None


class TaskOutcome(BaseModel):
    task_id: str
    person: str
    companies: list[str] | None
    date_from: date
    date_to: date
    outcome: str  # complete | gaps | retrying | portal down | login refused | needs person | failed | error
    message: str
    finished: datetime


class Overview(BaseModel):
    """The queue at a glance, for `fapiao status` and the status page."""

    running: list[RunningTask]
    waiting: list[Waiting]
    queued: list[QueuedTask]
    schedules: list[ScheduledRun]
    recent: list[TaskOutcome]


def build_huey(settings: Settings) -> Huey:
    """`RedisHuey` for a redis:// queue_url, else `SqliteHuey` in the archive folder. Local time (utc=False), so
    that a schedule's cron line means the clock on the wall."""
    if settings.queue_url:
        if urlsplit(settings.queue_url).scheme not in ("redis", "rediss", "unix"):
            raise errors.SettingsError("queue_url must be a redis:// (or rediss://, unix://) URL; unset it for the embedded queue")
        return RedisHuey(QUEUE_NAME, url=settings.queue_url, results=False, utc=False)
    settings.out.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(settings.out / QUEUE_FILE), results=False, utc=False)


def build_state(settings: Settings, huey: Huey) -> SharedState:
    if settings.queue_url:
        state = RedisState(huey.storage.conn, QUEUE_NAME)
        try:
            huey.storage.conn.ping()
        except Exception as exc:  # redis' own errors: say which setting to look at  # noqa: BLE001
            raise errors.SettingsError(f"queue_url: cannot reach Redis ({type(exc).__name__}: {exc})") from None
        return state
    return SqliteState(settings.out / QUEUE_FILE)


def lease_name(settings: Settings, person: str) -> str:
    """`person:<region>:<person>`: the portal keeps one live session per person and region."""
    name, configured = settings.person(person)
    return person_key(settings.region_of(configured), name)


def person_key(region: str, name: str) -> str:
    """The name of a person's lease and pace in the shared state."""
    return f"person:{region}:{name}"


def month_of(period: str, today: date | None = None) -> tuple[date, date]:
    """A schedule's period: `last-month` (the whole month before today's) or `this-month` (up to today)."""
    today = today or date.today()
    if period == "this-month":
        return today.replace(day=1), today
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def next_run(cron: str, after: datetime, days: int = 1461) -> datetime | None:
    """The first minute after `after` that the cron line matches (None within `days`: four years hold a 29 February)."""
    minute, hour, day, month, weekday = cron.split()
    matches, matches_day = crontab(minute, hour, day, month, weekday), crontab("*", "*", day, month, weekday)
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for offset in range(days):
        midnight = (start + timedelta(days=offset)).replace(hour=0, minute=0)
        if not matches_day(midnight):
            continue
        first = start if offset == 0 else midnight
        for step in range(int((midnight + timedelta(days=1) - first).total_seconds() // 60)):
            candidate = first + timedelta(minutes=step)
            if matches(candidate):
                return candidate
    return None


def tasks_for(
    settings: Settings, persons: list[str], companies: list[str], date_from: date, date_to: date,
    directions: list[Direction],
) -> list[PersonTask]:
    """What `fapiao enqueue` puts on the queue: one task per person named (none: every configured person), with
    all their companies; or, given companies, one task per person who archives them, with those companies."""
    names = [settings.person(name)[0] for name in persons] or list(settings.all_persons())
    if not companies:
        return [PersonTask(person=name, date_from=date_from, date_to=date_to, directions=directions) for name in names]
    wanted: dict[str, list[str]] = {}
    for company in dict.fromkeys(company.strip().upper() for company in companies):
        wanted.setdefault(person_for(settings, company, names), []).append(company)
    return [
        PersonTask(person=name, date_from=date_from, date_to=date_to, directions=directions, companies=chosen)
        for name, chosen in wanted.items()
    ]


def person_for(settings: Settings, company: str, among: list[str]) -> str:
    """The person who archives `company`: the first (in the config's order) who names it, else the only one of
    `among` whose companies are "all"."""
    persons = {name: person for name, person in settings.all_persons().items() if name in among}
    naming = [name for name, person in persons.items() if isinstance(person.companies, list) and company in person.companies]
    every = [name for name, person in persons.items() if person.companies == "all"]
    if naming or len(every) == 1:
        return (naming or every)[0]
    raise errors.SettingsError(
        f"no configured person archives company {company}: add it to a person's companies, or say whose it is with --person"
        if not every else f"company {company}: several persons have companies = \"all\" ({', '.join(every)}); choose with --person"
    )


def retry_wait(settings: Settings, attempt: int, error: errors.PortalUnavailable) -> float:
    """Seconds before attempt `attempt + 1`: queue_retry_wait doubled per attempt, longer if the portal says so."""
    wait = settings.queue_retry_wait * 2 ** (attempt - 1)
    return max(wait, getattr(error, "retry_after", None) or 0.0)


class FirmQueue:
    """The queue of one archive (or one Redis): enqueue, look, hand in codes, and run workers."""

    def __init__(self, settings: Settings, archive: ArchivePerson | None = None) -> None:
        """`archive`: what a task runs (default: agent.firm's archive_person, with the shared gates)."""
        self.settings = settings
        self.archive = archive or self._archive_person
        self.huey = build_huey(settings)
        self.state = build_state(settings, self.huey)
        self.sender = Sender(settings.notify)
        self._task = self.huey.task(context=True, name=TASK_NAME)(self._run_task)
        for index, schedule in enumerate(settings.schedules):
            self._add_schedule(index, schedule)
        self._lock = threading.Lock()
        self._running: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}
        self._busy = 0
        self._stopping = False
        self.outcomes: list[TaskOutcome] = []  # of the tasks this process ran, in the order they ended
        self._asked: dict[str, NeededFor] = {}  # task id -> what its last wait for a person was for

    # -- enqueue, look, hand in ----------------------------------------------------------------------------

    def enqueue(self, task: PersonTask, retries: int | None = None, task_id: str | None = None) -> str:
        """Put a task on the queue; its id. A person the configuration does not name is refused (SettingsError)."""
        self.settings.person(task.person)
        retries = self.settings.queue_retries if retries is None else retries
        message = self._task.s(task.model_dump(mode="json"), id=task_id, retries=retries)
        self.huey.enqueue(message)
        log.info("enqueued %s: %s %s", message.id, task.person, period_label(task.date_from, task.date_to))
        return str(message.id)

    def waiting_people(self) -> list[Waiting]:
        """Persons a task waits for now (until set), then tasks held because nobody came in time (until None)."""
        live = [Waiting.model_validate(record) for record in self.state.records(WAITING).values()]
        held = [Waiting.model_validate(record["waiting"]) for record in self.state.records(HELD).values()]
        return sorted(live, key=lambda w: w.since) + sorted(held, key=lambda w: w.since)

    def submit_code(self, person: str, code: str) -> bool:
        """Hand an SMS code (or captcha answer) to the task waiting for `person`; False when none waits."""
        record = self.state.records(WAITING).get(person)
        if record is None or not code.strip():
            return False
        self.huey.put(_code_key(person, record["nonce"]), code.strip())
        log.info("a code for %s was handed in", person)
        return True

    def waiting_for(self, person: str) -> Waiting | None:
        """The live wait for `person`'s code, if a task waits now."""
        return next((w for w in self.waiting_people() if w.person == person and w.until is not None), None)

    def restart_held(self, person: str) -> list[str]:
        """Put back on the queue the tasks of `person` held for want of a code; their ids."""
        restarted = []
        for task_id, record in self.state.records(HELD).items():
            if record["waiting"]["person"] == person and self.state.take(HELD, task_id) is not None:
                restarted.append(self.enqueue(PersonTask.model_validate(record["order"]), record["retries"], task_id))
        return restarted

    def overview(self) -> Overview:
        now = datetime.now()
        schedules = [
            ScheduledRun(name=s.name or s.cron, cron=s.cron, persons=s.persons, period=s.period, next_run=next_run(s.cron, now))
            for s in self.settings.schedules
        ]
        recent = sorted(
            (TaskOutcome.model_validate(record) for record in self.state.records(OUTCOMES).values()),
            key=lambda outcome: outcome.finished, reverse=True,
        )
        return Overview(running=self._running_tasks(), waiting=self.waiting_people(), queued=self._queued(), schedules=schedules, recent=recent)

    def _running_tasks(self) -> list[RunningTask]:
        running = []
        for lease in self.state.leases():
            if lease.name.startswith("person:") and "task_id" in lease.info:
                expires = datetime.fromtimestamp(lease.expires)
                running.append(RunningTask.model_validate({**lease.info, "lease": lease.name, "lease_expires": expires}))
        return running

    def _queued(self) -> list[QueuedTask]:
        tasks = [*self.huey.pending(), *self.huey.scheduled()]
        return [
            QueuedTask.model_validate({**task.args[0], "task_id": task.id, "eta": task.eta, "retries_left": task.retries})
            for task in tasks if type(task).__name__ == TASK_NAME and task.args
        ]

    def is_idle(self) -> bool:
        """Nothing queued, scheduled, running or in flight anywhere (a dead worker's task not yet put back counts)."""
        with self._lock:
            busy = self._busy
        return (
            busy == 0 and self.huey.pending_count() == 0 and self.huey.scheduled_count() == 0
            and not self.state.records(INFLIGHT)
        )

    # -- schedules -----------------------------------------------------------------------------------------

    def _add_schedule(self, index: int, schedule: Schedule) -> None:
        for person in schedule.persons if schedule.persons != "all" else []:
            try:
                self.settings.person(person)
            except errors.SettingsError as exc:
                raise errors.SettingsError(f"schedules.{index}.persons: {exc}") from None

        def fire() -> None:
            minute = datetime.now().strftime("%Y%m%d%H%M")
            if self.state.claim(f"schedule:{index}:{minute}", ttl=180):
                self.enqueue_schedule(schedule)

        self.huey.periodic_task(crontab(*schedule.cron.split()), name=f"schedule_{index}")(fire)

    def enqueue_schedule(self, schedule: Schedule, today: date | None = None) -> list[str]:
        """One task per person of the schedule, for its period."""
        start, end = month_of(schedule.period, today)
        persons = list(self.settings.all_persons()) if schedule.persons == "all" else schedule.persons
        log.info("schedule %s: %d persons, %s", schedule.name or schedule.cron, len(persons), period_label(start, end))
        return [
            self.enqueue(PersonTask(person=person, date_from=start, date_to=end, directions=schedule.directions))
            for person in persons
        ]

    # -- workers -------------------------------------------------------------------------------------------

    def work(self, workers: int, until_empty: bool = False, stop: threading.Event | None = None) -> None:
        """Run `workers` workers (threads) and the scheduler until `stop` is set (or, with until_empty, until
        there is nothing left to do). Tasks still running are then cancelled and put back on the queue."""
        stop = stop or threading.Event()
        consumer = _Consumer(self.huey, workers=workers, periodic=True, initial_delay=0.1, max_delay=1.0, worker_type="thread")
        self._stopping = False
        consumer.start()
        log.info("worker %s: %d workers on %s", WORKER_ID, workers, self.settings.queue_url and "Redis" or "SQLite")
        try:
            self._supervise(stop, until_empty)
        finally:
            self._stop_running(consumer)

    def _supervise(self, stop: threading.Event, until_empty: bool) -> None:
        idle_looks, next_reap = 0, 0.0
        while not stop.wait(TICK):
            if time.monotonic() >= next_reap:
                self.reap()
                next_reap = time.monotonic() + self.settings.queue_lease_seconds / 3
            idle_looks = idle_looks + 1 if until_empty and self.is_idle() else 0
            if idle_looks >= IDLE_LOOKS:
                log.info("the queue is empty: the worker stops")
                return

    def _stop_running(self, consumer: Consumer) -> None:
        consumer.stop_flag.set()
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
        for loop, main in running:
            loop.call_soon_threadsafe(main.cancel)
        consumer.stop(graceful=True)

    def reap(self) -> list[str]:
        """Put back on the queue every task whose worker died: in flight, its lease gone. Their ids."""
        records = self.state.records(INFLIGHT)  # read before the leases: a task started since has a live one
        live = {(lease.name, lease.token) for lease in self.state.leases()}
        requeued = []
        for task_id, record in records.items():
            if (record["lease"], record["token"]) in live:
                continue
            taken = self.state.take(INFLIGHT, task_id)
            if taken is not None:
                log.warning("task %s of %s lost its worker: put back on the queue", task_id, taken["order"]["person"])
                requeued.append(self.enqueue(PersonTask.model_validate(taken["order"]), taken["retries"], task_id))
        return requeued

    # -- one task, on a worker thread ------------------------------------------------------------------------

    def _run_task(self, order: dict[str, Any], task: Task) -> None:
        with self._counted():
            person_task = PersonTask.model_validate(order)
            try:
                lease, token = lease_name(self.settings, person_task.person), uuid.uuid4().hex
            except errors.SettingsError as exc:  # the workers' configuration no longer names the person
                self._record(task.id, person_task, "failed", str(exc))
                return
            info = {**person_task.model_dump(mode="json"), "task_id": task.id, "worker": WORKER_ID, "started": datetime.now().isoformat()}
            if not self.state.acquire(lease, token, info, self.settings.queue_lease_seconds):
                wait = min(max(1.0, self.settings.queue_lease_seconds / 4), 15.0)
                log.info("%s is busy on another worker: task %s waits %.0f s", person_task.person, task.id, wait)
                raise RetryTask(delay=wait)
            self.state.put(INFLIGHT, task.id, {"order": order, "lease": lease, "token": token, "retries": task.retries})
            try:
                result = self._drive(person_task, task, lease, token)
            finally:
                record = self.state.take(INFLIGHT, task.id)
                self.state.release(lease, token)
            if record is None:
                log.warning("task %s lost its lease; another worker has taken it over", task.id)
                return
            self._conclude(person_task, task, record, result)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _drive(self, person_task: PersonTask, task: Task, lease: str, token: str) -> _Result:
        """Run the archiving and sort its end into what the queue does next."""
        notifier = Notifier(
            self.sender, period_label(person_task.date_from, person_task.date_to), last_attempt=task.retries == 0,
            hint=f"Hand it in with `fapiao login --person {person_task.person}` or on the status page.",
        )
        events = RunEvents(notifier)
        person = person_task.person
        try:
            summary = asyncio.run(self._drive_async(person_task, task.id, events, lease, token))
            return _Result("complete" if summary.totals.complete else "gaps", summary=summary)
        except errors.PortalUnavailable as exc:
            if task.retries > 0:
                return _Result("retrying", exc)
            events.portal_down(person, exc)
            return _Result("portal down", exc)
        except errors.LoginRefused as exc:
            events.login_refused(person, exc)
            return _Result("login refused", exc)
        except errors.NeedsPerson as exc:
            return _Result("needs person", exc)
        except _Interrupted:
            return _Result("interrupted")
        except errors.FapiaoError as exc:
            return _Result("failed", exc)
        except Exception as exc:  # a bug: logged with its traceback; the worker goes on
            log.exception("task %s of %s failed unexpectedly", task.id, person)
            return _Result("error", exc)
        finally:
            notifier.close()

    async def _drive_async(
        self, person_task: PersonTask, task_id: str, events: RunEvents, lease: str, token: str
    ) -> PersonSummary:
        main = asyncio.current_task()
        assert main is not None
        with self._lock:
            if self._stopping:
                raise _Interrupted
            self._running[task_id] = (asyncio.get_running_loop(), main)
        keeper = _LeaseKeeper(self.state, lease, token, self.settings.queue_lease_seconds, main)
        keeper.start()
        try:
            return await self.archive(self.settings, person_task, events, self._human_inputs(person_task, task_id, events))
        except asyncio.CancelledError:
            raise _Interrupted from None  # stopping, or the lease was lost: either way the task goes back
        finally:
            keeper.stop()
            with self._lock:
                self._running.pop(task_id, None)

    async def _archive_person(
        self, settings: Settings, task: PersonTask, events: RunEvents, human: HumanInputs | None
    ) -> PersonSummary:
        return await archive_person(settings, task, events, human, gate_for=self.gate_for)

    def gate_for(self, region: str, person: str) -> Gate:
        """A person's politeness gate, shared by every worker of this queue."""
        return SharedGate.shared_by(self.state, person_key(region, person), self.settings)

    def _conclude(self, person_task: PersonTask, task: Task, record: dict[str, Any], result: _Result) -> None:
        """After the lease is released: put back, retry later, hold, or record the outcome."""
        with self._lock:
            asked = self._asked.pop(task.id, "sms")
        if result.kind == "interrupted":
            log.info("task %s of %s stopped with its worker: put back on the queue", task.id, person_task.person)
            self.enqueue(person_task, task.retries, task.id)
            return
        message = scrub(str(result.error)) if result.error is not None else ""
        if result.kind == "retrying":
            assert isinstance(result.error, errors.PortalUnavailable)
            attempt = self.settings.queue_retries - task.retries + 1
            wait = retry_wait(self.settings, attempt, result.error)
            self._record(task.id, person_task, "retrying", f"{message} (attempt {attempt}; next in {wait:.0f} s)")
            log.warning("task %s of %s: portal unavailable, attempt %d; again in %.0f s", task.id, person_task.person, attempt, wait)
            task.retries -= 1  # RetryTask gives one back: this way each retry costs one
            raise RetryTask(delay=wait)
        if result.kind == "needs person":
            self._hold(person_task, task, record, message, asked)
        self._record(task.id, person_task, result.kind, message or _summary_line(result.summary))

    def _hold(self, person_task: PersonTask, task: Task, record: dict[str, Any], message: str, kind: NeededFor) -> None:
        waiting = Waiting(
            person=person_task.person, kind=kind, detail=message, task_id=task.id, companies=person_task.companies,
            date_from=person_task.date_from, date_to=person_task.date_to, since=datetime.now(), until=None,
        )
        self.state.put(HELD, task.id, {"waiting": waiting.model_dump(mode="json"), "order": record["order"], "retries": task.retries})

    def _record(self, task_id: str, person_task: PersonTask, outcome: str, message: str) -> None:
        record = TaskOutcome(
            task_id=task_id, person=person_task.person, companies=person_task.companies, date_from=person_task.date_from,
            date_to=person_task.date_to, outcome=outcome, message=message, finished=datetime.now(),
        )
        self.state.put(OUTCOMES, task_id, record.model_dump(mode="json"), ttl=OUTCOME_KEEP)
        with self._lock:
            self.outcomes.append(record)

    def _human_inputs(self, person_task: PersonTask, task_id: str, events: RunEvents) -> HumanInputs:
        """The person's configured sources, except that one needing someone at a terminal (`prompt`) waits for a
        code handed in through the queue."""
        waiter = CodeWaiter(self, person_task, task_id, events)
        settings, (_, person) = self.settings, self.settings.person(person_task.person)
        sms: SmsSource = QueueSms(waiter)
        if not person.sms.startswith("prompt"):
            sms = make_sms_source(person.sms, False, person.login, settings.human_timeout)
        captcha: CaptchaSolver = QueueCaptcha(waiter)
        if not (person.captcha or settings.captcha).startswith("prompt"):
            image_dir = settings.debug_dir or settings.out / "_debug"
            captcha = make_captcha_solver(person.captcha or settings.captcha, False, image_dir, settings.human_timeout)
        return HumanInputs(sms=sms, captcha=captcha)

    def close(self) -> None:
        self.state.close()


class _Result:
    def __init__(self, kind: str, error: BaseException | None = None, summary: PersonSummary | None = None) -> None:
        self.kind, self.error, self.summary = kind, error, summary


class _Interrupted(Exception):
    """The task was cancelled: its worker is stopping, or its lease ran out. It goes back on the queue."""


class _Consumer(Consumer):
    """Huey's consumer with signals left to the caller (`fapiao worker` stops it; tests run it on a thread)."""

    def _set_signal_handlers(self) -> None:
        pass


class _LeaseKeeper(threading.Thread):
    """Renews the lease every third of its life, on a thread of its own (a run busy in its event loop must not
    lose it); if it was lost all the same, cancels the run: another worker may take the task."""

    def __init__(self, state: SharedState, lease: str, token: str, ttl: float, main: asyncio.Task[Any]) -> None:
        super().__init__(name=f"lease {lease}", daemon=True)
        self.state, self.lease, self.token, self.ttl, self.main = state, lease, token, ttl, main
        self.loop, self.stopped = main.get_loop(), threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.ttl / 3):
            try:
                renewed = self.state.renew(self.lease, self.token, self.ttl)
            except Exception as exc:  # the store is briefly unreachable: try again at the next turn  # noqa: BLE001
                log.warning("could not renew %s: %s", self.lease, exc)
                continue
            if not renewed:
                log.error("%s ran out before it was renewed: the run stops, another worker takes the task", self.lease)
                self.loop.call_soon_threadsafe(self.main.cancel)
                return

    def stop(self) -> None:
        self.stopped.set()


class CodeWaiter:
    """Parks a task until someone hands in a code for its person, within the code's lifetime."""

    def __init__(self, queue: FirmQueue, person_task: PersonTask, task_id: str, events: RunEvents) -> None:
        self.queue, self.person_task, self.task_id, self.events = queue, person_task, task_id, events
        self.lifetime = queue.settings.human_timeout

    async def wait(self, kind: NeededFor, detail: str, image: bytes | None = None) -> str:
        person, nonce, since = self.person_task.person, uuid.uuid4().hex, datetime.now()
        until = since + timedelta(seconds=self.lifetime)
        waiting = Waiting(
            person=person, kind=kind, detail=detail, task_id=self.task_id, companies=self.person_task.companies,
            date_from=self.person_task.date_from, date_to=self.person_task.date_to, since=since, until=until,
            image=base64.b64encode(image).decode() if image else None,
        )
        state = self.queue.state
        with self.queue._lock:
            self.queue._asked[self.task_id] = kind
        await asyncio.to_thread(state.put, WAITING, person, {**waiting.model_dump(mode="json"), "nonce": nonce}, self.lifetime + 5)
        log.warning("task %s waits for %s: %s (until %s)", self.task_id, person, detail, f"{until:%H:%M:%S}")
        self.events.person_needed(person, kind, f"{detail}, until {until:%H:%M}")
        try:
            return await self._code(_code_key(person, nonce))
        finally:
            await asyncio.to_thread(self._done, person, nonce)

    async def _code(self, key: str) -> str:
        deadline = time.monotonic() + self.lifetime
        while time.monotonic() < deadline:
            code = await asyncio.to_thread(self.queue.huey.get, key)
            if code:
                return str(code)
            await asyncio.sleep(CODE_POLL)
        person = self.person_task.person
        raise errors.NeedsPerson(
            f"nobody handed in {person}'s code within {self.lifetime:.0f} s; `fapiao login --person {person}` starts the run again"
        )

    def _done(self, person: str, nonce: str) -> None:
        self.queue.huey.delete(_code_key(person, nonce))
        current = self.queue.state.records(WAITING).get(person)
        if current is not None and current.get("nonce") == nonce:
            self.queue.state.take(WAITING, person)


class QueueSms(SmsSource):
    """An SMS code handed in through the queue (`fapiao login --person`, the status page)."""

    def __init__(self, waiter: CodeWaiter) -> None:
        self.waiter = waiter

    async def code(self, masked_mobile: str, sent_at: float) -> str:
        return await self.waiter.wait("sms", f"the SMS code sent to {masked_mobile}")


class QueueCaptcha(CaptchaSolver):
    """A captcha answer handed in through the queue, the image shown on the status page."""

    def __init__(self, waiter: CodeWaiter) -> None:
        self.waiter = waiter

    async def solve(self, image: bytes) -> str:
        return await self.waiter.wait("captcha", "the characters of an image captcha", image)


def _code_key(person: str, nonce: str) -> str:
    return f"code:{person}:{nonce}"


def _summary_line(summary: PersonSummary | None) -> str:
    if summary is None:
        return ""
    totals = summary.totals
    return (
        f"listed {totals.listed} · verified {totals.verified} · failed {totals.failed} · pending {totals.pending}"
        f" · quarantined {totals.quarantined} · paper {totals.paper}"
    )


__all__ = [
    "FirmQueue", "Overview", "PersonTask", "QueuedTask", "RunningTask", "ScheduledRun", "TaskOutcome", "Waiting",
    "build_huey", "lease_name", "month_of", "next_run", "person_for", "person_key", "tasks_for",
]
