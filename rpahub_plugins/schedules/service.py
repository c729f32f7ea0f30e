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
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, HubError, NotFound, ValidationFailed

from .models import Schedule, ScheduleOccurrence
from .occurrences import TICK, Rule, RuleError

log = logging.getLogger("rpahub.schedules")

DEFAULTS = {"tick_s": 1.0, "on_time_s": 60, "error_backoff_s": 60}
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

    def _validate(self, s: Schedule) -> Rule:
        for required in ("name", "package_id", "unit", "every", "anchor", "timezone"):
            if getattr(s, required) in (None, ""):
                raise invalid(required, "is required")
        try:
            rule = s.rule()
        except RuleError as exc:
            raise invalid(exc.field, exc.message) from None
        s.anchor = rule.anchor  # an offset given with the anchor is now wall-clock time
        if s.misfire_policy not in POLICIES:
            raise invalid("misfire_policy", f"must be one of {', '.join(POLICIES)}")
        if s.misfire_grace_s is None or s.misfire_grace_s < 0:
            raise invalid("misfire_grace_s", "must be 0 or more seconds")
        if rule.first() is None:
            raise invalid(*_never(rule))
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
        """Handle every enabled schedule due at ``now`` (default: the clock); return the rows written."""
        now = as_utc(now)
        due = [s.id for s in Schedule.select(Schedule.id)
               .where(Schedule.enabled & (Schedule.next_run_at <= now))
               .order_by(Schedule.next_run_at, Schedule.id)]
        # A backoff only matters while its schedule is due: forget those of schedules that were
        # deleted (here or by another process), disabled or moved on, so the map cannot grow.
        due_now = set(due)
        for stale in [k for k in self._retry_at if k not in due_now]:
            del self._retry_at[stale]
        handled = []
        for schedule_id in due:
            if self._retry_at.get(schedule_id, now) > now:
                continue  # failed a moment ago: do not fill the log every tick
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
                continue
            self._retry_at.pop(schedule_id, None)
            if row is not None:
                handled.append(row)
            # A gevent switch in a worker: 10,000 schedules due on the same minute kept the worker
            # busy past gunicorn's timeout, which killed it with every robot's connection.
            time.sleep(0)
        return handled

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


def _never(rule: Rule) -> tuple[str, str]:
    """Which filter leaves a rule without any occurrence."""
    if rule.without_filters("window", "weekdays").first() is None:
        return "end_date", "ends before the first occurrence (the anchor)"
    if rule.without_filters("window").first() is None:
        return "weekdays", "no occurrence falls on these weekdays"
    return "window_from", "no occurrence falls inside the daily window on the chosen weekdays"
