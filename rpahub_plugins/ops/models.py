"""Alert rules, and the history of what they fired, resolved and delivered."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class AlertRule(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128, unique=True)
    kind = peewee.CharField(max_length=32)  # failure_rate | executor_offline | queue_wait | licence_expiry
    threshold = peewee.FloatField()
    window_min = peewee.IntegerField(default=15)
    filters = peewee.TextField(default="{}")  # JSON: appId, executorId, pool, supplier, robotId, minRuns
    severity = peewee.CharField(max_length=16, default="warning")  # info | warning | critical
    channels = peewee.TextField(default="[]")  # JSON: [{notifier, target}]
    enabled = peewee.BooleanField(default=True)
    cooldown_min = peewee.IntegerField(default=60)  # 0: notify only when it starts and when it clears
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    # Written by the evaluator only: the open firing event, when it last notified, what it last measured.
    firing_event_id = peewee.BigIntegerField(null=True)
    firing_since = peewee.DateTimeField(null=True)
    notified_at = peewee.DateTimeField(null=True)
    last_value = peewee.FloatField(null=True)
    evaluated_at = peewee.DateTimeField(null=True)


class AlertEvent(BaseModel):
    """One notification-worthy moment of a rule: it started firing, fired again after its
    cooldown, or resolved. It names its rule by value too, so history outlives the rule."""

    id = peewee.BigAutoField()
    rule_id = peewee.CharField(max_length=32, index=True)
    rule_name = peewee.CharField(max_length=128)
    kind = peewee.CharField(max_length=32)
    severity = peewee.CharField(max_length=16)
    state = peewee.CharField(max_length=16, index=True)  # firing | resolved
    repeat = peewee.BooleanField(default=False)  # a reminder of a condition already firing
    value = peewee.FloatField(null=True)
    threshold = peewee.FloatField()
    text = peewee.TextField(default="")
    labels = peewee.TextField(default="{}")  # JSON
    at = peewee.DateTimeField(default=utcnow, index=True)
    deliveries = peewee.TextField(default="[]")  # JSON: [{notifier, target, ok, attempts, error, at}]
    pending = peewee.BooleanField(default=False, index=True)  # a channel failed and will be retried
    claimed_until = peewee.DateTimeField(null=True)  # a process delivering it holds it until then
    # Someone is on it (a firing, non-reminder event only): who, when, what they said. Reminders
    # stop; a later firing after it resolved is a new event, so it starts unacknowledged.
    acknowledged_by = peewee.CharField(max_length=128, null=True)
    acknowledged_at = peewee.DateTimeField(null=True)
    acknowledged_note = peewee.CharField(max_length=500, null=True)


MODELS = (AlertRule, AlertEvent)
