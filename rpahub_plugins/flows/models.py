"""Flows (task graphs), their runs, and the state of each task in a run."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class Flow(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128, unique=True)
    description = peewee.TextField(default="")
    failure_policy = peewee.CharField(max_length=32, default="stop_all")  # or continue_independent
    created_by = peewee.CharField(max_length=128)
    version = peewee.IntegerField(default=1)  # bumped on every change; a PUT may name the one it edited
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class FlowTask(BaseModel):
    flow = peewee.ForeignKeyField(Flow, on_delete="CASCADE", backref="tasks")
    key = peewee.CharField(max_length=64)
    package_id = peewee.CharField(max_length=32)
    executor_id = peewee.CharField(max_length=128, null=True)  # target: one executor,
    pool = peewee.CharField(max_length=64, null=True)  # or a pool,
    labels = peewee.TextField(default="[]")  # or any executor carrying these labels
    arguments = peewee.TextField(default="[]")  # [{name, type, value}]
    priority = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(null=True)  # None: the dispatcher's default
    position = peewee.IntegerField()  # index in the topological order

    class Meta:
        indexes = ((("flow", "key"), True),)


class FlowEdge(BaseModel):
    flow = peewee.ForeignKeyField(Flow, on_delete="CASCADE", backref="edges")
    parent = peewee.CharField(max_length=64)
    child = peewee.CharField(max_length=64)

    class Meta:
        indexes = ((("flow", "parent", "child"), True),)


class FlowRun(BaseModel):
    """One execution of a flow. It follows the definition it started with (``definition``,
    a JSON snapshot), so editing or deleting the flow never disturbs it."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    flow_id = peewee.CharField(max_length=32, index=True)
    flow_name = peewee.CharField(max_length=128)
    flow_version = peewee.IntegerField()
    failure_policy = peewee.CharField(max_length=32)
    definition = peewee.TextField()
    state = peewee.CharField(max_length=16, default="pending", index=True)  # pending|running|success|failed|cancelled
    reason = peewee.TextField(default="")  # why it failed or was cancelled
    created_by = peewee.CharField(max_length=128)
    created_by_id = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    started_at = peewee.DateTimeField(null=True)  # when its first task reached an executor
    finished_at = peewee.DateTimeField(null=True)


class FlowTaskRun(BaseModel):
    id = peewee.BigAutoField()
    flow_run = peewee.ForeignKeyField(FlowRun, on_delete="CASCADE", backref="task_runs")
    key = peewee.CharField(max_length=64)
    run_id = peewee.CharField(max_length=32, null=True, unique=True)  # a run belongs to one task run
    state = peewee.CharField(max_length=16, default="waiting", index=True)
    # waiting | queued | running | success | failed | skipped | cancelled
    detail = peewee.TextField(default="")
    queued_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("flow_run", "key"), True),)


MODELS = (Flow, FlowTask, FlowEdge, FlowRun, FlowTaskRun)
