"""Requests that wait for a second person (maker-checker, SEC-3)."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class ApprovalRequest(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    kind = peewee.CharField(max_length=64, index=True)
    target = peewee.CharField(max_length=256, index=True)  # what the request is about (an app id, a role...)
    title = peewee.CharField(max_length=256)
    payload = peewee.TextField(default="{}")  # what ``apply`` needs, as the maker asked it
    state = peewee.CharField(max_length=16, default="pending", index=True)  # pending|approved|rejected|withdrawn
    maker_id = peewee.CharField(max_length=64, index=True)
    maker_name = peewee.CharField(max_length=128)
    reason = peewee.TextField(default="")  # the maker's why
    checker_id = peewee.CharField(max_length=64, null=True)
    checker_name = peewee.CharField(max_length=128, null=True)
    decision_comment = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    decided_at = peewee.DateTimeField(null=True)


MODELS = (ApprovalRequest,)
