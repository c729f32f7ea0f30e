"""Schedules (6.1.2c): persisted occurrence state around an in-process ticker.

A schedule keeps ``next_run_at``, its next occurrence not yet handled (UTC). On each
tick, :meth:`Schedules.fire_due` handles every enabled schedule whose ``next_run_at``
has come, each in its own transaction: it settles all its due occurrences at once
(the misfire policy decides whether they make a run), records one
:class:`ScheduleOccurrence` keyed on the latest of them, submits the run to dispatch,
and moves ``next_run_at`` past ``now``. One schedule failing is logged and recorded;
the others go on.

The row's unique (schedule, occurrence) key is the guard against firing twice: only the
process whose insert succeeds submits the run, in the same transaction. The schedule
row is also locked (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers), so a
second worker or node usually finds the occurrence handled before it gets that far.

Misfires. The ticker fires an occurrence within a second or so. One later than
``on_time_s`` (default 60 s) was missed: the hub was down or stalled.

* ``fire_once``: the due occurrences no older than ``max(grace, on_time_s)`` are
  coalesced into one run, keyed on the latest; older ones are skipped.
* ``skip``: missed occurrences are skipped; the schedule waits for its next one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

import peewee

from rpahub_core import db as hubdb
from rpahub_core.db import new_id, utcnow
from rpahub_core.errors import Conflict, HubError, NotFound, ValidationFailed

from .models import Schedule, ScheduleOccurrence
from .occurrences import TICK, Rule, RuleError

log = logging.getLogger("rpahub.schedules")

# fire_batch: due schedules handled in one transaction (a few ms of work each 100 on SQLite)
DEFAULTS = {"tick_s": 1.0, "on_time_s": 60, "error_backoff_s": 60, "fire_batch": 250}
POLICIES = ("fire_once", "skip")
COUNT_LIMIT = 1_000  # missed occurrences are counted up to this many: it is for reading only

# Model column -> API field: errors name what the caller sent.
FIELDS = {
    "name": "name", "package_id": "packageId", "executor_id": "executorId", "pool": "pool",
    "labels": "labels", "arguments": "arguments", "priority": "priority", "max_attempts": "maxAttempts",
    "unit": "unit", "every": "every", "anchor": "anchor", "timezone": "timezone",
    "start_date": "startDate", "end_date": "endDate", "window_from": "windowFrom", "window_to": "windowTo",
    "weekdays": "weekdays", "misfire_policy": "misfirePolicy", "misfire_grace_s": "misfireGraceSeconds",
    "enabled": "enabled",
}
RULE_FIELDS = ("unit", "every", "anchor", "timezone", "start_date", "end_date", "window_from", "window_to",
               "weekdays")


def schedules(hub) -> Schedules:
    if "schedules" not in hub.state:
        hub.state["schedules"] = Schedules(hub, {**DEFAULTS, **hub.settings.plugin("schedules")})
    return hub.state["schedules"]


def as_utc(moment: dt.datetime | None, field: str = "now") -> dt.datetime:
    """Naive UTC, the hub's storage convention; ``None`` is now.

    An instant whose UTC time falls outside years 1-9999 (``0001-01-01T00:00+14:00``)
    is refused naming ``field``.
    """
    if moment is None:
        return utcnow()
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise invalid(field, "is out of range (before year 1 or after year 9999 in UTC)") from None


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"field": FIELDS.get(field, field), "message": message}])


# -- the misfire policy ------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """What one tick does with a schedule's due occurrences."""

    occurrence: dt.datetime  # the latest due occurrence: the row and the run are keyed on it
    earliest: dt.datetime  # the first due occurrence
    fire: bool
    coalesced: int  # earlier occurrences folded into the run
    skipped: int  # occurrences that make no run
    late: dt.timedelta
    reach: dt.timedelta  # how late an occurrence may be and still make the run
    next_run_at: dt.datetime | None


def settle(rule: Rule, pending: dt.datetime, now: dt.datetime, *, policy: str, grace: dt.timedelta,
           on_time: dt.timedelta) -> Settlement | None:
    """Settle the occurrences in ``[pending, now]``; ``None`` when there are none."""
    earliest, latest = rule.first_at_or_after(pending), rule.last_at_or_before(now)
    if earliest is None or latest is None or latest < earliest:
        return None
    reach = on_time if policy == "skip" else max(grace, on_time)
    late = now - latest
    if earliest == latest:  # the common case, one occurrence due: nothing to count
        total = 1
        in_reach = 1 if late <= reach else 0
    else:
        total = rule.count_between(earliest, latest, COUNT_LIMIT)
        # The occurrences within reach are a suffix of the due ones, ending with the latest.
        in_reach = rule.count_between(max(earliest, now - reach), latest, COUNT_LIMIT) if late <= reach else 0
    return Settlement(occurrence=latest, earliest=earliest, fire=in_reach > 0, coalesced=max(0, in_reach - 1),
                      skipped=max(0, total - in_reach), late=late, reach=reach,
                      next_run_at=rule.next_after(now))


def describe(due: Settlement, policy: str) -> str:
    parts = []
    if due.coalesced:
        parts.append(f"coalesced {due.coalesced} missed occurrence(s) into this run")
    if due.skipped:
        why = "policy skip" if policy == "skip" else f"more than {int(due.reach.total_seconds())} s late"
        parts.append(f"skipped {due.skipped} missed occurrence(s) ({why})")
    if not due.fire:
        parts.append(f"late by {int(due.late.total_seconds())} s")
    return "; ".join(parts)


# -- the service ---------------------------------------------------------------------------


class Schedules:
    def __init__(self, hub, settings: dict):
        self.hub = hub
        self.on_time = dt.timedelta(seconds=float(settings.get("on_time_s", DEFAULTS["on_time_s"])))
        self.error_backoff = dt.timedelta(seconds=float(settings.get("error_backoff_s", DEFAULTS["error_backoff_s"])))
        self.batch = max(1, int(settings.get("fire_batch", DEFAULTS["fire_batch"])))
        self._retry_at: dict[str, dt.datetime] = {}  # schedules whose last attempt raised

    # -- managing ------------------------------------------------------------------------

    def get(self, schedule_id: str) -> Schedule:
        s = Schedule.get_or_none(Schedule.id == schedule_id)
        if s is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return s

    def create(self, values: dict, *, by, now: dt.datetime | None = None) -> Schedule:
        """``values`` are model columns (``package_id``, ``window_from``...) with Python values."""
        now = as_utc(now)
        s = Schedule(created_by_id=by.id, created_by=by.name, created_at=now, updated_at=now)
        assign(s, values)
        rule = self._validate(s)
        with hubdb.atomic():
            s.next_run_at = rule.first_at_or_after(now) if s.enabled else None
            try:
                with hubdb.atomic():
                    s.save(force_insert=True)
            except peewee.IntegrityError:
                raise Conflict(f"name: a schedule named {s.name} exists") from None
            self.hub.publish("schedule.created", scheduleId=s.id, name=s.name)
        return s

    def update(self, schedule_id: str, values: dict, *, now: dt.datetime | None = None) -> Schedule:
        now = as_utc(now)
        with hubdb.atomic():
            s = self._locked(schedule_id)
            if s is None:
                raise NotFound(f"schedule {schedule_id} not found")
            before = {k: getattr(s, k) for k in (*RULE_FIELDS, "enabled")}
            assign(s, values)
            rule = self._validate(s)
            if any(getattr(s, k) != v for k, v in before.items()) or (s.enabled and s.next_run_at is None):
                # A new rule starts from now: nothing retroactive, and never an occurrence already handled.
                since = max(now, s.last_occurrence_at + TICK) if s.last_occurrence_at else now
                s.next_run_at = rule.first_at_or_after(since) if s.enabled else None
            s.updated_at = now
            try:
                with hubdb.atomic():
                    s.save()
            except peewee.IntegrityError:
                raise Conflict(f"name: a schedule named {s.name} exists") from None
            self.hub.publish("schedule.updated", scheduleId=s.id, enabled=s.enabled)
        return s

    def delete(self, schedule_id: str) -> None:
        with hubdb.atomic():
            s = self.get(schedule_id)
            ScheduleOccurrence.delete().where(ScheduleOccurrence.schedule == s.id).execute()
            s.delete_instance()
            self.hub.publish("schedule.deleted", scheduleId=s.id)
        self._retry_at.pop(schedule_id, None)

    def preview(self, s: Schedule, count: int, after: dt.datetime | None = None) -> list[dt.datetime]:
        """The next ``count`` occurrences from ``after`` (default now), enabled or not."""
        try:
            rule = s.rule()
        except RuleError as exc:
            raise invalid(exc.field, f"the stored rule is not valid: {exc.message}") from None
        return rule.upcoming(as_utc(after, "after"), count)

    def preview_rule(self, values: dict, count: int, after: dt.datetime | None = None) -> list[dt.datetime]:
        """The next ``count`` occurrences of a rule not saved (``values``: its model columns),
        refused exactly as :meth:`create` would refuse it."""
        s = Schedule()
        assign(s, values)
        return _checked_rule(s).upcoming(as_utc(after, "after"), count)

    def _validate(self, s: Schedule) -> Rule:
        for required in ("name", "package_id"):
            if getattr(s, required) in (None, ""):
                raise invalid(required, "is required")
        rule = _checked_rule(s)
        s.anchor = rule.anchor  # an offset given with the anchor is now wall-clock time
        if s.misfire_policy not in POLICIES:
            raise invalid("misfire_policy", f"must be one of {', '.join(POLICIES)}")
        if s.misfire_grace_s is None or s.misfire_grace_s < 0:
            raise invalid("misfire_grace_s", "must be 0 or more seconds")
        self._check_target(s)
        return rule

    def _check_target(self, s: Schedule) -> None:
        from rpahub_plugins.dispatch.models import Pool
        from rpahub_plugins.executors.models import Executor, Package

        errors = []
        if not Package.get_or_none(Package.id == s.package_id):
            errors.append(("package_id", f"package {s.package_id} not found"))
        if sum(bool(x) for x in (s.executor_id, s.pool, s.label_list())) > 1:
            errors.append(("executor_id", "name one executor, one pool, or a label set"))
        elif s.pool and not Pool.get_or_none(Pool.name == s.pool):
            errors.append(("pool", f"pool {s.pool} not found"))
        elif s.executor_id and not Executor.get_or_none(Executor.id == s.executor_id):
            errors.append(("executor_id", f"executor {s.executor_id} is not admitted"))
        if errors:
            raise ValidationFailed([{"field": FIELDS[f], "message": m} for f, m in errors])

    def _locked(self, schedule_id: str) -> Schedule | None:
        query = Schedule.select().where(Schedule.id == schedule_id)
        if hubdb.is_postgres():  # the ticker of another process, or an edit, waits for this transaction
            query = query.for_update()
        return query.first()

    # -- firing --------------------------------------------------------------------------

    def tick(self) -> None:
        """What the ticker calls: never raises, so the ticker never stops."""
        try:
            with hubdb.connection():
                self.fire_due()
        except Exception as exc:  # the next tick retries
            hubdb.log_failure(log, "schedules tick", exc)

    def fire_due(self, now: dt.datetime | None = None) -> list[ScheduleOccurrence]:
        """Handle every enabled schedule due at ``now`` (default: the clock); return the rows written.

        They are handled ``fire_batch`` at a time, each batch in one transaction
        (:meth:`fire_many`); a batch that fails as a whole is handled again one schedule
        at a time (:meth:`fire`), so one broken schedule never stops the others.
        """
        now = as_utc(now)
        due = [i for (i,) in Schedule.select(Schedule.id)
               .where(Schedule.enabled & (Schedule.next_run_at <= now))
               .order_by(Schedule.next_run_at, Schedule.id).tuples()]
        # A backoff only matters while its schedule is due: forget those of schedules that were
        # deleted (here or by another process), disabled or moved on, so the map cannot grow.
        due_now = set(due)
        for stale in [k for k in self._retry_at if k not in due_now]:
            del self._retry_at[stale]
        todo = [i for i in due if self._retry_at.get(i, now) <= now]  # failed a moment ago: not every tick
        handled = []
        for first in range(0, len(todo), self.batch):
            batch = todo[first:first + self.batch]
            try:
                rows, alone = self.fire_many(batch, now)
            except Exception as exc:
                if hubdb.unavailable(exc):
                    raise  # the database is away for every schedule: the next tick retries them all
                log.exception("schedules: a batch of %d schedules failed; firing them one at a time", len(batch))
                rows, alone = [], batch
            for schedule_id in batch:
                if schedule_id not in alone:
                    self._retry_at.pop(schedule_id, None)
            handled.extend(rows)
            for schedule_id in alone:
                row = self._fire_alone(schedule_id, now)
                if row is not None:
                    handled.append(row)
            # A gevent switch in a worker: 10,000 schedules due on the same minute kept the worker
            # busy past gunicorn's timeout, which killed it with every robot's connection.
            time.sleep(0)
        return handled

    def _fire_alone(self, schedule_id: str, now: dt.datetime) -> ScheduleOccurrence | None:
        try:
            row = self.fire(schedule_id, now)
        except Exception as exc:  # one broken schedule must not stop the others
            if hubdb.unavailable(exc):
                # Not this schedule's fault: no backoff, no error recorded on it; the
                # database is away for the others too, and the next tick retries them all.
                raise
            log.exception("schedules: schedule %s failed; the others go on", schedule_id)
            self._retry_at[schedule_id] = now + self.error_backoff
            self._note_error(schedule_id, f"{type(exc).__name__}: {exc}")
            return None
        self._retry_at.pop(schedule_id, None)
        return row

    def fire_many(self, schedule_ids: list[str], now: dt.datetime | None = None
                  ) -> tuple[list[ScheduleOccurrence], list[str]]:
        """What :meth:`fire` does for each of ``schedule_ids``, in one transaction and a
        statement or two per table for all of them.

        The occurrence rows go in first, with ``ON CONFLICT DO NOTHING``: the rows the
        database returns are the occurrences this call won, and only those submit runs;
        another process (or a restart) that inserted the same (schedule, occurrence)
        already submitted its run, and the schedule here only moves on. Returns the rows
        written and the schedules whose rule could not be read, left for :meth:`fire`.
        """
        now = as_utc(now)
        alone: list[str] = []
        moves: list[tuple] = []  # (next_run_at, id): nothing to fire, or handled elsewhere
        with hubdb.atomic():
            query = Schedule.select().where(Schedule.id.in_(schedule_ids)).order_by(Schedule.id)
            if hubdb.is_postgres():  # the ticker of another process, or an edit, waits for this transaction
                query = query.for_update()
            settled: list[tuple[Schedule, Settlement]] = []
            for s in query:
                if not s.enabled or s.next_run_at is None or s.next_run_at > now:
                    continue  # deleted, disabled or handled meanwhile
                try:
                    rule = s.rule()
                    due = settle(rule, s.next_run_at, now, policy=s.misfire_policy,
                                 grace=dt.timedelta(seconds=s.misfire_grace_s), on_time=self.on_time)
                    if due is None:
                        moves.append((rule.next_after(now), s.id))
                        continue
                except Exception:  # fire() meets it again, records it and backs off
                    alone.append(s.id)
                    continue
                settled.append((s, due))
            rows: dict[str, ScheduleOccurrence] = {}
            for s, due in settled:
                rows[s.id] = ScheduleOccurrence(
                    schedule=s.id, occurrence=due.occurrence, earliest=due.earliest,
                    outcome="fired" if due.fire else "skipped", coalesced=due.coalesced, skipped=due.skipped,
                    detail=describe(due, s.misfire_policy), fired_at=now,
                    run_id=new_id() if due.fire else None)  # the run's id, known before it is submitted
            won = _insert_occurrences(list(rows.values()))
            mine = []
            for s, due in settled:
                if s.id in won:
                    rows[s.id].id = won[s.id]
                    mine.append((s, due, rows[s.id]))
                else:  # another process handled this occurrence and submitted its run: only move on
                    log.info("schedules: %s at %s was handled elsewhere", s.id, due.occurrence)
                    moves.append((due.next_run_at, s.id))
            firing = [(s, row) for s, due, row in mine if due.fire]
            if firing:
                from rpahub_plugins.dispatch import dispatcher

                with hubdb.atomic():
                    results = dispatcher(self.hub).submit_many([self._request(s, row.run_id) for s, row in firing])
                failed = []
                for (s, row), result in zip(firing, results, strict=True):
                    if isinstance(result, HubError):  # e.g. the package or pool is gone: this occurrence fails
                        row.outcome, row.run_id = "failed", None
                        row.detail = "; ".join(p for p in (result.hint, row.detail) if p)
                        s.last_error = f"{row.occurrence.isoformat()}Z: {result.hint}"
                        failed.append((row.outcome, row.run_id, row.detail, row.id))
                    else:
                        s.last_fired_at, s.last_run_id, s.last_error = now, row.run_id, None
                _executemany(ScheduleOccurrence, ("outcome", "run_id", "detail"), failed)
            _executemany(Schedule, ("next_run_at", "last_occurrence_at", "last_fired_at", "last_run_id", "last_error"),
                         [(due.next_run_at, due.occurrence, s.last_fired_at, s.last_run_id, s.last_error, s.id)
                          for s, due, _ in mine])
            _executemany(Schedule, ("next_run_at",), moves)
            for s, due, row in mine:
                detail = {"occurrence": f"{due.occurrence.isoformat()}Z", "runId": row.run_id,
                          "coalesced": due.coalesced, "skipped": due.skipped}
                self.hub.audit(f"schedule.{row.outcome}", target=s.id, detail=detail)
                self.hub.publish(f"schedule.{row.outcome}", scheduleId=s.id, **detail)
        return [row for _, _, row in mine], alone

    @staticmethod
    def _request(s: Schedule, run_id: str) -> dict:
        return {"run_id": run_id, "package_id": s.package_id, "user_id": s.created_by_id,
                "user_name": s.created_by, "arguments": s.argument_list(), "executor_id": s.executor_id,
                "pool": s.pool, "labels": s.label_list(), "priority": s.priority, "max_attempts": s.max_attempts}

    def fire(self, schedule_id: str, now: dt.datetime | None = None) -> ScheduleOccurrence | None:
        """Settle one schedule's due occurrences: at most one run, at most once."""
        now = as_utc(now)
        with hubdb.atomic():
            s = self._locked(schedule_id)
            if s is None or not s.enabled or s.next_run_at is None or s.next_run_at > now:
                return None  # deleted, disabled or handled meanwhile
            rule = s.rule()
            due = settle(rule, s.next_run_at, now, policy=s.misfire_policy,
                         grace=dt.timedelta(seconds=s.misfire_grace_s), on_time=self.on_time)
            if due is None:
                s.next_run_at = rule.next_after(now)
                s.save(only=[Schedule.next_run_at])
                return None
            try:
                with hubdb.atomic():  # a savepoint: a duplicate key leaves this transaction usable
                    row = ScheduleOccurrence.create(
                        schedule=s.id, occurrence=due.occurrence, earliest=due.earliest,
                        outcome="fired" if due.fire else "skipped", coalesced=due.coalesced, skipped=due.skipped,
                        detail=describe(due, s.misfire_policy), fired_at=now)
            except peewee.IntegrityError:
                # Another process handled this occurrence and submitted its run: only move on.
                log.info("schedules: %s at %s was handled elsewhere", s.id, due.occurrence)
                s.next_run_at = due.next_run_at
                s.save(only=[Schedule.next_run_at])
                return None
            if due.fire:
                try:
                    with hubdb.atomic():
                        run = self._submit(s)
                except HubError as exc:  # e.g. the package or pool is gone: this occurrence fails, not the next
                    row.outcome = "failed"
                    row.detail = "; ".join(p for p in (exc.hint, row.detail) if p)
                    s.last_error = f"{due.occurrence.isoformat()}Z: {exc.hint}"
                else:
                    row.run_id = run.id
                    s.last_fired_at, s.last_run_id, s.last_error = now, run.id, None
                row.save()
            s.next_run_at = due.next_run_at
            s.last_occurrence_at = due.occurrence
            s.save()
            detail = {"occurrence": f"{due.occurrence.isoformat()}Z", "runId": row.run_id,
                      "coalesced": due.coalesced, "skipped": due.skipped}
            self.hub.audit(f"schedule.{row.outcome}", target=s.id, detail=detail)
            self.hub.publish(f"schedule.{row.outcome}", scheduleId=s.id, **detail)
        return row

    def _submit(self, s: Schedule):
        from rpahub_plugins.dispatch import dispatcher

        return dispatcher(self.hub).submit(
            package_id=s.package_id, user_id=s.created_by_id, user_name=s.created_by,
            arguments=s.argument_list(), executor_id=s.executor_id, pool=s.pool, labels=s.label_list(),
            priority=s.priority, max_attempts=s.max_attempts)

    def _note_error(self, schedule_id: str, message: str) -> None:
        try:
            with hubdb.atomic():
                Schedule.update(last_error=message[:2000]).where(Schedule.id == schedule_id).execute()
        except Exception:
            log.exception("schedules: could not record the failure of %s", schedule_id)


OCCURRENCE_COLUMNS = ("schedule", "occurrence", "outcome", "run_id", "earliest", "coalesced", "skipped", "detail",
                      "fired_at")


def _quoted(name: str) -> str:  # standard SQL identifiers: SQLite and PostgreSQL alike
    return '"' + name.replace('"', '""') + '"'


def _insert_occurrences(rows: list[ScheduleOccurrence]) -> dict[str, int]:
    """Insert the rows whose (schedule, occurrence) is new, in one statement; return
    ``{schedule_id: row id}`` of those inserted. The unique key decides, in the database:
    a row another transaction inserted (or is inserting: the database waits for it) is not
    returned."""
    if not rows:
        return {}
    meta = ScheduleOccurrence._meta
    db = meta.database
    names = ", ".join(_quoted(meta.fields[c].column_name) for c in OCCURRENCE_COLUMNS)
    one = "(" + ", ".join([db.param] * len(OCCURRENCE_COLUMNS)) + ")"
    key = ", ".join(_quoted(meta.fields[c].column_name) for c in ("schedule", "occurrence"))
    sql = (f"INSERT INTO {_quoted(meta.table_name)} ({names}) VALUES {', '.join([one] * len(rows))} "
           f"ON CONFLICT ({key}) DO NOTHING RETURNING {_quoted('id')}, {_quoted(meta.fields['schedule'].column_name)}")
    params = []
    for r in rows:
        params += (r.schedule_id, r.occurrence, r.outcome, r.run_id, r.earliest, r.coalesced, r.skipped, r.detail,
                   r.fired_at)
    return {schedule_id: row_id for row_id, schedule_id in db.execute_sql(sql, params).fetchall()}


def _executemany(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """``UPDATE model SET columns WHERE id``, once per row of values (the id last), as one
    prepared statement."""
    if not rows:
        return
    meta = model._meta
    db = meta.database
    sets = ", ".join(f"{_quoted(meta.fields[c].column_name)} = {db.param}" for c in columns)
    db.cursor().executemany(f"UPDATE {_quoted(meta.table_name)} SET {sets} "
                            f"WHERE {_quoted(meta.primary_key.column_name)} = {db.param}", rows)


def assign(s: Schedule, values: dict) -> None:
    """Set model columns from Python values (lists, times) in their stored form."""
    for key, value in values.items():
        if key not in FIELDS:
            raise ValueError(f"not a schedule field: {key}")
        if key == "labels":
            value = json.dumps(sorted(set(value)), ensure_ascii=False)
        elif key == "arguments":
            value = json.dumps(list(value), ensure_ascii=False)
        elif key == "weekdays":
            value = ",".join(str(d) for d in sorted(set(value)))
        elif key in ("window_from", "window_to") and isinstance(value, dt.time):
            value = value.strftime("%H:%M")
        setattr(s, key, value)


def _checked_rule(s: Schedule) -> Rule:
    """The schedule's rule, or a 400 naming the field that makes it invalid or leaves it
    without any occurrence."""
    for required in ("unit", "every", "anchor", "timezone"):
        if getattr(s, required) in (None, ""):
            raise invalid(required, "is required")
    try:
        rule = s.rule()
    except RuleError as exc:
        raise invalid(exc.field, exc.message) from None
    if rule.first() is None:
        raise invalid(*_never(rule))
    return rule


def _never(rule: Rule) -> tuple[str, str]:
    """Which filter leaves a rule without any occurrence."""
    if rule.without_filters("window", "weekdays").first() is None:
        return "end_date", "ends before the first occurrence (the anchor)"
    if rule.without_filters("window").first() is None:
        return "weekdays", "no occurrence falls on these weekdays"
    return "window_from", "no occurrence falls inside the daily window on the chosen weekdays"
