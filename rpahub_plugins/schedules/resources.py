"""The schedules API: thin resources over :class:`~.service.Schedules`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from rpahub_core.errors import Forbidden, ValidationFailed
from rpahub_core.web import ApiModel, PageQuery, ok, operation, paginate
from rpahub_plugins.executors.resources import ArgumentIn as Argument

from .models import Schedule, ScheduleOccurrence
from .occurrences import DEFAULT_TIMEZONE, UNITS
from .service import FIELDS

TAGS = ("schedules",)
Name = Annotated[str, Field(min_length=1, max_length=128)]
Unit = Literal[UNITS]
Every = Annotated[int, Field(ge=1, le=100_000, description="how many units between occurrences")]
Anchor = Annotated[dt.datetime, Field(description=(
    "the first occurrence, which every other is computed from: wall-clock time in `timezone` "
    "(an offset, if given, is converted to it)"))]
Zone = Annotated[str, Field(min_length=1, max_length=64, description="IANA timezone")]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, wall-clock time")]
Weekday = Annotated[int, Field(ge=1, le=7)]
Policy = Annotated[Literal["fire_once", "skip"], Field(description=(
    "after an outage, fire_once makes one run for the occurrences missed within the grace; "
    "skip makes none and waits for the next occurrence"))]
Grace = Annotated[int, Field(ge=0, le=31 * 86400, description=(
    "with fire_once: how late a missed occurrence may be and still make the one catch-up run"))]
Priority = Annotated[int, Field(ge=-100, le=100)]
After = Annotated[dt.datetime | None, Field(description="from this instant (UTC unless it has an offset); default now")]
Attempts = Annotated[int, Field(ge=1, le=20)]


class ScheduleRule(ApiModel):
    """When a schedule fires: what ``POST /api/v1/schedules`` takes of it, and all a preview needs."""

    unit: Unit
    every: Every = 1
    anchor: Anchor
    timezone: Zone = DEFAULT_TIMEZONE
    startDate: dt.date | None = Field(None, description="no occurrence before this day (inclusive)")
    endDate: dt.date | None = Field(None, description="no occurrence after this day (inclusive)")
    windowFrom: HHMM | None = Field(None, description="daily window: occurrences at or after this time, and")
    windowTo: HHMM | None = Field(None, description="before this time (later than windowFrom)")
    weekdays: list[Weekday] = Field([], description="ISO weekdays, 1 = Monday ... 7 = Sunday; none: every day")


class ScheduleIn(ScheduleRule):
    name: Name
    packageId: str = Field(min_length=1, max_length=32)
    executorId: str | None = Field(None, max_length=128, description="one executor, or")
    pool: str | None = Field(None, max_length=64, description="any member of a pool, or")
    labels: list[str] = Field([], description="any executor carrying all these labels (none: any executor)")
    arguments: list[Argument] = []
    priority: Priority = 0
    maxAttempts: Attempts | None = None
    misfirePolicy: Policy = "fire_once"
    misfireGraceSeconds: Grace = 300
    enabled: bool = True


class SchedulePatch(ApiModel):
    """Any field of a schedule; ``null`` clears the optional ones."""

    name: Name | None = None
    packageId: str | None = Field(None, min_length=1, max_length=32)
    executorId: str | None = Field(None, max_length=128)
    pool: str | None = Field(None, max_length=64)
    labels: list[str] | None = None
    arguments: list[Argument] | None = None
    priority: Priority | None = None
    maxAttempts: Attempts | None = None
    unit: Unit | None = None
    every: Every | None = None
    anchor: Anchor | None = None
    timezone: Zone | None = None
    startDate: dt.date | None = None
    endDate: dt.date | None = None
    windowFrom: HHMM | None = None
    windowTo: HHMM | None = None
    weekdays: list[Weekday] | None = None
    misfirePolicy: Policy | None = None
    misfireGraceSeconds: Grace | None = None
    enabled: bool | None = None


NOT_NULL = ("name", "packageId", "unit", "every", "anchor", "timezone", "misfirePolicy", "misfireGraceSeconds",
            "enabled", "priority")


class ScheduleQuery(PageQuery):
    q: str | None = Field(None, max_length=128, description="part of the name")
    enabled: bool | None = None


class PreviewQuery(ApiModel):
    count: int = Field(10, ge=1, le=200)
    after: After = None


class RulePreviewIn(ScheduleRule):
    count: int = Field(10, ge=1, le=50)
    after: After = None


COLUMNS = {api: column for column, api in FIELDS.items()}


def values_of(body: ApiModel, fields) -> dict:
    """``fields`` of the body as model columns with Python values."""
    values = {}
    for api in fields:
        value = getattr(body, api)
        if api == "arguments" and value is not None:
            value = [a.model_dump() for a in value]
        elif api in ("labels", "arguments", "weekdays") and value is None:
            value = []
        values[COLUMNS[api]] = value
    return values


def local_iso(instant: dt.datetime | None, timezone: str) -> str | None:
    """A UTC instant as wall-clock time with its offset, the way the console shows it."""
    if instant is None:
        return None
    try:
        return instant.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(timezone)).isoformat()
    except (ValueError, LookupError, OSError, OverflowError):  # overflow: past year 9999 there
        return None


def anchor_iso(s: Schedule) -> str:
    try:
        return s.anchor.replace(tzinfo=ZoneInfo(s.timezone)).isoformat()
    except (ValueError, LookupError, OSError):
        return s.anchor.isoformat()


def schedule_json(s: Schedule) -> dict:
    return {
        "id": s.id, "name": s.name, "packageId": s.package_id, "executorId": s.executor_id, "pool": s.pool,
        "labels": s.label_list(), "arguments": s.argument_list(), "priority": s.priority,
        "maxAttempts": s.max_attempts, "unit": s.unit, "every": s.every, "anchor": anchor_iso(s),
        "timezone": s.timezone, "startDate": s.start_date, "endDate": s.end_date, "windowFrom": s.window_from,
        "windowTo": s.window_to, "weekdays": s.weekday_list(), "misfirePolicy": s.misfire_policy,
        "misfireGraceSeconds": s.misfire_grace_s, "enabled": s.enabled, "nextRunAt": s.next_run_at,
        "nextRunAtLocal": local_iso(s.next_run_at, s.timezone), "lastOccurrenceAt": s.last_occurrence_at,
        "lastFiredAt": s.last_fired_at, "lastRunId": s.last_run_id, "lastError": s.last_error,
        "createdBy": s.created_by, "createdAt": s.created_at, "updatedAt": s.updated_at,
    }


def occurrence_json(o: ScheduleOccurrence, timezone: str) -> dict:
    return {"occurrence": o.occurrence, "local": local_iso(o.occurrence, timezone), "outcome": o.outcome,
            "runId": o.run_id, "earliest": o.earliest, "coalesced": o.coalesced, "skipped": o.skipped,
            "detail": o.detail, "firedAt": o.fired_at}


def may_start_runs(principal, values: dict) -> None:
    """Scheduled runs start as their creator, so defining what runs and when takes the right
    to start runs; renaming, disabling and the misfire settings do not."""
    defining = values.get("enabled") or any(k not in ("name", "enabled", "misfire_policy", "misfire_grace_s")
                                            for k in values)
    if defining and not principal.can("runs.start"):
        raise Forbidden("permission runs.start required: scheduled runs start as the schedule's creator")


class Schedules:
    def __init__(self, service):
        self.service = service

    @operation(permission="schedules.read", summary="Schedules, by name", query=ScheduleQuery, tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = Schedule.select().order_by(Schedule.name)
        if q.q:
            query = query.where(Schedule.name.contains(q.q))
        if q.enabled is not None:
            query = query.where(Schedule.enabled == q.enabled)
        ok(resp, paginate(query, q, schedule_json))

    @operation(permission="schedules.manage", summary="Create a schedule (6.1.2c): a package run on a recurrence",
               body=ScheduleIn, tags=TAGS, audit="schedule.create", status=201)
    def on_post(self, req, resp):
        body = req.context.body
        values = values_of(body, type(body).model_fields)
        may_start_runs(req.context.principal, values)
        s = self.service.create(values, by=req.context.principal)
        req.context.audit_target = s.id
        ok(resp, schedule_json(s), status=201)


class ScheduleItem:
    def __init__(self, service):
        self.service = service

    @operation(permission="schedules.read", summary="One schedule", tags=TAGS)
    def on_get(self, req, resp, schedule_id):
        ok(resp, schedule_json(self.service.get(schedule_id)))

    @operation(permission="schedules.manage", summary="Change, enable or disable a schedule", body=SchedulePatch,
               tags=TAGS, audit="schedule.update")
    def on_patch(self, req, resp, schedule_id):
        body = req.context.body
        nulls = [f for f in NOT_NULL if f in body.model_fields_set and getattr(body, f) is None]
        if nulls:
            raise ValidationFailed([{"field": f, "message": "may not be null"} for f in nulls])
        values = values_of(body, body.model_fields_set)
        may_start_runs(req.context.principal, values)
        ok(resp, schedule_json(self.service.update(schedule_id, values)))

    @operation(permission="schedules.manage", summary="Delete a schedule and its history (its runs stay)",
               tags=TAGS, audit="schedule.delete")
    def on_delete(self, req, resp, schedule_id):
        self.service.delete(schedule_id)
        ok(resp, None)


def preview_items(instants: list[dt.datetime], timezone: str) -> list[dict]:
    return [{"at": at, "local": local_iso(at, timezone)} for at in instants]


class SchedulePreview:
    def __init__(self, service):
        self.service = service

    @operation(permission="schedules.read", summary="The next occurrences of a schedule", query=PreviewQuery,
               tags=TAGS)
    def on_get(self, req, resp, schedule_id):
        s, q = self.service.get(schedule_id), req.context.query
        items = preview_items(self.service.preview(s, q.count, q.after), s.timezone)
        ok(resp, {"timezone": s.timezone, "enabled": s.enabled, "items": items})


class RulePreview:
    """When a rule would fire, before it is saved: validated as a new schedule's, stored nowhere."""

    def __init__(self, service):
        self.service = service

    # Nothing to commit: no transaction held while the occurrences are computed.
    @operation(permission="schedules.read", summary="The next occurrences of a rule not saved as a schedule",
               body=RulePreviewIn, tags=TAGS, audit="schedule.preview", transactional=False)
    def on_post(self, req, resp):
        body = req.context.body
        instants = self.service.preview_rule(values_of(body, ScheduleRule.model_fields), body.count, body.after)
        ok(resp, {"timezone": body.timezone, "items": preview_items(instants, body.timezone)})


class ScheduleOccurrences:
    def __init__(self, service):
        self.service = service

    @operation(permission="schedules.read", summary="What a schedule fired, coalesced and skipped, newest first",
               query=PageQuery, tags=TAGS)
    def on_get(self, req, resp, schedule_id):
        s = self.service.get(schedule_id)
        query = (ScheduleOccurrence.select().where(ScheduleOccurrence.schedule == s.id)
                 .order_by(ScheduleOccurrence.occurrence.desc()))
        ok(resp, paginate(query, req.context.query, lambda o: occurrence_json(o, s.timezone)))
