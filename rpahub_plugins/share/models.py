"""Apps, their versions (each an immutable executors package), subscriptions, and
which runs were started from which app."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow

# The standard's examples of business domains (6.4.1b), as stored codes.
DOMAINS = ("marketing", "customer_service", "equipment", "hr", "finance", "it_ops", "other")


class App(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    name = peewee.CharField(max_length=128, unique=True)
    description = peewee.TextField(default="")
    vendor = peewee.CharField(max_length=128, default="", index=True)
    region = peewee.CharField(max_length=64, default="", index=True)
    scenario = peewee.CharField(max_length=128, default="", index=True)
    domain = peewee.CharField(max_length=32, default="other", index=True)
    tags = peewee.TextField(default="[]")  # JSON list; searched as '"tag"'
    parameters = peewee.TextField(default="[]")  # JSON list of ParameterSpec
    owner_id = peewee.CharField(max_length=64, index=True)
    owner_name = peewee.CharField(max_length=128)
    # draft: in the library only; listed: in the marketplace (上架); delisted (下架)
    state = peewee.CharField(max_length=16, default="draft", index=True)
    production_version = peewee.CharField(max_length=32, null=True)  # the AppVersion runs use
    requirement_id = peewee.CharField(max_length=32, null=True)
    # How the app's runs are retried and placed; None: the pool's, then the hub's settings.
    max_attempts = peewee.IntegerField(null=True)
    backoff_s = peewee.IntegerField(null=True)
    policy = peewee.CharField(max_length=32, null=True)  # a scheduling policy's name
    listed_at = peewee.DateTimeField(null=True)
    delisted_at = peewee.DateTimeField(null=True)
    delist_reason = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class AppVersion(BaseModel):
    """A version is an executors package (immutable, content-hashed) plus its review."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    app = peewee.ForeignKeyField(App, on_delete="RESTRICT", backref="versions")
    version = peewee.CharField(max_length=64)
    package_id = peewee.CharField(max_length=32, unique=True)
    sha256 = peewee.CharField(max_length=64)
    changelog = peewee.TextField(default="")
    # draft → pending (review requested) → approved | rejected; approved → retired
    state = peewee.CharField(max_length=16, default="draft", index=True)
    created_by = peewee.CharField(max_length=128)
    created_by_id = peewee.CharField(max_length=64)
    approved_by = peewee.CharField(max_length=128, null=True)
    approved_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("app", "version"), True),)


class Subscription(BaseModel):
    app = peewee.ForeignKeyField(App, on_delete="CASCADE", backref="subscriptions")
    user_id = peewee.CharField(max_length=64, index=True)
    user_name = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("app", "user_id"), True),)


class AppRun(BaseModel):
    """A run started from an app: the link that keeps runs traceable after delisting."""

    run_id = peewee.CharField(primary_key=True, max_length=32)
    app = peewee.ForeignKeyField(App, on_delete="RESTRICT", backref="runs")
    version = peewee.ForeignKeyField(AppVersion, on_delete="RESTRICT")
    user_id = peewee.CharField(max_length=64, index=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)


MODELS = (App, AppVersion, Subscription, AppRun)
