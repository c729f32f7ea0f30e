"""The database handle every plugin's models bind to.

Plugins subclass :class:`BaseModel`; its database is a proxy that the core binds to
whatever the storage hook returned (SQLite by default, PostgreSQL for several
workers or nodes). Write through :func:`atomic`: on SQLite it also takes a
process-wide lock, because SQLite waits for a competing writer inside C where a
gevent worker cannot switch to the greenlet holding the lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import peewee

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


def utcnow() -> dt.datetime:
    """Naive UTC: every timestamp is stored in UTC, whatever the database."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


def is_sqlite(db: peewee.Database | None = None) -> bool:
    return isinstance(db or database.obj, peewee.SqliteDatabase)


def is_postgres(db: peewee.Database | None = None) -> bool:
    return isinstance(db or database.obj, peewee.PostgresqlDatabase)


_write_lock = threading.RLock()
_local = threading.local()


def bind(db: peewee.Database) -> None:
    """Point every model at ``db``. Locks and greenlet-locals are made here, in the
    worker, after gevent patched threading (the module may be imported before)."""
    global _write_lock, _local
    _write_lock = threading.RLock()
    _local = threading.local()
    database.initialize(db)


def _frames() -> list[list[Callable[[], Any]]]:
    frames = getattr(_local, "frames", None)
    if frames is None:
        frames = _local.frames = []
    return frames


@contextlib.contextmanager
def atomic() -> Iterator[None]:
    """A transaction (a savepoint when nested). On SQLite: ``BEGIN IMMEDIATE``.

    Callbacks registered with :func:`after_commit` inside a savepoint that rolls
    back are dropped with it; the others run once the outermost transaction commits.
    """
    frames = _frames()
    lock = _write_lock if is_sqlite() else contextlib.nullcontext()
    with lock:
        outermost = database.transaction_depth() == 0
        ctx = database.atomic("IMMEDIATE") if outermost and is_sqlite() else database.atomic()
        frames.append([])
        try:
            with ctx:
                yield
        except BaseException:
            frames.pop()
            raise
        done = frames.pop()
    if frames:
        frames[-1].extend(done)
    else:
        for fn in done:
            fn()


class _Rollback(Exception):
    pass


class Transaction:
    """A transaction opened in one call and ended in another (request middleware)."""

    def __init__(self) -> None:
        self._cm = atomic()
        self._cm.__enter__()

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def rollback(self) -> None:
        self._cm.__exit__(_Rollback, _Rollback(), None)


def after_commit(fn: Callable[[], Any]) -> None:
    """Run ``fn`` once the current transaction commits (now, outside one)."""
    frames = _frames()
    if frames:
        frames[-1].append(fn)
    else:
        database.after_commit(fn)  # a bare peewee transaction, or none: now


@contextlib.contextmanager
def connection() -> Iterator[None]:
    """Hold a connection (from the pool) for the duration of a request or message."""
    if database.is_closed():
        database.connect()
        try:
            yield
        finally:
            if not database.is_closed():
                database.close()
    else:
        yield
