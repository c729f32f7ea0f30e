"""Request shapes of the identity API (they validate input and feed OpenAPI)."""

from __future__ import annotations

from pydantic import Field

from rpahub_core.web import ApiModel, PageQuery

USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$"


class LoginIn(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChangeIn(ApiModel):
    currentPassword: str = Field(max_length=1024)
    newPassword: str = Field(max_length=1024)


class TokenIn(ApiModel):
    name: str = Field(min_length=1, max_length=128)
    expiresInDays: int = Field(90, ge=1, le=366)


class UserIn(ApiModel):
    username: str = Field(pattern=USERNAME)
    displayName: str = Field("", max_length=128)
    email: str = Field("", max_length=254)
    password: str | None = Field(None, max_length=1024, description="omit to generate a one-time password")
    roles: list[str] = []


class UserPatch(ApiModel):
    displayName: str | None = Field(None, max_length=128)
    email: str | None = Field(None, max_length=254)
    isActive: bool | None = None
    roles: list[str] | None = None
    password: str | None = Field(None, max_length=1024, description="reset; the user must change it")


class UserQuery(PageQuery):
    q: str | None = Field(None, max_length=64, description="part of user name or display name")
    role: str | None = None
    active: bool | None = None


class RoleIn(ApiModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]{1,63}$")
    description: str = Field("", max_length=256)
    permissions: list[str] = []


class RolePut(ApiModel):
    description: str = Field("", max_length=256)
    permissions: list[str] = []
