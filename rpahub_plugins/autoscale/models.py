"""Autoscaling policies per pool and the history of what the autoscaler did."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, utcnow


class AutoscalePolicy(BaseModel):
    # The pool's name, not a foreign key: the pool belongs to the dispatch plugin, and a
    # policy outliving its pool is how the autoscaler knows to stop that pool's executors.
    pool = peewee.CharField(primary_key=True, max_length=64)
    provider = peewee.CharField(max_length=64, default="local")
    min_size = peewee.IntegerField(default=0)
    max_size = peewee.IntegerField(default=1)
    queue_per_executor = peewee.IntegerField(default=1)
    max_wait_s = peewee.IntegerField(default=60)
    idle_s = peewee.IntegerField(default=300)
    cooldown_s = peewee.IntegerField(default=60)
    enabled = peewee.BooleanField(default=True)
    size = peewee.IntegerField(default=0)  # what the providers last reported
    last_action_at = peewee.DateTimeField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)


class AutoscaleEvent(BaseModel):
    id = peewee.BigAutoField()
    at = peewee.DateTimeField(default=utcnow)
    pool = peewee.CharField(max_length=64, index=True)
    provider = peewee.CharField(max_length=64)
    from_size = peewee.IntegerField()
    to_size = peewee.IntegerField()
    reason = peewee.CharField(max_length=512)


MODELS = (AutoscalePolicy, AutoscaleEvent)
