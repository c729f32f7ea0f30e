"""Requirements of the design center, their history, and the trial runs of their deliveries."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class Requirement(BaseModel):
    """A business need on its way to an app in the library (6.2.1a–f)."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    title = peewee.CharField(max_length=128)
    description = peewee.TextField(default="")
    region = peewee.CharField(max_length=64, default="", index=True)
    scenario = peewee.CharField(max_length=128, default="")
    domain = peewee.CharField(max_length=32, index=True)  # marketing|customer_service|equipment|hr|finance|it_ops
    expected_benefit = peewee.TextField(default="")
    priority = peewee.CharField(max_length=16, default="normal")  # low|normal|high|urgent
    attachments = peewee.TextField(default="[]")  # JSON list of StoredFile ids (source "demand")
    submitter_id = peewee.CharField(max_length=64, index=True)
    submitter_name = peewee.CharField(max_length=128)
    state = peewee.CharField(max_length=16, default="submitted", index=True)
    assignee_id = peewee.CharField(max_length=64, null=True, index=True)
    assignee_name = peewee.CharField(max_length=128, null=True)
    # The evaluation (6.2.1c).
    effort_days = peewee.FloatField(null=True)
    value_score = peewee.IntegerField(null=True)
    evaluation_notes = peewee.TextField(default="")
    evaluated_by = peewee.CharField(max_length=128, null=True)
    evaluated_at = peewee.DateTimeField(null=True)
    # The delivery (6.2.1d): a package and the parameter schema of the app it becomes.
    package_id = peewee.CharField(max_length=32, null=True)
    parameters = peewee.TextField(default="[]")  # JSON list of ParameterSpec
    vendor = peewee.CharField(max_length=64, default="")
    tags = peewee.TextField(default="[]")
    designed_by_id = peewee.CharField(max_length=64, null=True)  # who attached the package (maker-checker)
    designed_by = peewee.CharField(max_length=128, null=True)
    app_id = peewee.CharField(max_length=32, null=True, index=True)  # the app it improves, or became
    accepted_at = peewee.DateTimeField(null=True)
    version = peewee.IntegerField(default=1)  # bumped on every change; callers may name the one they saw
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "design_requirement"


class RequirementEvent(BaseModel):
    """One line of a requirement's history: a transition, a comment or a trial."""

    id = peewee.BigAutoField()
    requirement = peewee.ForeignKeyField(Requirement, on_delete="CASCADE", backref="events")
    kind = peewee.CharField(max_length=16)  # transition | comment | trial | edit
    action = peewee.CharField(max_length=32, default="")
    from_state = peewee.CharField(max_length=16, default="")
    to_state = peewee.CharField(max_length=16, default="")
    comment = peewee.TextField(default="")
    detail = peewee.TextField(default="{}")  # JSON: what the action carried (assignee, package, run...)
    actor_id = peewee.CharField(max_length=64)
    actor_name = peewee.CharField(max_length=128)
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "design_requirement_event"


class Trial(BaseModel):
    """A trial run (6.2.1e) of a requirement's delivered package; its state is the run's."""

    id = peewee.BigAutoField()  # increasing: the highest is the latest trial
    requirement = peewee.ForeignKeyField(Requirement, on_delete="CASCADE", backref="trials")
    run_id = peewee.CharField(max_length=32, unique=True)
    package_id = peewee.CharField(max_length=32)
    pool = peewee.CharField(max_length=64)
    arguments = peewee.TextField(default="{}")  # as given: name → value
    started_by_id = peewee.CharField(max_length=64)
    started_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "design_trial"


MODELS = (Requirement, RequirementEvent, Trial)
