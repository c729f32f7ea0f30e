"""``/api/v1/me/preferences``: the console's per-person settings, an API like any other."""

from __future__ import annotations

from typing import Literal
from zoneinfo import available_timezones

from pydantic import field_validator

from rpahub_core.db import utcnow
from rpahub_core.permissions import AUTHENTICATED
from rpahub_core.web import ApiModel, ok, operation

from .models import ConsolePreference

TAGS = ("console",)


class PreferencesIn(ApiModel):
    language: Literal["zh-CN", "en"] | None = None
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value):
        if value and value not in available_timezones():
            raise ValueError("unknown time zone (an IANA name such as Asia/Shanghai)")
        return value


def preferences_json(row: ConsolePreference | None, default_timezone: str) -> dict:
    # No language until the person picks one: the browser's (or the cookie's) decides meanwhile.
    return {"language": row.language if row and row.language else None,
            "timezone": (row.timezone if row and row.timezone else default_timezone)}


class Preferences:
    def __init__(self, default_timezone: str):
        self.default_timezone = default_timezone

    @operation(permission=AUTHENTICATED, summary="My console preferences: language and time zone", tags=TAGS,
               allow_password_change=True)
    def on_get(self, req, resp):
        row = ConsolePreference.get_or_none(ConsolePreference.user_id == req.context.principal.id)
        ok(resp, preferences_json(row, self.default_timezone))

    @operation(permission=AUTHENTICATED, summary="Change my language or time zone", body=PreferencesIn, tags=TAGS,
               allow_password_change=True, audit="me.preferences.change")
    def on_patch(self, req, resp):
        body = req.context.body
        user_id = req.context.principal.id
        row = ConsolePreference.get_or_none(ConsolePreference.user_id == user_id)
        if row is None:
            row = ConsolePreference.create(user_id=user_id)
        if body.language is not None:
            row.language = body.language
        if body.timezone is not None:
            row.timezone = body.timezone
        row.updated_at = utcnow()
        row.save()
        ok(resp, preferences_json(row, self.default_timezone))
