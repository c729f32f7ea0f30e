"""Tables of local identity: people, roles, permissions held by roles, and tokens."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow


class User(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    username = peewee.CharField(max_length=64, unique=True)
    display_name = peewee.CharField(max_length=128, default="")
    email = peewee.CharField(max_length=254, default="")
    password_hash = peewee.CharField(max_length=256, null=True)  # None: signs in through OIDC only
    source = peewee.CharField(max_length=16, default="local")
    is_active = peewee.BooleanField(default=True)
    must_change_password = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class Role(BaseModel):
    name = peewee.CharField(primary_key=True, max_length=64)
    description = peewee.CharField(max_length=256, default="")
    builtin = peewee.BooleanField(default=False)


class RolePermission(BaseModel):
    role = peewee.ForeignKeyField(Role, on_delete="CASCADE", backref="grants")
    permission = peewee.CharField(max_length=64)

    class Meta:
        indexes = ((("role", "permission"), True),)


class UserRole(BaseModel):
    user = peewee.ForeignKeyField(User, on_delete="CASCADE", backref="role_links")
    role = peewee.ForeignKeyField(Role, on_delete="CASCADE", backref="user_links")

    class Meta:
        indexes = ((("user", "role"), True),)


class Token(BaseModel):
    """A person's bearer credential (sessions and API tokens). Robots hold none of these."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    principal_type = peewee.CharField(max_length=8)  # "user" | "robot"
    subject = peewee.CharField(max_length=64, index=True)  # user id or executor id
    kind = peewee.CharField(max_length=16)  # session | api | connection
    name = peewee.CharField(max_length=128, default="")
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(null=True)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)


MODELS = (User, Role, RolePermission, UserRole, Token)
