"""Request shapes of the designers API; they validate input and feed the OpenAPI document."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from rpahub_core.web import ApiModel, PageQuery

NAME = r"^[\w][\w .@()-]*$"
VENDOR = r"^[\w][\w.-]*$"


def check_endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    return value.rstrip("/")


class DesignerIn(ApiModel):
    name: str = Field(min_length=1, max_length=128, pattern=NAME)
    vendor: str = Field(min_length=1, max_length=64, pattern=VENDOR, description="e.g. uibot, yingdao, rpahub")
    version: str = Field("", max_length=64)
    endpoint: str = Field(min_length=1, max_length=512, description="http(s) URL people open the designer at")
    capacity: int = Field(1, ge=1, le=1000, description="people it serves at once")
    enabled: bool = True

    _endpoint = field_validator("endpoint")(check_endpoint)


class DesignerPut(ApiModel):
    """Every field optional: only what is given changes."""

    name: str | None = Field(None, min_length=1, max_length=128, pattern=NAME)
    vendor: str | None = Field(None, min_length=1, max_length=64, pattern=VENDOR)
    version: str | None = Field(None, max_length=64)
    endpoint: str | None = Field(None, min_length=1, max_length=512)
    capacity: int | None = Field(None, ge=1, le=1000, description="below the current use: 409 unless force")
    enabled: bool | None = Field(None, description="false stops new allocations; with live leases: 409 unless force")
    rotateSecret: bool = Field(False, description="issue a new registration secret (shown once)")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value):
        return None if value is None else check_endpoint(value)


class ForceQuery(ApiModel):
    force: bool = Field(False, description="recycle the designer's live leases (reason: forced) instead of refusing")


class DesignerQuery(PageQuery):
    vendor: str | None = Field(None, max_length=64)
    enabled: bool | None = None


class AllocateIn(ApiModel):
    vendor: str | None = Field(None, min_length=1, max_length=64, pattern=VENDOR,
                               description="only designers of this vendor")
    minutes: int | None = Field(None, ge=1, description="lease length; default and maximum from configuration")


class RenewIn(ApiModel):
    minutes: int | None = Field(None, ge=1, description="from now; default and maximum from configuration")


class LeaseQuery(PageQuery):
    state: str | None = Field(None, pattern="^(active|recycled)$")
    designerId: str | None = Field(None, max_length=32)
    userId: str | None = Field(None, max_length=64, description="whose leases (designers.manage sees everyone's)")


class SessionQuery(ApiModel):
    token: str = Field(min_length=1, max_length=256, description="the sessionToken the person was given")
