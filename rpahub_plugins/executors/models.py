"""Suppliers, admitted executors, licences, run instances with their logs and
checkpoints, the durable command outbox, and stored files."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class Supplier(BaseModel):
    code = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=128, default="")
    secret_enc = peewee.TextField()  # Fernet; the clear secret never touches the database
    adapter = peewee.CharField(max_length=64, default="tces130")
    enabled = peewee.BooleanField(default=True)
    allowlist_required = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)


class AllowedRobot(BaseModel):
    supplier = peewee.ForeignKeyField(Supplier, on_delete="CASCADE", backref="allowed")
    robot_id = peewee.CharField(max_length=128)

    class Meta:
        indexes = ((("supplier", "robot_id"), True),)


class Executor(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=128)  # the robot's own id (/robothub/{id}, robotId)
    supplier = peewee.ForeignKeyField(Supplier, on_delete="RESTRICT", backref="executors")
    version = peewee.CharField(max_length=64, default="")
    labels = peewee.TextField(default="[]")  # JSON list
    slots = peewee.IntegerField(default=1)
    state = peewee.CharField(max_length=16, default="offline", index=True)  # offline | online | busy
    transport = peewee.CharField(max_length=8, default="")  # ws | http
    connect_id = peewee.CharField(max_length=32, null=True, index=True)  # hash of the current robotConnectId
    node = peewee.CharField(max_length=32, default="")  # hub process holding the connection
    registered_at = peewee.DateTimeField(null=True)
    last_heartbeat = peewee.DateTimeField(null=True)
    # Paused: connected and finishing what it holds, but given no new run (maintenance, a
    # suspect machine); who paused it and why are shown beside it.
    paused = peewee.BooleanField(default=False)
    paused_note = peewee.CharField(max_length=200, default="")
    created_at = peewee.DateTimeField(default=utcnow)


class Licence(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    supplier = peewee.ForeignKeyField(Supplier, on_delete="CASCADE", backref="licences")
    robot_id = peewee.CharField(max_length=128, null=True, index=True)
    pool = peewee.CharField(max_length=64, null=True)
    features = peewee.TextField(default="[]")
    not_before = peewee.DateTimeField()
    expires_at = peewee.DateTimeField()
    supersedes = peewee.CharField(max_length=32, null=True)
    content = peewee.TextField()
    revoked_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)


class StoredFile(BaseModel):
    """An uploaded file; the bytes live content-addressed under <home>/files."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    sha256 = peewee.CharField(max_length=64, index=True)
    size = peewee.BigIntegerField()
    name = peewee.CharField(max_length=255)
    content_type = peewee.CharField(max_length=128, default="application/octet-stream")
    source = peewee.CharField(max_length=16)  # file | demand | icon | package | video
    uploaded_by = peewee.CharField(max_length=160)  # principal label: user:<name> / robot:<id>
    run_id = peewee.CharField(max_length=32, null=True, index=True)
    created_at = peewee.DateTimeField(default=utcnow)


class Package(BaseModel):
    """A flow package an executor downloads (``packageDownloadUri``)."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128)
    version = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=16)  # python | robot
    entry = peewee.CharField(max_length=255, default="")
    file = peewee.ForeignKeyField(StoredFile, on_delete="RESTRICT")
    created_by = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("name", "version"), True),)


class RunInstance(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    package = peewee.ForeignKeyField(Package, on_delete="RESTRICT")
    executor_id = peewee.CharField(max_length=128, null=True, index=True)
    state = peewee.CharField(max_length=16, default="pending", index=True)
    arguments = peewee.TextField(default="[]")
    user_id = peewee.CharField(max_length=64)
    user_name = peewee.CharField(max_length=128)
    video_required = peewee.BooleanField(default=False)
    video_mode = peewee.IntegerField(default=0)
    attempt = peewee.IntegerField(default=1)
    finish_status = peewee.IntegerField(null=True)
    error_code = peewee.IntegerField(null=True)
    outputs = peewee.TextField(default="{}")
    checkpoint = peewee.TextField(null=True)
    checkpoint_at = peewee.DateTimeField(null=True)
    video_id = peewee.CharField(max_length=32, null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    dispatched_at = peewee.DateTimeField(null=True)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    # The executor holds the run while this is in the future; renewed by its messages.
    lease_expires_at = peewee.DateTimeField(null=True, index=True)


class RunLog(BaseModel):
    id = peewee.BigAutoField()
    run = peewee.ForeignKeyField(RunInstance, on_delete="CASCADE", backref="logs", index=True)
    content = peewee.TextField()
    screenshot = peewee.CharField(max_length=64, null=True)
    log_at = peewee.DateTimeField()
    level = peewee.SmallIntegerField()
    executor_id = peewee.CharField(max_length=128)


class RunEvent(BaseModel):
    """The timeline of a run: every state change with who caused it."""

    id = peewee.BigAutoField()
    run = peewee.ForeignKeyField(RunInstance, on_delete="CASCADE", backref="events", index=True)
    at = peewee.DateTimeField(default=utcnow)
    state = peewee.CharField(max_length=16)
    detail = peewee.TextField(default="")


class Command(BaseModel):
    """Downlink commands, durable until delivered: WebSocket pushes them, HTTP heartbeats fetch them."""

    id = peewee.BigAutoField()
    executor_id = peewee.CharField(max_length=128, index=True)
    action = peewee.CharField(max_length=16)
    body = peewee.TextField(null=True)  # the JSON text that travels as "body"
    run_id = peewee.CharField(max_length=32, null=True, index=True)
    created_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True, index=True)

    class Meta:
        indexes = ((("executor_id", "delivered_at"), False),)


class PersonalFile(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    file = peewee.ForeignKeyField(StoredFile, on_delete="CASCADE")
    owner_id = peewee.CharField(max_length=64, index=True)
    owner_name = peewee.CharField(max_length=128, default="")
    name = peewee.CharField(max_length=255)
    run_id = peewee.CharField(max_length=32, null=True)
    added_by = peewee.CharField(max_length=160)
    created_at = peewee.DateTimeField(default=utcnow)


class UsedNonce(BaseModel):
    """Register proofs already seen inside the replay window, on every hub process."""

    supplier = peewee.CharField(max_length=64)
    nonce = peewee.CharField(max_length=64)
    seen_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        primary_key = peewee.CompositeKey("supplier", "nonce")


MODELS = (Supplier, AllowedRobot, Executor, Licence, StoredFile, Package, RunInstance, RunLog, RunEvent,
          Command, PersonalFile, UsedNonce)
