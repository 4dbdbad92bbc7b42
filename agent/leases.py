"""What the queue's workers share besides the queue itself: leases, paces and small records with an expiry.

A lease is a named lock with an expiry that its holder renews while it works: `person:<region>:<person>` makes
sure no two workers drive one person's portal session, and a worker that dies (SIGKILL, power cut) frees it
when the lease runs out, without anyone having to notice. Records are small JSON objects in named tables (a
person waiting for a code, a task in flight, a task's outcome), some with an expiry of their own. A pace is a
person's next free request slot and how long the portal asked them to hold off (agent/gates.py keeps a person's
politeness gate in it, so that every worker driving the person keeps one pace); taking a slot is atomic.

Two stores with the same behaviour: Redis (`SET NX PX`, renewal and release by a script that checks the
holder's token, a pace's slot taken by a script on the server's clock, keys that expire by themselves) for
workers on several machines, and a SQLite file (a table row with an expiry, written in `BEGIN IMMEDIATE`
transactions) next to the embedded queue. Times are the wall clock of the store's machine for Redis (so that
machines with skewed clocks agree) and of this machine for SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from pydantic import BaseModel

BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for another one


class Lease(BaseModel):
    """A live lease: who holds it (its token and what the holder said about itself) and until when."""

    name: str
    token: str
    info: dict[str, Any]
    expires: float  # epoch seconds


class Slot(BaseModel):
    """A request slot taken from a pace: when it starts and when it was taken, on the store's clock."""

    at: float  # epoch seconds
    now: float

    @property
    def wait(self) -> float:
        """Seconds until the slot starts."""
        return self.at - self.now


class SharedState(ABC):
    """Leases and records shared by every worker of one queue."""

    @abstractmethod
    def acquire(self, name: str, token: str, info: dict[str, Any], ttl: float) -> bool:
        """Take the lease `name` for `ttl` seconds unless someone else holds it."""

    @abstractmethod
    def renew(self, name: str, token: str, ttl: float) -> bool:
        """Extend our lease by `ttl` seconds from now; False when it is no longer ours (it ran out)."""

    @abstractmethod
    def release(self, name: str, token: str) -> None:
        """Give our lease back; someone else's is left alone."""

    @abstractmethod
    def leases(self) -> list[Lease]:
        """Every live lease."""

    @abstractmethod
    def put(self, table: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        """Write a record (replacing any), gone after `ttl` seconds if given."""

    @abstractmethod
    def take(self, table: str, key: str) -> dict[str, Any] | None:
        """Read and delete a record at once: of callers racing for it, exactly one gets it."""

    @abstractmethod
    def records(self, table: str) -> dict[str, dict[str, Any]]:
        """Every live record of a table, by key."""

    @abstractmethod
    def claim(self, key: str, ttl: float) -> bool:
        """True for the first caller only, until `ttl` seconds have passed (a schedule fired once per minute)."""

    @abstractmethod
    def take_slot(self, pace: str, spacing: float) -> Slot:
        """The first free slot of `pace` (now at the earliest, never while it is held); the next one is free
        `spacing` seconds after it. Of callers racing for a slot, each gets a different one."""

    @abstractmethod
    def hold_pace(self, pace: str, seconds: float) -> None:
        """No slot of `pace` starts within `seconds` from now (a hold already longer stays)."""

    def holder(self, name: str) -> Lease | None:
        return next((lease for lease in self.leases() if lease.name == name), None)

    def close(self) -> None:
        """Close connections (a store without any has nothing to do)."""


class SqliteState(SharedState):
    """Leases and records as rows with an expiry, in the embedded queue's own SQLite file."""

    LEASES = "fapiao_lease (name text primary key, token text not null, info text not null, expires real not null)"
    RECORDS = "fapiao_record (tbl text not null, key text not null, value text not null, expires real, primary key (tbl, key))"
    PACES = "fapiao_pace (name text primary key, next real not null, held real not null)"  # a row per person: kept

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self._write() as db:
            for table in (self.LEASES, self.RECORDS, self.PACES):
                db.execute(f"create table if not exists {table}")

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            connection.execute("pragma journal_mode=wal")
            self._local.connection = connection
        return connection

    def _write(self) -> _Transaction:
        return _Transaction(self._connection())

    def acquire(self, name: str, token: str, info: dict[str, Any], ttl: float) -> bool:
        now = time.time()
        with self._write() as db:
            db.execute("delete from fapiao_lease where name = ? and expires <= ?", (name, now))
            inserted = db.execute(
                "insert or ignore into fapiao_lease (name, token, info, expires) values (?, ?, ?, ?)",
                (name, token, json.dumps(info, ensure_ascii=False), now + ttl),
            )
            return inserted.rowcount == 1

    def renew(self, name: str, token: str, ttl: float) -> bool:
        now = time.time()
        with self._write() as db:
            renewed = db.execute(
                "update fapiao_lease set expires = ? where name = ? and token = ? and expires > ?",
                (now + ttl, name, token, now),
            )
            return renewed.rowcount == 1

    def release(self, name: str, token: str) -> None:
        with self._write() as db:
            db.execute("delete from fapiao_lease where name = ? and token = ?", (name, token))

    def leases(self) -> list[Lease]:
        rows = self._connection().execute(
            "select name, token, info, expires from fapiao_lease where expires > ? order by name", (time.time(),)
        )
        return [Lease(name=n, token=t, info=json.loads(i), expires=e) for n, t, i, e in rows.fetchall()]

    def put(self, table: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        expires = None if ttl is None else time.time() + ttl
        with self._write() as db:
            db.execute(
                "insert or replace into fapiao_record (tbl, key, value, expires) values (?, ?, ?, ?)",
                (table, key, json.dumps(value, ensure_ascii=False), expires),
            )

    def take(self, table: str, key: str) -> dict[str, Any] | None:
        with self._write() as db:
            rows = db.execute(  # fetchall: a statement left open would keep this connection's old snapshot
                "select value from fapiao_record where tbl = ? and key = ? and (expires is null or expires > ?)",
                (table, key, time.time()),
            ).fetchall()
            db.execute("delete from fapiao_record where tbl = ? and key = ?", (table, key))
        return json.loads(rows[0][0]) if rows else None

    def records(self, table: str) -> dict[str, dict[str, Any]]:
        rows = self._connection().execute(
            "select key, value from fapiao_record where tbl = ? and (expires is null or expires > ?) order by key",
            (table, time.time()),
        )
        return {key: json.loads(value) for key, value in rows.fetchall()}

    def claim(self, key: str, ttl: float) -> bool:
        now = time.time()
        with self._write() as db:
            db.execute("delete from fapiao_record where tbl = 'claim' and key = ? and expires <= ?", (key, now))
            inserted = db.execute(
                "insert or ignore into fapiao_record (tbl, key, value, expires) values ('claim', ?, '{}', ?)",
                (key, now + ttl),
            )
            return inserted.rowcount == 1

    def take_slot(self, pace: str, spacing: float) -> Slot:
        with self._write() as db:
            now = time.time()  # read inside the transaction: the lock may have been a while coming
            rows = db.execute("select next, held from fapiao_pace where name = ?", (pace,)).fetchall()
            slot = max(now, *rows[0]) if rows else now
            db.execute(
                "insert into fapiao_pace (name, next, held) values (?, ?, 0)"
                " on conflict (name) do update set next = excluded.next",
                (pace, slot + spacing),
            )
        return Slot(at=slot, now=now)

    def hold_pace(self, pace: str, seconds: float) -> None:
        with self._write() as db:
            db.execute(
                "insert into fapiao_pace (name, next, held) values (?, 0, ?)"
                " on conflict (name) do update set held = max(held, excluded.held)",
                (pace, time.time() + seconds),
            )

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT` (or `ROLLBACK` on an error): one writer at a time, waiting its turn."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("begin immediate")
        return self.connection

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.connection.execute("commit" if kind is None else "rollback")


# KEYS[1] the lease; ARGV[1] the holder's token; ARGV[2] milliseconds. The value is "<token>\n<info JSON>".
_RENEW = """
local value = redis.call('get', KEYS[1])
if value and string.sub(value, 1, #ARGV[1] + 1) == ARGV[1] .. '\\n' then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
local value = redis.call('get', KEYS[1])
if value and string.sub(value, 1, #ARGV[1] + 1) == ARGV[1] .. '\\n' then
  return redis.call('del', KEYS[1])
end
return 0
"""


# KEYS[1] the pace, a hash of microseconds on the server's clock: `next` free slot, `held` until; ARGV[1] the
# spacing (take) or the hold (hold), in microseconds. '%.0f': Lua's own number format would round them. The key
# expires a minute after the pace is free again.
_PACE_NOW = """
local time = redis.call('time')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local pace = redis.call('hmget', KEYS[1], 'next', 'held')
local free, held = tonumber(pace[1]) or 0, tonumber(pace[2]) or 0
"""
_PACE_EXPIRE = """
redis.call('pexpire', KEYS[1], math.ceil((math.max(free, held) - now) / 1000) + 60000)
"""
_TAKE_SLOT = _PACE_NOW + """
local slot = math.max(now, free, held)
free = slot + tonumber(ARGV[1])
redis.call('hset', KEYS[1], 'next', string.format('%.0f', free))
""" + _PACE_EXPIRE + """
return {string.format('%.0f', slot), string.format('%.0f', now)}
"""
_HOLD_PACE = _PACE_NOW + """
held = math.max(held, now + tonumber(ARGV[1]))
redis.call('hset', KEYS[1], 'held', string.format('%.0f', held))
""" + _PACE_EXPIRE


class RedisState(SharedState):
    """Leases and records as Redis keys that expire by themselves, under `fapiao:<namespace>:`."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.redis = client
        self.prefix = f"fapiao:{namespace}:"
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._take_slot = client.register_script(_TAKE_SLOT)
        self._hold_pace = client.register_script(_HOLD_PACE)

    def _lease_key(self, name: str) -> str:
        return f"{self.prefix}lease:{name}"

    def _record_key(self, table: str, key: str) -> str:
        return f"{self.prefix}record:{table}:{key}"

    def acquire(self, name: str, token: str, info: dict[str, Any], ttl: float) -> bool:
        value = f"{token}\n{json.dumps(info, ensure_ascii=False)}"
        return bool(self.redis.set(self._lease_key(name), value, nx=True, px=_ms(ttl)))

    def renew(self, name: str, token: str, ttl: float) -> bool:
        return bool(self._renew(keys=[self._lease_key(name)], args=[token, _ms(ttl)]))

    def release(self, name: str, token: str) -> None:
        self._release(keys=[self._lease_key(name)], args=[token])

    def leases(self) -> list[Lease]:
        now, found = time.time(), []
        start = len(self._lease_key(""))
        for key in sorted(self._scan(self._lease_key("*"))):
            value, ttl_ms = self._value_and_ttl(key)
            if value is None or ttl_ms < 0:
                continue
            token, _, info = value.partition("\n")
            found.append(Lease(name=key[start:], token=token, info=json.loads(info), expires=now + ttl_ms / 1000))
        return found

    def put(self, table: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        self.redis.set(self._record_key(table, key), json.dumps(value, ensure_ascii=False), px=_ms(ttl) if ttl else None)

    def take(self, table: str, key: str) -> dict[str, Any] | None:
        value = self.redis.getdel(self._record_key(table, key))
        return json.loads(value) if value is not None else None

    def records(self, table: str) -> dict[str, dict[str, Any]]:
        start = len(self._record_key(table, ""))
        keys = sorted(self._scan(self._record_key(table, "*")))
        values = self.redis.mget(keys) if keys else []
        return {key[start:]: json.loads(value) for key, value in zip(keys, values, strict=True) if value is not None}

    def claim(self, key: str, ttl: float) -> bool:
        return bool(self.redis.set(self._record_key("claim", key), "{}", nx=True, px=_ms(ttl)))

    def take_slot(self, pace: str, spacing: float) -> Slot:
        slot, now = self._take_slot(keys=[self._pace_key(pace)], args=[_us(spacing)])
        return Slot(at=int(slot) / 1e6, now=int(now) / 1e6)

    def hold_pace(self, pace: str, seconds: float) -> None:
        self._hold_pace(keys=[self._pace_key(pace)], args=[_us(seconds)])

    def _pace_key(self, pace: str) -> str:
        return f"{self.prefix}pace:{pace}"

    def _scan(self, pattern: str) -> list[str]:
        return [_text(key) for key in self.redis.scan_iter(match=pattern, count=500)]

    def _value_and_ttl(self, key: str) -> tuple[str | None, int]:
        pipe = self.redis.pipeline()
        pipe.get(key)
        pipe.pttl(key)
        value, ttl_ms = pipe.execute()
        return (None if value is None else _text(value)), int(ttl_ms)

    def close(self) -> None:
        self.redis.close()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _us(seconds: float) -> int:
    return max(0, int(seconds * 1_000_000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
