"""Executor and designer images, their immutable versions, and the instances started from them."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow
from rpahub_plugins.executors.models import StoredFile


class Image(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128, unique=True)
    kind = peewee.CharField(max_length=16)  # executor | designer
    provider = peewee.CharField(max_length=64, default="local")  # the cloud provider that starts it
    description = peewee.TextField(default="")
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)


class ImageVersion(BaseModel):
    """An uploaded image file with the spec it starts with. Never changed once stored."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    image = peewee.ForeignKeyField(Image, on_delete="CASCADE", backref="versions")
    version = peewee.CharField(max_length=64)
    file = peewee.ForeignKeyField(StoredFile, on_delete="RESTRICT")
    sha256 = peewee.CharField(max_length=64)
    size = peewee.BigIntegerField()
    spec = peewee.TextField(default="{}")  # JSON, validated for the image's kind
    notes = peewee.TextField(default="")
    created_by = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("image", "version"), True),)


class Instance(BaseModel):
    """A machine (or process) started from an image version. It names its image and version
    by value as well, so it stays readable as history after the image is deleted."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    image_id = peewee.CharField(max_length=32, index=True)
    image_name = peewee.CharField(max_length=128)
    version_id = peewee.CharField(max_length=32)
    version = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=16)
    provider = peewee.CharField(max_length=64)
    state = peewee.CharField(max_length=16, default="starting", index=True)  # starting|running|stopped|failed
    host = peewee.CharField(max_length=255, default="")
    info = peewee.TextField(default="{}")  # the provider's last VM information (JSON)
    started_by = peewee.CharField(max_length=128)
    started_at = peewee.DateTimeField(default=utcnow, index=True)
    stopped_at = peewee.DateTimeField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)


MODELS = (Image, ImageVersion, Instance)
