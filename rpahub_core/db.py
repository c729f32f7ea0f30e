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
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import peewee
from playhouse.pool import MaxConnectionsExceeded

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
    availability.reset()
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


# -- when the database is away ---------------------------------------------------------

# SQLSTATEs that mean "the server cannot be reached or is going away", not "this
# statement failed": connection exceptions, admin/crash shutdown, starting up, too many
# connections.
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (down, restarting, the
    connection lost, the pool exhausted) rather than that a statement failed (a
    constraint, a deadlock, a timeout). The answer to a caller is a 503 either way
    (see :func:`is_database_error`); only this kind is an outage."""
    if isinstance(exc, MaxConnectionsExceeded):
        return True
    orig = exc
    for _ in range(5):  # peewee keeps the driver's exception as .orig, sometimes wrapped twice
        inner = getattr(orig, "orig", None) if isinstance(orig, peewee.PeeweeException) else None
        if not isinstance(inner, BaseException):
            break
        orig = inner
    names = {c.__name__ for c in type(orig).__mro__}
    if type(orig).__module__.startswith("psycopg"):
        state = getattr(orig, "sqlstate", None)
        if state is None:  # raised by the client: connection failed, lost or closed
            return bool(names & {"OperationalError", "InterfaceError"})
        return state.startswith(_UNREACHABLE_STATES)
    return isinstance(exc, peewee.InterfaceError) and not is_sqlite()


def is_database_error(exc: BaseException) -> bool:
    """A database error a caller should retry (503), whatever the driver raised."""
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    return type(exc).__module__.startswith("psycopg") and bool(names & {"OperationalError", "InterfaceError"})


class Availability:
    """What this process saw of the database being away.

    Heartbeats and leases are timestamps the hub writes; while the database is down it
    cannot write them, so they go stale through no executor's fault. Whoever judges them
    (failover, the offline reaper) first asks :meth:`recovering`: until executors had a
    full period to be heard again after the last failure, nothing is judged lost.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.last_failure: float | None = None  # monotonic
        self.failures = 0
        self._logged: dict[str, tuple[float, int]] = {}  # what -> (logged at, suppressed since)

    def failed(self) -> None:
        self.last_failure = time.monotonic()
        self.failures += 1

    def recovering(self, window_s: float) -> bool:
        """Whether the database failed less than ``window_s`` seconds ago (or still does)."""
        return self.last_failure is not None and time.monotonic() - self.last_failure < window_s

    def report(self, logger: logging.Logger, what: str, exc: BaseException, every_s: float = 10.0) -> None:
        """Note the failure and log it in one line, at most once per ``every_s`` per ``what``:
        during an outage every request and every loop fails, and a traceback each adds nothing."""
        self.failed()
        now = time.monotonic()
        logged_at, suppressed = self._logged.get(what, (None, 0))
        if logged_at is not None and now - logged_at < every_s:
            self._logged[what] = (logged_at, suppressed + 1)
            return
        self._logged[what] = (now, 0)
        more = f" ({suppressed} more like it since)" if suppressed else ""
        logger.warning("database unavailable: %s: %s%s", what, str(exc).strip().splitlines()[0] if str(exc).strip()
                       else type(exc).__name__, more)


availability = Availability()


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """How a background loop or a socket reports a failed round: while the database is
    away, one line per 10 s (and the outage is noted for :meth:`Availability.recovering`);
    any other failure with its traceback."""
    if unavailable(exc):
        availability.report(logger, what, exc)
    else:
        logger.error("%s failed; retrying", what, exc_info=exc)
