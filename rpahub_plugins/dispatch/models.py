"""Pools of executors and the queue of runs waiting for one."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, utcnow


class Pool(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=64)
    description = peewee.CharField(max_length=256, default="")
    policy = peewee.CharField(max_length=32, default="least_loaded")
    labels = peewee.TextField(default="[]")  # executors carrying all of these belong too
    created_at = peewee.DateTimeField(default=utcnow)


class PoolMember(BaseModel):
    pool = peewee.ForeignKeyField(Pool, on_delete="CASCADE", backref="members")
    executor_id = peewee.CharField(max_length=128)

    class Meta:
        indexes = ((("pool", "executor_id"), True),)


class QueueEntry(BaseModel):
    """A run waiting for an executor. Deleted in the transaction that assigns it."""

    run_id = peewee.CharField(primary_key=True, max_length=32)
    executor_id = peewee.CharField(max_length=128, null=True)  # target: one executor,
    pool = peewee.CharField(max_length=64, null=True)  # or a pool,
    labels = peewee.TextField(default="[]")  # or any executor carrying these labels
    supplier = peewee.CharField(max_length=64, null=True)  # vendor affinity
    policy = peewee.CharField(max_length=32, null=True)  # default: the pool's
    priority = peewee.IntegerField(default=0, index=True)
    max_attempts = peewee.IntegerField(default=3)
    backoff_s = peewee.IntegerField(default=10)
    not_before = peewee.DateTimeField(default=utcnow, index=True)
    enqueued_at = peewee.DateTimeField(default=utcnow)
    previous_executor = peewee.CharField(max_length=128, null=True)


class RunPlan(BaseModel):
    """How a run is placed and retried; kept for its whole life (failover re-reads it)."""

    run_id = peewee.CharField(primary_key=True, max_length=32)
    executor_id = peewee.CharField(max_length=128, null=True)
    pool = peewee.CharField(max_length=64, null=True)
    labels = peewee.TextField(default="[]")
    supplier = peewee.CharField(max_length=64, null=True)
    policy = peewee.CharField(max_length=32, null=True)
    priority = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=3)
    backoff_s = peewee.IntegerField(default=10)
    # The attempt whose retry-or-complete decision was taken (finish events are at-least-once).
    decided_attempt = peewee.IntegerField(default=0)


MODELS = (Pool, PoolMember, QueueEntry, RunPlan)
