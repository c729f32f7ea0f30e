"""Registered designers and the leases that hand them to people."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class Designer(BaseModel):
    """A design tool instance the hub may hand out (6.2.3a). Only a registered, enabled
    designer is allocated, and only it can confirm a person's session."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128, unique=True)
    vendor = peewee.CharField(max_length=64, index=True)
    version = peewee.CharField(max_length=64, default="")
    endpoint = peewee.CharField(max_length=512)  # where a person's browser or client opens it
    capacity = peewee.IntegerField(default=1)  # people it serves at once
    enabled = peewee.BooleanField(default=True)
    secret_hash = peewee.CharField(max_length=64, unique=True)  # SHA-256 of the registration secret, shown once
    registered_by = peewee.CharField(max_length=128)
    instance_id = peewee.CharField(max_length=32, null=True, index=True)  # the image instance it runs on
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class DesignerLease(BaseModel):
    """One person's use of a designer until ``expires_at``. Kept after recycling, as history;
    it names its designer by id and name so deregistering the designer leaves it readable."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    designer_id = peewee.CharField(max_length=32, index=True)
    designer_name = peewee.CharField(max_length=128)
    user_id = peewee.CharField(max_length=64, index=True)
    user_name = peewee.CharField(max_length=128)
    token_hash = peewee.CharField(max_length=64, unique=True)  # SHA-256 of the session token
    state = peewee.CharField(max_length=16, default="active", index=True)  # active | recycled
    reason = peewee.CharField(max_length=16, default="")  # released | expired | forced
    recycled_by = peewee.CharField(max_length=128, default="")
    created_at = peewee.DateTimeField(default=utcnow)
    renewed_at = peewee.DateTimeField(null=True)
    expires_at = peewee.DateTimeField(index=True)
    recycled_at = peewee.DateTimeField(null=True)


MODELS = (Designer, DesignerLease)
