"""Schedules and the occurrences they handled."""

from __future__ import annotations

import datetime as dt
import functools
import json

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow

from .occurrences import DEFAULT_TIMEZONE, Rule, RuleError


class Schedule(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128, unique=True)
    # what runs, and where (as dispatch takes it: one executor, a pool, or a label set)
    package_id = peewee.CharField(max_length=32)
    executor_id = peewee.CharField(max_length=128, null=True)
    pool = peewee.CharField(max_length=64, null=True)
    labels = peewee.TextField(default="[]")
    arguments = peewee.TextField(default="[]")
    priority = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(null=True)
    # when: see occurrences.Rule
    unit = peewee.CharField(max_length=8)
    every = peewee.IntegerField(default=1)
    anchor = peewee.DateTimeField()  # wall-clock time in `timezone`, not UTC: calendar steps keep it
    timezone = peewee.CharField(max_length=64, default=DEFAULT_TIMEZONE)
    start_date = peewee.DateField(null=True)
    end_date = peewee.DateField(null=True)
    window_from = peewee.CharField(max_length=5, null=True)  # "HH:MM", wall clock
    window_to = peewee.CharField(max_length=5, null=True)
    weekdays = peewee.CharField(max_length=16, default="")  # ISO numbers "1,2,3,4,5"; empty: every day
    misfire_policy = peewee.CharField(max_length=16, default="fire_once")  # fire_once | skip
    misfire_grace_s = peewee.IntegerField(default=300)
    enabled = peewee.BooleanField(default=True)
    # state, in UTC
    next_run_at = peewee.DateTimeField(null=True, index=True)  # the next occurrence not yet handled
    last_occurrence_at = peewee.DateTimeField(null=True)
    last_fired_at = peewee.DateTimeField(null=True)
    last_run_id = peewee.CharField(max_length=32, null=True)
    last_error = peewee.TextField(null=True)
    created_by_id = peewee.CharField(max_length=64)  # scheduled runs start as this person
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    def rule(self) -> Rule:
        """The occurrence rule; raises ``RuleError`` when the stored values are not valid."""
        return _rule(self.unit, self.every, self.anchor, self.timezone, self.start_date, self.end_date,
                     self.window_from, self.window_to, self.weekdays)

    def weekday_list(self) -> list[int]:
        return [int(d) for d in self.weekdays.split(",") if d]

    def label_list(self) -> list[str]:
        return json.loads(self.labels)

    def argument_list(self) -> list[dict]:
        return json.loads(self.arguments)


class ScheduleOccurrence(BaseModel):
    """One handled occurrence: the latest due one of a tick, accounting for any missed before it.

    The unique (schedule, occurrence) key is what stops two processes, or one process
    before and after a restart, from handling an occurrence twice: only the process
    whose insert succeeds submits the run, in the same transaction.
    """

    id = peewee.BigAutoField()
    schedule = peewee.ForeignKeyField(Schedule, on_delete="CASCADE", backref="occurrences")
    occurrence = peewee.DateTimeField()  # UTC
    outcome = peewee.CharField(max_length=8)  # fired | skipped | failed
    run_id = peewee.CharField(max_length=32, null=True, index=True)
    earliest = peewee.DateTimeField()  # the first occurrence this row accounts for
    coalesced = peewee.IntegerField(default=0)  # missed occurrences folded into this run
    skipped = peewee.IntegerField(default=0)  # missed occurrences that made no run
    detail = peewee.TextField(default="")
    fired_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("schedule", "occurrence"), True),)


@functools.lru_cache(maxsize=20_000, typed=True)
def _rule(unit, every, anchor, timezone, start_date, end_date, window_from, window_to, weekdays) -> Rule:
    """Rules are immutable: each tick reuses the one of an unchanged schedule (an invalid one
    raises every time, it is not cached)."""
    return Rule(unit=unit, every=every, anchor=anchor, timezone=timezone, start_date=start_date, end_date=end_date,
                window_from=_time("window_from", window_from), window_to=_time("window_to", window_to),
                weekdays=frozenset(int(d) for d in weekdays.split(",") if d))


def _time(field: str, value: str | None) -> dt.time | None:
    if not value:
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise RuleError(field, "use HH:MM") from None


MODELS = (Schedule, ScheduleOccurrence)
